//! Running targets: plan each with its plugin, turn its processes into actions, and run them
//! with the local executor, as many targets at a time as there are cores.

use std::sync::Arc;
use std::time::Instant;

use remex_action::{OutputFields, PreparedAction};
use remex_exec::{ExecutionOutcome, LocalExecutor};
use remex_model::{Address, Environment, Process, Target};
use remex_plugin_host::{HostServices, LocalHostServices};
use remex_store::{ActionDigest, Digest, LocalStore};
use tokio::sync::Semaphore;
use tracing::{Instrument, debug, info_span};

use crate::workspace::Workspace;

/// What happened to one target.
#[derive(Debug)]
pub struct TargetOutcome {
    pub address: Address,
    pub status: TargetStatus,
    pub actions: Vec<ActionRecord>,
}

#[derive(Debug)]
pub enum TargetStatus {
    Passed,
    /// The plugin could not plan it, or an action could not be built or run.
    Error(String),
    /// An action ran and failed.
    Failed {
        reason: String,
        stdout: String,
        stderr: String,
    },
}

/// One action run for a target.
#[derive(Debug)]
pub struct ActionRecord {
    pub description: String,
    pub digest: ActionDigest,
    pub cached: bool,
}

/// Runs every target, returning their outcomes in the order given.
pub async fn run_targets(workspace: Arc<Workspace>, targets: Vec<Target>) -> Vec<TargetOutcome> {
    let executor = LocalExecutor::new(workspace.store.clone());
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
    let permits = Arc::new(Semaphore::new(parallelism));

    let mut tasks = Vec::new();
    for target in targets {
        let workspace = workspace.clone();
        let executor = executor.clone();
        let permits = permits.clone();
        let span = info_span!("target", address = %target.address);
        tasks.push(tokio::spawn(
            async move {
                let _permit = permits.acquire_owned().await;
                run_target(&workspace, &executor, target).await
            }
            .instrument(span),
        ));
    }

    let mut outcomes = Vec::new();
    for task in tasks {
        match task.await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => tracing::error!(error = %e, "target task failed"),
        }
    }
    outcomes
}

async fn run_target(
    workspace: &Arc<Workspace>,
    executor: &LocalExecutor,
    target: Target,
) -> TargetOutcome {
    let address = target.address.clone();
    let mut actions = Vec::new();
    let status = match plan(workspace, target).await {
        Err(message) => TargetStatus::Error(message),
        Ok(processes) => run_processes(workspace, executor, processes, &mut actions).await,
    };
    TargetOutcome {
        address,
        status,
        actions,
    }
}

/// Calls the target's plugin on a blocking thread: plugins are synchronous and CPU-bound.
async fn plan(workspace: &Arc<Workspace>, target: Target) -> Result<Vec<Process>, String> {
    let plugin = workspace
        .plugins
        .for_kind(&target.kind)
        .ok_or_else(|| format!("no plugin provides target kind `{}`", target.kind))?;
    let repo_root = workspace.repo_root().to_owned();
    let services: Arc<dyn HostServices> = Arc::new(LocalHostServices::new());
    let planned = tokio::task::spawn_blocking(move || {
        let environment = Environment::local();
        plugin.plan(&target, &environment, &repo_root, &services)
    })
    .await;
    match planned {
        Ok(Ok(processes)) => Ok(processes),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("planning stopped: {e}")),
    }
}

async fn run_processes(
    workspace: &Arc<Workspace>,
    executor: &LocalExecutor,
    processes: Vec<Process>,
    actions: &mut Vec<ActionRecord>,
) -> TargetStatus {
    for process in processes {
        let prepared = match prepare(workspace, process.clone()).await {
            Ok(prepared) => prepared,
            Err(message) => return TargetStatus::Error(message),
        };
        let started = Instant::now();
        let outcome = match executor.run(&prepared.digest).await {
            Ok(outcome) => outcome,
            Err(e) => return TargetStatus::Error(format!("{}: {e}", process.description)),
        };
        debug!(
            digest = %prepared.digest,
            cached = outcome.cached,
            elapsed = ?started.elapsed(),
            "action finished"
        );
        actions.push(ActionRecord {
            description: process.description.clone(),
            digest: prepared.digest,
            cached: outcome.cached,
        });
        if let Some(reason) = failure_reason(&outcome, &process) {
            let store = &workspace.store;
            return TargetStatus::Failed {
                reason,
                stdout: read_stream(store, outcome.result.stdout_digest.as_ref()),
                stderr: read_stream(store, outcome.result.stderr_digest.as_ref()),
            };
        }
    }
    TargetStatus::Passed
}

async fn prepare(workspace: &Arc<Workspace>, process: Process) -> Result<PreparedAction, String> {
    let workspace = workspace.clone();
    let description = process.description.clone();
    tokio::task::spawn_blocking(move || {
        remex_action::prepare(
            &process,
            workspace.repo_root(),
            &workspace.store,
            OutputFields::Paths,
        )
    })
    .await
    .map_err(|e| format!("{description}: {e}"))?
    .map_err(|e| format!("{description}: {e}"))
}

fn failure_reason(outcome: &ExecutionOutcome, process: &Process) -> Option<String> {
    if outcome.timed_out {
        let limit = process.timeout.map(|t| format!(" after {t:?}")).unwrap_or_default();
        return Some(format!("timed out{limit}"));
    }
    match outcome.result.exit_code {
        0 => None,
        code => Some(format!("exit code {code}")),
    }
}

fn read_stream(store: &LocalStore, digest: Option<&remex_proto::reapi::Digest>) -> String {
    let bytes = Digest::from_proto_field(digest)
        .ok()
        .and_then(|d| store.read(&d).ok())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}
