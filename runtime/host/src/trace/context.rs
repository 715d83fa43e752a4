//! W3C trace context across the plugin: an input record with a `traceparent`
//! header gets outputs carrying a child `traceparent` (same trace, Weir's span
//! for processing that record, the same flags) and the input's `tracestate`, so
//! a trace that entered Kafka continues through Weir to whoever reads the outputs.
//!
//! With OTLP export on (`otlp`), Weir's span is a real exported span. Without it,
//! its id is derived from the parent span and the record's position (topic,
//! partition, offset), so reprocessing a record gives the same id, and nothing
//! else is spent.

use super::otlp::{Parent, RecordSpan, SpanExport};
use crate::record::{Header, Output, Record};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::SystemTime;

/// The header carrying the trace and parent span.
pub const TRACEPARENT: &str = "traceparent";
/// The header carrying vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";

/// A parsed version-00 `traceparent`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TraceParent<'a> {
    trace_id: &'a str,
    span_id: &'a str,
    flags: &'a str,
}

/// Parse a `traceparent` value; `None` if it is not a valid one.
fn parse(value: &[u8]) -> Option<TraceParent<'_>> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split('-');
    let (version, trace_id, span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        // Version 00 has exactly four fields; later versions may append more.
        && (version != "00" || parts.next().is_none())
        && hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && hex(span_id, 16)
        && span_id.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    valid.then_some(TraceParent {
        trace_id,
        span_id,
        flags,
    })
}

/// The span id of Weir's processing of `record`, derived when spans are not exported.
fn derived_span_id(parent: &TraceParent<'_>, record: &Record) -> String {
    let mut hash = Sha256::new();
    hash.update(parent.span_id.as_bytes());
    hash.update(record.topic.as_bytes());
    hash.update(record.partition.to_be_bytes());
    hash.update(record.offset.to_be_bytes());
    let digest = hash.finalize();
    let mut id: [u8; 8] = digest[..8]
        .try_into()
        .expect("a SHA-256 digest has 32 bytes");
    if id == [0; 8] {
        id[7] = 1;
    }
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn header<'a>(headers: &'a [Header], key: &str) -> Option<&'a Header> {
    headers.iter().find(|h| h.key == key)
}

/// How Weir continues traces: deriving span ids, or exporting real spans.
#[derive(Clone, Default)]
pub struct Tracing {
    export: Option<Arc<SpanExport>>,
}

impl Tracing {
    /// Continue traces with spans exported through `export`.
    pub fn exporting(export: Arc<SpanExport>) -> Self {
        Self {
            export: Some(export),
        }
    }

    /// Give each of `outputs` a child `traceparent` of `record`'s (and its
    /// `tracestate`), if `record` has a valid one. An output whose plugin set a
    /// `traceparent` of its own keeps it; one that copied the input's gets the
    /// child. Returns the exported span (begun at `started`, when the record's
    /// batch went to the plugin), to be dropped (ended) once the outputs are
    /// acknowledged.
    pub fn continue_trace(
        &self,
        record: &Record,
        outputs: &mut [Output],
        started: SystemTime,
    ) -> Option<RecordSpan> {
        let incoming = header(&record.headers, TRACEPARENT)?;
        let parent = parse(&incoming.value)?;
        let state = header(&record.headers, TRACESTATE);
        let (span, child) = match &self.export {
            Some(export) => {
                let parent = Parent {
                    trace_id: parent.trace_id,
                    span_id: parent.span_id,
                    flags: parent.flags,
                    state: state.map(|h| h.value.as_slice()),
                };
                let (span, child) = export.start(record, &parent, started)?;
                (Some(span), child)
            }
            None => {
                let id = derived_span_id(&parent, record);
                (
                    None,
                    format!("00-{}-{id}-{}", parent.trace_id, parent.flags),
                )
            }
        };
        for output in outputs {
            set_child(output, &incoming.value, &child, state);
        }
        span
    }
}

/// Put `child` in `output`'s `traceparent` unless the plugin set one of its own
/// (one other than the input's `incoming`), and copy the input's `state`.
fn set_child(output: &mut Output, incoming: &[u8], child: &str, state: Option<&Header>) {
    match output.headers.iter_mut().find(|h| h.key == TRACEPARENT) {
        Some(own) if own.value != incoming => return,
        Some(copied) => copied.value = child.as_bytes().to_vec(),
        None => output.headers.push(Header {
            key: TRACEPARENT.to_string(),
            value: child.as_bytes().to_vec(),
        }),
    }
    if let Some(state) = state {
        if header(&output.headers, TRACESTATE).is_none() {
            output.headers.push(state.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn record(headers: Vec<Header>) -> Record {
        Record {
            topic: "in".into(),
            partition: 1,
            offset: 7,
            timestamp: None,
            key: None,
            value: None,
            headers,
        }
    }

    fn h(key: &str, value: &str) -> Header {
        Header {
            key: key.into(),
            value: value.as_bytes().to_vec(),
        }
    }

    fn output(headers: Vec<Header>) -> Output {
        Output {
            topic: None,
            partition: None,
            key: None,
            value: None,
            headers,
        }
    }

    fn traceparent(o: &Output) -> String {
        String::from_utf8(header(&o.headers, TRACEPARENT).unwrap().value.clone()).unwrap()
    }

    #[test]
    fn outputs_get_child_spans_of_the_same_trace() {
        let input = record(vec![h(TRACEPARENT, PARENT), h(TRACESTATE, "v=1")]);
        let mut outputs = vec![output(vec![]), output(vec![h(TRACEPARENT, PARENT)])];
        assert!(Tracing::default()
            .continue_trace(&input, &mut outputs, SystemTime::now())
            .is_none());
        let (a, b) = (traceparent(&outputs[0]), traceparent(&outputs[1]));
        for child in [&a, &b] {
            let parsed = parse(child.as_bytes()).expect("a valid traceparent");
            assert_eq!(parsed.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(parsed.flags, "01");
            assert_ne!(parsed.span_id, "00f067aa0ba902b7");
        }
        assert_eq!(a, b, "the outputs share Weir's span for their record");
        let state = header(&outputs[0].headers, TRACESTATE).expect("tracestate is copied");
        assert_eq!(state.value, b"v=1");
        let mut again = vec![output(vec![])];
        Tracing::default().continue_trace(&input, &mut again, SystemTime::now());
        assert_eq!(
            traceparent(&again[0]),
            a,
            "reprocessing gives the same span id"
        );
    }

    #[test]
    fn a_plugins_own_traceparent_and_invalid_input_are_left_alone() {
        let own = "00-11111111111111111111111111111111-2222222222222222-00";
        let mut outputs = vec![output(vec![h(TRACEPARENT, own)])];
        Tracing::default().continue_trace(
            &record(vec![h(TRACEPARENT, PARENT)]),
            &mut outputs,
            SystemTime::now(),
        );
        assert_eq!(traceparent(&outputs[0]), own);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let mut outputs = vec![output(vec![])];
            Tracing::default().continue_trace(
                &record(vec![h(TRACEPARENT, bad)]),
                &mut outputs,
                SystemTime::now(),
            );
            assert!(
                outputs[0].headers.is_empty(),
                "{bad} is not a valid traceparent"
            );
        }
    }
}
