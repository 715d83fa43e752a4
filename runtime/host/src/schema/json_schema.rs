//! JSON Schema records: the payload already is JSON, so decoding checks that
//! it is, and encoding validates the plugin's output against the schema when
//! the operator asks (`schema_registry.validate`).

use serde_json::Value as Json;

/// A registered JSON Schema, compiled for validation.
pub struct JsonSchema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonSchema")
    }
}

impl JsonSchema {
    /// Compile the schema text.
    pub fn parse(schema: &str) -> Result<Self, String> {
        let schema: Json = serde_json::from_str(schema)
            .map_err(|e| format!("the JSON Schema is not JSON: {e}"))?;
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| format!("the JSON Schema is not valid: {e}"))?;
        Ok(Self { validator })
    }

    /// The payload, checked to be JSON, at most `max_json` bytes.
    pub fn decode(&self, payload: &[u8], max_json: usize) -> Result<Vec<u8>, String> {
        if payload.len() > max_json {
            return Err(format!(
                "more than {max_json} bytes of JSON (schema_registry.max_decoded_bytes)"
            ));
        }
        serde_json::from_slice::<serde::de::IgnoredAny>(payload)
            .map_err(|e| format!("the payload is not JSON: {e}"))?;
        Ok(payload.to_vec())
    }

    /// The output as the payload, validated against the schema if `validate`.
    pub fn encode(&self, json: &[u8], validate: bool) -> Result<Vec<u8>, String> {
        if validate {
            let value: Json =
                serde_json::from_slice(json).map_err(|e| format!("the output is not JSON: {e}"))?;
            let first = self
                .validator
                .iter_errors(&value)
                .next()
                .map(|error| format!("at `{}`: {error}", error.instance_path()));
            if let Some(error) = first {
                return Err(format!("the output does not fit its schema {error}"));
            }
        } else {
            serde_json::from_slice::<serde::de::IgnoredAny>(json)
                .map_err(|e| format!("the output is not JSON: {e}"))?;
        }
        Ok(json.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_validated_when_asked() {
        let schema = JsonSchema::parse(
            r#"{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}"#,
        )
        .unwrap();
        assert!(schema.encode(br#"{"n":1}"#, true).is_ok());
        let error = schema.encode(br#"{"n":"x"}"#, true).unwrap_err();
        assert!(error.contains("/n"), "{error}");
        assert!(schema.encode(br#"{"n":"x"}"#, false).is_ok());
        assert!(schema.encode(b"{", false).is_err());
        assert!(schema.decode(b"[1,", 100).unwrap_err().contains("not JSON"));
    }
}
