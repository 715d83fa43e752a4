//! The input topics a pipeline subscribes to, and following its topic patterns
//! while it runs: every refresh interval the cluster's topics are matched
//! again; a newly matched topic first gets its dead-letter topic (under the
//! `dlq` policy), then joins the subscription, and a topic that went away
//! leaves it. A changed subscription makes the group rebalance, as
//! librdkafka's own pattern subscriptions do.

use crate::config::{FailurePolicy, PipelineSettings};
use crate::kafka::{self, KafkaSetupError, WeirAdmin, WeirConsumer};
use crate::partition::PipelineContext;
use rdkafka::consumer::Consumer;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The topics to consume now: every plain name (checked to exist) and each
/// existing topic a pattern matches. Logs what each pattern matches.
pub fn input_topics(
    config: &PipelineSettings,
    consumer: &WeirConsumer,
) -> Result<BTreeSet<String>, KafkaSetupError> {
    let subscription = &config.subscription;
    if !subscription.has_patterns() {
        return Ok(subscription.resolve([]));
    }
    let existing = kafka::cluster_topics(consumer, &config.brokers)?;
    let names: Vec<&str> = existing.iter().map(String::as_str).collect();
    for (pattern, matched) in subscription.matches_by_pattern(&names) {
        if matched.is_empty() {
            tracing::warn!(pattern, refresh = ?config.topic_refresh,
                "topic pattern matches no topic yet; topics created later are consumed once a refresh finds them");
        } else {
            tracing::info!(pattern, topics = ?matched, "topic pattern matches");
        }
    }
    Ok(subscription.resolve(existing.iter().map(String::as_str)))
}

/// Subscribe `consumer` to exactly `topics` (none: no subscription).
pub fn subscribe_to(
    consumer: &WeirConsumer,
    topics: &BTreeSet<String>,
) -> Result<(), KafkaSetupError> {
    if topics.is_empty() {
        consumer.unsubscribe();
        return Ok(());
    }
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|source| KafkaSetupError::Subscribe {
            topics: topics.iter().cloned().collect(),
            source,
        })
}

/// A thread that follows the pipeline's topic patterns until stopped.
pub struct TopicWatch {
    stop: mpsc::Sender<()>,
    /// Set before stopping: a refresh in progress changes nothing more.
    stopping: Arc<AtomicBool>,
    /// Returns the subscription it left.
    thread: JoinHandle<BTreeSet<String>>,
}

impl TopicWatch {
    /// Start following `config`'s patterns every `refresh`, from the
    /// subscription `current`, until stopped or `shutdown` is cancelled.
    pub fn start(
        config: &PipelineSettings,
        refresh: Duration,
        consumer: Arc<WeirConsumer>,
        context: Arc<PipelineContext>,
        runtime: tokio::runtime::Handle,
        current: BTreeSet<String>,
        shutdown: CancellationToken,
    ) -> Result<Self, KafkaSetupError> {
        // Dead-letter and state changelog topics are made for new matches.
        let has_state = context.stages.iter().any(|s| s.state.is_some());
        let admin = match config.failure.policy {
            FailurePolicy::Dlq => Some(kafka::create_admin(config)?),
            _ if has_state => Some(kafka::create_admin(config)?),
            _ => None,
        };
        let (stop, stopped) = mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(false));
        let mut watch = Watch {
            stopping: Arc::clone(&stopping),
            shutdown,
            config: config.clone(),
            consumer,
            context,
            runtime,
            admin,
            current,
        };
        let thread = std::thread::Builder::new()
            .name("weir-topics".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(refresh) {
                    watch.refresh();
                }
                watch.current
            })
            .map_err(|e| KafkaSetupError::Subscribe {
                topics: Vec::new(),
                source: rdkafka::error::KafkaError::Subscription(format!(
                    "cannot start the topic pattern thread: {e}"
                )),
            })?;
        Ok(Self {
            stop,
            stopping,
            thread,
        })
    }

    /// Stop following the patterns; returns the topics subscribed to now
    /// (empty if the thread panicked).
    pub fn stop(self) -> BTreeSet<String> {
        self.stopping.store(true, Ordering::Release);
        drop(self.stop);
        self.thread.join().unwrap_or_default()
    }
}

/// The topic watch thread's state.
struct Watch {
    stopping: Arc<AtomicBool>,
    shutdown: CancellationToken,
    config: PipelineSettings,
    consumer: Arc<WeirConsumer>,
    context: Arc<PipelineContext>,
    runtime: tokio::runtime::Handle,
    admin: Option<WeirAdmin>,
    current: BTreeSet<String>,
}

impl Watch {
    /// Whether the pipeline is stopping: no subscription change may start.
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire) || self.shutdown.is_cancelled()
    }

    /// Make the dead-letter topic (under the `dlq` policy) and grow the state
    /// changelog topics for the newly matched `topic`.
    async fn ensure_topics_of(
        &self,
        admin: &WeirAdmin,
        topic: &str,
    ) -> Result<(), KafkaSetupError> {
        if self.config.failure.policy == FailurePolicy::Dlq {
            self.context
                .dead_letters
                .ensure_topics(&self.consumer, admin, [topic])
                .await?;
        }
        for store in self.context.stages.iter().filter_map(|s| s.state.as_ref()) {
            kafka::ensure_changelog_topic(
                &self.consumer,
                admin,
                store.changelog(),
                [topic].into_iter(),
            )
            .await?;
        }
        Ok(())
    }

    /// Match the patterns again and change the subscription if that changes
    /// the topics. A new topic whose dead-letter topic cannot be created is
    /// left out; failures are logged and retried at the next refresh.
    fn refresh(&mut self) {
        let existing = match kafka::cluster_topics(&self.consumer, &self.config.brokers) {
            Ok(topics) => topics,
            Err(error) => {
                tracing::warn!(%error, "cannot list topics to match the topic patterns; trying again at the next refresh");
                return;
            }
        };
        let mut wanted = self
            .config
            .subscription
            .resolve(existing.iter().map(String::as_str));
        if wanted == self.current {
            return;
        }
        if let Some(admin) = &self.admin {
            let new: Vec<String> = wanted.difference(&self.current).cloned().collect();
            for topic in new {
                if self.stopping() {
                    return;
                }
                let ensured = self.runtime.block_on(self.ensure_topics_of(admin, &topic));
                if let Err(error) = ensured {
                    tracing::error!(%error, %topic,
                        "a newly matched topic is not consumed until its dead-letter and state changelog topics are ready; trying again at the next refresh");
                    wanted.remove(&topic);
                }
            }
        }
        if wanted == self.current || self.stopping() {
            return;
        }
        let added: Vec<String> = wanted.difference(&self.current).cloned().collect();
        let removed: Vec<String> = self.current.difference(&wanted).cloned().collect();
        if let Err(error) = subscribe_to(&self.consumer, &wanted) {
            tracing::error!(%error, "cannot change the subscription; trying again at the next refresh");
            return;
        }
        tracing::info!(
            ?added,
            ?removed,
            "topic patterns match other topics now; subscription changed"
        );
        self.context.metrics.subscription_changed(&added, &removed);
        self.current = wanted;
    }
}
