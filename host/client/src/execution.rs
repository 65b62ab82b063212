//! Remote execution: the action cache first (where only a successful result counts: a cached
//! failure is executed again), then the inputs the server lacks, then `Execute`, with the
//! operation stream followed to its end. A dropped stream is picked up again with
//! `WaitExecution` (the action is not run twice); a server that forgot the operation gets the
//! action again; a `FAILED_PRECONDITION` naming missing blobs is answered by uploading them.
//! All of it within `remote_execution_overall_deadline_secs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use remex_action::PreparedAction;
use remex_proto::longrunning::{Operation, operation};
use remex_proto::reapi;
use remex_proto::reapi::execution_client::ExecutionClient;
use remex_store::Digest;
use tonic::Code;
use tonic::codec::Streaming;
use tonic::transport::Channel;
use tracing::{Instrument, debug, debug_span};

use crate::channel::Connection;
use crate::client::{Inner, Limits, blocking};
use crate::convert;
use crate::error::ReapiError;
use crate::metadata::{self, CallContext};
use crate::retry::Attempts;

/// How often one execution may start a new operation stream (a fresh `Execute` or a
/// `WaitExecution`) before remex stops trusting the server: streams that deliver a message
/// and then drop reset the retry budget, and this keeps such a server from looping forever.
const MAX_STREAMS: u32 = 100;

/// Choices for one [`RemoteClient::execute`](crate::RemoteClient::execute).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecuteOptions {
    /// Skip `GetActionResult`, and ask the server to skip its cache too.
    pub skip_cache_lookup: bool,
    /// `ExecutionPolicy.priority`; 0 leaves it to the server.
    pub priority: i32,
    /// The target the action belongs to, for `RequestMetadata`.
    pub target_id: String,
    /// A short word for the kind of action, for `RequestMetadata`.
    pub action_mnemonic: String,
}

/// Where a result came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultOrigin {
    /// `GetActionResult` found it before anything was uploaded.
    ActionCache,
    /// `Execute` answered from the server's cache (`cached_result`).
    ExecutionCache,
    /// The server ran the action.
    Executed,
}

/// A log the server kept about the execution, such as a worker's own output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLog {
    pub digest: Digest,
    pub human_readable: bool,
}

/// How an action ended. A non-zero `exit_code` and a timeout are outcomes, not errors.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecuteOutcome {
    pub result: reapi::ActionResult,
    pub origin: ResultOrigin,
    /// The action ran past its timeout (`DEADLINE_EXCEEDED`); `result` holds what it left.
    pub timed_out: bool,
    /// The server's message for the user, if any.
    pub message: String,
    pub server_logs: BTreeMap<String, ServerLog>,
}

/// Where following an operation stream got to.
enum Followed {
    Outcome(Box<ExecuteOutcome>),
    /// The operation's own failure: retried, if at all, with a fresh `Execute`.
    Failed(ReapiError),
}

impl Inner {
    pub async fn execute(
        self: &Arc<Self>,
        action: &PreparedAction,
        options: &ExecuteOptions,
    ) -> Result<ExecuteOutcome, ReapiError> {
        let span = debug_span!("execute", action = %action.digest);
        let work = self.execute_unbounded(action, options).instrument(span);
        let Some(deadline) = self.options.overall_deadline else {
            return work.await;
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ReapiError::DeadlineExceeded { deadline }),
        }
    }

    async fn execute_unbounded(
        self: &Arc<Self>,
        action: &PreparedAction,
        options: &ExecuteOptions,
    ) -> Result<ExecuteOutcome, ReapiError> {
        let (connection, client) = self.execution_client()?;
        let context = CallContext {
            action_id: action.digest.0.hex(),
            target_id: options.target_id.clone(),
            action_mnemonic: options.action_mnemonic.clone(),
        };
        let mut options = options.clone();
        if !options.skip_cache_lookup
            && let Some(result) = self.get_action_result(&action.digest, &context).await?
        {
            if result.exit_code == 0 {
                return Ok(cached_outcome(result));
            }
            // Some servers cache failures (buildbox-casd does by default). A failure may be a
            // flaky one, so it is run again, past the server's own cache lookup too.
            debug!(
                exit_code = result.exit_code,
                "cached result failed; executing again"
            );
            options.skip_cache_lookup = true;
        }
        self.upload_inputs(action, &context).await?;

        let _permit = Limits::acquire(&self.limits.execution).await?;
        let mut run = OperationRun {
            inner: self,
            connection,
            client,
            action,
            options: &options,
            context: &context,
        };
        run.run_until_done().await
    }

    /// Uploads the `Action`, the `Command`, and every directory and file of the input root
    /// that the server lacks.
    async fn upload_inputs(
        self: &Arc<Self>,
        action: &PreparedAction,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        let mut blobs = if action.messages.is_empty() {
            let (store, action) = (self.store.clone(), action.clone());
            blocking(move || Ok(action.input_blobs(&store)?)).await?
        } else {
            // Directories are decoded from memory: no file is read for them.
            action.input_blobs(&self.store)?
        };
        blobs.extend([action.digest.0, command_digest(action)?]);
        let missing = self.find_missing_together(&blobs).await?;
        // The action's own messages go from memory, in batches shared with other actions;
        // they are never written to the local store. What that leaves goes the usual way.
        let left = self
            .upload_messages_together(&missing, &action.messages)
            .await;
        self.upload_missing(&left, &action.messages, context)
            .await?;
        debug!(
            checked = blobs.len(),
            missing = missing.len(),
            "inputs uploaded"
        );
        Ok(())
    }
}

fn command_digest(action: &PreparedAction) -> Result<Digest, ReapiError> {
    convert::required_digest("Action", action.action.command_digest.as_ref())
}

fn cached_outcome(result: reapi::ActionResult) -> ExecuteOutcome {
    ExecuteOutcome {
        result,
        origin: ResultOrigin::ActionCache,
        timed_out: false,
        message: String::new(),
        server_logs: BTreeMap::new(),
    }
}

/// One action's way through `Execute` and `WaitExecution` to a finished operation.
struct OperationRun<'a> {
    inner: &'a Inner,
    connection: &'a Connection,
    client: ExecutionClient<Channel>,
    action: &'a PreparedAction,
    options: &'a ExecuteOptions,
    context: &'a CallContext,
}

impl OperationRun<'_> {
    async fn run_until_done(&mut self) -> Result<ExecuteOutcome, ReapiError> {
        let mut attempts = self.inner.retrier.attempts("Execute");
        let mut operation_name: Option<String> = None;
        let mut missing_rounds = 0;
        for _ in 0..MAX_STREAMS {
            let resuming = operation_name.is_some();
            let error = match self.one_stream(&mut operation_name, &mut attempts).await {
                Ok(Followed::Outcome(outcome)) => return Ok(*outcome),
                Ok(Followed::Failed(error)) => error,
                Err(error) => error,
            };

            // The server forgot the operation (it restarted, say): the action must run again.
            if resuming
                && matches!(
                    &error,
                    ReapiError::Status {
                        code: Code::NotFound,
                        ..
                    }
                )
            {
                debug!("operation unknown to `WaitExecution`; executing again");
                operation_name = None;
                continue;
            }
            if let Some(missing) = missing_blobs(&error) {
                missing_rounds += 1;
                if missing_rounds > self.inner.retrier.max_attempts {
                    return Err(error);
                }
                self.upload_missing_inputs(&missing).await?;
                operation_name = None;
                continue;
            }
            attempts.wait(error).await?;
        }
        let detail = format!("no finished operation after {MAX_STREAMS} streams");
        Err(ReapiError::protocol("Execute", detail))
    }

    /// Opens `Execute`, or `WaitExecution` for a known operation, and follows it. A failed
    /// stream is an `Err`; a finished operation's own failure is [`Followed::Failed`].
    async fn one_stream(
        &mut self,
        operation_name: &mut Option<String>,
        attempts: &mut Attempts<'_>,
    ) -> Result<Followed, ReapiError> {
        let stream = match operation_name.clone() {
            None => self.start_execute().await?,
            Some(name) => self.wait_execution(name).await?,
        };
        let result = self.follow(stream, operation_name, attempts).await?;
        match result {
            operation::Result::Error(status) => Ok(Followed::Failed(ReapiError::from_rpc_status(
                "Execute", &status,
            ))),
            operation::Result::Response(any) => {
                let response = convert::execute_response(&any)?;
                let outcome = outcome_of(response).map(Box::new);
                Ok(outcome.map_or_else(Followed::Failed, Followed::Outcome))
            }
        }
    }

    async fn start_execute(&mut self) -> Result<Streaming<Operation>, ReapiError> {
        let rpc = "Execute";
        let message = reapi::ExecuteRequest {
            instance_name: self.inner.options.instance_name.clone(),
            skip_cache_lookup: self.options.skip_cache_lookup,
            action_digest: Some(self.action.digest.0.to_proto()),
            execution_policy: (self.options.priority != 0).then_some(reapi::ExecutionPolicy {
                priority: self.options.priority,
            }),
            ..Default::default()
        };
        self.inner.stats.count_execution();
        let request = self.request(message);
        let response = self.client.execute(request).await;
        let response = response.map_err(|s| self.error(rpc, s))?;
        Ok(response.into_inner())
    }

    async fn wait_execution(&mut self, name: String) -> Result<Streaming<Operation>, ReapiError> {
        let rpc = "WaitExecution";
        self.inner.stats.count_execution_resume();
        debug!(operation = name, "resuming with `WaitExecution`");
        let request = self.request(reapi::WaitExecutionRequest { name });
        let response = self.client.wait_execution(request).await;
        let response = response.map_err(|s| self.error(rpc, s))?;
        Ok(response.into_inner())
    }

    /// Reads operations until one is done, remembering the operation's name for a resume.
    async fn follow(
        &self,
        mut stream: Streaming<Operation>,
        operation_name: &mut Option<String>,
        attempts: &mut Attempts<'_>,
    ) -> Result<operation::Result, ReapiError> {
        let mut running = false;
        loop {
            let operation = match stream.message().await {
                Ok(Some(operation)) => operation,
                Ok(None) => {
                    let message = "the operation stream ended before the operation was done";
                    let error = ReapiError::status("Execute", Code::Unavailable, message);
                    return Err(dropped(error, running, attempts));
                }
                Err(status) => {
                    let error = self.error("Execute", status);
                    return Err(dropped(error, running, attempts));
                }
            };
            if !operation.name.is_empty() {
                *operation_name = Some(operation.name.clone());
            }
            // Operations may come without metadata: Bazel's test server sends none.
            if let Some(stage) = convert::execution_stage(operation.metadata.as_ref()) {
                debug!(?stage, "operation stage");
            }
            if operation.done {
                *operation_name = None;
                let missing =
                    || ReapiError::protocol("Execute", "an operation done without result");
                return operation.result.ok_or_else(missing);
            }
            running = true;
        }
    }

    async fn upload_missing_inputs(&self, missing: &[Digest]) -> Result<(), ReapiError> {
        debug!(count = missing.len(), "server lacks inputs; uploading them");
        self.inner.stats.count_missing_input_round();
        let memory = &self.action.messages;
        self.inner
            .upload_missing(missing, memory, self.context)
            .await
    }

    /// Execution calls carry the execution headers, and no deadline of their own: the overall
    /// deadline bounds them.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let invocation_id = &self.inner.invocation_id;
        metadata::request(self.connection, invocation_id, self.context, message, None)
    }

    fn error(&self, rpc: &'static str, status: tonic::Status) -> ReapiError {
        ReapiError::from_tonic(rpc, &self.connection.address, status)
    }
}

/// A stream that broke: one that had shown the operation running made progress, so the retry
/// budget counts from here. An operation that finishes with an error is no progress, however
/// many messages came before: a server that fails every attempt the same way (buildbox-run
/// failing to capture an output does) must not be retried without end.
fn dropped(error: ReapiError, running: bool, attempts: &mut Attempts<'_>) -> ReapiError {
    if running {
        attempts.progressed();
    }
    error
}

/// The blobs a `FAILED_PRECONDITION` says the server lacks.
fn missing_blobs(error: &ReapiError) -> Option<Vec<Digest>> {
    match error {
        ReapiError::Status {
            code: Code::FailedPrecondition,
            details,
            ..
        } if !details.missing_blobs.is_empty() => Some(details.missing_blobs.clone()),
        _ => None,
    }
}

/// Reads a finished `ExecuteResponse`: `OK` and `DEADLINE_EXCEEDED` (the action timed out)
/// are outcomes; any other status is the execution's failure.
fn outcome_of(response: reapi::ExecuteResponse) -> Result<ExecuteOutcome, ReapiError> {
    let status = response.status.clone().unwrap_or_default();
    let timed_out = match Code::from_i32(status.code) {
        Code::Ok => false,
        Code::DeadlineExceeded => true,
        _ => return Err(execution_failure(&status, &response.message)),
    };
    let result = match response.result {
        Some(result) => result,
        // A timed-out action may have left nothing at all.
        None if timed_out => reapi::ActionResult::default(),
        None => {
            return Err(ReapiError::protocol(
                "Execute",
                "an ExecuteResponse without result",
            ));
        }
    };
    let origin = if response.cached_result {
        ResultOrigin::ExecutionCache
    } else {
        ResultOrigin::Executed
    };
    Ok(ExecuteOutcome {
        result,
        origin,
        timed_out,
        message: response.message,
        server_logs: server_logs(response.server_logs)?,
    })
}

fn execution_failure(status: &remex_proto::rpc::Status, message: &str) -> ReapiError {
    let mut error = ReapiError::from_rpc_status("Execute", status);
    if let ReapiError::Status { message: text, .. } = &mut error
        && !message.is_empty()
    {
        text.push_str(&format!(" (server: {message})"));
    }
    error
}

fn server_logs(
    logs: std::collections::HashMap<String, reapi::LogFile>,
) -> Result<BTreeMap<String, ServerLog>, ReapiError> {
    logs.into_iter()
        .map(|(name, log)| {
            let digest = convert::required_digest("ExecuteResponse", log.digest.as_ref())?;
            let log = ServerLog {
                digest,
                human_readable: log.human_readable,
            };
            Ok((name, log))
        })
        .collect()
}
