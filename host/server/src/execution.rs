//! The Execution service. `Execute` checks everything it can before an operation exists (the
//! action and command are there and valid, the input root is complete and well formed, the
//! platform is offered), answering problems as gRPC errors; then the action is queued for the
//! worker pool and its operation streamed. What goes wrong while running is reported in the
//! `ExecuteResponse`, as REAPI asks.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prost::Message;
use remex_exec::{ExecError, ExecutionOutcome, PreparedAction};
use remex_proto::reapi;
use remex_proto::reapi::execution_server::Execution;
use remex_proto::reapi::execution_stage::Value as Stage;
use remex_proto::rpc;
use remex_store::{ActionDigest, Digest, LocalStore, StoreError};
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

use crate::action_cache::usable_result;
use crate::operations::{OperationEntry, OperationStream};
use crate::state::{Shared, blocking, check_digest_function};
use crate::status;

pub(crate) struct ExecutionService {
    shared: Arc<Shared>,
}

impl ExecutionService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tonic::async_trait]
impl Execution for ExecutionService {
    type ExecuteStream = OperationStream;

    async fn execute(
        &self,
        request: Request<reapi::ExecuteRequest>,
    ) -> Result<Response<Self::ExecuteStream>, Status> {
        let metadata = request
            .extensions()
            .get::<reapi::RequestMetadata>()
            .cloned();
        let request = request.into_inner();
        self.shared.check_instance(&request.instance_name)?;
        check_digest_function(request.digest_function)?;
        let digest = Digest::from_proto_field(request.action_digest.as_ref())
            .map(ActionDigest)
            .map_err(|e| status::bad_digest("action_digest", e))?;
        if self.shared.is_stopping() {
            return Err(Status::unavailable("the server is shutting down"));
        }

        let metadata = metadata.unwrap_or_default();
        let span = tracing::debug_span!(
            "execute",
            action = %digest,
            tool_invocation_id = %metadata.tool_invocation_id,
            target_id = %metadata.target_id,
            action_mnemonic = %metadata.action_mnemonic,
        );
        let entry = self.start(&request, digest).instrument(span).await?;
        Ok(Response::new(entry.follow(true)))
    }

    type WaitExecutionStream = OperationStream;

    async fn wait_execution(
        &self,
        request: Request<reapi::WaitExecutionRequest>,
    ) -> Result<Response<Self::WaitExecutionStream>, Status> {
        let name = request.into_inner().name;
        let entry = self.shared.operations.get(&name).ok_or_else(|| {
            Status::not_found(format!("no operation `{name}`; call Execute again"))
        })?;
        Ok(Response::new(entry.follow(false)))
    }
}

impl ExecutionService {
    /// Finds or starts the operation for one `Execute` call.
    async fn start(
        &self,
        request: &reapi::ExecuteRequest,
        digest: ActionDigest,
    ) -> Result<Arc<OperationEntry>, Status> {
        let shared = &self.shared;
        let action = blocking(|| read_action(&shared.store, &digest))?;
        // `Action.platform` (REAPI 2.2 and later) is checked before anything else is read;
        // older clients set only `Command.platform`, checked once the command is.
        let action_platform = action.platform.clone().filter(|p| !p.properties.is_empty());
        shared.platform.check(action_platform.as_ref())?;
        let use_cache = !request.skip_cache_lookup && !action.do_not_cache;
        if use_cache {
            if let Some(result) = blocking(|| usable_result(&shared.store, &digest))? {
                tracing::debug!("served from the action cache");
                return Ok(self.cached(digest, result));
            }
            if let Some(entry) = shared.operations.joinable(&digest) {
                tracing::debug!(operation = entry.name(), "joined a running execution");
                return Ok(entry);
            }
        }

        let prepared = blocking(|| shared.executor.prepare(action)).map_err(status::from_exec)?;
        if action_platform.is_none() {
            shared
                .platform
                .check(prepared.command().platform.as_ref())?;
        }
        let (entry, new) = shared.operations.start_or_join(digest, use_cache);
        if new {
            entry.publish(Stage::Queued);
            self.spawn_worker(entry.clone(), prepared, digest);
        }
        Ok(entry)
    }

    /// A finished operation answering from the action cache.
    fn cached(&self, digest: ActionDigest, result: reapi::ActionResult) -> Arc<OperationEntry> {
        let (entry, _) = self.shared.operations.start_or_join(digest, false);
        entry.complete(&reapi::ExecuteResponse {
            result: Some(result),
            cached_result: true,
            status: Some(status::ok()),
            ..Default::default()
        });
        self.shared.operations.finish(&entry);
        entry
    }

    fn spawn_worker(
        &self,
        entry: Arc<OperationEntry>,
        prepared: PreparedAction,
        digest: ActionDigest,
    ) {
        let shared = self.shared.clone();
        let span = tracing::debug_span!("operation", name = entry.name(), action = %digest);
        let queued = SystemTime::now();
        let task = async move {
            let response = run_when_ready(&shared, &entry, prepared, &digest, queued).await;
            let code = response.status.as_ref().map_or(0, |s| s.code);
            tracing::debug!(code, "operation completed");
            entry.complete(&response);
            shared.operations.finish(&entry);
        };
        tokio::spawn(task.instrument(span));
    }
}

fn read_action(store: &LocalStore, digest: &ActionDigest) -> Result<reapi::Action, Status> {
    let bytes = match store.read(&digest.0) {
        Ok(bytes) => bytes,
        Err(StoreError::Missing(_)) => return Err(status::missing_blobs(&[digest.0])),
        Err(error) => return Err(status::from_store(error)),
    };
    reapi::Action::decode(bytes.as_slice()).map_err(|e| {
        Status::invalid_argument(format!("blob {digest} is not an `Action` message: {e}"))
    })
}

/// Waits for a worker, runs the action, and says how it went. A server told to stop fails
/// queued actions at once and running ones after the grace period, each explicitly.
async fn run_when_ready(
    shared: &Shared,
    entry: &OperationEntry,
    prepared: PreparedAction,
    digest: &ActionDigest,
    queued: SystemTime,
) -> reapi::ExecuteResponse {
    let permit = tokio::select! {
        permit = shared.workers.clone().acquire_owned() => permit,
        () = shared.stopped() => {
            return unavailable("the server stopped before the action started");
        }
    };
    entry.publish(Stage::Executing);

    let do_not_cache = prepared.action().do_not_cache;
    let timeout = prepared.action().timeout;
    let outcome = tokio::select! {
        outcome = shared.executor.execute_prepared(prepared) => outcome,
        () = grace_expired(shared) => {
            return unavailable("the server stopped before the action finished");
        }
    };
    drop(permit);
    respond(shared, digest, outcome, do_not_cache, timeout, queued)
}

async fn grace_expired(shared: &Shared) {
    shared.stopped().await;
    tokio::time::sleep(shared.settings.shutdown_grace).await;
}

fn respond(
    shared: &Shared,
    digest: &ActionDigest,
    outcome: Result<ExecutionOutcome, ExecError>,
    do_not_cache: bool,
    timeout: Option<prost_types::Duration>,
    queued: SystemTime,
) -> reapi::ExecuteResponse {
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            tracing::debug!(%error, "action failed to run");
            return reapi::ExecuteResponse {
                status: Some(status::to_rpc(&status::from_exec(error))),
                ..Default::default()
            };
        }
    };
    let mut result = outcome.result;
    if let Some(metadata) = result.execution_metadata.as_mut() {
        metadata.queued_timestamp = Some(queued.into());
    }
    let status = if outcome.timed_out {
        deadline_exceeded(timeout)
    } else {
        status::ok()
    };
    if !outcome.timed_out && result.exit_code == 0 && !do_not_cache {
        cache_result(&shared.store, digest, &result);
    }
    reapi::ExecuteResponse {
        result: Some(result),
        status: Some(status),
        ..Default::default()
    }
}

fn cache_result(store: &LocalStore, digest: &ActionDigest, result: &reapi::ActionResult) {
    if let Err(error) = blocking(|| store.put_action_result(digest, result)) {
        tracing::warn!(action = %digest, %error, "cannot record the action result");
    }
}

fn deadline_exceeded(timeout: Option<prost_types::Duration>) -> rpc::Status {
    let limit = timeout
        .and_then(|t| Duration::try_from(t).ok())
        .map_or_else(String::new, |t| format!(" of {t:?}"));
    rpc::Status {
        code: Code::DeadlineExceeded as i32,
        message: format!("the action ran past its timeout{limit} and was killed"),
        details: Vec::new(),
    }
}

fn unavailable(message: &str) -> reapi::ExecuteResponse {
    reapi::ExecuteResponse {
        status: Some(rpc::Status {
            code: Code::Unavailable as i32,
            message: message.to_owned(),
            details: Vec::new(),
        }),
        ..Default::default()
    }
}
