//! Why a server could not start or stopped with an error. Failures of single requests are gRPC
//! statuses sent to the client (see `status.rs`), never these.

use std::io;
use std::net::SocketAddr;

/// A failure to start or to keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the listening socket's address: {0}")]
    LocalAddress(#[source] io::Error),
    #[error("invalid TLS settings: {0}")]
    Tls(#[source] tonic::transport::Error),
    #[error("the server stopped: {0}")]
    Transport(#[source] tonic::transport::Error),
    #[error("the server task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error("the server has stopped")]
    Stopped,
}
