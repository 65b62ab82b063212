//! The REAPI v2 client: the remote content-addressable store (CAS) with ByteStream, the
//! action cache, and remote execution, for servers such as Buildbarn, Buildfarm, BuildGrid,
//! NativeLink and remex's own.
//!
//! [`RemoteClient::connect`] builds the connections from [`RemoteOptions`] and asks the
//! server's capabilities once; they decide the batch size, zstd compression and which output
//! fields a `Command` should carry ([`RemoteClient::output_fields`]). Then:
//!
//! - [`RemoteClient::upload_blobs`]: `FindMissingBlobs`, then small blobs in batches and large
//!   ones streamed from the local store's files, each blob uploaded once even when callers race.
//! - [`RemoteClient::download_blobs`] and [`RemoteClient::fetch_outputs`]: batches or ByteStream
//!   reads resumed by offset, every blob verified before it enters the local store.
//! - [`RemoteClient::execute`]: the action cache first, then the inputs the server lacks, then
//!   `Execute`, following the operation to its end and picking a dropped stream up with
//!   `WaitExecution`.
//! - [`RemoteClient::get_action_result`] and [`RemoteClient::update_action_result`].
//!
//! Every call carries the configured headers, the bearer token, a `user-agent` and a
//! `RequestMetadata` naming remex, this client's invocation and the action when there is one.
//! Transient failures are retried with backoff and jitter ([`retry_decision`] is the one place
//! that weighs gRPC codes); store, cache and execution calls each have their own bound.

mod action_cache;
mod batch;
mod capabilities;
mod channel;
mod client;
mod coalesce;
mod convert;
mod download;
mod error;
mod execution;
mod inflight;
mod metadata;
mod options;
mod resource;
mod retry;
mod stats;
mod upload;

#[cfg(any(test, feature = "fake"))]
pub mod fake;

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod tls_tests;

pub use batch::{BatchPlan, DEFAULT_BATCH_LIMIT, plan_downloads, plan_uploads};
pub use capabilities::ServerFeatures;
pub use client::RemoteClient;
pub use error::{ReapiError, StatusDetails, code_name};
pub use execution::{ExecuteOptions, ExecuteOutcome, ResultOrigin, ServerLog};
pub use metadata::CallContext;
pub use options::{Address, Clock, RemoteOptions, Sleep, SystemClock, Transport};
pub use resource::{BlobEncoding, ParsedName, parse_name, read_name, write_name};
pub use retry::{RetryDecision, retry_decision};
pub use stats::ClientStats;
pub use upload::UploadSummary;
