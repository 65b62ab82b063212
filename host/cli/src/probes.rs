//! Probes in remote environments, run as REAPI actions on the environment's executor, so that
//! a plugin learns about the machine its processes will run on and never about this one.

use std::path::Path;
use std::time::Duration;

use remex_model::{Environment, Process};
use remex_plugin_host::{Probe, ProbeError, ProbeResult, ProbeRunner};
use remex_store::Digest;
use tokio::runtime::Handle;

use crate::backend::Backend;

/// How long a remote probe may run.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs probes through the run's backend; called from the blocking threads plugins plan on.
pub struct RemoteProbeRunner {
    backend: Backend,
    runtime: Handle,
}

impl RemoteProbeRunner {
    pub fn new(backend: Backend, runtime: Handle) -> Self {
        Self { backend, runtime }
    }

    fn process(environment: &Environment, probe: &Probe) -> Process {
        Process {
            description: format!("probe `{}`", probe.argv.join(" ")),
            argv: probe.argv.clone(),
            env: probe.env.iter().cloned().collect(),
            timeout: Some(PROBE_TIMEOUT),
            platform: environment.platform.clone(),
            ..Process::default()
        }
    }
}

impl ProbeRunner for RemoteProbeRunner {
    fn run_probe(
        &self,
        environment: &Environment,
        probe: &Probe,
    ) -> Result<ProbeResult, ProbeError> {
        let failed = |reason: String| ProbeError::Remote {
            program: probe.argv.first().cloned().unwrap_or_default(),
            environment: environment.name.clone(),
            reason,
        };
        let process = Self::process(environment, probe);
        let fields = self.backend.output_fields(true);
        // A probe has no input files, so the repository root is never read.
        let prepared =
            remex_action::prepare(&process, Path::new("/"), self.backend.store(), fields)
                .map_err(|e| failed(e.to_string()))?;

        let ran = self.runtime.block_on(async {
            let run = self.backend.run(&prepared, "probe", true).await?;
            let streams: Vec<Digest> = [&run.result.stdout_digest, &run.result.stderr_digest]
                .into_iter()
                .filter_map(|d| Digest::from_proto_field(d.as_ref()).ok())
                .collect();
            self.backend.ensure_local(&streams, "probe").await?;
            Ok::<_, String>(run)
        });
        let run = ran.map_err(failed)?;
        let read = |digest: &Option<remex_proto::reapi::Digest>| {
            Digest::from_proto_field(digest.as_ref())
                .ok()
                .and_then(|d| self.backend.store().read(&d).ok())
                .unwrap_or_default()
        };
        Ok(ProbeResult {
            exit_code: if run.timed_out {
                -1
            } else {
                run.result.exit_code
            },
            stdout: read(&run.result.stdout_digest),
            stderr: read(&run.result.stderr_digest),
        })
    }
}
