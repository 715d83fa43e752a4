//! Test plugin for the sandbox and the failure policy. It echoes each record
//! unchanged, except records whose value starts with a mark (the text before the
//! first `#`):
//!
//! | mark       | behaviour                                                        |
//! |------------|------------------------------------------------------------------|
//! | `panic`    | panics (a trap)                                                  |
//! | `loop`     | loops forever (hits the call deadline)                           |
//! | `sleep`    | sleeps forever in a WASI call (hits the deadline while blocked)  |
//! | `alloc`    | allocates without end (hits the memory cap)                      |
//! | `error`    | returns a non-retryable error                                    |
//! | `errorN`   | returns a non-retryable error whose message is N bytes long      |
//! | `retryN`   | returns a retryable error the first N times it sees the record   |
//! | `fanoutN`  | returns N copies of the record                                   |
//! | `growN`    | returns the record with its value padded to N bytes              |
//! | `partitionN` | returns the record routed to partition N of the output topic   |
//! | `to:NAME`  | returns the record routed to topic NAME                          |
//! | `logN`     | logs N lines through the host `log` import and N to stdout       |
//! | `probe`    | tries to read a file, an env var and open a socket; reports it   |

use std::collections::HashMap;
use weir_sdk::{Config, Output, ProcessError, Processor, Record};

/// Echo, with misbehaviour on marked records.
#[derive(Default)]
pub struct Poison {
    /// Times each (partition, offset) was seen, for `retryN`.
    seen: HashMap<(i32, i64), u32>,
}

impl Processor for Poison {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Self::default())
    }

    fn process(&mut self, record: Record) -> Result<Vec<Output>, ProcessError> {
        let value = record.value_str().unwrap_or_default();
        let mark = value.split('#').next().unwrap_or_default().to_string();
        match mark.as_str() {
            "panic" => panic!("poison: panic on offset {}", record.offset),
            "loop" => spin_forever(),
            "sleep" => sleep_forever(),
            "alloc" => hoard_forever(),
            "error" => Err(ProcessError::fatal(format!(
                "poison: refusing offset {}",
                record.offset
            ))),
            "probe" => Ok(vec![Output::new(probe_sandbox())]),
            _ => {
                if let Some(len) = count(&mark, "error") {
                    let mut message = format!("poison: refusing offset {} ", record.offset);
                    message.extend(std::iter::repeat_n('x', len as usize));
                    message.truncate(len as usize);
                    return Err(ProcessError::fatal(message));
                }
                if let Some(times) = count(&mark, "retry") {
                    let seen = self
                        .seen
                        .entry((record.partition, record.offset))
                        .or_default();
                    *seen += 1;
                    if *seen <= times {
                        return Err(ProcessError::retryable(format!(
                            "poison: not yet (attempt {seen} of {})",
                            times + 1
                        )));
                    }
                }
                for line in 0..count(&mark, "log").unwrap_or(0) {
                    weir_sdk::info(&format!("poison: log line {line}"));
                    println!("poison: stdout line {line}");
                }
                let copies = count(&mark, "fanout").unwrap_or(1);
                let mut output = record.into_output();
                if let (Some(size), Some(value)) = (count(&mark, "grow"), output.value.as_mut()) {
                    value.resize(size as usize, b'.');
                }
                if let Some(partition) = count(&mark, "partition") {
                    output = output.to_partition(partition as i32);
                }
                if let Some(topic) = mark.strip_prefix("to:") {
                    output = output.to_topic(topic);
                }
                Ok(vec![output; copies as usize])
            }
        }
    }
}

/// Wait in the host (a WASI poll on a clock) for ever: epoch interruption
/// cannot stop a guest that is not running wasm.
fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// `N` from a mark `{prefix}N`.
fn count(mark: &str, prefix: &str) -> Option<u32> {
    mark.strip_prefix(prefix)?.parse().ok()
}

fn spin_forever() -> ! {
    let mut turns = 0u64;
    loop {
        turns = std::hint::black_box(turns.wrapping_add(1));
    }
}

fn hoard_forever() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

/// Try what a sandboxed plugin must not be able to do; say what happened.
fn probe_sandbox() -> String {
    let verdict = |allowed: bool, detail: String| {
        if allowed {
            format!("allowed ({detail})")
        } else {
            format!("denied ({detail})")
        }
    };
    let file = match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => verdict(true, format!("{} bytes", text.len())),
        Err(e) => verdict(false, e.to_string()),
    };
    let env = match std::env::var("HOME") {
        Ok(home) => verdict(true, home),
        Err(e) => verdict(
            false,
            format!("{e}; {} variables visible", std::env::vars().count()),
        ),
    };
    let socket = match std::net::TcpStream::connect("127.0.0.1:9092") {
        Ok(_) => verdict(true, "connected".into()),
        Err(e) => verdict(false, e.to_string()),
    };
    let report = format!("file={file};env={env};socket={socket}");
    weir_sdk::warn(&format!("sandbox probe: {report}"));
    println!("sandbox probe via stdout: {report}");
    report
}

weir_sdk::export!(Poison);

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &str) -> Record {
        Record {
            offset: 7,
            value: Some(value.as_bytes().to_vec()),
            ..Record::default()
        }
    }

    #[test]
    fn marks_behave_as_documented() {
        let mut plugin = Poison::init(&Config::default()).unwrap();
        assert_eq!(plugin.process(record("ok#1")).unwrap().len(), 1);
        assert_eq!(plugin.process(record("fanout3#1")).unwrap().len(), 3);
        let long = plugin.process(record("error300#1")).unwrap_err();
        assert_eq!(long.message.len(), 300);
        let routed = plugin.process(record("to:elsewhere#1")).unwrap();
        assert_eq!(routed[0].topic.as_deref(), Some("elsewhere"));
        let grown = plugin.process(record("grow100#1")).unwrap();
        assert_eq!(grown[0].value.as_ref().unwrap().len(), 100);
        assert!(!plugin.process(record("error#1")).unwrap_err().retryable);
        assert!(plugin.process(record("retry2#1")).unwrap_err().retryable);
        assert!(plugin.process(record("retry2#1")).unwrap_err().retryable);
        assert!(plugin.process(record("retry2#1")).is_ok());
    }
}
