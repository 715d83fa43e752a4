//! Example plugin: keeps only JSON records whose field equals a configured value,
//! and tags the kept records with a header.
//!
//! Config:
//! - `field` (required): a top-level field name, or a `/`-separated JSON pointer
//!   such as `/user/country`.
//! - `equals` (required): the value to match. Strings match by text; numbers,
//!   booleans and null match by their JSON text (`42`, `true`, `null`).
//! - `header` (optional, default `weir-filter`): name of the header added to kept
//!   records; its value is `field=equals`.
//!
//! A value that is not valid JSON is a non-retryable error: the host's failure
//! policy decides what happens to it.

use serde_json::Value;
use weir_sdk::{Config, Output, ProcessError, Processor, Record};

/// Filters JSON records by one field's value.
pub struct JsonFilter {
    pointer: String,
    equals: String,
    /// `equals` read as JSON (`42`, `true`, `null`), for non-string fields.
    equals_json: Option<Value>,
    header_name: String,
    header_value: Vec<u8>,
}

impl JsonFilter {
    fn matches(&self, document: &Value) -> bool {
        match document.pointer(&self.pointer) {
            Some(Value::String(text)) => *text == self.equals,
            Some(other) => Some(other) == self.equals_json.as_ref(),
            None => false,
        }
    }
}

impl Processor for JsonFilter {
    fn init(config: &Config) -> Result<Self, String> {
        let field = config.require("field")?;
        let equals = config.require("equals")?.to_string();
        let pointer = if field.starts_with('/') {
            field.to_string()
        } else {
            format!("/{}", field.replace('~', "~0").replace('/', "~1"))
        };
        let header_name = config.get("header").unwrap_or("weir-filter").to_string();
        let header_value = format!("{field}={equals}").into_bytes();
        Ok(Self {
            pointer,
            equals_json: serde_json::from_str(&equals).ok(),
            equals,
            header_name,
            header_value,
        })
    }

    fn process(&mut self, record: Record) -> Result<Vec<Output>, ProcessError> {
        let document: Value =
            serde_json::from_slice(record.value.as_deref().unwrap_or_default())
                .map_err(|e| ProcessError::fatal(format!("value is not JSON: {e}")))?;
        if !self.matches(&document) {
            return Ok(Vec::new());
        }
        let header_value = self.header_value.clone();
        Ok(vec![record
            .into_output()
            .with_header(self.header_name.clone(), header_value)])
    }
}

weir_sdk::export!(JsonFilter);

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(pairs: &[(&str, &str)]) -> JsonFilter {
        JsonFilter::init(&pairs.iter().copied().collect()).unwrap()
    }

    fn record(json: &str) -> Record {
        Record {
            value: Some(json.as_bytes().to_vec()),
            ..Record::default()
        }
    }

    #[test]
    fn keeps_matching_records_and_tags_them() {
        let mut f = filter(&[("field", "country"), ("equals", "NL")]);
        let out = f.process(record(r#"{"country":"NL","n":1}"#)).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].headers[0].key, "weir-filter");
        assert_eq!(out[0].headers[0].value, b"country=NL");
        assert!(f.process(record(r#"{"country":"BE"}"#)).unwrap().is_empty());
        assert!(f.process(record(r#"{"other":1}"#)).unwrap().is_empty());
    }

    #[test]
    fn matches_nested_fields_and_non_string_values() {
        let mut f = filter(&[("field", "/a/b"), ("equals", "42"), ("header", "h")]);
        assert_eq!(f.process(record(r#"{"a":{"b":42}}"#)).unwrap().len(), 1);
        assert!(f.process(record(r#"{"a":{"b":"x"}}"#)).unwrap().is_empty());
    }

    #[test]
    fn invalid_json_is_a_fatal_error_and_missing_config_is_refused() {
        let mut f = filter(&[("field", "x"), ("equals", "1")]);
        let err = f.process(record("not json")).unwrap_err();
        assert!(!err.retryable);
        assert!(JsonFilter::init(&Config::default()).is_err());
    }
}
