//! Reading the Prometheus text format back: the samples of an exposition,
//! for the console's history (`history`) and `weir status`.

use std::collections::BTreeMap;

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, or `""`.
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }
}

/// Parse the samples of a Prometheus text exposition; comments and lines that
/// are not samples are skipped.
pub fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find('{') {
        Some(open) => (&line[..open], &line[open + 1..]),
        None => {
            let (name, value) = line.split_once(' ')?;
            return Some(Sample {
                name: name.to_string(),
                labels: BTreeMap::new(),
                value: value.trim().parse().ok()?,
            });
        }
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.char_indices();
    let mut key = String::new();
    let close = loop {
        let (i, c) = chars.next()?;
        match c {
            '}' => break i,
            ',' | ' ' => {}
            '=' => {
                if chars.next()?.1 != '"' {
                    return None;
                }
                let mut value = String::new();
                loop {
                    match chars.next()?.1 {
                        '"' => break,
                        '\\' => match chars.next()?.1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        other => value.push(other),
                    }
                }
                labels.insert(std::mem::take(&mut key), value);
            }
            other => key.push(other),
        }
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value: rest[close + 1..].trim().parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP weir_consumer_lag High watermark minus committed offset.
# TYPE weir_consumer_lag gauge
weir_consumer_lag{pipeline="g",topic="in",partition="0"} 40
weir_committed_offset{pipeline="g",topic="in",partition="0"} 60
weir_high_watermark{pipeline="g",topic="in",partition="0"} 100
weir_assigned_partitions{pipeline="g"} 1
weir_records_consumed_total{pipeline="g",topic="in"} 100
weir_plugin_info{pipeline="g",plugin="up",version="0123456789abcdef"} 1
weir_odd{pipeline="g",note="a \"quoted\", value"} 2.5
weir_subscribed_topic{pipeline="g",topic="in"} 1
weir_subscribed_topic{pipeline="g",topic="in-b"} 1
"#;

    #[test]
    fn parses_samples_with_labels_and_escapes() {
        let samples = parse_samples(TEXT);
        assert_eq!(samples.len(), 9);
        assert_eq!(samples[0].name, "weir_consumer_lag");
        assert_eq!(samples[0].label("partition"), "0");
        assert_eq!(samples[0].value, 40.0);
        assert_eq!(samples[6].label("note"), r#"a "quoted", value"#);
        assert_eq!(samples[6].value, 2.5);
    }
}
