//! A pipeline's input topics: plain names and, for entries that start with
//! `^`, regular expressions (the convention librdkafka uses). Weir resolves
//! the patterns itself against the cluster's topic list rather than handing
//! them to librdkafka, so that a pattern never feeds the pipeline what it
//! writes: dead-letter topics (`<topic>.dlq`, or the configured one), the
//! topics its plugins may write to, and Kafka's internal topics (`__…`) are
//! never matched.

use super::TopicPatterns;
use regex::Regex;
use std::collections::BTreeSet;

/// The suffix of default dead-letter topics, which patterns never match.
pub const DEAD_LETTER_SUFFIX: &str = ".dlq";

/// Longest topic name Kafka accepts.
const MAX_TOPIC_NAME_LEN: usize = 249;

/// The input topics of a pipeline.
#[derive(Debug, Clone)]
pub struct Subscription {
    names: Vec<String>,
    patterns: Vec<Regex>,
    /// Topics no pattern may match (outputs and a fixed dead-letter topic).
    excluded: TopicPatterns,
}

/// Why an entry of `topics` is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicEntryError {
    /// A plain name Kafka would refuse.
    #[error("`{name}` is not a valid Kafka topic name: {reason}")]
    InvalidName {
        /// The entry.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An entry starting with `^` that is not a regular expression.
    #[error("`{pattern}` is not a valid topic pattern (a regular expression, as it starts with `^`): {reason}")]
    InvalidPattern {
        /// The entry.
        pattern: String,
        /// The regex parser's message.
        reason: String,
    },
}

impl Subscription {
    /// The subscription of `entries` (names, and `^` patterns), whose patterns
    /// never match the topics (names and `*` patterns) in `excluded`.
    pub fn new<S: AsRef<str>>(
        entries: &[S],
        excluded: TopicPatterns,
    ) -> Result<Self, TopicEntryError> {
        let mut names = Vec::new();
        let mut patterns = Vec::new();
        for entry in entries.iter().map(AsRef::as_ref) {
            if is_pattern(entry) {
                let regex = Regex::new(entry).map_err(|e| TopicEntryError::InvalidPattern {
                    pattern: entry.to_string(),
                    reason: e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                })?;
                patterns.push(regex);
            } else {
                check_topic_name(entry).map_err(|reason| TopicEntryError::InvalidName {
                    name: entry.to_string(),
                    reason,
                })?;
                names.push(entry.to_string());
            }
        }
        Ok(Self {
            names,
            patterns,
            excluded,
        })
    }

    /// The plain topic names, which must exist at start-up.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The patterns, as written.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(Regex::as_str)
    }

    /// Whether any entry is a pattern (the topic list then changes over time).
    pub fn has_patterns(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// Whether `topic` may be fed to the pipeline by a pattern at all.
    fn may_match(&self, topic: &str) -> bool {
        !topic.starts_with("__")
            && !topic.ends_with(DEAD_LETTER_SUFFIX)
            && !self.excluded.matches(topic)
    }

    /// Whether `topic` is one a pattern feeds the pipeline with.
    fn pattern_matches(&self, topic: &str) -> bool {
        self.may_match(topic) && self.patterns.iter().any(|p| p.is_match(topic))
    }

    /// Each pattern with the topics of `existing` it feeds the pipeline with.
    pub fn matches_by_pattern<'a>(&self, existing: &[&'a str]) -> Vec<(&str, Vec<&'a str>)> {
        self.patterns
            .iter()
            .map(|p| {
                let matched = existing
                    .iter()
                    .copied()
                    .filter(|t| self.may_match(t) && p.is_match(t))
                    .collect();
                (p.as_str(), matched)
            })
            .collect()
    }

    /// The topics to consume, given the cluster's `existing` topics: every
    /// plain name, and each existing topic a pattern matches.
    pub fn resolve<'a>(&self, existing: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut topics: BTreeSet<String> = self.names.iter().cloned().collect();
        topics.extend(
            existing
                .into_iter()
                .filter(|t| self.pattern_matches(t))
                .map(str::to_string),
        );
        topics
    }
}

/// Whether a `topics` entry is a pattern rather than a name.
pub fn is_pattern(entry: &str) -> bool {
    entry.starts_with('^')
}

/// Kafka's rules for topic names: 1 to 249 characters of ASCII letters,
/// digits, `.`, `_` and `-`, and not `.` or `..`.
pub fn check_topic_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err("it is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return Err("`.` and `..` are reserved");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(
            "only ASCII letters, digits, `.`, `_` and `-` are allowed (start it with `^` for a pattern)",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_topics_but_never_dead_letter_output_or_internal_ones() {
        let excluded = TopicPatterns::new(["orders-out", "orders-audit-*"]);
        let s = Subscription::new(&["^orders-.*", "audit"], excluded).unwrap();
        let existing = [
            "orders-eu",
            "orders-us",
            "orders-eu.dlq",
            "orders-out",
            "orders-audit-eu",
            "__consumer_offsets",
            "payments",
            "audit",
        ];
        let topics: Vec<String> = s.resolve(existing).into_iter().collect();
        assert_eq!(topics, ["audit", "orders-eu", "orders-us"]);
        let by_pattern = s.matches_by_pattern(&existing);
        assert_eq!(by_pattern, [("^orders-.*", vec!["orders-eu", "orders-us"])]);
        assert!(s.has_patterns());
        assert_eq!(s.names(), ["audit"]);
    }

    #[test]
    fn plain_names_are_kept_even_before_they_exist() {
        let s = Subscription::new(&["a", "b"], TopicPatterns::default()).unwrap();
        assert!(!s.has_patterns());
        assert_eq!(s.resolve([]).len(), 2);
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let err = Subscription::new(&["^orders-(eu"], TopicPatterns::default()).unwrap_err();
        assert!(
            matches!(&err, TopicEntryError::InvalidPattern { reason, .. } if reason.contains("unclosed group")),
            "{err}"
        );
        let err = Subscription::new(&["orders eu"], TopicPatterns::default()).unwrap_err();
        assert!(err.to_string().contains("only ASCII letters"), "{err}");
        assert!(Subscription::new(&[".."], TopicPatterns::default()).is_err());
        assert!(Subscription::new(&["x".repeat(250)], TopicPatterns::default()).is_err());
        assert!(Subscription::new(&["ok.topic_name-1"], TopicPatterns::default()).is_ok());
    }
}
