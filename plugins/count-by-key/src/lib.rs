//! Example plugin with state: a running count of records per key. Each record
//! produces one output with its key and, as the value, how many records with
//! that key the partition has seen so far, itself included (as decimal text).
//!
//! Under `--exactly-once` the last count per key equals the number of input
//! records with that key, across crashes; in at-least-once mode a crash can
//! count a record twice (counts may be higher, never lower).
//!
//! Records with a null key are counted under the empty key.

use weir_sdk::{state, Config, Output, ProcessError, Processor, Record};

/// Counts records per key.
pub struct CountByKey;

impl Processor for CountByKey {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(CountByKey)
    }

    fn process(&mut self, record: Record) -> Result<Vec<Output>, ProcessError> {
        let key = record.key.clone().unwrap_or_default();
        let count = state::get(&key)
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, u64::from_be_bytes)
            + 1;
        state::set(&key, &count.to_be_bytes()).map_err(|e| ProcessError::fatal(e.to_string()))?;
        Ok(vec![record.into_output().with_value(count.to_string())])
    }
}

weir_sdk::export!(CountByKey);

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(key: &str) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            timestamp: None,
            key: Some(key.as_bytes().to_vec()),
            value: None,
            headers: vec![],
        }
    }

    #[test]
    fn each_key_counts_on_its_own() {
        state::clear();
        let mut counter = CountByKey::init(&Config::new(vec![])).unwrap();
        let counts: Vec<Vec<u8>> = ["a", "b", "a", "a"]
            .into_iter()
            .map(|k| counter.process(keyed(k)).unwrap()[0].value.clone().unwrap())
            .collect();
        assert_eq!(
            counts,
            [b"1".to_vec(), b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]
        );
    }
}
