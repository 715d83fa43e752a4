//! The `[schema_registry]` settings checked and turned into what the schema
//! stage takes: the registry's address and credentials, and what is decoded
//! and encoded with which subjects. Schema files are read and parsed here, so
//! a bad one stops start-up.

use super::{ConfigError, SchemaParts, SchemaRegistryConfig, SubjectNameStrategy};
use crate::schema::{
    AvroSchema, Format, Parts, Registration, RegistrySettings, SchemaSettings, SubjectStrategy,
};
use base64::Engine;
use std::path::{Path, PathBuf};

/// Most JSON one decoded part may take.
const MAX_DECODED_BYTES: usize = 1 << 30;

impl SchemaParts {
    fn parts(self) -> Parts {
        Parts {
            key: matches!(self, SchemaParts::Key | SchemaParts::Both),
            value: matches!(self, SchemaParts::Value | SchemaParts::Both),
        }
    }
}

impl SchemaRegistryConfig {
    /// The registry at `url`, every other setting at its default.
    pub fn at(url: &str) -> Self {
        Self {
            url: url.to_string(),
            basic_auth: None,
            bearer_token: None,
            ca_file: None,
            timeout: super::defaults::default_registry_timeout(),
            latest_ttl: super::defaults::default_latest_ttl(),
            decode: super::defaults::default_schema_decode(),
            encode: SchemaParts::None,
            subject_name_strategy: SubjectNameStrategy::Topic,
            record_name: None,
            version: None,
            auto_register: false,
            value_schema_file: None,
            key_schema_file: None,
            validate: false,
            max_decoded_bytes: super::defaults::default_max_decoded_bytes(),
        }
    }

    /// How to reach the registry.
    pub fn registry_settings(&self) -> Result<RegistrySettings, ConfigError> {
        let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(invalid(
                "schema_registry.url",
                format!("`{}` is not an http:// or https:// URL", self.url),
            ));
        }
        if self.url.parse::<http::Uri>().is_err() {
            return Err(invalid(
                "schema_registry.url",
                format!("`{}` is not a valid URL", self.url),
            ));
        }
        // Credentials in the URL (Confluent's `basic.auth.credentials.source=URL`).
        let uri: http::Uri = self.url.parse().expect("checked above");
        let (url, url_user_info) = match uri.authority().map(|a| a.as_str()) {
            Some(authority) if authority.contains('@') => {
                let (user_info, host) = authority.rsplit_once('@').expect("contains @");
                let user_info = percent_decoded(user_info);
                (self.url.replacen(authority, host, 1), Some(user_info))
            }
            _ => (self.url.clone(), None),
        };
        let basic_auth = match (&self.basic_auth, url_user_info) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "schema_registry.basic_auth",
                    "credentials are in both the URL and basic_auth; keep one".into(),
                ))
            }
            (Some(configured), None) => Some(super::secrets::resolve(
                "schema_registry.basic_auth",
                "basic_auth",
                configured,
            )?),
            (None, from_url) => from_url,
        };
        let authorization = match (&basic_auth, &self.bearer_token) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "schema_registry.bearer_token",
                    "set basic_auth or bearer_token, not both".into(),
                ))
            }
            (Some(user_info), None) => {
                if !user_info.contains(':') {
                    return Err(invalid(
                        "schema_registry.basic_auth",
                        "must be `user:password`".into(),
                    ));
                }
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(user_info)
                ))
            }
            (None, Some(token)) => Some(format!(
                "Bearer {}",
                super::secrets::resolve("schema_registry.bearer_token", "bearer_token", token)?
            )),
            (None, None) => None,
        };
        if self.timeout.is_zero() {
            return Err(invalid(
                "schema_registry.timeout",
                "must be above zero".into(),
            ));
        }
        Ok(RegistrySettings {
            url: url.trim_end_matches('/').to_string(),
            authorization,
            timeout: self.timeout,
            latest_ttl: self.latest_ttl,
        })
    }

    /// What to decode and encode, and how; checks the registry settings too.
    pub fn stage_settings(&self) -> Result<SchemaSettings, ConfigError> {
        self.registry_settings()?;
        let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
        if self.max_decoded_bytes == 0 || self.max_decoded_bytes > MAX_DECODED_BYTES {
            return Err(invalid(
                "schema_registry.max_decoded_bytes",
                format!("must be between 1 and {MAX_DECODED_BYTES}"),
            ));
        }
        let encode = self.encode.parts();
        let register = if self.auto_register {
            let value = schema_file("schema_registry.value_schema_file", &self.value_schema_file)?;
            let key = schema_file("schema_registry.key_schema_file", &self.key_schema_file)?;
            if encode.value && value.is_none() || encode.key && key.is_none() {
                return Err(invalid(
                    "schema_registry.auto_register",
                    "needs value_schema_file (and key_schema_file when encoding keys) for what \
                     `encode` names"
                        .into(),
                ));
            }
            Some(Registration { value, key })
        } else {
            if self.value_schema_file.is_some() || self.key_schema_file.is_some() {
                return Err(invalid(
                    "schema_registry.value_schema_file",
                    "is only used with auto_register = true (without it, outputs are encoded \
                     with the subject's registered schema)"
                        .into(),
                ));
            }
            None
        };
        let record_name = || -> Result<String, ConfigError> {
            if let Some(name) = &self.record_name {
                return Ok(name.clone());
            }
            let from_file =
                register
                    .as_ref()
                    .and_then(|r| r.value.as_ref())
                    .and_then(|(text, format)| match format {
                        Format::Avro => AvroSchema::parse(text, &[]).ok()?.name(),
                        Format::Json | Format::Protobuf => None,
                    });
            from_file.ok_or_else(|| {
                invalid(
                    "schema_registry.record_name",
                    "the record subject name strategies need record_name (e.g. \
                     \"com.example.Order\") or an Avro value_schema_file"
                        .into(),
                )
            })
        };
        let strategy = match self.subject_name_strategy {
            SubjectNameStrategy::Topic => SubjectStrategy::Topic,
            SubjectNameStrategy::Record => SubjectStrategy::Record(record_name()?),
            SubjectNameStrategy::TopicRecord => SubjectStrategy::TopicRecord(record_name()?),
        };
        Ok(SchemaSettings {
            decode: self.decode.parts(),
            encode,
            strategy,
            version: self.version,
            register,
            validate: self.validate,
            max_decoded_bytes: self.max_decoded_bytes,
            wait_for_registry: true,
        })
    }

    /// The CA file trusted for `https`.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }
}

/// `text` with `%XX` escapes decoded (user info in a URL).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The text and format of a schema file, checked to parse.
fn schema_file(
    key: &'static str,
    path: &Option<PathBuf>,
) -> Result<Option<(String, Format)>, ConfigError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let invalid = |reason: String| ConfigError::Invalid {
        key,
        reason: format!("{}: {reason}", path.display()),
    };
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("avsc") => {
            AvroSchema::parse(&text, &[])
                .map_err(|e| invalid(format!("not an Avro schema: {e}")))?;
            Format::Avro
        }
        Some("json") => {
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| invalid(format!("not a JSON Schema: {e}")))?;
            Format::Json
        }
        _ => {
            return Err(invalid(
                "name it .avsc (Avro) or .json (JSON Schema) so its format is known".into(),
            ))
        }
    };
    Ok(Some((text, format)))
}
