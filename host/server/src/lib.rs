//! The embedded REAPI v2 server: Capabilities, the content-addressable storage with ByteStream,
//! the action cache, and Execution with a bounded pool of local workers, each action run in its
//! own sandbox directory by [`remex_exec::LocalExecutor`]. Everything is kept in one
//! [`remex_store::LocalStore`] on disk.
//!
//! It serves `remex serve`, the client tests, and (later) remex's default local mode. It is not
//! a farm: one machine, one store.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let store = remex_store::LocalStore::open("/tmp/remex-store")?;
//! let server = remex_server::ServerBuilder::new(store)
//!     .workers(4)
//!     .serve("127.0.0.1:0".parse::<std::net::SocketAddr>()?, std::future::pending())
//!     .await?;
//! println!("listening on {}", server.local_addr());
//! server.wait().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Where to change what: `builder.rs` (settings, TLS, startup and shutdown), `capabilities.rs`,
//! `cas.rs` (the batch RPCs and `GetTree`), `bytestream.rs` with `resource.rs` (resource names)
//! and `uploads.rs` (resumable writes), `action_cache.rs`, `execution.rs` with `operations.rs`
//! (the operation registry) and `platform.rs`, `gate.rs` (authentication and request metadata),
//! `status.rs` (how every failure becomes a gRPC status).

mod action_cache;
mod builder;
mod bytestream;
mod capabilities;
mod cas;
mod compression;
mod error;
mod execution;
mod gate;
mod operations;
mod platform;
mod resource;
mod results;
mod state;
mod status;
mod uploads;

pub use builder::{
    InProcessConnector, InProcessServer, Listen, RunningServer, ServerBuilder, TlsOptions,
};
pub use error::ServerError;
