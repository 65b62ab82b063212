//! What the host interface calls back into, outside the plugin host itself.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use remex_model::Environment;

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
}

/// Finds binaries on this machine.
///
/// [`PATH_ENTRY`] is this process's `PATH` for a local environment only: a remote environment's
/// `PATH` is unknown here, so the entry finds nothing rather than leak this machine's `PATH`
/// into a remote action. Other directories are looked at on this machine whatever the
/// environment; answering for a remote machine takes a probe process run there.
#[derive(Clone, Debug, Default)]
pub struct LocalHostServices {
    /// The `PATH` used for [`PATH_ENTRY`]; `None` reads the process's `PATH` at each call.
    path_override: Option<OsString>,
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
        }
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
        self.directories(environment, search_path)
            .into_iter()
            // A relative directory would make the answer depend on the current directory.
            .filter(|directory| directory.is_absolute())
            .map(|directory| directory.join(name))
            .find(|candidate| is_executable(candidate))
            .and_then(|found| found.into_os_string().into_string().ok())
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

    #[test]
    fn ignores_relative_directories_and_missing_binaries() {
        let services = LocalHostServices::with_path(".:bin");
        let search = [PATH_ENTRY.to_owned(), "bin".to_owned(), "/bin".to_owned()];
        let missing = services.find_binary(&Environment::local(), "no-such-tool-xyz", &search);
        assert_eq!(missing, None);
    }
}
