//! The plugin's configuration, as key/value pairs given to the host.

/// Key/value configuration passed to [`crate::Processor::init`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    entries: Vec<(String, String)>,
}

impl Config {
    /// Build a configuration from key/value pairs (later duplicates win on lookup).
    pub fn new(entries: Vec<(String, String)>) -> Self {
        Self { entries }
    }

    /// The value configured for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value configured for `key`, or an error message naming the missing key
    /// and how to set it.
    pub fn require(&self, key: &str) -> Result<&str, String> {
        self.get(key).ok_or_else(|| {
            format!("missing plugin config `{key}`: pass --plugin-config {key}=VALUE")
        })
    }

    /// All configured pairs, in the order given.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Config {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::new(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_entries_win_and_missing_keys_say_how_to_set_them() {
        let config: Config = [("a", "1"), ("a", "2")].into_iter().collect();
        assert_eq!(config.get("a"), Some("2"));
        let err = config.require("b").unwrap_err();
        assert!(err.contains("--plugin-config b="), "{err}");
    }
}
