//! The schema registry the schema tests use: `schema_registry.py` (the
//! documented REST subset, in memory) started as a process of its own, and
//! confluent-kafka-python's own serializers and deserializers through
//! `schema_clients.py`, so that Weir is proven against the reference client
//! rather than against itself.

use crate::plugins::workspace_root;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running test registry; stopped when dropped.
pub struct SchemaRegistry {
    child: Child,
    url: String,
    /// `user:password` every request must carry, if any.
    user: Option<String>,
}

/// A schema format `schema_clients.py` serializes.
#[derive(Debug, Clone)]
pub enum SchemaFormat {
    /// Avro (`AvroSerializer`).
    Avro,
    /// JSON Schema (`JSONSerializer`).
    Json,
    /// Protobuf (`ProtobufSerializer`): the message's `.proto` file and the
    /// files it imports (registered as references by the serializer).
    Protobuf {
        /// The `.proto` file of the message.
        proto: PathBuf,
        /// The files it imports.
        imports: Vec<PathBuf>,
    },
}

impl SchemaFormat {
    /// `schema_clients.py` arguments naming this format (`deserialize` takes
    /// the Protobuf message's file; `serialize` has it as its schema).
    fn args(&self, deserialize: bool) -> Vec<String> {
        match self {
            SchemaFormat::Avro => vec!["--format".into(), "avro".into()],
            SchemaFormat::Json => vec!["--format".into(), "json".into()],
            SchemaFormat::Protobuf { proto, imports } => {
                let mut args = vec!["--format".into(), "protobuf".into()];
                if deserialize {
                    args.extend(["--proto".into(), proto.display().to_string()]);
                }
                for import in imports {
                    args.extend(["--import".into(), import.display().to_string()]);
                }
                args
            }
        }
    }
}

/// `tests/fixtures/schema/NAME`.
pub fn schema_fixture(name: &str) -> PathBuf {
    workspace_root()
        .join("tests")
        .join("fixtures")
        .join("schema")
        .join(name)
}

fn support_script(name: &str) -> PathBuf {
    workspace_root().join("tests").join("support").join(name)
}

impl SchemaRegistry {
    /// Start a registry on a free port of 127.0.0.1.
    pub fn start() -> Self {
        Self::serve(None)
    }

    /// Start a registry that requires HTTP basic auth `user:password`.
    pub fn start_with_user(user: &str) -> Self {
        Self::serve(Some(user.to_string()))
    }

    fn serve(user: Option<String>) -> Self {
        let mut command = Command::new("python3");
        command
            .arg(support_script("schema_registry.py"))
            .args(["--port", "0"]);
        if let Some(user) = &user {
            command.args(["--user", user]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tests/support/schema_registry.py (python3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("reading the registry's address");
        let url = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the registry said {line:?}"))
            .to_string();
        Self { child, url, user }
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Make every request fail with 503 until [`Self::up`].
    pub fn down(&self) {
        self.control("down");
    }

    /// Answer requests again.
    pub fn up(&self) {
        self.control("up");
    }

    /// Requests served so far (control requests aside).
    pub fn requests(&self) -> u64 {
        let answer = ureq::get(&format!("{}/weir-test/requests", self.url))
            .call()
            .expect("asking the registry for its request count")
            .body_mut()
            .read_to_string()
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(&answer).unwrap();
        value["count"].as_u64().unwrap()
    }

    fn control(&self, what: &str) {
        ureq::post(&format!("{}/weir-test/{what}", self.url))
            .send_empty()
            .unwrap_or_else(|e| panic!("registry {what}: {e}"));
    }

    /// `documents` (JSON) serialized for `topic`'s values by confluent-kafka-
    /// python's serializer of `format` with `schema` (registered as
    /// `<topic>-value`).
    pub fn serialize(
        &self,
        format: &SchemaFormat,
        topic: &str,
        schema: &Path,
        documents: &[serde_json::Value],
    ) -> Vec<Vec<u8>> {
        let input: String = documents.iter().map(|d| format!("{d}\n")).collect();
        let mut args = vec!["serialize".to_string(), "--topic".into(), topic.into()];
        args.extend(["--schema".into(), schema.display().to_string()]);
        args.extend(format.args(false));
        self.run_clients(&args, &input)
            .lines()
            .map(|hex| decode_hex(hex.trim()))
            .collect()
    }

    /// `values` of `topic` deserialized by confluent-kafka-python's
    /// deserializer of `format`.
    pub fn deserialize(
        &self,
        format: &SchemaFormat,
        topic: &str,
        values: &[Vec<u8>],
    ) -> Vec<serde_json::Value> {
        let input: String = values
            .iter()
            .map(|v| format!("{}\n", encode_hex(v)))
            .collect();
        let mut args = vec!["deserialize".to_string(), "--topic".into(), topic.into()];
        args.extend(format.args(true));
        self.run_clients(&args, &input)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    /// Run `schema_clients.py` with `args` against this registry, feeding `input`.
    fn run_clients(&self, args: &[String], input: &str) -> String {
        let mut command = Command::new("python3");
        command
            .arg(support_script("schema_clients.py"))
            .args(args)
            .args(["--registry", &self.url]);
        if let Some(user) = &self.user {
            command.args(["--user", user]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running tests/support/schema_clients.py");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "schema_clients.py {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for SchemaRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
