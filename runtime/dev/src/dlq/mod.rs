//! `weir dlq`: look at a dead-letter topic (`show`) and write its letters back
//! to the topics they came from once the plugin is fixed (`replay`). Reading
//! letters is the host's (`weir_host::letters`).
//!
//! Both read a dead-letter topic's partitions up to the letters that existed
//! when the command started, so they finish even while a pipeline keeps adding
//! letters (a replayed record that fails again becomes a new letter).

mod replay;
mod show;

pub use replay::{replay, ReplayRequest, ReplaySummary};
pub use show::{show, ShowRequest};
pub use weir_host::letters::{Filter, Letter, Refusal, Source};

/// Why a `weir dlq` command failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// The letters could not be read.
    #[error(transparent)]
    Read(#[from] weir_host::letters::LetterError),
    /// A letter could not be written back.
    #[error("writing back {topic}/{partition}@{offset} failed: {reason}; letters before it are committed, so the same command resumes there")]
    Produce {
        /// The dead-letter topic.
        topic: String,
        /// The letter's partition.
        partition: i32,
        /// The letter's offset.
        offset: i64,
        /// The producer's error.
        reason: String,
    },
    /// Writing to the terminal failed.
    #[error("cannot write the listing: {0}")]
    Write(#[from] std::io::Error),
}
