//! What the host interface calls back into, outside the plugin host itself.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use remex_model::Environment;

use crate::probe::{LocalProbeRunner, Probe, ProbeCache, ProbeError, ProbeResult, ProbeRunner};

/// The search-path entry that stands for the environment's `PATH`.
pub const PATH_ENTRY: &str = "<PATH>";

/// Services a plugin's host calls need from the rest of remex, answered in the environment of
/// the target being planned.
pub trait HostServices: Send + Sync {
    /// The absolute path of the first executable file named `name` in the directories of
    /// `search_path`, in order, as seen in `environment`; [`PATH_ENTRY`] stands for that
    /// environment's `PATH`. `name` has already been checked to be a plain file name.
    fn find_binary(
        &self,
        environment: &Environment,
        name: &str,
        search_path: &[String],
    ) -> Option<String>;

    /// Runs `probe` in `environment`, or answers from the results of this run.
    fn run_probe(
        &self,
        environment: &Environment,
        probe: &Probe,
    ) -> Result<ProbeResult, ProbeError>;
}

/// Finds binaries and runs probes on this machine.
///
/// [`PATH_ENTRY`] is this process's `PATH` for a local environment only: a remote environment's
/// `PATH` is unknown here, so the entry finds nothing rather than leak this machine's `PATH`
/// into a remote action. Other directories are looked at on this machine whatever the
/// environment; answering for a remote machine takes a probe process run there.
///
/// Probes in a local environment run here ([`LocalProbeRunner`]); in a remote one they go to
/// the runner given with [`LocalHostServices::with_remote_probes`], and fail without one. Every
/// result is cached in this value, per environment and probe: make one per run and share it
/// between plans (clones share the cache).
#[derive(Clone, Default)]
pub struct LocalHostServices {
    /// The `PATH` used for [`PATH_ENTRY`]; `None` reads the process's `PATH` at each call.
    path_override: Option<OsString>,
    local_probes: LocalProbeRunner,
    remote_probes: Option<Arc<dyn ProbeRunner>>,
    probe_cache: ProbeCache,
}

impl fmt::Debug for LocalHostServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalHostServices")
            .field("path_override", &self.path_override)
            .field("local_probes", &self.local_probes)
            .field("remote_probes", &self.remote_probes.is_some())
            .field("cached_probes", &self.probe_cache.len())
            .finish()
    }
}

impl LocalHostServices {
    /// Services using this process's `PATH`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Services using `path` (a `PATH`-style list) for [`PATH_ENTRY`], as tests need.
    pub fn with_path(path: impl Into<OsString>) -> Self {
        Self {
            path_override: Some(path.into()),
            ..Self::default()
        }
    }

    /// Runs probes of remote environments with `runner`.
    pub fn with_remote_probes(self, runner: Arc<dyn ProbeRunner>) -> Self {
        Self {
            remote_probes: Some(runner),
            ..self
        }
    }

    /// Runs local probes with `runner`'s timeout and output cap.
    pub fn with_local_probes(self, runner: LocalProbeRunner) -> Self {
        Self {
            local_probes: runner,
            ..self
        }
    }

    /// How many distinct probes have run so far.
    pub fn probes_run(&self) -> usize {
        self.probe_cache.len()
    }

    fn run_probe_uncached(
        &self,
        environment: &Environment,
        probe: &Probe,
    ) -> Result<ProbeResult, ProbeError> {
        if !environment.remote {
            return self.local_probes.run(probe);
        }
        match &self.remote_probes {
            Some(runner) => runner.run_probe(environment, probe),
            None => Err(ProbeError::NoRemoteRunner {
                environment: environment.name.clone(),
            }),
        }
    }

    /// Looks for `name` on the machine of a remote environment, with a probe run there: what
    /// this machine has says nothing about a remote worker. `<PATH>` is the PATH a process
    /// gets there when it sets none.
    fn find_binary_by_probe(
        &self,
        environment: &Environment,
        name: &str,
        search_path: &[String],
    ) -> Option<String> {
        // Plain POSIX shell with no other tools; with no PATH in its environment the shell
        // holds its built-in default, which is what `<PATH>` means there.
        const SEARCH: &str = "name=$1; shift; for d in \"$@\"; do \
            [ \"$d\" = '<PATH>' ] && d=$PATH; IFS=:; for e in $d; do unset IFS; \
            case $e in /*) [ -f \"$e/$name\" ] && [ -x \"$e/$name\" ] && \
            { echo \"$e/$name\"; exit 0; };; esac; done; unset IFS; done; exit 1";
        let mut argv = vec!["/bin/sh".to_owned(), "-c".to_owned(), SEARCH.to_owned()];
        argv.extend(["find-binary".to_owned(), name.to_owned()]);
        argv.extend(search_path.iter().cloned());
        let probe = Probe {
            argv,
            env: Vec::new(),
        };
        let result = self.run_probe(environment, &probe).ok()?;
        let found = String::from_utf8(result.stdout).ok()?;
        let found = found.trim();
        (result.exit_code == 0 && found.starts_with('/')).then(|| found.to_owned())
    }

    fn local_path(&self) -> Vec<PathBuf> {
        let path = match &self.path_override {
            Some(path) => Some(path.clone()),
            None => std::env::var_os("PATH"),
        };
        path.map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default()
    }

    fn directories(&self, environment: &Environment, search_path: &[String]) -> Vec<PathBuf> {
        let mut directories = Vec::new();
        for entry in search_path {
            if entry != PATH_ENTRY {
                directories.push(PathBuf::from(entry));
            } else if !environment.remote {
                directories.extend(self.local_path());
            }
        }
        directories
    }
}

impl HostServices for LocalHostServices {
    fn find_binary(
        &self,
        environment: &Environment,
        name: &str,
        search_path: &[String],
    ) -> Option<String> {
        if environment.remote && self.remote_probes.is_some() {
            return self.find_binary_by_probe(environment, name, search_path);
        }
        self.directories(environment, search_path)
            .into_iter()
            // A relative directory would make the answer depend on the current directory.
            .filter(|directory| directory.is_absolute())
            .map(|directory| directory.join(name))
            .find(|candidate| is_executable(candidate))
            .and_then(|found| found.into_os_string().into_string().ok())
    }

    fn run_probe(
        &self,
        environment: &Environment,
        probe: &Probe,
    ) -> Result<ProbeResult, ProbeError> {
        self.probe_cache.get_or_run(&environment.name, probe, || {
            self.run_probe_uncached(environment, probe)
        })
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;

    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> Environment {
        Environment {
            remote: true,
            ..Environment::local()
        }
    }

    #[test]
    fn finds_sh_in_a_listed_directory() {
        let services = LocalHostServices::with_path("");
        let found = services.find_binary(&Environment::local(), "sh", &["/bin".to_owned()]);
        assert_eq!(found.as_deref(), Some("/bin/sh"));
    }

    #[test]
    fn path_entry_reads_path_for_local_environments_only() {
        let services = LocalHostServices::with_path("/nonexistent:/bin");
        let search = [PATH_ENTRY.to_owned()];

        let local = services.find_binary(&Environment::local(), "sh", &search);
        assert_eq!(local.as_deref(), Some("/bin/sh"));
        let remote = services.find_binary(&remote(), "sh", &search);
        assert_eq!(remote, None);
    }

    /// Runs "remote" probes on this machine, as a stand-in for a remote worker.
    struct HereAsRemote;

    impl ProbeRunner for HereAsRemote {
        fn run_probe(&self, _: &Environment, probe: &Probe) -> Result<ProbeResult, ProbeError> {
            LocalProbeRunner::default().run(probe)
        }
    }

    #[test]
    fn remote_environments_find_binaries_with_a_probe_there() {
        let services =
            LocalHostServices::with_path("/nonexistent").with_remote_probes(Arc::new(HereAsRemote));
        let listed = ["/nonexistent".to_owned(), "/bin".to_owned()];
        let found = services.find_binary(&remote(), "sh", &listed);
        assert_eq!(found.as_deref(), Some("/bin/sh"));
        assert_eq!(services.probes_run(), 1);

        // `<PATH>` is the worker's default PATH, never this process's.
        let found = services.find_binary(&remote(), "sh", &[PATH_ENTRY.to_owned()]);
        assert!(found.is_some_and(|f| f.ends_with("/sh")));
        let missing = services.find_binary(&remote(), "no-such-tool", &listed);
        assert_eq!(missing, None);
    }

    fn sh_probe(script: &str) -> Probe {
        Probe {
            argv: vec!["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()],
            env: Vec::new(),
        }
    }

    #[test]
    fn probes_are_cached_per_environment_and_probe() {
        let services = LocalHostServices::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let counter = dir.path().join("count");
        let probe = sh_probe(&format!(
            "echo x >> {}; cat {}",
            counter.display(),
            counter.display()
        ));

        let first = services
            .run_probe(&Environment::local(), &probe)
            .expect("runs");
        let second = services
            .run_probe(&Environment::local(), &probe)
            .expect("runs");
        assert_eq!(first, second);
        assert_eq!(first.stdout, b"x\n");
        assert_eq!(services.probes_run(), 1);

        let other = Environment {
            name: "other".to_owned(),
            ..Environment::local()
        };
        let third = services.run_probe(&other, &probe).expect("runs");
        assert_eq!(third.stdout, b"x\nx\n");
    }

    #[test]
    fn remote_probes_need_a_runner() {
        let services = LocalHostServices::new();
        let err = services.run_probe(&remote(), &sh_probe("true"));
        let message = err.map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(
            message.starts_with("probes in remote environment `__local__` need remote execution"),
            "{message}"
        );
    }

    #[test]
    fn remote_probes_go_to_the_runner() {
        struct Answer;
        impl ProbeRunner for Answer {
            fn run_probe(&self, env: &Environment, _: &Probe) -> Result<ProbeResult, ProbeError> {
                Ok(ProbeResult {
                    exit_code: 0,
                    stdout: env.name.clone().into_bytes(),
                    stderr: Vec::new(),
                })
            }
        }
        let services = LocalHostServices::new().with_remote_probes(Arc::new(Answer));
        let result = services
            .run_probe(&remote(), &sh_probe("true"))
            .expect("runs");
        assert_eq!(result.stdout, b"__local__");
    }

    #[test]
    fn ignores_relative_directories_and_missing_binaries() {
        let services = LocalHostServices::with_path(".:bin");
        let search = [PATH_ENTRY.to_owned(), "bin".to_owned(), "/bin".to_owned()];
        let missing = services.find_binary(&Environment::local(), "no-such-tool-xyz", &search);
        assert_eq!(missing, None);
    }
}
