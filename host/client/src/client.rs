//! The client itself: its connections, the server's features, limits, retries and counters,
//! and the public entry points, each a thin door into the module that does the work.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use remex_action::{OutputFields, PreparedAction};
use remex_proto::bytestream::byte_stream_client::ByteStreamClient;
use remex_proto::reapi;
use remex_proto::reapi::action_cache_client::ActionCacheClient;
use remex_proto::reapi::capabilities_client::CapabilitiesClient;
use remex_proto::reapi::content_addressable_storage_client::ContentAddressableStorageClient;
use remex_proto::reapi::execution_client::ExecutionClient;
use remex_store::{ActionDigest, Digest, LocalStore};
use tokio::sync::{Semaphore, SemaphorePermit};
use tonic::Code;
use tonic::transport::Channel;
use tracing::debug;

use crate::capabilities::{self, ServerFeatures};
use crate::channel::{self, Connection, Connections};
use crate::coalesce::Coalescer;
use crate::error::ReapiError;
use crate::execution::{ExecuteOptions, ExecuteOutcome};
use crate::inflight::InFlight;
use crate::metadata::{self, CallContext};
use crate::options::RemoteOptions;
use crate::retry::Retrier;
use crate::stats::{ClientStats, Stats};
use crate::upload::InMemory;
use crate::upload::UploadSummary;

/// A client of one REAPI server (or one store and one execution server). Cheap to clone:
/// clones share connections, limits, in-flight transfers and counters.
#[derive(Clone)]
pub struct RemoteClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let connections = &self.inner.connections;
        f.debug_struct("RemoteClient")
            .field("store", &connections.store.address)
            .field(
                "execution",
                &connections.execution.as_ref().map(|c| &c.address),
            )
            .field("features", &self.inner.features)
            .field("invocation_id", &self.inner.invocation_id)
            .finish()
    }
}

/// What every part of the client shares.
pub(crate) struct Inner {
    pub options: RemoteOptions,
    pub store: LocalStore,
    pub connections: Connections,
    pub features: ServerFeatures,
    /// Sent as `tool_invocation_id`: one per client, so a server can group its calls.
    pub invocation_id: String,
    pub retrier: Retrier,
    pub limits: Limits,
    pub uploads: Arc<InFlight>,
    pub downloads: Arc<InFlight>,
    /// `FindMissingBlobs` requests of actions in flight, merged.
    pub missing_blobs: Arc<Coalescer<Vec<Digest>, HashSet<Digest>>>,
    /// Actions' own messages uploaded by actions in flight, merged into shared batches.
    pub message_uploads: Arc<Coalescer<InMemory, HashSet<Digest>>>,
    /// Set once the server answers `BatchReadBlobs` with `UNIMPLEMENTED`, as Bazel's does.
    pub batch_read_unimplemented: AtomicBool,
    pub stats: Arc<Stats>,
}

/// One semaphore per kind of call, and one of bytes for upload data in memory.
pub(crate) struct Limits {
    pub store: Semaphore,
    pub cache: Semaphore,
    pub execution: Semaphore,
    /// One permit per byte of `upload_bytes_in_flight`.
    pub upload_bytes: Semaphore,
    upload_budget: u32,
}

impl Limits {
    fn new(options: &RemoteOptions) -> Self {
        // `acquire_many` counts in `u32`; a budget past 4 GiB is no budget anyway.
        let upload_budget = u32::try_from(options.upload_bytes_in_flight)
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            store: Semaphore::new(options.store_rpc_concurrency),
            cache: Semaphore::new(options.cache_rpc_concurrency),
            execution: Semaphore::new(options.execution_parallelism),
            upload_bytes: Semaphore::new(upload_budget as usize),
            upload_budget,
        }
    }

    /// Waits for a place; fails only once the client is shut down.
    pub async fn acquire(semaphore: &Semaphore) -> Result<SemaphorePermit<'_>, ReapiError> {
        semaphore.acquire().await.map_err(|_| ReapiError::ShutDown)
    }

    /// Waits until `bytes` of upload data fit in the budget. A transfer larger than the whole
    /// budget takes all of it, so it waits for the others to end and then goes alone. Take
    /// this before a call's place, so that calls waiting for memory hold no place.
    pub async fn reserve_upload(&self, bytes: u64) -> Result<SemaphorePermit<'_>, ReapiError> {
        let wanted = u32::try_from(bytes).unwrap_or(u32::MAX);
        let wanted = wanted.clamp(1, self.upload_budget);
        (self.upload_bytes.acquire_many(wanted).await).map_err(|_| ReapiError::ShutDown)
    }
}

impl RemoteClient {
    /// Connects to the configured servers and asks their capabilities, so that an unreachable
    /// server, a TLS problem, a refused token or a server remex cannot use fails here.
    pub async fn connect(options: RemoteOptions, store: LocalStore) -> Result<Self, ReapiError> {
        options.validate()?;
        let connections = channel::connect(&options)?;
        let stats = Arc::new(Stats::default());
        let retrier = Retrier {
            max_attempts: options.rpc_retries.saturating_add(1),
            clock: options.clock.clone(),
            stats: stats.clone(),
        };
        let invocation_id = uuid::Uuid::new_v4().to_string();
        let features = ask_features(&options, &connections, &retrier, &invocation_id).await?;
        debug!(?features, invocation_id, "connected");
        let limits = Limits::new(&options);
        let inner = Inner {
            options,
            store,
            connections,
            features,
            invocation_id,
            retrier,
            limits,
            uploads: Arc::default(),
            downloads: Arc::default(),
            missing_blobs: Arc::default(),
            message_uploads: Arc::default(),
            batch_read_unimplemented: AtomicBool::new(false),
            stats,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// What the server offers, as asked when connecting.
    pub fn features(&self) -> &ServerFeatures {
        &self.inner.features
    }

    /// The output fields `Command`s for this server must carry; give it to
    /// [`remex_action::prepare`].
    pub fn output_fields(&self) -> OutputFields {
        self.inner.features.output_fields
    }

    /// The `tool_invocation_id` this client sends with every call.
    pub fn invocation_id(&self) -> &str {
        &self.inner.invocation_id
    }

    /// What the client did so far, for the run's summary.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// Makes calls waiting for a place fail with [`ReapiError::ShutDown`]; calls in flight go
    /// on until they end.
    pub fn shut_down(&self) {
        let limits = &self.inner.limits;
        let semaphores = [
            &limits.store,
            &limits.cache,
            &limits.execution,
            &limits.upload_bytes,
        ];
        for semaphore in semaphores {
            semaphore.close();
        }
    }

    /// The blobs among `digests` the remote CAS lacks.
    pub async fn find_missing_blobs(
        &self,
        digests: impl IntoIterator<Item = Digest>,
        context: &CallContext,
    ) -> Result<Vec<Digest>, ReapiError> {
        let digests: Vec<Digest> = digests.into_iter().collect();
        self.inner.find_missing_blobs(&digests, context).await
    }

    /// Makes sure the remote CAS holds every blob of `digests`, uploading from the local
    /// store the ones it lacks. The empty blob is never uploaded.
    pub async fn upload_blobs(
        &self,
        digests: impl IntoIterator<Item = Digest>,
        context: &CallContext,
    ) -> Result<UploadSummary, ReapiError> {
        let digests: Vec<Digest> = digests.into_iter().collect();
        self.inner.upload_blobs(&digests, context).await
    }

    /// Makes sure the local store holds every blob of `digests`, downloading and verifying
    /// the ones it lacks.
    pub async fn download_blobs(
        &self,
        digests: impl IntoIterator<Item = Digest>,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        let digests: Vec<Digest> = digests.into_iter().collect();
        self.inner.download_blobs(&digests, context).await
    }

    /// Downloads every blob an `ActionResult` names: stdout, stderr, output files, and the
    /// trees of output directories with every file in them.
    pub async fn fetch_outputs(
        &self,
        result: &reapi::ActionResult,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        self.inner.fetch_outputs(result, context).await
    }

    /// The action cache's entry for `action`; `None` on a miss.
    pub async fn get_action_result(
        &self,
        action: &ActionDigest,
        context: &CallContext,
    ) -> Result<Option<reapi::ActionResult>, ReapiError> {
        self.inner.get_action_result(action, context).await
    }

    /// Records the result of an action run elsewhere (`remote_cache_write` with local
    /// execution): uploads the `Action`, `Command` and every output blob from the local store,
    /// then `UpdateActionResult`.
    pub async fn update_action_result(
        &self,
        action: &PreparedAction,
        result: &reapi::ActionResult,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        self.inner
            .update_action_result(action, result, context)
            .await
    }

    /// Runs an action remotely; see [`ExecuteOptions`] and [`ExecuteOutcome`]. A non-zero exit
    /// or a timeout of the action is an outcome; errors are about getting it run.
    pub async fn execute(
        &self,
        action: &PreparedAction,
        options: &ExecuteOptions,
    ) -> Result<ExecuteOutcome, ReapiError> {
        self.inner.execute(action, options).await
    }
}

/// Asks the store's capabilities, and the execution server's when it is another one.
async fn ask_features(
    options: &RemoteOptions,
    connections: &Connections,
    retrier: &Retrier,
    invocation_id: &str,
) -> Result<ServerFeatures, ReapiError> {
    let store = &connections.store;
    let ask = |connection| ask_capabilities(options, connection, retrier, invocation_id);
    let store_capabilities = ask(store).await?;
    let execution_capabilities = match &connections.execution {
        None => None,
        Some(execution) if execution.address == store.address => Some(store_capabilities.clone()),
        Some(execution) => Some(ask(execution).await?),
    };
    let execution = connections.execution.as_ref().map(|c| c.address.as_str());
    capabilities::features(
        &store.address,
        &store_capabilities,
        execution.zip(execution_capabilities.as_ref()),
        options.batch_size_limit,
    )
}

async fn ask_capabilities(
    options: &RemoteOptions,
    connection: &Connection,
    retrier: &Retrier,
    invocation_id: &str,
) -> Result<reapi::ServerCapabilities, ReapiError> {
    let rpc = "GetCapabilities";
    let timeout = options.store_rpc_timeout;
    retrier
        .run(rpc, || async {
            let message = reapi::GetCapabilitiesRequest {
                instance_name: options.instance_name.clone(),
            };
            let context = CallContext::default();
            let request = metadata::request(connection, invocation_id, &context, message, None);
            let mut client = CapabilitiesClient::new(connection.channel.clone());
            let call = async { client.get_capabilities(request).await };
            let response = within(rpc, timeout, call).await;
            response
                .map(tonic::Response::into_inner)
                .map_err(|status| ReapiError::from_tonic(rpc, &connection.address, status))
        })
        .await
}

/// Runs a call with a client-side deadline; running out is the `DEADLINE_EXCEEDED` a server
/// would have sent, and so is retried like one.
pub(crate) async fn within<T>(
    rpc: &'static str,
    timeout: Duration,
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => {
            let message = format!("`{rpc}` got no answer within {timeout:?}");
            Err(tonic::Status::new(Code::DeadlineExceeded, message))
        }
    }
}

/// The largest message the client accepts: a full batch with room for statuses, and never
/// less than gRPC's usual 4 MiB.
const MIN_DECODING_LIMIT: usize = 4 * 1024 * 1024;

impl Inner {
    pub fn store_connection(&self) -> &Connection {
        &self.connections.store
    }

    /// Wraps `message` for a store or cache call.
    pub fn store_request<T>(
        &self,
        context: &CallContext,
        message: T,
        timeout: Duration,
    ) -> tonic::Request<T> {
        let connection = &self.connections.store;
        metadata::request(
            connection,
            &self.invocation_id,
            context,
            message,
            Some(timeout),
        )
    }

    /// A failed store or cache call, classified.
    pub fn store_error(&self, rpc: &'static str, status: tonic::Status) -> ReapiError {
        ReapiError::from_tonic(rpc, &self.connections.store.address, status)
    }

    fn decoding_limit(&self) -> usize {
        let batch = usize::try_from(self.features.batch_limit).unwrap_or(usize::MAX);
        batch.saturating_mul(2).max(MIN_DECODING_LIMIT)
    }

    fn store_channel(&self) -> Channel {
        self.connections.store.channel.clone()
    }

    pub fn cas_client(&self) -> ContentAddressableStorageClient<Channel> {
        ContentAddressableStorageClient::new(self.store_channel())
            .max_decoding_message_size(self.decoding_limit())
            .max_encoding_message_size(usize::MAX)
    }

    pub fn bytestream_client(&self) -> ByteStreamClient<Channel> {
        ByteStreamClient::new(self.store_channel())
            .max_decoding_message_size(self.decoding_limit())
            .max_encoding_message_size(usize::MAX)
    }

    pub fn action_cache_client(&self) -> ActionCacheClient<Channel> {
        ActionCacheClient::new(self.store_channel())
            .max_decoding_message_size(self.decoding_limit())
            .max_encoding_message_size(usize::MAX)
    }

    /// The execution connection and its client, or why there is none.
    pub fn execution_client(&self) -> Result<(&Connection, ExecutionClient<Channel>), ReapiError> {
        let connection = self.connections.execution.as_ref().ok_or_else(|| {
            ReapiError::invalid_option(
                "remote_execution_address",
                "remote execution needs an execution address",
            )
        })?;
        if !self.features.execution {
            return Err(ReapiError::Unsupported {
                address: connection.address.clone(),
                what: "remote execution (`exec_enabled` is false)".into(),
            });
        }
        let client = ExecutionClient::new(connection.channel.clone())
            .max_decoding_message_size(self.decoding_limit())
            .max_encoding_message_size(usize::MAX);
        Ok((connection, client))
    }
}

/// Runs file work on the blocking pool. A panic there is re-raised here; a task cancelled
/// because the runtime is going away is a shut-down client.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ReapiError> + Send + 'static,
) -> Result<T, ReapiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(ReapiError::ShutDown),
    }
}

/// The distinct non-empty digests of `digests`, in order: the empty blob is never transferred.
pub(crate) fn unique_non_empty(digests: &[Digest]) -> Vec<Digest> {
    let mut seen = std::collections::HashSet::new();
    digests
        .iter()
        .filter(|d| !d.is_empty_blob() && seen.insert(**d))
        .copied()
        .collect()
}
