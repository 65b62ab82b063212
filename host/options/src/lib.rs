//! remex's options: `remex.toml` in the repository root, then `REMEX_*` environment variables,
//! then command-line flags, each stronger than the one before, resolved into one validated
//! [`Options`] value before any work starts.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The name of the options file, which also marks the repository root.
pub const CONFIG_FILE: &str = "remex.toml";

/// Resolved options for one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The directory holding `remex.toml`, or the working directory when there is none.
    pub repo_root: PathBuf,
    pub config_file: Option<PathBuf>,
    pub local_store_dir: PathBuf,
    pub plugins: PluginOptions,
}

/// The `[plugins]` scope.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginOptions {
    /// Plugin components kept in the repository, relative to its root.
    pub paths: Vec<PathBuf>,
    /// How long one plugin call may run.
    pub deadline: Duration,
    /// How much memory one plugin instance may use.
    pub memory_limit_bytes: usize,
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    File { path: PathBuf, line: usize },
    Variable(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
            Self::Variable(name) => write!(f, "environment variable `{name}`"),
            Self::Flag(name) => write!(f, "flag `{name}`"),
        }
    }
}

/// An option that cannot be used as given. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("{source_at}: {message}")]
    Invalid { source_at: Source, message: String },
    #[error("cannot read `{path}`: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Values that override the file: from `REMEX_*` variables and from flags.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub local_store_dir: Option<(PathBuf, Source)>,
}

impl Overrides {
    /// Reads the `REMEX_*` variables remex knows from `vars`.
    pub fn from_env(vars: &BTreeMap<String, String>) -> Self {
        let mut overrides = Self::default();
        if let Some(dir) = vars.get("REMEX_LOCAL_STORE_DIR") {
            let source = Source::Variable("REMEX_LOCAL_STORE_DIR".into());
            overrides.local_store_dir = Some((PathBuf::from(dir), source));
        }
        overrides
    }

    /// Applies `stronger` on top of these overrides.
    pub fn merged_with(mut self, stronger: Overrides) -> Self {
        if stronger.local_store_dir.is_some() {
            self.local_store_dir = stronger.local_store_dir;
        }
        self
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(rename = "GLOBAL", default)]
    global: GlobalSection,
    #[serde(default)]
    plugins: PluginsSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GlobalSection {
    local_store_dir: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PluginsSection {
    #[serde(default)]
    paths: Vec<PathBuf>,
    deadline_ms: Option<u64>,
    memory_limit_mib: Option<usize>,
}

/// Finds the repository root by walking up from `cwd` to the first directory with a
/// `remex.toml`; `cwd` itself when there is none.
pub fn find_repo_root(cwd: &Path) -> (PathBuf, Option<PathBuf>) {
    for dir in cwd.ancestors() {
        let file = dir.join(CONFIG_FILE);
        if file.is_file() {
            return (dir.to_owned(), Some(file));
        }
    }
    (cwd.to_owned(), None)
}

/// Loads and validates the options for a run started in `cwd`.
pub fn load(cwd: &Path, overrides: Overrides) -> Result<Options, OptionsError> {
    let (repo_root, config_file) = find_repo_root(cwd);
    let config = match &config_file {
        Some(path) => parse_file(path)?,
        None => ConfigFile::default(),
    };

    let local_store_dir = match overrides.local_store_dir {
        Some((dir, _)) => cwd.join(dir),
        None => config
            .global
            .local_store_dir
            .map(|d| repo_root.join(d))
            .unwrap_or_else(default_store_dir),
    };
    let plugins = PluginOptions {
        paths: config.plugins.paths,
        deadline: Duration::from_millis(config.plugins.deadline_ms.unwrap_or(5_000)),
        memory_limit_bytes: config.plugins.memory_limit_mib.unwrap_or(256) << 20,
    };
    Ok(Options {
        repo_root,
        config_file,
        local_store_dir,
        plugins,
    })
}

/// `remex` under the user's cache directory, as `~/.cache/remex`.
pub fn default_store_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("remex")
}

fn parse_file(path: &Path) -> Result<ConfigFile, OptionsError> {
    let text = std::fs::read_to_string(path).map_err(|error| OptionsError::Read {
        path: path.to_owned(),
        error,
    })?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start].matches('\n').count() + 1)
            .unwrap_or(1);
        OptionsError::Invalid {
            source_at: Source::File {
                path: path.to_owned(),
                line,
            },
            message: e.message().to_owned(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(CONFIG_FILE);
        std::fs::write(&file, "[GLOBAL]\n\nlocal_stor_dir = \"x\"\n").expect("write");
        let err = load(dir.path(), Overrides::default()).expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("remex.toml:3"), "{text}");
        assert!(text.contains("local_stor_dir"), "{text}");
    }

    #[test]
    fn flag_beats_variable_beats_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(CONFIG_FILE);
        std::fs::write(&file, "[GLOBAL]\nlocal_store_dir = \"from-file\"\n").expect("write");
        let from_file = load(dir.path(), Overrides::default()).expect("loads");
        assert_eq!(from_file.local_store_dir, dir.path().join("from-file"));

        let vars = BTreeMap::from([("REMEX_LOCAL_STORE_DIR".into(), "/from-env".into())]);
        let env = Overrides::from_env(&vars);
        let from_env = load(dir.path(), env.clone()).expect("loads");
        assert_eq!(from_env.local_store_dir, PathBuf::from("/from-env"));

        let flag = Overrides {
            local_store_dir: Some(("/from-flag".into(), Source::Flag("--local-store-dir".into()))),
        };
        let from_flag = load(dir.path(), env.merged_with(flag)).expect("loads");
        assert_eq!(from_flag.local_store_dir, PathBuf::from("/from-flag"));
    }
}
