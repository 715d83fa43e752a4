//! Shared helpers for Weir's integration tests (the top-level `tests/*.rs`, run
//! as tests of the `weir` package): the broker under test and its topics,
//! producing and reading records and the group's committed offsets, building
//! the example plugins, running the `weir` binary as a user would, its admin
//! endpoint, and a schema registry with the reference client's serializers.
//! Every item is re-exported at the root, so a test can write
//! `use weir_test_support::*;`.

pub mod admin;
pub mod broker;
pub mod http_service;
pub mod plugins;
pub mod process;
pub mod records;
pub mod schema_registry;

pub use admin::{admin_request, admin_request_with, lags, scrape, wait_for_zero_lag};
pub use broker::{
    brokers, create_topic, require_broker, serial, topic_exists, topics, unique, use_brokers,
    PARTITIONS,
};
pub use http_service::LookupService;
pub use plugins::{c_plugin, example_plugin, go_plugin, js_plugin, python_plugin, workspace_root};
pub use process::{pipeline_args, run_to_exit, slow_args, weir_base_args, weir_bin, Weir};
pub use records::{
    all_partitions, committed_offsets, committed_total, env_or, numbered, output_counts,
    outputs_and_letters, produce, produce_paced, produce_with_raw_header_key, read_all,
    wait_for_commits, wait_for_committed, TestRecord, TopicReader,
};
pub use schema_registry::{schema_fixture, SchemaFormat, SchemaRegistry};
