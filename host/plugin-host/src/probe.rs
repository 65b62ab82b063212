//! Probe processes: small commands a plugin runs in a target's environment while it plans, such
//! as asking an interpreter for its version. Locally they run on this machine with nothing of
//! the host's environment; in a remote environment they go through a [`ProbeRunner`] the
//! embedding program provides. Either way their results are cached for the run.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use remex_model::Environment;

/// How long a local probe may run before it is killed. Probes answer small questions; one that
/// takes longer is stuck.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of each of a probe's output streams is kept.
pub const DEFAULT_PROBE_OUTPUT_BYTES: usize = 64 * 1024;

/// How often a running local probe is checked for having exited.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// A probe process: its program and arguments, and its only environment variables.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Probe {
    /// The program, an absolute path, and its arguments.
    pub argv: Vec<String>,
    /// The process's environment, `(name, value)`; nothing else is set.
    pub env: Vec<(String, String)>,
}

/// What a probe did. A probe that ran and failed is a result, not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    /// The exit code, or -1 when the process was killed (by a signal, or past its timeout).
    pub exit_code: i32,
    /// The start of its stdout, up to the output cap.
    pub stdout: Vec<u8>,
    /// The start of its stderr, up to the output cap.
    pub stderr: Vec<u8>,
}

/// Why a probe could not be run at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The probe's argv is empty.
    #[error("a probe needs a program to run")]
    EmptyArgv,
    /// The program is not an absolute path.
    #[error("the probe program `{program}` is not an absolute path; find it with `find-binary`")]
    RelativeProgram { program: String },
    /// The environment is remote and nothing was set up to run processes there.
    #[error(
        "probes in remote environment `{environment}` need remote execution, which is not \
         configured for this run"
    )]
    NoRemoteRunner { environment: String },
    /// The program could not be started.
    #[error("cannot run the probe `{program}`: {reason}")]
    Spawn { program: String, reason: String },
    /// The remote probe runner failed.
    #[error("the probe `{program}` failed in environment `{environment}`: {reason}")]
    Remote {
        program: String,
        environment: String,
        reason: String,
    },
}

/// Runs probes in remote environments, such as by executing them as REAPI actions on the
/// environment's executor. Provided by the program embedding the plugin host.
pub trait ProbeRunner: Send + Sync {
    /// Runs `probe` in `environment` (a remote one) and reports what it did.
    fn run_probe(
        &self,
        environment: &Environment,
        probe: &Probe,
    ) -> Result<ProbeResult, ProbeError>;
}

/// Runs probes on this machine, for local environments.
#[derive(Clone, Debug)]
pub struct LocalProbeRunner {
    /// How long a probe may run.
    pub timeout: Duration,
    /// How much of each output stream is kept.
    pub max_output_bytes: usize,
}

impl Default for LocalProbeRunner {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_PROBE_TIMEOUT,
            max_output_bytes: DEFAULT_PROBE_OUTPUT_BYTES,
        }
    }
}

impl LocalProbeRunner {
    /// Runs `probe` here: environment cleared but for the probe's own variables, stdin empty,
    /// in `/` so that the answer does not depend on where remex was started.
    pub fn run(&self, probe: &Probe) -> Result<ProbeResult, ProbeError> {
        let program = check_program(probe)?;
        let spawn_error = |err: std::io::Error| ProbeError::Spawn {
            program: program.to_owned(),
            reason: err.to_string(),
        };
        let mut child = Command::new(program)
            .args(&probe.argv[1..])
            .env_clear()
            .envs(probe.env.iter().map(|(name, value)| (name, value)))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;

        let deadline = Instant::now() + self.timeout;
        let stdout = capture(child.stdout.take(), self.max_output_bytes);
        let stderr = capture(child.stderr.take(), self.max_output_bytes);
        let exit_code = wait(&mut child, deadline).map_err(spawn_error)?;
        Ok(ProbeResult {
            exit_code,
            stdout: collect(stdout, deadline),
            stderr: collect(stderr, deadline),
        })
    }
}

fn check_program(probe: &Probe) -> Result<&str, ProbeError> {
    let program = probe.argv.first().ok_or(ProbeError::EmptyArgv)?;
    if !program.starts_with('/') {
        return Err(ProbeError::RelativeProgram {
            program: program.clone(),
        });
    }
    Ok(program)
}

/// Reads a stream to its end on a thread, keeping the first `max_bytes`; the rest is read and
/// dropped so that a chatty probe never blocks on a full pipe.
fn capture(
    stream: Option<impl Read + Send + 'static>,
    max_bytes: usize,
) -> Option<Receiver<Vec<u8>>> {
    let mut stream = stream?;
    let (send, receive) = mpsc::sync_channel(1);
    let read = move || {
        let mut kept = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Ok(n @ 1..) = stream.read(&mut chunk) {
            let room = max_bytes.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..n.min(room)]);
        }
        // The receiver may have stopped waiting; the output is then dropped.
        let _ = send.send(kept);
    };
    std::thread::Builder::new()
        .name("remex-probe-output".to_owned())
        .spawn(read)
        .ok()?;
    Some(receive)
}

/// The captured output, waiting for it no later than `deadline` (plus a moment for a process
/// that has just been killed): a background process the probe left behind may hold the pipe
/// open for ever, and its reader thread is then abandoned.
fn collect(receiver: Option<Receiver<Vec<u8>>>, deadline: Instant) -> Vec<u8> {
    let Some(receiver) = receiver else {
        return Vec::new();
    };
    let wait = deadline.saturating_duration_since(Instant::now()) + POLL_INTERVAL * 50;
    receiver.recv_timeout(wait).unwrap_or_default()
}

/// Waits for the child to exit, killing it at `deadline`; its exit code, or -1 if killed.
fn wait(child: &mut Child, deadline: Instant) -> std::io::Result<i32> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code().unwrap_or(-1));
        }
        if Instant::now() >= deadline {
            // Killing a process that has just exited fails harmlessly.
            let _ = child.kill();
            child.wait()?;
            return Ok(-1);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Probe results keyed by environment name and probe.
type ProbeResults = HashMap<(String, Probe), Result<ProbeResult, ProbeError>>;

/// Probe results of one run.
#[derive(Clone, Default)]
pub(crate) struct ProbeCache {
    results: Arc<Mutex<ProbeResults>>,
}

impl ProbeCache {
    /// The cached result for `probe` in `environment`, or `run`'s, which is then cached.
    ///
    /// Two plans asking the same new probe at once may both run it; the answers are the same,
    /// and holding the lock while a process runs would serialize every plan behind it.
    pub(crate) fn get_or_run(
        &self,
        environment: &str,
        probe: &Probe,
        run: impl FnOnce() -> Result<ProbeResult, ProbeError>,
    ) -> Result<ProbeResult, ProbeError> {
        let key = (environment.to_owned(), probe.clone());
        if let Some(cached) = self.lock().get(&key) {
            return cached.clone();
        }
        let result = run();
        self.lock().insert(key, result.clone());
        result
    }

    /// How many distinct probes have been run.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProbeResults> {
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still usable.
        self.results.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(argv: &[&str], env: &[(&str, &str)]) -> Probe {
        Probe {
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn runs_with_only_the_given_environment() {
        let result = LocalProbeRunner::default()
            .run(&probe(&["/usr/bin/env"], &[("A", "1")]))
            .expect("probe runs");
        assert_eq!(result.exit_code, 0);
        assert_eq!(String::from_utf8_lossy(&result.stdout), "A=1\n");
    }

    #[test]
    fn a_failing_probe_is_a_result() {
        let result = LocalProbeRunner::default()
            .run(&probe(&["/bin/sh", "-c", "echo no >&2; exit 3"], &[]))
            .expect("probe runs");
        assert_eq!(result.exit_code, 3);
        assert_eq!(result.stderr, b"no\n");
    }

    #[test]
    fn output_is_capped_and_a_slow_probe_killed() {
        let runner = LocalProbeRunner {
            timeout: Duration::from_millis(300),
            max_output_bytes: 10,
        };
        let started = Instant::now();
        let result = runner
            .run(&probe(
                &["/bin/sh", "-c", "yes | head -c 100000; exec sleep 30"],
                &[],
            ))
            .expect("probe runs");
        assert_eq!(result.exit_code, -1);
        assert_eq!(result.stdout.len(), 10);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn refuses_relative_programs() {
        let err = LocalProbeRunner::default().run(&probe(&["sh", "-c", "true"], &[]));
        assert!(
            matches!(err, Err(ProbeError::RelativeProgram { .. })),
            "{err:?}"
        );
    }
}
