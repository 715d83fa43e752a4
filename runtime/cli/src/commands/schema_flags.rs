//! The schema registry flags `weir run` and `weir test` share.

use clap::Args;
use weir_host::config::{ConfigError, SchemaParts, SchemaRegistryConfig};

/// Decode records and encode outputs with a Confluent Schema Registry.
#[derive(Debug, Args)]
pub struct SchemaFlags {
    /// Schema registry URL, e.g. `http://registry:8081`: records in its wire
    /// format (Avro, JSON Schema) reach the plugin as JSON.
    #[arg(long, value_name = "URL", env = "WEIR_SCHEMA_REGISTRY")]
    pub schema_registry: Option<String>,
    /// What is decoded before the plugin (default `value`).
    #[arg(long, value_enum, env = "WEIR_SCHEMA_DECODE")]
    pub schema_decode: Option<SchemaParts>,
    /// What of the outputs is encoded with their subject's latest schema
    /// (default `none`).
    #[arg(long, value_enum, env = "WEIR_SCHEMA_ENCODE")]
    pub schema_encode: Option<SchemaParts>,
}

impl SchemaFlags {
    /// `config` (the file's `[schema_registry]`, if any) with these flags
    /// applied.
    pub fn apply(
        &self,
        config: Option<SchemaRegistryConfig>,
    ) -> Result<Option<SchemaRegistryConfig>, ConfigError> {
        let mut config = match (config, &self.schema_registry) {
            (Some(mut config), Some(url)) => {
                config.url.clone_from(url);
                config
            }
            (Some(config), None) => config,
            (None, Some(url)) => SchemaRegistryConfig::at(url),
            (None, None) => {
                if self.schema_decode.is_some() || self.schema_encode.is_some() {
                    return Err(ConfigError::Invalid {
                        key: "schema_registry.url",
                        reason: "--schema-decode and --schema-encode need --schema-registry URL \
                                 (or [schema_registry] in the config file)"
                            .into(),
                    });
                }
                return Ok(None);
            }
        };
        if let Some(decode) = self.schema_decode {
            config.decode = decode;
        }
        if let Some(encode) = self.schema_encode {
            config.encode = encode;
        }
        Ok(Some(config))
    }
}
