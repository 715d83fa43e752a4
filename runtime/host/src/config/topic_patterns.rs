//! Topic names and patterns (`*` stands for any run of characters), for the
//! topics a pipeline's plugins may write to.

/// A set of topic names and `*` patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicPatterns {
    patterns: Vec<String>,
}

impl TopicPatterns {
    /// The set of `patterns`.
    pub fn new<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Self {
        Self {
            patterns: patterns
                .into_iter()
                .map(|p| p.as_ref().to_string())
                .collect(),
        }
    }

    /// Whether `topic` is one of the names or matches one of the patterns.
    pub fn matches(&self, topic: &str) -> bool {
        self.patterns.iter().any(|p| wildcard_match(p, topic))
    }
}

/// Whether `text` matches `pattern`, where each `*` matches any run of
/// characters (also none) and everything else matches itself.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        // No `*`: the whole text must be the name.
        return rest.is_empty();
    };
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_themselves_and_stars_match_any_run() {
        let set = TopicPatterns::new(["out", "audit-*", "*-eu", "a*b*c"]);
        for topic in [
            "out",
            "audit-",
            "audit-x",
            "orders-eu",
            "-eu",
            "abc",
            "aXbYc",
            "abbc",
        ] {
            assert!(set.matches(topic), "{topic}");
        }
        for topic in [
            "out2",
            "xout",
            "audit",
            "eu",
            "orders-eu.dlq",
            "ab",
            "acb",
            "out.dlq",
        ] {
            assert!(!set.matches(topic), "{topic}");
        }
        assert!(TopicPatterns::new(["*"]).matches("anything"));
        assert!(!TopicPatterns::default().matches("out"));
    }
}
