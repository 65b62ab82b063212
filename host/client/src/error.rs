//! What can go wrong talking to a REAPI server, classified so that a caller can tell a bad
//! option from an unreachable server from a server that broke the protocol.
//!
//! A failed call keeps its gRPC code ([`ReapiError::Status`]) until the retry decision in
//! [`crate::retry`]; only then does it become final.

use std::error::Error as _;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use remex_store::{Digest, DigestError, StoreError};
use tonic::Code;

use crate::convert;

/// A failure of the REAPI client.
#[derive(Debug, thiserror::Error)]
pub enum ReapiError {
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },

    #[error("cannot read `{path}` named by option `{option}`: {source}")]
    OptionFile {
        option: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The connection could not be made or broke; retried as `UNAVAILABLE` would be.
    #[error("cannot reach `{address}`: {message}")]
    Connection { address: String, message: String },

    /// The TLS handshake failed: a wrong CA, certificate or key. Never retried.
    #[error("tls with `{address}` failed: {message}; check `remote_ca_certs_path`")]
    Tls { address: String, message: String },

    /// The server answered a call with an error status.
    #[error("`{rpc}` failed with {}: {message}", code_name(*code))]
    Status {
        rpc: &'static str,
        code: Code,
        message: String,
        details: Box<StatusDetails>,
    },

    /// Transient failures went on past the retry budget.
    #[error("`{rpc}` gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        rpc: &'static str,
        attempts: u32,
        #[source]
        last: Box<ReapiError>,
    },

    /// `remote_execution_overall_deadline_secs` ran out.
    #[error("remote execution did not finish within {deadline:?}")]
    DeadlineExceeded { deadline: Duration },

    #[error("blob {expected} came back from the server with the wrong content ({actual})")]
    DigestMismatch { expected: Digest, actual: Digest },

    #[error("blob {0} is not in the remote store")]
    MissingBlob(Digest),

    /// The server answered something the protocol does not allow.
    #[error("server broke the protocol in `{rpc}`: {detail}")]
    Protocol { rpc: &'static str, detail: String },

    /// The server does not offer what remex needs.
    #[error("server at `{address}` does not support {what}")]
    Unsupported { address: String, what: String },

    #[error("remote client: {0}")]
    LocalStore(#[from] StoreError),

    /// An action's own messages could not be read.
    #[error("remote client: {0}")]
    Action(#[from] remex_action::ActionError),

    #[error("remote client: cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// [`RemoteClient::shut_down`](crate::RemoteClient::shut_down) was called.
    #[error("remote client is shut down")]
    ShutDown,

    /// The failure of a transfer another caller was making of the same blob.
    #[error(transparent)]
    Shared(Arc<ReapiError>),
}

/// What a server attached to an error status, as far as the client acts on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusDetails {
    /// From `google.rpc.RetryInfo`: how long the server asks us to wait.
    pub retry_delay: Option<Duration>,
    /// From `google.rpc.PreconditionFailure` violations of type `MISSING`.
    pub missing_blobs: Vec<Digest>,
}

impl ReapiError {
    pub(crate) fn invalid_option(option: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidOption {
            option,
            reason: reason.into(),
        }
    }

    pub(crate) fn protocol(rpc: &'static str, detail: impl Into<String>) -> Self {
        Self::Protocol {
            rpc,
            detail: detail.into(),
        }
    }

    pub(crate) fn status(rpc: &'static str, code: Code, message: impl Into<String>) -> Self {
        Self::Status {
            rpc,
            code,
            message: message.into(),
            details: Box::default(),
        }
    }

    /// A call's failure as tonic reports it: a server status, or a local transport failure
    /// (connection or TLS) that tonic dressed as a status.
    pub(crate) fn from_tonic(rpc: &'static str, address: &str, status: tonic::Status) -> Self {
        if let Some(failure) = transport_failure(&status) {
            return failure.into_error(address);
        }
        Self::Status {
            rpc,
            code: status.code(),
            message: status.message().to_owned(),
            details: Box::new(convert::status_details(status.details())),
        }
    }

    /// A per-blob status inside a batch response.
    pub(crate) fn from_rpc_status(rpc: &'static str, status: &remex_proto::rpc::Status) -> Self {
        Self::Status {
            rpc,
            code: Code::from_i32(status.code),
            message: status.message.clone(),
            details: Box::new(convert::details_of(&status.details)),
        }
    }

    /// The gRPC code this failure has on the wire, if it is one the retry decision may weigh.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Status { code, .. } => Some(*code),
            // A connection that could not be made is what gRPC calls `UNAVAILABLE`.
            Self::Connection { .. } => Some(Code::Unavailable),
            Self::RetriesExhausted { last, .. } => last.code(),
            Self::Shared(inner) => inner.code(),
            _ => None,
        }
    }

    pub(crate) fn details(&self) -> Option<&StatusDetails> {
        match self {
            Self::Status { details, .. } => Some(details),
            _ => None,
        }
    }

    pub(crate) fn from_digest(error: DigestError) -> Self {
        match error {
            DigestError::Mismatch { expected, actual } => Self::DigestMismatch { expected, actual },
            other => Self::LocalStore(StoreError::Corrupt(other)),
        }
    }
}

/// The gRPC name of a code, as servers and their logs spell it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A failure below gRPC, found in the source chain of a status tonic made locally.
enum TransportFailure {
    Tls(String),
    Connection(String),
}

impl TransportFailure {
    fn into_error(self, address: &str) -> ReapiError {
        let address = address.to_owned();
        match self {
            Self::Tls(message) => ReapiError::Tls { address, message },
            Self::Connection(message) => ReapiError::Connection { address, message },
        }
    }
}

/// Statuses decoded from a server's answer have no source; those tonic made from a failed
/// connection do. `io::Error` hides the error it wraps from `source()`, so it is opened by hand.
fn transport_failure(status: &tonic::Status) -> Option<TransportFailure> {
    let mut io_message = None;
    let mut next = status.source();
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(TransportFailure::Tls(tls.to_string()));
        }
        if let Some(io) = error.downcast_ref::<io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                return Some(TransportFailure::Tls(tls.to_string()));
            }
            io_message.get_or_insert_with(|| io.to_string());
        }
        next = error.source();
    }
    io_message.map(TransportFailure::Connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_statuses_keep_their_code_and_message() {
        let status = tonic::Status::unavailable("try later");
        let error = ReapiError::from_tonic("FindMissingBlobs", "grpc://h:1", status);
        assert_eq!(error.code(), Some(Code::Unavailable));
        assert_eq!(
            error.to_string(),
            "`FindMissingBlobs` failed with UNAVAILABLE: try later"
        );
    }

    #[test]
    fn refused_connections_become_connection_errors() {
        let io = io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused");
        let status = tonic::Status::from_error(Box::new(io));
        let error = ReapiError::from_tonic("GetCapabilities", "grpc://h:1", status);
        assert!(matches!(error, ReapiError::Connection { .. }), "{error:?}");
        assert_eq!(error.code(), Some(Code::Unavailable));
    }
}
