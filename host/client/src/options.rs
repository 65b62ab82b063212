//! The client's resolved settings, the addresses they name, and the clock retries sleep on.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ReapiError;

/// Settings of a [`RemoteClient`](crate::RemoteClient), resolved by the options layer.
///
/// [`RemoteOptions::new`] fills in the defaults:
///
/// | field | default | Pants option |
/// |---|---|---|
/// | `execution_address` | none (cache only) | `remote_execution_address` |
/// | `instance_name` | empty | `remote_instance_name` |
/// | `chunk_bytes` | 1 MiB | `remote_store_chunk_bytes` |
/// | `batch_size_limit` | 4 MiB | `remote_store_batch_api_size_limit` |
/// | `rpc_retries` | 3 (so 4 attempts) | `remote_store_rpc_retries` |
/// | `store_rpc_concurrency` | 128 | `remote_store_rpc_concurrency` |
/// | `cache_rpc_concurrency` | 128 | `remote_cache_rpc_concurrency` |
/// | `execution_parallelism` | 128 | `process_execution_remote_parallelism` |
/// | `upload_bytes_in_flight` | 16 MiB | none: bounds the client's memory, not the server's load |
/// | `store_rpc_timeout` | 30 s | `remote_store_rpc_timeout_millis` |
/// | `cache_rpc_timeout` | 1.5 s | `remote_cache_rpc_timeout_millis` |
/// | `overall_deadline` | none | `remote_execution_overall_deadline_secs` |
/// | `clock` | [`SystemClock`] | none: tests inject one that does not wait |
#[derive(Clone)]
pub struct RemoteOptions {
    /// `grpc://host:port` or `grpcs://host:port` of the CAS and action cache.
    pub store_address: String,
    /// Address of the execution service; when equal to `store_address` one connection serves
    /// both.
    pub execution_address: Option<String>,
    pub instance_name: String,
    /// PEM file of the certificate authorities to trust instead of the operating system's.
    pub ca_certs_path: Option<PathBuf>,
    /// PEM client certificate for mutual TLS; needs `client_key_path`.
    pub client_certs_path: Option<PathBuf>,
    /// PEM private key for mutual TLS; needs `client_certs_path`.
    pub client_key_path: Option<PathBuf>,
    /// Headers sent on every CAS, ByteStream and action cache call.
    pub store_headers: BTreeMap<String, String>,
    /// Headers sent on every execution call.
    pub execution_headers: BTreeMap<String, String>,
    /// Sent as `authorization: Bearer TOKEN` on every call. The options layer reads `@path`.
    pub oauth_bearer_token: Option<String>,
    /// Size of each ByteStream message.
    pub chunk_bytes: usize,
    /// The most a batch request may hold, protobuf framing counted; the server's
    /// `max_batch_total_size_bytes` lowers it further.
    pub batch_size_limit: u64,
    /// Retries after a first failed attempt of one call, for transient failures only.
    pub rpc_retries: u32,
    pub store_rpc_concurrency: usize,
    pub cache_rpc_concurrency: usize,
    /// How many `Execute` calls may be in flight at once.
    pub execution_parallelism: usize,
    /// Bytes of blob data uploads may hold in memory at once: a batch's blobs from before they
    /// are read until its call ends, and two chunks per ByteStream `Write`. Separate from
    /// `store_rpc_concurrency`, which counts calls whatever their size: 128 calls of 4 MiB
    /// batches would be half a gigabyte. A transfer larger than the whole budget waits until it
    /// can take all of it, and then goes alone.
    pub upload_bytes_in_flight: usize,
    /// Time allowed for one CAS call, or for each `chunk_bytes` of a ByteStream transfer.
    pub store_rpc_timeout: Duration,
    /// Time allowed for one action cache call.
    pub cache_rpc_timeout: Duration,
    /// Time allowed for a whole [`execute`](crate::RemoteClient::execute): cache lookup,
    /// uploads, execution and every retry.
    pub overall_deadline: Option<Duration>,
    /// What retries sleep on and draw their jitter from.
    pub clock: Arc<dyn Clock>,
}

impl RemoteOptions {
    /// Options with every default, talking to `store_address`.
    pub fn new(store_address: impl Into<String>) -> Self {
        Self {
            store_address: store_address.into(),
            execution_address: None,
            instance_name: String::new(),
            ca_certs_path: None,
            client_certs_path: None,
            client_key_path: None,
            store_headers: BTreeMap::new(),
            execution_headers: BTreeMap::new(),
            oauth_bearer_token: None,
            chunk_bytes: 1024 * 1024,
            batch_size_limit: 4 * 1024 * 1024,
            rpc_retries: 3,
            store_rpc_concurrency: 128,
            cache_rpc_concurrency: 128,
            execution_parallelism: 128,
            upload_bytes_in_flight: 16 * 1024 * 1024,
            store_rpc_timeout: Duration::from_secs(30),
            cache_rpc_timeout: Duration::from_millis(1500),
            overall_deadline: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Checks the values that do not need the network, naming the option at fault.
    pub(crate) fn validate(&self) -> Result<(), ReapiError> {
        let positive = [
            ("remote_store_chunk_bytes", self.chunk_bytes),
            ("remote_store_rpc_concurrency", self.store_rpc_concurrency),
            ("remote_cache_rpc_concurrency", self.cache_rpc_concurrency),
            (
                "process_execution_remote_parallelism",
                self.execution_parallelism,
            ),
        ];
        for (option, value) in positive {
            if value == 0 {
                return Err(ReapiError::invalid_option(option, "must be at least 1"));
            }
        }
        if self.batch_size_limit < 1024 {
            let reason = "must be at least 1024 bytes";
            return Err(ReapiError::invalid_option(
                "remote_store_batch_api_size_limit",
                reason,
            ));
        }
        Ok(())
    }
}

/// Never prints the token or header values: they are often secrets.
impl fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("store_address", &self.store_address)
            .field("execution_address", &self.execution_address)
            .field("instance_name", &self.instance_name)
            .field("ca_certs_path", &self.ca_certs_path)
            .field("client_certs_path", &self.client_certs_path)
            .field(
                "store_headers",
                &self.store_headers.keys().collect::<Vec<_>>(),
            )
            .field(
                "execution_headers",
                &self.execution_headers.keys().collect::<Vec<_>>(),
            )
            .field(
                "oauth_bearer_token",
                &self.oauth_bearer_token.as_ref().map(|_| "<set>"),
            )
            .field("chunk_bytes", &self.chunk_bytes)
            .field("rpc_retries", &self.rpc_retries)
            .field("overall_deadline", &self.overall_deadline)
            .finish_non_exhaustive()
    }
}

/// Whether an address is reached in plaintext or over TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Plaintext,
    Tls,
}

/// A parsed `grpc://host:port` or `grpcs://host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    pub transport: Transport,
    /// `host:port`, with IPv6 hosts in brackets.
    pub authority: String,
}

impl Address {
    /// Parses the value of `option`; anything but the two accepted forms is an error that
    /// names the option and those forms.
    pub fn parse(option: &'static str, text: &str) -> Result<Self, ReapiError> {
        let bad = || {
            let reason = format!(
                "`{text}` is not an address; use `grpc://host:port` (plaintext) \
                 or `grpcs://host:port` (TLS)"
            );
            ReapiError::invalid_option(option, reason)
        };
        let (transport, authority) = if let Some(rest) = text.strip_prefix("grpc://") {
            (Transport::Plaintext, rest)
        } else if let Some(rest) = text.strip_prefix("grpcs://") {
            (Transport::Tls, rest)
        } else {
            return Err(bad());
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        let host_ok = !host.is_empty() && !host.contains(['/', '@', '?', '#', ' ']);
        if !host_ok || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        Ok(Self {
            transport,
            authority: authority.to_owned(),
        })
    }

    /// The `http` or `https` URI tonic connects to.
    pub(crate) fn uri(&self) -> String {
        match self.transport {
            Transport::Plaintext => format!("http://{}", self.authority),
            Transport::Tls => format!("https://{}", self.authority),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transport {
            Transport::Plaintext => write!(f, "grpc://{}", self.authority),
            Transport::Tls => write!(f, "grpcs://{}", self.authority),
        }
    }
}

/// A boxed future that sleeps.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where retries get their sleep and their jitter, so tests can make both instant and fixed.
pub trait Clock: Send + Sync + 'static {
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> Sleep;

    /// A number in `[0, 1)` that spreads the retries of many clients apart.
    fn jitter(&self) -> f64;
}

/// Real time and a random jitter.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }

    fn jitter(&self) -> f64 {
        fastrand::f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_grpc_and_grpcs_addresses() {
        let plain = Address::parse("opt", "grpc://localhost:8980").expect("plain");
        assert_eq!(plain.transport, Transport::Plaintext);
        assert_eq!(plain.uri(), "http://localhost:8980");
        let tls = Address::parse("opt", "grpcs://[::1]:443").expect("tls");
        assert_eq!(tls.transport, Transport::Tls);
        assert_eq!(tls.to_string(), "grpcs://[::1]:443");
    }

    #[test]
    fn other_forms_name_the_option_and_the_accepted_forms() {
        for text in [
            "http://host:1",
            "host:1",
            "grpc://host",
            "grpc://:1",
            "grpcs://h:x",
            "",
        ] {
            let err = Address::parse("remote_store_address", text).expect_err(text);
            let message = err.to_string();
            assert!(message.contains("`remote_store_address`"), "{message}");
            assert!(message.contains("grpcs://host:port"), "{message}");
        }
    }

    #[test]
    fn debug_hides_the_token_and_header_values() {
        let mut options = RemoteOptions::new("grpc://h:1");
        options.oauth_bearer_token = Some("sekrit".into());
        options
            .store_headers
            .insert("x-key".into(), "hidden-value".into());
        let text = format!("{options:?}");
        assert!(
            !text.contains("sekrit") && !text.contains("hidden-value"),
            "{text}"
        );
        assert!(text.contains("x-key"), "{text}");
    }
}
