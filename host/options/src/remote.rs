//! Value types of the remote options: server addresses, secrets and headers that never show in
//! logs, and how cached content is treated.

use std::collections::BTreeMap;
use std::fmt;

/// A REAPI server address: `grpc://host:port` (plaintext) or `grpcs://host:port` (TLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteAddress {
    /// Whether the connection uses TLS (`grpcs://`).
    pub tls: bool,
    /// A DNS name or an IP address; an IPv6 address keeps its brackets.
    pub host: String,
    pub port: u16,
}

impl RemoteAddress {
    /// Parses `grpc://host:port` or `grpcs://host:port`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("grpcs://") {
            (true, rest)
        } else {
            (false, text.strip_prefix("grpc://")?)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = rest.rsplit_once(':')?;
        let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
        if !valid_host(host) {
            return None;
        }
        Some(Self {
            tls,
            host: host.to_owned(),
            port,
        })
    }

    /// The URI a gRPC channel connects to: `http://host:port` or `https://host:port`.
    pub fn uri(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

/// A bracketed IPv6 address, or a name of letters, digits, `.`, `-` and `_`.
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

impl fmt::Display for RemoteAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "grpcs" } else { "grpc" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// A credential. Its `Debug` form hides the value, so it cannot leak through logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// gRPC request headers, checked to be ASCII. Their `Debug` form shows names only: values such
/// as `authorization` are credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(BTreeMap<String, String>);

impl Headers {
    pub fn new(headers: BTreeMap<String, String>) -> Self {
        Self(headers)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether a header of this name is present, ignoring case as HTTP does.
    pub fn contains(&self, name: &str) -> bool {
        self.0.keys().any(|k| k.eq_ignore_ascii_case(name))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn with(mut self, name: &str, value: String) -> Self {
        self.0.insert(name.to_owned(), value);
        self
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// What to do with the outputs of cached actions (Pants' `cache_content_behavior`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheContentBehavior {
    /// Download every output of a cache hit, so later runs never miss a blob.
    Fetch,
    /// Check that a cache hit's outputs still exist in the store, re-running the action when
    /// they do not, without downloading them.
    Validate,
    /// Trust cache hits and download outputs only when they are read.
    Defer,
}

impl CacheContentBehavior {
    /// The names the option accepts.
    pub const CHOICES: [&str; 3] = ["fetch", "validate", "defer"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fetch" => Some(Self::Fetch),
            "validate" => Some(Self::Validate),
            "defer" => Some(Self::Defer),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_schemes_and_ipv6() {
        let plain = RemoteAddress::parse("grpc://cache.example.com:8980").expect("plaintext");
        assert_eq!(
            (plain.tls, plain.host.as_str(), plain.port),
            (false, "cache.example.com", 8980)
        );
        assert_eq!(plain.uri(), "http://cache.example.com:8980");

        let tls = RemoteAddress::parse("grpcs://[::1]:443/").expect("tls with ipv6");
        assert_eq!((tls.tls, tls.host.as_str(), tls.port), (true, "[::1]", 443));
        assert_eq!(tls.to_string(), "grpcs://[::1]:443");
    }

    #[test]
    fn rejects_other_forms() {
        for bad in [
            "cache:8980",
            "http://cache:8980",
            "grpc://cache",
            "grpc://:8980",
            "grpc://cache:0",
            "grpc://cache:99999",
            "grpc://cache:8980/path",
            "grpc://user@cache:8980",
            "grpcs://[nothex]:1",
        ] {
            assert_eq!(RemoteAddress::parse(bad), None, "{bad} should be rejected");
        }
    }

    #[test]
    fn secrets_and_header_values_stay_out_of_debug() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        let headers = Headers::new(BTreeMap::from([("authorization".into(), "hunter2".into())]));
        let shown = format!("{headers:?}");
        assert!(
            shown.contains("authorization") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
