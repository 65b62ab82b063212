//! Connections: one channel for the store and one for execution (the same one when the
//! addresses are equal), TLS with the operating system's roots or the configured CA, and the
//! headers every call carries.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::ReapiError;
use crate::options::{Address, RemoteOptions, Transport};

/// How long a TCP connection (and TLS handshake) may take before the attempt fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pings on idle connections, so a long `Execute` stream notices a dead peer.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The `user-agent` remex sends (tonic appends its own).
pub(crate) const USER_AGENT: &str = concat!("remex/", env!("CARGO_PKG_VERSION"));

/// A channel with the address it reaches and the headers its calls carry.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    pub channel: Channel,
    pub address: String,
    pub headers: MetadataMap,
}

/// The store connection, and the execution connection when execution is configured.
pub(crate) struct Connections {
    pub store: Connection,
    pub execution: Option<Connection>,
}

/// Builds both connections. Channels connect lazily, on their first call, so that a server
/// that is down now but up by then still works; the first call is `GetCapabilities`.
pub(crate) fn connect(options: &RemoteOptions) -> Result<Connections, ReapiError> {
    let store_address = Address::parse("remote_store_address", &options.store_address)?;
    let execution_address = options
        .execution_address
        .as_deref()
        .map(|text| Address::parse("remote_execution_address", text))
        .transpose()?;
    let tls = tls_config(options)?;
    let token = options.oauth_bearer_token.as_deref();

    let store_channel = channel("remote_store_address", &store_address, &tls)?;
    let store = Connection {
        channel: store_channel.clone(),
        address: store_address.to_string(),
        headers: headers("remote_store_headers", &options.store_headers, token)?,
    };
    let execution = match execution_address {
        None => None,
        Some(address) => Some(Connection {
            // One HTTP/2 connection multiplexes both kinds of call when the server is the same.
            channel: if address == store_address {
                store_channel
            } else {
                channel("remote_execution_address", &address, &tls)?
            },
            address: address.to_string(),
            headers: headers(
                "remote_execution_headers",
                &options.execution_headers,
                token,
            )?,
        }),
    };
    Ok(Connections { store, execution })
}

fn channel(
    option: &'static str,
    address: &Address,
    tls: &ClientTlsConfig,
) -> Result<Channel, ReapiError> {
    let invalid = |e: tonic::transport::Error| ReapiError::invalid_option(option, e.to_string());
    let mut endpoint = Endpoint::from_shared(address.uri())
        .map_err(invalid)?
        .user_agent(USER_AGENT)
        .map_err(invalid)?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    if address.transport == Transport::Tls {
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|e| ReapiError::Tls {
                address: address.to_string(),
                message: e.to_string(),
            })?;
    }
    Ok(endpoint.connect_lazy())
}

/// The configured CA alone when given, the operating system's roots otherwise; a client
/// certificate and key for mutual TLS, both or neither.
fn tls_config(options: &RemoteOptions) -> Result<ClientTlsConfig, ReapiError> {
    let mut tls = ClientTlsConfig::new();
    tls = match &options.ca_certs_path {
        Some(path) => {
            let pem = read_pem("remote_ca_certs_path", path)?;
            tls.ca_certificate(Certificate::from_pem(pem))
        }
        None => tls.with_native_roots(),
    };
    match (&options.client_certs_path, &options.client_key_path) {
        (Some(certs), Some(key)) => {
            let certs = read_pem("remote_client_certs_path", certs)?;
            let key = read_pem("remote_client_key_path", key)?;
            tls = tls.identity(Identity::from_pem(certs, key));
        }
        (None, None) => {}
        (Some(_), None) => return Err(mutual_tls_error("remote_client_key_path")),
        (None, Some(_)) => return Err(mutual_tls_error("remote_client_certs_path")),
    }
    Ok(tls)
}

fn mutual_tls_error(missing: &'static str) -> ReapiError {
    let reason = "mutual TLS needs both `remote_client_certs_path` and `remote_client_key_path`";
    ReapiError::invalid_option(missing, reason)
}

fn read_pem(option: &'static str, path: &Path) -> Result<Vec<u8>, ReapiError> {
    let pem = fs::read(path).map_err(|source| ReapiError::OptionFile {
        option,
        path: path.to_owned(),
        source,
    })?;
    if !pem.windows(10).any(|w| w == b"-----BEGIN") {
        let reason = format!("`{}` is not a PEM file", path.display());
        return Err(ReapiError::invalid_option(option, reason));
    }
    Ok(pem)
}

/// The configured headers and the bearer token, checked once so every call can reuse them.
fn headers(
    option: &'static str,
    configured: &BTreeMap<String, String>,
    token: Option<&str>,
) -> Result<MetadataMap, ReapiError> {
    let mut map = MetadataMap::new();
    for (name, value) in configured {
        let key = AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| ReapiError::invalid_option(option, format!("bad header name `{name}`")))?;
        // The value may be a secret: the message names the header only.
        let value = AsciiMetadataValue::try_from(value.as_str()).map_err(|_| {
            ReapiError::invalid_option(option, format!("header `{name}` has a bad value"))
        })?;
        map.insert(key, value);
    }
    if let Some(token) = token {
        let value = AsciiMetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            ReapiError::invalid_option("remote_oauth_bearer_token", "the token has bad characters")
        })?;
        map.insert("authorization", value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn equal_addresses_share_one_channel_but_not_headers() {
        let mut options = RemoteOptions::new("grpc://127.0.0.1:1");
        options.execution_address = Some("grpc://127.0.0.1:1".into());
        options.store_headers.insert("X-Store".into(), "s".into());
        options
            .execution_headers
            .insert("x-exec".into(), "e".into());
        options.oauth_bearer_token = Some("t0k".into());
        let connections = connect(&options).expect("connects lazily");
        let execution = connections.execution.expect("execution");
        assert!(connections.store.headers.get("x-store").is_some());
        assert!(execution.headers.get("x-store").is_none());
        assert_eq!(
            execution.headers.get("authorization").expect("auth"),
            "Bearer t0k"
        );
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let mut options = RemoteOptions::new("grpcs://h:1");
        options.client_certs_path = Some("cert.pem".into());
        let error = tls_config(&options).expect_err("refused");
        assert!(
            error.to_string().contains("`remote_client_key_path`"),
            "{error}"
        );
    }

    #[test]
    fn header_values_stay_out_of_errors() {
        let configured = BTreeMap::from([("x-key".to_owned(), "secret\nvalue".to_owned())]);
        let error = headers("remote_store_headers", &configured, None).expect_err("bad value");
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
