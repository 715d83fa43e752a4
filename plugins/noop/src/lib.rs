//! Benchmark plugin: passes each record through unchanged (key, value, headers),
//! so a run measures Weir's own cost: consume, cross into the sandbox and back,
//! produce, commit.

use weir_sdk::{Config, Output, ProcessError, Processor, Record};

/// Passes records through.
pub struct Noop;

impl Processor for Noop {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Noop)
    }

    fn process(&mut self, record: Record) -> Result<Vec<Output>, ProcessError> {
        Ok(vec![record.into_output()])
    }
}

weir_sdk::export!(Noop);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::Header;

    #[test]
    fn passes_the_record_through() {
        let mut plugin = Noop::init(&Config::default()).unwrap();
        let record = Record {
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: vec![Header::new("h", "1")],
            ..Record::default()
        };
        let out = plugin.process(record).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out[0].value.as_deref(), Some(&b"v"[..]));
        assert_eq!(out[0].headers.len(), 1);
    }
}
