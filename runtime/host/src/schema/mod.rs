//! Schema registry support around the plugin chain: records written by a
//! Confluent Schema Registry serializer (Avro, JSON Schema, Protobuf) are decoded to
//! JSON for the plugins, and their JSON outputs are encoded with their
//! subject's schema (`stage`). The registry client and its caches
//! (`registry`, with `unknown_ids` holding back lookups of ids the registry
//! does not know), the wire format (`wire`), and one module per format.

mod avro;
mod json_schema;
mod protobuf;
mod registry;
mod stage;
mod unknown_ids;
mod wire;

pub use avro::AvroSchema;
pub use registry::{Format, Registry, RegistryError, RegistrySettings};
pub use stage::{Parts, Registration, SchemaSettings, SchemaStage, SubjectStrategy};
