//! Example plugin with state: drops JSON records whose id was already seen
//! within a window, so that a producer's retries or replays reach the output
//! once. The state holds, per id, the timestamp of the record that first
//! passed.
//!
//! Config:
//! - `field` (default `id`): the top-level field that identifies a record (a
//!   string, or a number or other JSON value by its JSON text).
//! - `window` (default `24h`): how long an id stays seen, as `<n>ms`, `<n>s`,
//!   `<n>m`, `<n>h` or `<n>d`, measured between the records' timestamps. A
//!   record without a timestamp counts as within the window.
//!
//! A value that is not a JSON object with the field is a non-retryable error.
//! Under `--exactly-once`, each distinct id reaches the output exactly once
//! across crashes and rebalances (state and outputs commit together).

use serde_json::Value;
use weir_sdk::{state, Config, Output, ProcessError, Processor, Record};

/// Drops records whose id was seen within the window.
pub struct Dedupe {
    field: String,
    window_ms: i64,
}

impl Processor for Dedupe {
    fn init(config: &Config) -> Result<Self, String> {
        let field = config.get("field").unwrap_or("id").to_string();
        let window_ms = parse_window(config.get("window").unwrap_or("24h"))?;
        Ok(Dedupe { field, window_ms })
    }

    fn process(&mut self, record: Record) -> Result<Vec<Output>, ProcessError> {
        let id = self.id_of(record.value.as_deref().unwrap_or_default())?;
        let now = record.timestamp.unwrap_or(i64::MIN);
        if let Some(seen) = state::get(id.as_bytes()) {
            let seen = i64::from_be_bytes(seen.try_into().unwrap_or([0; 8]));
            if record.timestamp.is_none() || now.saturating_sub(seen) < self.window_ms {
                return Ok(Vec::new());
            }
        }
        state::set(id.as_bytes(), &now.to_be_bytes())
            .map_err(|e| ProcessError::fatal(e.to_string()))?;
        Ok(vec![record.into_output()])
    }
}

impl Dedupe {
    /// The id of the JSON document `value`.
    fn id_of(&self, value: &[u8]) -> Result<String, ProcessError> {
        let document: Value = serde_json::from_slice(value)
            .map_err(|e| ProcessError::fatal(format!("not JSON: {e}")))?;
        match document.get(&self.field) {
            Some(Value::String(text)) => Ok(text.clone()),
            Some(other) => Ok(other.to_string()),
            None => Err(ProcessError::fatal(format!(
                "the record has no `{}` field",
                self.field
            ))),
        }
    }
}

/// Milliseconds in `text`, such as `90s` or `24h`.
fn parse_window(text: &str) -> Result<i64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("window `{text}` needs a unit: ms, s, m, h or d"))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("window `{text}` must start with a number"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "window `{text}`: the unit must be ms, s, m, h or d"
            ))
        }
    };
    Ok(number.saturating_mul(unit_ms))
}

weir_sdk::export!(Dedupe);

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &str, timestamp: i64) -> Record {
        Record {
            topic: "orders".into(),
            partition: 0,
            offset: 0,
            timestamp: Some(timestamp),
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
        }
    }

    #[test]
    fn an_id_passes_once_within_the_window_and_again_after_it() {
        state::clear();
        let config = Config::new(vec![("window".into(), "1m".into())]);
        let mut dedupe = Dedupe::init(&config).unwrap();
        assert_eq!(dedupe.process(record(r#"{"id": 7}"#, 0)).unwrap().len(), 1);
        assert_eq!(
            dedupe
                .process(record(r#"{"id": 7}"#, 59_999))
                .unwrap()
                .len(),
            0
        );
        assert_eq!(dedupe.process(record(r#"{"id": 8}"#, 1)).unwrap().len(), 1);
        assert_eq!(
            dedupe
                .process(record(r#"{"id": 7}"#, 60_000))
                .unwrap()
                .len(),
            1
        );
        assert!(dedupe.process(record(r#"{"no": 1}"#, 0)).is_err());
        assert_eq!(parse_window("24h"), Ok(86_400_000));
        assert!(parse_window("5").is_err());
    }
}
