//! Schema registry support around the plugin chain: records written by a
//! Confluent Schema Registry serializer (Avro, JSON Schema, Protobuf) are decoded to
//! JSON for the plugins, and their JSON outputs are encoded with their
//! subject's schema (`stage`). The registry client and its caches
//! (`registry`), the wire format (`wire`), and one module per format.

mod avro;
mod json_schema;
mod protobuf;
mod registry;
mod stage;
mod wire;

pub use avro::AvroSchema;
pub use registry::{Format, Registry, RegistryError, RegistrySettings};
pub use stage::{Parts, Registration, SchemaSettings, SchemaStage, SubjectStrategy};
