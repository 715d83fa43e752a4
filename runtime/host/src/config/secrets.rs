//! Plugin configuration values that come from outside the config file, so
//! that tokens need not sit in it: a value written `${env:NAME}` is the
//! environment variable `NAME`, `${file:PATH}` the contents of the file (one
//! trailing newline dropped). Resolved values are passed to the plugin's
//! `init` and never logged; a missing variable or unreadable file stops
//! start-up, naming the key but not the value.

use super::ConfigError;

/// `value` with a `${env:...}` or `${file:...}` reference resolved; any other
/// value as it is. `setting` and `key` name it in errors.
pub fn resolve(setting: &'static str, key: &str, value: &str) -> Result<String, ConfigError> {
    let reference = value
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'));
    let Some(reference) = reference else {
        return Ok(value.to_string());
    };
    let invalid = |reason: String| ConfigError::Invalid {
        key: setting,
        reason: format!("`{key}`: {reason}"),
    };
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| {
            invalid(format!(
                "the environment variable {name} is not set (or not UTF-8)"
            ))
        });
    }
    if let Some(path) = reference.strip_prefix("file:") {
        let mut text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read {path}: {e}")))?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        return Ok(text);
    }
    Err(invalid(format!(
        "`${{{reference}}}` is neither `${{env:NAME}}` nor `${{file:PATH}}`"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_resolved_and_other_values_kept() {
        assert_eq!(resolve("plugin.config", "k", "plain").unwrap(), "plain");
        assert_eq!(
            resolve("plugin.config", "k", "${partial").unwrap(),
            "${partial"
        );
        std::env::set_var("WEIR_SECRETS_TEST_TOKEN", "s3cret");
        assert_eq!(
            resolve("plugin.config", "k", "${env:WEIR_SECRETS_TEST_TOKEN}").unwrap(),
            "s3cret"
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "from-file\n").unwrap();
        let reference = format!("${{file:{}}}", file.path().display());
        assert_eq!(
            resolve("plugin.config", "k", &reference).unwrap(),
            "from-file"
        );
    }

    #[test]
    fn a_missing_source_names_the_key_not_a_value() {
        let err = resolve("plugin.config", "token", "${env:WEIR_SECRETS_TEST_UNSET}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`token`") && err.contains("WEIR_SECRETS_TEST_UNSET"),
            "{err}"
        );
        assert!(resolve("plugin.config", "token", "${file:/nonexistent/weir}").is_err());
        assert!(resolve("plugin.config", "token", "${vault:x}").is_err());
    }
}
