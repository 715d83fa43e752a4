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
//!
//! A top-level field is read without building the rest of the document (the
//! other fields are only checked and skipped), which is most of the cost.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use weir_sdk::{Config, Output, ProcessError, Processor, Record};

/// Where the field is.
enum FieldPath {
    /// A top-level field of an object.
    TopLevel(String),
    /// A JSON pointer such as `/user/country`.
    Pointer(String),
}

/// Filters JSON records by one field's value.
pub struct JsonFilter {
    path: FieldPath,
    equals: String,
    /// `equals` read as JSON (`42`, `true`, `null`), for non-string fields.
    equals_json: Option<Value>,
    header_name: String,
    header_value: Vec<u8>,
}

impl JsonFilter {
    fn matches(&self, field: Option<&Value>) -> bool {
        match field {
            Some(Value::String(text)) => *text == self.equals,
            Some(other) => Some(other) == self.equals_json.as_ref(),
            None => false,
        }
    }

    /// Whether the JSON document `value` has the field, equal to the configured value.
    fn keeps(&self, value: &[u8]) -> Result<bool, serde_json::Error> {
        match &self.path {
            FieldPath::TopLevel(name) => {
                let mut document = serde_json::Deserializer::from_slice(value);
                let field = TopLevelField(name).deserialize(&mut document)?;
                document.end()?;
                Ok(self.matches(field.as_ref()))
            }
            FieldPath::Pointer(pointer) => {
                let document: Value = serde_json::from_slice(value)?;
                Ok(self.matches(document.pointer(pointer)))
            }
        }
    }
}

/// Reads one top-level field of a JSON document (`None` if the document is not
/// an object or lacks it), checking but not building everything else.
struct TopLevelField<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for TopLevelField<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevelField<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(wanted) = map.next_key_seed(KeyIs(self.0))? {
            if wanted {
                // A repeated key: the last one counts, as in serde_json's Value.
                found = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Whether an object key is the wanted one, compared without allocating.
struct KeyIs<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

impl Processor for JsonFilter {
    fn init(config: &Config) -> Result<Self, String> {
        let field = config.require("field")?;
        let equals = config.require("equals")?.to_string();
        let path = match field.strip_prefix('/') {
            Some(_) => FieldPath::Pointer(field.to_string()),
            None => FieldPath::TopLevel(field.to_string()),
        };
        let header_name = config.get("header").unwrap_or("weir-filter").to_string();
        let header_value = format!("{field}={equals}").into_bytes();
        Ok(Self {
            path,
            equals_json: serde_json::from_str(&equals).ok(),
            equals,
            header_name,
            header_value,
        })
    }

    fn process(&mut self, record: Record) -> Result<Vec<Output>, ProcessError> {
        let keep = self
            .keeps(record.value.as_deref().unwrap_or_default())
            .map_err(|e| ProcessError::fatal(format!("value is not JSON: {e}")))?;
        if !keep {
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
    fn a_top_level_field_is_found_among_others_and_only_in_objects() {
        let mut f = filter(&[("field", "c/x"), ("equals", "true")]);
        let keep = |f: &mut JsonFilter, json: &str| !f.process(record(json)).unwrap().is_empty();
        assert!(keep(
            &mut f,
            r#"{"a":[1,{"c/x":false}],"c\/x":true,"z":null}"#
        ));
        assert!(
            keep(&mut f, r#"{"c/x":false,"c/x":true}"#),
            "the last repeated key counts"
        );
        assert!(!keep(&mut f, r#"[{"c/x":true}]"#));
        assert!(!keep(&mut f, r#""c/x""#));
        assert!(f.process(record(r#"{"c/x":true} trailing"#)).is_err());
        assert!(f.process(record(r#"{"c/x":true,"bad":[1,}"#)).is_err());
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
