//! Which hosts a plugin may send HTTP requests to: the operator's list of
//! `scheme://host[:port]` entries, where a host may start with `*.` to allow
//! every subdomain. An entry without a port allows the scheme's default port
//! only. Nothing is allowed unless listed.

use std::fmt;

/// One allowed destination, as written in `allowed_outbound_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// `http` or `https`.
    scheme: Scheme,
    /// The host, lowercased; for a wildcard entry, the part after `*.`.
    host: String,
    /// `*.host`: any subdomain of `host` (not `host` itself).
    wildcard: bool,
    /// The port; the scheme's default when not written.
    port: u16,
    /// The entry as written, for logs and metric labels.
    text: String,
}

/// The two schemes a plugin may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Why an `allowed_outbound_hosts` entry cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowed_outbound_hosts entry `{entry}`: {reason}; write it as scheme://host[:port], e.g. https://api.example.com or https://*.internal.example.com")]
pub struct AllowedHostError {
    entry: String,
    reason: &'static str,
}

impl AllowedHost {
    /// Parse one entry: `http://` or `https://`, a host (or `*.` and a
    /// domain), an optional port, and nothing else.
    pub fn parse(entry: &str) -> Result<Self, AllowedHostError> {
        let refuse = |reason| AllowedHostError {
            entry: entry.to_string(),
            reason,
        };
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| refuse("it has no scheme"))?;
        let scheme =
            Scheme::parse(scheme).ok_or_else(|| refuse("the scheme must be http or https"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(refuse("it has no host"));
        }
        if authority.contains(['/', '?', '#', '@']) {
            return Err(refuse(
                "only a scheme, a host and a port are allowed (no path, query or user)",
            ));
        }
        let (host, port) = split_port(authority)
            .ok_or_else(|| refuse("the port is not a number from 1 to 65535"))?;
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(domain) => (true, domain),
            None => (false, host),
        };
        if host.is_empty() || host.contains('*') {
            return Err(refuse(
                "a wildcard may only be a leading `*.` before a domain",
            ));
        }
        Ok(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            wildcard,
            port: port.unwrap_or(scheme.default_port()),
            text: entry.to_string(),
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this entry.
    fn permits(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        if scheme != self.scheme || port != self.port {
            return false;
        }
        if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `host[:port]` (an IPv6 host in brackets) into the host and the port, if
/// written; `None` if the port is not a valid one.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let port_at = if authority.starts_with('[') {
        let end = authority.find(']')?;
        match &authority[end + 1..] {
            "" => return Some((authority, None)),
            rest if rest.starts_with(':') => end + 1,
            _ => return None,
        }
    } else {
        match authority.rfind(':') {
            Some(at) => at,
            None => return Some((authority, None)),
        }
    };
    let port: u16 = authority[port_at + 1..].parse().ok()?;
    (port != 0).then_some((&authority[..port_at], Some(port)))
}

/// The hosts a plugin may reach; empty allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<AllowedHost>,
}

impl AllowList {
    /// Parse every entry of `allowed_outbound_hosts`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowedHostError> {
        let entries = entries
            .iter()
            .map(|e| AllowedHost::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// The entry that allows a request to `uri`, if any. A URI without a
    /// scheme or host (a relative one) is never allowed.
    pub fn permitting(&self, uri: &http::Uri) -> Option<&AllowedHost> {
        let scheme = Scheme::parse(uri.scheme_str()?)?;
        let host = uri.host()?.to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        self.entries
            .iter()
            .find(|entry| entry.permits(scheme, &host, port))
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(list: &[&str], uri: &str) -> bool {
        AllowList::parse(list)
            .unwrap()
            .permitting(&uri.parse().unwrap())
            .is_some()
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        assert!(!allowed(&[], "https://api.example.com/x"));
    }

    #[test]
    fn scheme_host_and_port_must_all_match() {
        let list = ["https://api.example.com", "http://127.0.0.1:8080"];
        assert!(allowed(&list, "https://api.example.com/v1?q=1"));
        assert!(allowed(&list, "https://API.example.com:443/"));
        assert!(!allowed(&list, "http://api.example.com/"));
        assert!(!allowed(&list, "https://api.example.com:8443/"));
        assert!(!allowed(&list, "https://api.example.com.evil.net/"));
        assert!(!allowed(&list, "https://evilapi.example.com/"));
        assert!(allowed(&list, "http://127.0.0.1:8080/lookup"));
        assert!(!allowed(&list, "http://127.0.0.1/lookup"));
        assert!(!allowed(&list, "http://127.0.0.1:8081/lookup"));
        assert!(!allowed(&list, "/relative/path"));
    }

    #[test]
    fn a_wildcard_allows_subdomains_only() {
        let list = ["https://*.internal.example.com"];
        assert!(allowed(&list, "https://a.internal.example.com/"));
        assert!(allowed(&list, "https://a.b.internal.example.com/"));
        assert!(!allowed(&list, "https://internal.example.com/"));
        assert!(!allowed(&list, "https://xinternal.example.com/"));
        assert!(!allowed(&list, "https://a.internal.example.com.evil.net/"));
    }

    #[test]
    fn ipv6_hosts_take_brackets() {
        let list = ["http://[::1]:9000"];
        assert!(allowed(&list, "http://[::1]:9000/"));
        assert!(!allowed(&list, "http://[::1]:9001/"));
    }

    #[test]
    fn entries_that_are_not_scheme_host_port_are_refused() {
        for bad in [
            "api.example.com",
            "ftp://api.example.com",
            "https://",
            "https://api.example.com/path",
            "https://user@api.example.com",
            "https://api.example.com:0",
            "https://api.example.com:99999",
            "https://api.*.example.com",
            "https://*",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad} was accepted");
        }
        assert!(AllowedHost::parse("https://api.example.com/").is_ok());
    }
}
