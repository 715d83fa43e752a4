//! A Confluent Schema Registry client: schemas by id (cached for good: ids
//! are immutable), a subject's latest version (cached for `latest_ttl`) or a
//! pinned one, registration, and references resolved through their subjects.
//! A registry that cannot answer is `Unavailable` (the caller waits and tries
//! again); a schema it does not have is `NotFound` (the record's fault).

use super::avro::AvroSchema;
use super::json_schema::JsonSchema;
use super::protobuf::ProtobufSchema;
use super::unknown_ids::UnknownIds;
use crate::telemetry::SchemaMetrics;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest registry answer read (a schema with its metadata).
const MAX_ANSWER_BYTES: usize = 16 << 20;
/// Deepest chain of references followed.
const MAX_REFERENCE_DEPTH: usize = 32;

/// Why the registry gave no schema.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// It could not be reached or did not answer usefully: try again later.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// It has no such schema, subject or version.
    #[error("{0}")]
    NotFound(String),
    /// It answered with a schema Weir cannot use.
    #[error("{0}")]
    Invalid(String),
}

/// A schema's format, as the registry names it (`schemaType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache Avro (the registry's default).
    Avro,
    /// JSON Schema.
    Json,
    /// Protocol Buffers.
    Protobuf,
}

impl Format {
    /// The registry's `schemaType`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Avro => "AVRO",
            Format::Json => "JSON",
            Format::Protobuf => "PROTOBUF",
        }
    }

    fn parse(schema_type: Option<&str>) -> Result<Self, RegistryError> {
        match schema_type.unwrap_or("AVRO") {
            "AVRO" => Ok(Format::Avro),
            "JSON" => Ok(Format::Json),
            "PROTOBUF" => Ok(Format::Protobuf),
            other => Err(RegistryError::Invalid(format!(
                "schemas of type {other} are not supported (Avro, JSON Schema and Protobuf are)"
            ))),
        }
    }
}

/// A schema ready to decode and encode with.
#[derive(Debug)]
pub enum Codec {
    /// An Avro schema.
    Avro(AvroSchema),
    /// A JSON Schema.
    Json(JsonSchema),
    /// A `.proto` file.
    Protobuf(ProtobufSchema),
}

/// A schema of the registry.
#[derive(Debug)]
pub struct Registered {
    /// Its global id.
    pub id: u32,
    /// How it decodes and encodes.
    pub codec: Codec,
}

impl Registered {
    /// Its format.
    pub fn format(&self) -> Format {
        match self.codec {
            Codec::Avro(_) => Format::Avro,
            Codec::Json(_) => Format::Json,
            Codec::Protobuf(_) => Format::Protobuf,
        }
    }
}

/// How to reach the registry.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Its base URL, e.g. `http://registry:8081`.
    pub url: String,
    /// The `Authorization` header value sent, if any.
    pub authorization: Option<String>,
    /// Longest wait for one answer.
    pub timeout: Duration,
    /// How long a subject's latest version is used before asking again.
    pub latest_ttl: Duration,
}

/// A subject and a version of it (`None`: the latest).
type SubjectVersion = (String, Option<u32>);

/// A shared, caching registry client.
pub struct Registry {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    settings: RegistrySettings,
    by_id: Mutex<HashMap<u32, Arc<Registered>>>,
    versions: Mutex<HashMap<SubjectVersion, (Instant, Arc<Registered>)>>,
    subjects: Mutex<HashMap<u32, Option<Arc<str>>>>,
    registered: Mutex<HashMap<String, Arc<Registered>>>,
    /// Ids the registry answered 404 for, and the budget of such lookups.
    unknown: Mutex<UnknownIds>,
    metrics: SchemaMetrics,
}

impl Registry {
    /// A client for `settings`, trusting the Mozilla roots and `ca_file`.
    pub fn new(
        settings: RegistrySettings,
        ca_file: Option<&Path>,
        metrics: SchemaMetrics,
    ) -> Result<Self, crate::outbound::SenderError> {
        let connector = crate::outbound::https_connector(settings.timeout, ca_file)?;
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            client,
            settings,
            by_id: Mutex::default(),
            versions: Mutex::default(),
            subjects: Mutex::default(),
            registered: Mutex::default(),
            unknown: Mutex::default(),
            metrics,
        })
    }

    /// The schema with global id `id`.
    pub async fn by_id(&self, id: u32) -> Result<Arc<Registered>, RegistryError> {
        if let Some(found) = self.by_id.lock().expect("cache lock").get(&id) {
            self.metrics.cache_hits.inc();
            return Ok(Arc::clone(found));
        }
        // Records name ids of their producer's choosing: unknown ones must not
        // drive the registry's load (see `unknown_ids`).
        loop {
            let wait = {
                let mut unknown = self.unknown.lock().expect("cache lock");
                if unknown.is_known_unknown(id, Instant::now()) {
                    return Err(RegistryError::NotFound(format!(
                        "schema id {id} is not in the registry (it said so within the last minute)"
                    )));
                }
                unknown.wait_before_asking(Instant::now())
            };
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => break,
            }
        }
        let answer = match self.get(&format!("/schemas/ids/{id}")).await {
            Err(RegistryError::NotFound(message)) => {
                let mut unknown = self.unknown.lock().expect("cache lock");
                unknown.missed(id, Instant::now());
                return Err(RegistryError::NotFound(message));
            }
            other => other?,
        };
        let registered = Arc::new(self.parse(id, &answer).await?);
        self.by_id
            .lock()
            .expect("cache lock")
            .insert(id, Arc::clone(&registered));
        Ok(registered)
    }

    /// The first subject schema `id` is registered under, if the registry says.
    pub async fn subject_of(&self, id: u32) -> Option<Arc<str>> {
        if let Some(found) = self.subjects.lock().expect("cache lock").get(&id) {
            return found.clone();
        }
        let subject = match self.get(&format!("/schemas/ids/{id}/versions")).await {
            Ok(answer) => answer
                .as_array()
                .and_then(|versions| versions.first())
                .and_then(|v| v["subject"].as_str())
                .map(Arc::from),
            Err(RegistryError::Unavailable(_)) => return None,
            Err(_) => None,
        };
        self.subjects
            .lock()
            .expect("cache lock")
            .insert(id, subject.clone());
        subject
    }

    /// Version `version` of `subject` (the latest if `None`, asked again after
    /// `latest_ttl`).
    pub async fn version(
        &self,
        subject: &str,
        version: Option<u32>,
    ) -> Result<Arc<Registered>, RegistryError> {
        let key = (subject.to_string(), version);
        if let Some((at, found)) = self.versions.lock().expect("cache lock").get(&key) {
            if version.is_some() || at.elapsed() < self.settings.latest_ttl {
                self.metrics.cache_hits.inc();
                return Ok(Arc::clone(found));
            }
        }
        let which = version.map_or("latest".to_string(), |v| v.to_string());
        let answer = self
            .get(&format!("/subjects/{}/versions/{which}", escape(subject)))
            .await?;
        let registered = self.by_id(schema_id(&answer)?).await?;
        self.versions
            .lock()
            .expect("cache lock")
            .insert(key, (Instant::now(), Arc::clone(&registered)));
        Ok(registered)
    }

    /// Register `schema` (of `format`) under `subject`, once per subject for
    /// the life of the client (the registry returns the existing id if it is
    /// there already).
    pub async fn register(
        &self,
        subject: &str,
        schema: &str,
        format: Format,
    ) -> Result<Arc<Registered>, RegistryError> {
        if let Some(found) = self.registered.lock().expect("cache lock").get(subject) {
            self.metrics.cache_hits.inc();
            return Ok(Arc::clone(found));
        }
        let body = json!({ "schema": schema, "schemaType": format.as_str() });
        let answer = self
            .post(&format!("/subjects/{}/versions", escape(subject)), &body)
            .await?;
        let id = schema_id(&answer)?;
        let registered = self.by_id(id).await?;
        self.registered
            .lock()
            .expect("cache lock")
            .insert(subject.to_string(), Arc::clone(&registered));
        Ok(registered)
    }

    /// A schema from the registry's answer (`schema`, `schemaType`,
    /// `references`).
    async fn parse(&self, id: u32, answer: &Json) -> Result<Registered, RegistryError> {
        let text = answer["schema"].as_str().ok_or_else(|| {
            RegistryError::Invalid(format!(
                "the registry's answer for schema {id} has no schema"
            ))
        })?;
        let format = Format::parse(answer["schemaType"].as_str())?;
        let invalid = |e: String| RegistryError::Invalid(format!("schema {id}: {e}"));
        let codec = match format {
            Format::Avro => {
                let mut references = Vec::new();
                self.references(answer, "", &mut references, 0).await?;
                Codec::Avro(AvroSchema::parse(text, &references).map_err(invalid)?)
            }
            Format::Json => Codec::Json(JsonSchema::parse(text).map_err(invalid)?),
            Format::Protobuf => {
                // Descriptors, not `.proto` text: no Protobuf compiler needed.
                const SERIALIZED: &str = "?format=serialized";
                let answer = self.get(&format!("/schemas/ids/{id}{SERIALIZED}")).await?;
                let mut references = Vec::new();
                self.references(&answer, SERIALIZED, &mut references, 0)
                    .await?;
                let base64 = |text: &str| {
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map_err(|e| invalid(format!("a serialized descriptor is not base64: {e}")))
                };
                let main = base64(answer["schema"].as_str().unwrap_or_default())?;
                let references = references
                    .iter()
                    .map(|text| base64(text))
                    .collect::<Result<Vec<_>, _>>()?;
                Codec::Protobuf(ProtobufSchema::parse(&main, &references).map_err(invalid)?)
            }
        };
        Ok(Registered { id, codec })
    }

    /// The texts of the schemas `answer` refers to, dependencies first, each
    /// asked for with `query` (e.g. `?format=serialized`).
    fn references<'a>(
        &'a self,
        answer: &'a Json,
        query: &'a str,
        into: &'a mut Vec<String>,
        depth: usize,
    ) -> futures::future::BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let Some(references) = answer["references"].as_array() else {
                return Ok(());
            };
            if depth > MAX_REFERENCE_DEPTH {
                return Err(RegistryError::Invalid(format!(
                    "references nested deeper than {MAX_REFERENCE_DEPTH}"
                )));
            }
            for reference in references {
                let (Some(subject), Some(version)) =
                    (reference["subject"].as_str(), reference["version"].as_i64())
                else {
                    return Err(RegistryError::Invalid(format!(
                        "a reference without subject and version: {reference}"
                    )));
                };
                let referenced = self
                    .get(&format!(
                        "/subjects/{}/versions/{version}{query}",
                        escape(subject)
                    ))
                    .await?;
                self.references(&referenced, query, into, depth + 1).await?;
                if let Some(text) = referenced["schema"].as_str() {
                    if !into.iter().any(|known| known == text) {
                        into.push(text.to_string());
                    }
                }
            }
            Ok(())
        })
    }

    async fn get(&self, path: &str) -> Result<Json, RegistryError> {
        self.send(http::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &Json) -> Result<Json, RegistryError> {
        self.send(http::Method::POST, path, Some(body)).await
    }

    async fn send(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Json>,
    ) -> Result<Json, RegistryError> {
        let url = format!("{}{path}", self.settings.url.trim_end_matches('/'));
        let mut request = http::Request::builder().method(method).uri(&url).header(
            http::header::ACCEPT,
            "application/vnd.schemaregistry.v1+json",
        );
        if let Some(authorization) = &self.settings.authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        let body = match body {
            Some(body) => {
                request = request.header(
                    http::header::CONTENT_TYPE,
                    "application/vnd.schemaregistry.v1+json",
                );
                Full::new(Bytes::from(body.to_string()))
            }
            None => Full::default(),
        };
        let request = request.body(body).map_err(|e| {
            RegistryError::Unavailable(format!("cannot build a request to {url}: {e}"))
        })?;
        let unavailable = |what: String| {
            self.metrics.requests("unavailable").inc();
            RegistryError::Unavailable(what)
        };
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                let mut cause: &dyn std::error::Error = &e;
                while let Some(inner) = cause.source() {
                    cause = inner;
                }
                format!("{url}: {cause}")
            })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| format!("{url}: reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.settings.timeout, exchange)
            .await
            .map_err(|_| {
                unavailable(format!(
                    "{url}: no answer within {:?}",
                    self.settings.timeout
                ))
            })?
            .map_err(unavailable)?;
        let answer: Json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
        let message = answer["message"].as_str().unwrap_or_default();
        match status.as_u16() {
            200..=299 => {
                self.metrics.requests("ok").inc();
                Ok(answer)
            }
            404 => {
                self.metrics.requests("not-found").inc();
                Err(RegistryError::NotFound(format!(
                    "the schema registry has no {path} ({message})"
                )))
            }
            401 | 403 => Err(unavailable(format!(
                "{url} answered {status}: the registry refused Weir's credentials; \
                 check schema_registry.basic_auth / bearer_token"
            ))),
            408 | 429 | 500..=599 => Err(unavailable(format!("{url} answered {status} {message}"))),
            _ => {
                self.metrics.requests("refused").inc();
                Err(RegistryError::Invalid(format!(
                    "the schema registry answered {status} to {path}: {message}"
                )))
            }
        }
    }
}

fn schema_id(answer: &Json) -> Result<u32, RegistryError> {
    answer["id"]
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| RegistryError::Invalid(format!("the registry's answer has no id: {answer}")))
}

/// `subject` as one path segment.
fn escape(subject: &str) -> String {
    subject
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
