//! Example plugin: upper-cases each record's value (ASCII), keeping its key and
//! headers. Non-text bytes pass through unchanged.

use weir_sdk::{Config, Output, ProcessError, Processor, Record};

/// Upper-cases record values.
pub struct Uppercase;

impl Processor for Uppercase {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Uppercase)
    }

    fn process(&mut self, mut record: Record) -> Result<Vec<Output>, ProcessError> {
        if let Some(value) = record.value.as_mut() {
            value.make_ascii_uppercase();
        }
        Ok(vec![record.into_output()])
    }
}

weir_sdk::export!(Uppercase);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::Header;

    #[test]
    fn uppercases_value_and_keeps_key_and_headers() {
        let mut plugin = Uppercase::init(&Config::default()).unwrap();
        let record = Record {
            key: Some(b"k1".to_vec()),
            value: Some(b"hello, w\xc3\xb6rld".to_vec()),
            headers: vec![Header::new("trace", "abc")],
            ..Record::default()
        };
        let out = plugin.process(record).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value.as_deref(), Some(&b"HELLO, W\xc3\xb6RLD"[..]));
        assert_eq!(out[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(out[0].headers, vec![Header::new("trace", "abc")]);
    }

    #[test]
    fn tombstones_pass_through() {
        let mut plugin = Uppercase::init(&Config::default()).unwrap();
        let out = plugin.process(Record::default()).unwrap();
        assert_eq!(out[0].value, None);
    }
}
