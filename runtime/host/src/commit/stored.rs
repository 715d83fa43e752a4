//! At-least-once: a partition's worker stores the offset after the last record
//! whose outputs (and everything before it) are acknowledged, and librdkafka
//! commits stored offsets on its timer and when Weir asks.

use crate::kafka::WeirConsumer;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;

/// Where one partition's worker reports its committable offset.
pub struct PartitionCommits {
    /// `None` in exactly-once mode, where batch scopes record positions instead.
    consumer: Option<Arc<WeirConsumer>>,
    topic: String,
    partition: i32,
    /// The last offset stored, to skip storing it again.
    stored: Option<i64>,
}

impl PartitionCommits {
    /// Store through `consumer`, or nothing when it is `None`.
    pub(super) fn new(consumer: Option<Arc<WeirConsumer>>, topic: &str, partition: i32) -> Self {
        Self {
            consumer,
            topic: topic.to_string(),
            partition,
            stored: None,
        }
    }

    /// Every record before `next_offset` is done: make it committable.
    pub fn completed_up_to(&mut self, next_offset: i64) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        if self.stored == Some(next_offset) {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(1);
        if let Err(e) =
            tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(next_offset))
        {
            tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "cannot build offset list");
            return;
        }
        match consumer.store_offsets(&tpl) {
            Ok(()) => self.stored = Some(next_offset),
            // After a revocation the partition is no longer ours; its new owner
            // resumes from the last commit, so these records are processed again.
            Err(e) => tracing::debug!(topic = %self.topic, partition = self.partition,
                offset = next_offset, error = %e, "offset not stored (partition no longer assigned?)"),
        }
    }
}
