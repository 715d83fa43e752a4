//! One dead letter as `weir dlq` sees it: the failure it records (from the
//! `weir.*` headers a letter carries), whether a filter selects it, and the
//! record a replay writes back (the original record, without the headers the
//! letter added, with `weir.replay.count` one higher).

use crate::partition::headers;
use crate::record::{bytes_json, Header, Output, Record};
use humantime_serde::re::humantime;
use serde_json::{json, Value};

/// A dead letter read from a dead-letter topic.
pub struct Letter {
    /// The letter as consumed (topic, partition and offset are the letter's
    /// own place in the dead-letter topic).
    pub record: Record,
}

/// Which letters a command looks at. Empty fields select everything.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only letters of these failure kinds (`weir.error.kind`).
    pub kinds: Vec<String>,
    /// Only letters given up on at or after this time, in ms since the epoch.
    pub since_ms: Option<i64>,
    /// Only letters at or after this offset of their dead-letter partition.
    pub from_offset: Option<i64>,
    /// Only letters at or before this offset of their dead-letter partition.
    pub until_offset: Option<i64>,
}

/// Why a selected letter is not written back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It was replayed `--max-replays` times already.
    #[error("replayed {count} times already (--max-replays {max}); fix the plugin or raise --max-replays")]
    TooManyReplays {
        /// Its `weir.replay.count`.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// The broker refused the whole letter, so it lacks the record's value.
    #[error("the letter lost the record's value and headers when it was written ({0})")]
    Truncated(String),
    /// It does not say where it came from and no `--to` was given.
    #[error("the letter has no weir.source.topic header; pass --to TOPIC")]
    NoSourceTopic,
    /// Its `weir.source.topic` names no topic a record could have been
    /// consumed from (an internal, dead-letter or changelog topic, or an
    /// invalid name): a letter written by someone else, not by Weir.
    #[error("its weir.source.topic {topic:?} is not a topic Weir consumes ({why}); pass --to TOPIC if it is meant")]
    UnlikelySourceTopic {
        /// The header's value.
        topic: String,
        /// Why it cannot be a source.
        why: &'static str,
    },
    /// Its `weir.source.partition` is not a partition number.
    #[error("its weir.source.partition {0:?} is not a partition number; pass --to TOPIC to let the producer choose")]
    BadSourcePartition(String),
}

impl Letter {
    /// The last value of header `name` as text.
    fn header(&self, name: &str) -> Option<String> {
        last_header(&self.record.headers, name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }

    /// The failure kind, e.g. `trap`.
    pub fn kind(&self) -> Option<String> {
        self.header(headers::KIND)
    }

    /// When the record was given up on (ms since the epoch), else the
    /// letter's timestamp.
    pub fn failed_at_ms(&self) -> Option<i64> {
        self.header(headers::TIMESTAMP)
            .and_then(|ms| ms.parse().ok())
            .or(self.record.timestamp)
    }

    /// The topic the record was consumed from.
    pub fn source_topic(&self) -> Option<String> {
        self.header(headers::TOPIC)
    }

    /// How many times it was replayed already.
    pub fn replay_count(&self) -> u32 {
        self.header(headers::REPLAY_COUNT)
            .and_then(|count| count.parse().ok())
            .unwrap_or(0)
    }

    /// Whether `filter` selects it.
    pub fn selected_by(&self, filter: &Filter) -> bool {
        let offset = self.record.offset;
        (filter.kinds.is_empty() || self.kind().is_some_and(|k| filter.kinds.contains(&k)))
            && filter
                .since_ms
                .is_none_or(|since| self.failed_at_ms().is_some_and(|at| at >= since))
            && filter.from_offset.is_none_or(|from| offset >= from)
            && filter.until_offset.is_none_or(|until| offset <= until)
    }

    /// The record to write back: to `to`, else to the topic it came from (in
    /// the partition it came from, so it stays with its key's other records).
    /// Its key, value, timestamp and own headers are the original's; the
    /// headers the letter added are dropped and `weir.replay.count` is set to
    /// one more than before.
    pub fn replay(&self, to: Option<&str>, max_replays: u32) -> Result<Output, Refusal> {
        let count = self.replay_count();
        if count >= max_replays {
            return Err(Refusal::TooManyReplays {
                count,
                max: max_replays,
            });
        }
        if let Some(why) = self.header(headers::TRUNCATED) {
            return Err(Refusal::Truncated(why));
        }
        let (topic, partition) = match to {
            Some(to) => (to.to_string(), None),
            None => {
                let topic = self.source_topic().ok_or(Refusal::NoSourceTopic)?;
                check_source_topic(&topic).map_err(|why| Refusal::UnlikelySourceTopic {
                    topic: topic.clone(),
                    why,
                })?;
                let partition = match self.header(headers::PARTITION) {
                    None => None,
                    Some(p) => Some(
                        p.parse::<i32>()
                            .ok()
                            .filter(|p| *p >= 0)
                            .ok_or(Refusal::BadSourcePartition(p))?,
                    ),
                };
                (topic, partition)
            }
        };
        let mut kept = original_headers(&self.record.headers);
        kept.retain(|h| h.key != headers::REPLAY_COUNT);
        kept.push(Header {
            key: headers::REPLAY_COUNT.to_string(),
            value: (count + 1).to_string().into_bytes(),
        });
        Ok(Output {
            topic: Some(topic),
            partition,
            key: self.record.key.clone(),
            value: self.record.value.clone(),
            headers: kept,
        })
    }

    /// The letter as one JSON object: where it is, the failure, the record.
    pub fn to_json(&self) -> Value {
        let r = &self.record;
        json!({
            "partition": r.partition,
            "offset": r.offset,
            "kind": self.kind(),
            "message": self.header(headers::MESSAGE),
            "failed_at_ms": self.failed_at_ms(),
            "source": {
                "topic": self.source_topic(),
                "partition": self.header(headers::PARTITION).and_then(|p| p.parse::<i32>().ok()),
                "offset": self.header(headers::OFFSET).and_then(|o| o.parse::<i64>().ok()),
            },
            "plugin": self.header(headers::PLUGIN),
            "plugin_version": self.header(headers::VERSION),
            "replay_count": self.replay_count(),
            "key": r.key.as_deref().map(bytes_json),
            "value": r.value.as_deref().map(bytes_json),
            "headers": r.headers.iter().map(|h| json!([h.key, bytes_json(&h.value)])).collect::<Vec<_>>(),
        })
    }

    /// The letter for the console: where it is, the failure, the `weir.*`
    /// headers, and previews of the key and value (at most
    /// [`PREVIEW_BYTES`] of each, as text when UTF-8, else as hex).
    pub fn preview_json(&self) -> Value {
        let r = &self.record;
        json!({
            "topic": r.topic,
            "partition": r.partition,
            "offset": r.offset,
            "kind": self.kind(),
            "message": self.header(headers::MESSAGE),
            "failed_at_ms": self.failed_at_ms(),
            "source_topic": self.source_topic(),
            "replay_count": self.replay_count(),
            "key": r.key.as_deref().map(bytes_preview),
            "value": r.value.as_deref().map(bytes_preview),
            "headers": r.headers.iter()
                .filter(|h| h.key.starts_with("weir."))
                .map(|h| json!([h.key, String::from_utf8_lossy(cut(&h.value))]))
                .collect::<Vec<_>>(),
        })
    }

    /// The letter on one line for a terminal: place, kind, source, key,
    /// a value preview and the message.
    pub fn summary_line(&self) -> String {
        let r = &self.record;
        let when = self
            .failed_at_ms()
            .and_then(|ms| u64::try_from(ms).ok())
            .map(|ms| {
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
                )
                .to_string()
            })
            .unwrap_or_else(|| "-".into());
        let source = match self.source_topic() {
            Some(topic) => format!(
                "{topic}/{}@{}",
                self.header(headers::PARTITION).unwrap_or_default(),
                self.header(headers::OFFSET).unwrap_or_default()
            ),
            None => "-".into(),
        };
        format!(
            "{}/{}@{}  {when}  {:<12} from {source}  key={}  value={}  {}",
            r.topic,
            r.partition,
            r.offset,
            self.kind().unwrap_or_else(|| "-".into()),
            preview(r.key.as_deref()),
            preview(r.value.as_deref()),
            self.header(headers::MESSAGE).unwrap_or_default()
        )
    }
}

/// Most bytes of a key, value or header the console's preview carries.
pub const PREVIEW_BYTES: usize = 2048;

fn cut(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(PREVIEW_BYTES)]
}

/// `{"size": n, "text": ".."}` when the (cut) bytes are UTF-8, else
/// `{"size": n, "hex": ".."}`; `cut` says whether bytes were left out.
fn bytes_preview(bytes: &[u8]) -> Value {
    let shown = cut(bytes);
    // A cut may split a character: only a cut-off tail may be invalid.
    let text = match std::str::from_utf8(shown) {
        Ok(text) => Some(text),
        Err(e) if shown.len() < bytes.len() && e.error_len().is_none() => {
            std::str::from_utf8(&shown[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    let cut = shown.len() < bytes.len();
    match text {
        Some(text) => json!({ "size": bytes.len(), "cut": cut, "text": text }),
        None => {
            let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
            json!({ "size": bytes.len(), "cut": cut, "hex": hex })
        }
    }
}

/// Why `topic` cannot be a topic Weir consumed a record from: the rules by
/// which topic patterns never match (internal, dead-letter and changelog
/// topics) and Kafka's topic-name rules.
fn check_source_topic(topic: &str) -> Result<(), &'static str> {
    crate::config::check_topic_name(topic)?;
    if topic.starts_with("__") {
        return Err("an internal topic");
    }
    if topic.ends_with(crate::config::DEAD_LETTER_SUFFIX) {
        return Err("a dead-letter topic");
    }
    if topic.ends_with(crate::state::changelog::CHANGELOG_SUFFIX) {
        return Err("a state changelog");
    }
    Ok(())
}

/// The last value of header `name`.
fn last_header<'a>(all: &'a [Header], name: &str) -> Option<&'a [u8]> {
    all.iter()
        .rev()
        .find(|h| h.key == name)
        .map(|h| h.value.as_slice())
}

/// The record's own headers: a letter appends [`headers::ADDED`] after them,
/// so the last occurrence of each of those names is the letter's (an earlier
/// one with the same name was the record's own and stays).
fn original_headers(all: &[Header]) -> Vec<Header> {
    let mut drop = vec![false; all.len()];
    for name in headers::ADDED {
        if let Some(i) = all.iter().rposition(|h| h.key == name) {
            drop[i] = true;
        }
    }
    all.iter()
        .zip(drop)
        .filter(|(_, dropped)| !dropped)
        .map(|(h, _)| h.clone())
        .collect()
}

/// Bytes for a terminal: quoted text (cut at 60 characters) when UTF-8, else
/// the first 24 bytes in hex; with the size when cut.
fn preview(bytes: Option<&[u8]>) -> String {
    const TEXT_CHARS: usize = 60;
    const HEX_BYTES: usize = 24;
    let Some(bytes) = bytes else {
        return "null".into();
    };
    match std::str::from_utf8(bytes) {
        Ok(text) if text.chars().count() <= TEXT_CHARS => format!("{text:?}"),
        Ok(text) => {
            let cut: String = text.chars().take(TEXT_CHARS).collect();
            format!("{cut:?}… ({} B)", bytes.len())
        }
        Err(_) => {
            let hex: String = bytes
                .iter()
                .take(HEX_BYTES)
                .map(|b| format!("{b:02x}"))
                .collect();
            let more = if bytes.len() > HEX_BYTES { "…" } else { "" };
            format!("0x{hex}{more} ({} B)", bytes.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(key: &str, value: &str) -> Header {
        Header {
            key: key.into(),
            value: value.as_bytes().to_vec(),
        }
    }

    /// A letter as the host writes it: the record's headers, then ADDED.
    fn letter(own: Vec<Header>, kind: &str, failed_at: &str) -> Letter {
        let mut all = own;
        for name in headers::ADDED {
            let value = match name {
                headers::KIND => kind,
                headers::TIMESTAMP => failed_at,
                headers::TOPIC => "orders",
                headers::PARTITION => "3",
                headers::OFFSET => "41",
                _ => "x",
            };
            all.push(header(name, value));
        }
        Letter {
            record: Record {
                topic: "orders.dlq".into(),
                partition: 0,
                offset: 7,
                timestamp: Some(1),
                key: Some(b"k".to_vec()),
                value: Some(b"v".to_vec()),
                headers: all,
            },
        }
    }

    #[test]
    fn a_replay_keeps_the_records_own_headers_and_counts() {
        // The record itself came from another pipeline's dead letter: its own
        // weir.error.kind must survive.
        let own = vec![header("trace", "t1"), header(headers::KIND, "upstream")];
        let l = letter(own.clone(), "trap", "1000");
        let out = l.replay(None, 3).unwrap();
        assert_eq!(out.topic.as_deref(), Some("orders"));
        assert_eq!(out.partition, Some(3));
        assert_eq!(
            (out.key.as_deref(), out.value.as_deref()),
            (Some(&b"k"[..]), Some(&b"v"[..]))
        );
        let mut expected = own;
        expected.push(header(headers::REPLAY_COUNT, "1"));
        assert_eq!(out.headers, expected);

        let again = Letter {
            record: Record {
                headers: letter(out.headers, "trap", "2000").record.headers,
                ..l.record.clone()
            },
        };
        assert_eq!(again.replay_count(), 1);
        let twice = again.replay(Some("elsewhere"), 3).unwrap();
        assert_eq!(
            (twice.topic.as_deref(), twice.partition),
            (Some("elsewhere"), None)
        );
        assert_eq!(
            twice
                .headers
                .iter()
                .filter(|h| h.key == headers::REPLAY_COUNT)
                .count(),
            1
        );
        assert_eq!(
            last_header(&twice.headers, headers::REPLAY_COUNT),
            Some(&b"2"[..])
        );
    }

    #[test]
    fn letters_at_the_limit_truncated_or_without_a_source_are_refused() {
        let mut at_limit = letter(vec![header(headers::REPLAY_COUNT, "2")], "trap", "1");
        assert_eq!(
            at_limit.replay(None, 2),
            Err(Refusal::TooManyReplays { count: 2, max: 2 })
        );
        assert!(at_limit.replay(None, 3).is_ok());
        at_limit
            .record
            .headers
            .push(header(headers::TRUNCATED, "too large"));
        assert!(matches!(
            at_limit.replay(None, 3),
            Err(Refusal::Truncated(_))
        ));
        let mut sourceless = letter(vec![], "trap", "1");
        sourceless
            .record
            .headers
            .retain(|h| h.key != headers::TOPIC);
        assert_eq!(sourceless.replay(None, 3), Err(Refusal::NoSourceTopic));
        assert!(sourceless.replay(Some("to"), 3).is_ok());
    }

    /// A letter someone else wrote to the dead-letter topic, naming where to
    /// send it: it never reaches an internal, dead-letter or changelog
    /// topic, nor a partition that is no partition.
    #[test]
    fn forged_sources_are_refused() {
        let forged = |name: &str, value: &str| {
            let mut l = letter(vec![], "trap", "1");
            l.record.headers.push(header(name, value));
            l
        };
        for topic in [
            "__consumer_offsets",
            "orders.dlq",
            "g.count_by_key.state",
            "bad name",
            "",
        ] {
            let refused = forged(headers::TOPIC, topic).replay(None, 3);
            assert!(
                matches!(refused, Err(Refusal::UnlikelySourceTopic { .. })),
                "{topic:?}: {refused:?}"
            );
            assert!(forged(headers::TOPIC, topic).replay(Some("to"), 3).is_ok());
        }
        for partition in ["-1", "-5", "99999999999", "x"] {
            assert_eq!(
                forged(headers::PARTITION, partition).replay(None, 3),
                Err(Refusal::BadSourcePartition(partition.into()))
            );
        }
        assert_eq!(
            forged(headers::REPLAY_COUNT, &u32::MAX.to_string()).replay(None, u32::MAX),
            Err(Refusal::TooManyReplays {
                count: u32::MAX,
                max: u32::MAX
            })
        );
    }

    #[test]
    fn filters_select_by_kind_time_and_offset() {
        let l = letter(vec![], "trap", "5000");
        assert!(l.selected_by(&Filter::default()));
        let kinds = |k: &[&str]| Filter {
            kinds: k.iter().map(|s| s.to_string()).collect(),
            ..Filter::default()
        };
        assert!(l.selected_by(&kinds(&["error", "trap"])));
        assert!(!l.selected_by(&kinds(&["error"])));
        let since = |ms| Filter {
            since_ms: Some(ms),
            ..Filter::default()
        };
        assert!(l.selected_by(&since(5000)) && !l.selected_by(&since(5001)));
        let offsets = |from, until| Filter {
            from_offset: from,
            until_offset: until,
            ..Filter::default()
        };
        assert!(l.selected_by(&offsets(Some(7), Some(7))));
        assert!(!l.selected_by(&offsets(Some(8), None)) && !l.selected_by(&offsets(None, Some(6))));
    }

    #[test]
    fn console_previews_are_cut_text_or_hex_with_only_weir_headers() {
        let mut l = letter(vec![header("secret", "s")], "trap", "1");
        l.record.value = Some("é".repeat(PREVIEW_BYTES).into_bytes());
        l.record.key = Some(vec![0xff, 0x00]);
        let p = l.preview_json();
        assert_eq!(p["value"]["size"], 2 * PREVIEW_BYTES);
        assert_eq!(p["value"]["cut"], true);
        assert_eq!(p["value"]["text"].as_str().unwrap().len(), PREVIEW_BYTES);
        assert_eq!(p["key"], json!({"size": 2, "cut": false, "hex": "ff00"}));
        let names: Vec<&str> = p["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h[0].as_str().unwrap())
            .collect();
        assert_eq!(names, headers::ADDED);
        assert_eq!(p["kind"], "trap");
    }

    #[test]
    fn previews_are_short_text_or_hex() {
        assert_eq!(preview(None), "null");
        assert_eq!(preview(Some(b"hi")), "\"hi\"");
        assert!(preview(Some("é".repeat(100).as_bytes())).ends_with("… (200 B)"));
        assert_eq!(preview(Some(&[0xff, 0])), "0xff00 (2 B)");
    }
}
