//! Tooling for people writing plugins, kept out of the host library so that the
//! data path carries none of the guest toolchains:
//!
//! - `scaffold`: `weir new`, a plugin project ready to build and test;
//! - `plugin_build`: `weir build`, a project (Rust, Python, JavaScript or C) into a component;
//! - `testrun`: `weir test`, a plugin over a JSON-lines file without Kafka;
//! - `status`: `weir status`, a running `weir run` seen through its admin endpoint.

pub mod dlq;
pub mod plugin_build;
pub mod scaffold;
pub mod state_dump;
pub mod status;
pub mod testrun;
