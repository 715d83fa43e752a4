//! Example plugin: enriches each record from an HTTP service. For a record
//! with key K it sends `GET {base_url}/K` through the host (which must allow
//! the service's host: `allowed_outbound_hosts`) and produces the record with
//! its value followed by `|` and the response body.
//!
//! Config: `base_url` (required), e.g. `http://127.0.0.1:8080/lookup`;
//! `token` (optional), sent as `authorization: Bearer TOKEN` — give it as a
//! secret, `token = "${env:LOOKUP_TOKEN}"`, so it stays out of the config.
//! A 5xx answer or a timeout is a retryable error (the host retries the
//! record), a denied request or another status is not.

use weir_sdk::{http, Config, Output, ProcessError, Processor, Record};

/// Looks each record's key up over HTTP.
pub struct Enrich {
    base_url: String,
    authorization: Option<String>,
}

impl Processor for Enrich {
    fn init(config: &Config) -> Result<Self, String> {
        let base_url = config
            .get("base_url")
            .ok_or("base_url is required, e.g. base_url=http://127.0.0.1:8080/lookup")?;
        Ok(Enrich {
            base_url: base_url.trim_end_matches('/').to_string(),
            authorization: config.get("token").map(|token| format!("Bearer {token}")),
        })
    }

    fn process(&mut self, record: Record) -> Result<Vec<Output>, ProcessError> {
        let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
        let mut request = http::Request::get(&format!("{}/{key}", self.base_url));
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization.as_str());
        }
        let response = http::send(request)?.error_for_status()?;
        Ok(vec![enriched(record, &response.body)])
    }
}

/// `record` with `|` and `lookup` appended to its value.
fn enriched(record: Record, lookup: &[u8]) -> Output {
    let mut value = record.value.clone().unwrap_or_default();
    value.push(b'|');
    value.extend_from_slice(lookup);
    record.into_output().with_value(value)
}

weir_sdk::export!(Enrich);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_follows_the_value() {
        let record = Record {
            key: Some(b"k1".to_vec()),
            value: Some(b"v".to_vec()),
            ..Record::default()
        };
        assert_eq!(
            enriched(record, b"found").value.as_deref(),
            Some(&b"v|found"[..])
        );
    }

    #[test]
    fn base_url_is_required() {
        assert!(Enrich::init(&Config::default()).is_err());
    }
}
