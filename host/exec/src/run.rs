//! Running one action in a sandbox, with the local action cache in front of it.

use std::fs::File;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use remex_proto::reapi;
use remex_store::{ActionDigest, Digest, DigestError, LocalStore, StoreError};
use tokio::process::Command as ProcessCommand;

use crate::command::{self, OutputPath};
use crate::{input_root, materialize, outputs};

/// Why an action could not be run. A command that exits non-zero or times out is not an error:
/// it is an [`ExecutionOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid action: {0}")]
    BadAction(String),
    #[error("invalid digest in action: {0}")]
    BadDigest(#[from] DigestError),
    #[error("input blob {0} is missing from the local store")]
    MissingInput(Digest),
    #[error("{} input blobs are missing from the local store, first {}", .0.len(), first(.0))]
    MissingInputs(Vec<Digest>),
    #[error("invalid {what} `{path}`: {problem}")]
    InvalidPath {
        what: &'static str,
        path: String,
        problem: String,
    },
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
}

fn first(digests: &[Digest]) -> String {
    digests.first().map(Digest::to_string).unwrap_or_default()
}

impl ExecError {
    pub(crate) fn io<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// The result of running (or finding in the cache) one action.
#[derive(Clone, Debug)]
pub struct ExecutionOutcome {
    pub result: reapi::ActionResult,
    /// Served from the action cache without running anything.
    pub cached: bool,
    /// Killed when it ran past the action's timeout.
    pub timed_out: bool,
}

/// An action whose command and input root have been read and checked, ready to run.
#[derive(Clone, Debug)]
pub struct PreparedAction {
    action: reapi::Action,
    command: reapi::Command,
    input_root: Digest,
    outputs: Vec<OutputPath>,
}

impl PreparedAction {
    pub fn action(&self) -> &reapi::Action {
        &self.action
    }

    pub fn command(&self) -> &reapi::Command {
        &self.command
    }
}

/// Runs actions on this machine, from and into a [`LocalStore`].
#[derive(Clone, Debug)]
pub struct LocalExecutor {
    store: LocalStore,
}

impl LocalExecutor {
    pub fn new(store: LocalStore) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &LocalStore {
        &self.store
    }

    /// Looks the action up in the local action cache and runs it on a miss. Results with exit
    /// code 0 are cached unless the action says `do_not_cache`.
    pub async fn run(&self, digest: &ActionDigest) -> Result<ExecutionOutcome, ExecError> {
        let action: reapi::Action = self.store.read_message(&digest.0)?;
        if !action.do_not_cache
            && let Some(result) = self.cached_result(digest)?
        {
            return Ok(ExecutionOutcome {
                result,
                cached: true,
                timed_out: false,
            });
        }
        let outcome = self.execute(&action).await?;
        if outcome.result.exit_code == 0 && !outcome.timed_out && !action.do_not_cache {
            self.store.put_action_result(digest, &outcome.result)?;
        }
        Ok(outcome)
    }

    /// A cached result whose blobs are all still present, or `None`.
    pub fn cached_result(
        &self,
        digest: &ActionDigest,
    ) -> Result<Option<reapi::ActionResult>, ExecError> {
        let Some(result) = self.store.get_action_result(digest)? else {
            return Ok(None);
        };
        let complete = referenced_blobs(&result)
            .iter()
            .all(|d| matches!(d, Ok(d) if self.store.contains(d)));
        Ok(complete.then_some(result))
    }

    /// Runs an action in a fresh sandbox, without consulting the cache.
    pub async fn execute(&self, action: &reapi::Action) -> Result<ExecutionOutcome, ExecError> {
        let prepared = self.prepare(action.clone())?;
        self.execute_prepared(prepared).await
    }

    /// Reads the action's command and checks it and the whole input root, without writing
    /// anything: invalid paths, names and symlinks are [`ExecError::InvalidPath`], and every
    /// blob missing from the store (command, directories, files) is listed at once in
    /// [`ExecError::MissingInputs`]. It reads files, so async callers run it where blocking
    /// is allowed.
    pub fn prepare(&self, action: reapi::Action) -> Result<PreparedAction, ExecError> {
        let command_digest = Digest::from_proto_field(action.command_digest.as_ref())?;
        let input_root = Digest::from_proto_field(action.input_root_digest.as_ref())?;
        let mut missing = Vec::new();
        let command = match self.store.read(&command_digest) {
            Ok(bytes) => Some(decode_command(&command_digest, &bytes)?),
            Err(StoreError::Missing(digest)) => {
                missing.push(digest);
                None
            }
            Err(e) => return Err(e.into()),
        };
        match input_root::check_input_root(&self.store, &input_root) {
            Ok(()) => {}
            Err(ExecError::MissingInputs(blobs)) => missing.extend(blobs),
            Err(e) => return Err(e),
        }
        let Some(command) = command.filter(|_| missing.is_empty()) else {
            return Err(ExecError::MissingInputs(missing));
        };
        let outputs = command::check_command(&command)?;
        Ok(PreparedAction {
            action,
            command,
            input_root,
            outputs,
        })
    }

    /// Runs a prepared action in a fresh sandbox, without consulting the cache.
    pub async fn execute_prepared(
        &self,
        prepared: PreparedAction,
    ) -> Result<ExecutionOutcome, ExecError> {
        let started = SystemTime::now();
        let PreparedAction {
            action,
            command,
            input_root,
            outputs,
        } = prepared;

        let scratch = tempfile::Builder::new()
            .prefix("action-")
            .tempdir_in(self.store.temp_dir())
            .map_err(ExecError::io("create sandbox in", &self.store.temp_dir()))?;
        let sandbox = scratch.path().join("root");
        let store = self.store.clone();
        let sandbox_for_inputs = sandbox.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir(&sandbox_for_inputs)
                .map_err(ExecError::io("create", &sandbox_for_inputs))?;
            materialize::materialize(&store, &input_root, &sandbox_for_inputs)
        })
        .await
        .map_err(|e| ExecError::BadAction(format!("input materialization panicked: {e}")))??;

        let workdir = prepare_directories(&sandbox, &command.working_directory, &outputs)?;

        let timeout = action
            .timeout
            .as_ref()
            .and_then(|t| Duration::try_from(*t).ok())
            .filter(|t| !t.is_zero());
        let stdout_path = scratch.path().join("stdout");
        let stderr_path = scratch.path().join("stderr");
        let (status, timed_out) =
            spawn_and_wait(&command, &workdir, &stdout_path, &stderr_path, timeout).await?;

        let mut result = reapi::ActionResult {
            exit_code: exit_code(status),
            stdout_digest: Some(self.store.put_file(&stdout_path)?.to_proto()),
            stderr_digest: Some(self.store.put_file(&stderr_path)?.to_proto()),
            execution_metadata: Some(metadata(started)),
            ..Default::default()
        };
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || {
            outputs::collect(&store, &sandbox, &workdir, &outputs, &mut result).map(|()| result)
        })
        .await
        .map_err(|e| ExecError::BadAction(format!("output collection panicked: {e}")))??;

        Ok(ExecutionOutcome {
            result,
            cached: false,
            timed_out,
        })
    }
}

fn decode_command(digest: &Digest, bytes: &[u8]) -> Result<reapi::Command, ExecError> {
    <reapi::Command as prost::Message>::decode(bytes)
        .map_err(|e| ExecError::BadAction(format!("blob {digest} is not a `Command` message: {e}")))
}

/// Creates the working directory and, as REAPI asks of the executor, the parent directory of
/// every output path; none of them may lead out of the sandbox. Returns the working directory.
fn prepare_directories(
    sandbox: &Path,
    working_directory: &str,
    outputs: &[OutputPath],
) -> Result<PathBuf, ExecError> {
    let workdir = command::create_dir_inside(sandbox, working_directory, "working directory")?;
    for output in outputs {
        let parent = match output.path.rsplit_once('/') {
            Some((parent, _)) => parent,
            None => continue,
        };
        let relative = if working_directory.is_empty() {
            parent.to_owned()
        } else {
            format!("{working_directory}/{parent}")
        };
        command::create_dir_inside(sandbox, &relative, "output path")
            .map_err(|e| rename_path(e, &output.path))?;
    }
    Ok(workdir)
}

/// Reports an output's own path rather than the directory made for it.
fn rename_path(error: ExecError, path: &str) -> ExecError {
    match error {
        ExecError::InvalidPath { what, problem, .. } => ExecError::InvalidPath {
            what,
            path: path.to_owned(),
            problem,
        },
        other => other,
    }
}

async fn spawn_and_wait(
    command: &reapi::Command,
    workdir: &Path,
    stdout_path: &Path,
    stderr_path: &Path,
    timeout: Option<Duration>,
) -> Result<(ExitStatus, bool), ExecError> {
    let stdout = File::create(stdout_path).map_err(ExecError::io("create", stdout_path))?;
    let stderr = File::create(stderr_path).map_err(ExecError::io("create", stderr_path))?;
    let program = &command.arguments[0];
    let mut process = ProcessCommand::new(program);
    process
        .args(&command.arguments[1..])
        .env_clear()
        .envs(
            command
                .environment_variables
                .iter()
                .map(|v| (&v.name, &v.value)),
        )
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    let mut child = process.spawn().map_err(|source| ExecError::Spawn {
        program: program.clone(),
        source,
    })?;
    // Whatever the command left running in its group goes when this function ends, or when
    // its future is dropped (a cancelled operation, a server shutting down).
    let group = child.id().map(|id| GroupKiller(Pid::from_raw(id as i32)));

    let waited = match timeout {
        Some(limit) => tokio::time::timeout(limit, child.wait()).await.ok(),
        None => Some(child.wait().await),
    };
    drop(group);
    match waited {
        Some(status) => Ok((status.map_err(ExecError::io("wait for", workdir))?, false)),
        None => {
            let status = child
                .wait()
                .await
                .map_err(ExecError::io("wait for", workdir))?;
            Ok((status, true))
        }
    }
}

/// Kills a process group when dropped.
struct GroupKiller(Pid);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

/// The exit code, or 128 plus the signal number for a command killed by a signal, as shells do.
fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn metadata(started: SystemTime) -> reapi::ExecutedActionMetadata {
    let now = SystemTime::now();
    reapi::ExecutedActionMetadata {
        worker: "remex-local".to_owned(),
        worker_start_timestamp: Some(started.into()),
        worker_completed_timestamp: Some(now.into()),
        execution_start_timestamp: Some(started.into()),
        execution_completed_timestamp: Some(now.into()),
        ..Default::default()
    }
}

/// Every blob a result refers to, for checking that a cached result is still usable.
fn referenced_blobs(result: &reapi::ActionResult) -> Vec<Result<Digest, DigestError>> {
    let mut digests = Vec::new();
    for file in &result.output_files {
        digests.push(Digest::from_proto_field(file.digest.as_ref()));
    }
    for dir in &result.output_directories {
        digests.push(Digest::from_proto_field(dir.tree_digest.as_ref()));
    }
    for stream in [&result.stdout_digest, &result.stderr_digest]
        .into_iter()
        .flatten()
    {
        digests.push(Digest::from_proto(stream));
    }
    digests
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
