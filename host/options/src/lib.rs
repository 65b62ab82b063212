//! remex's options: `remex.toml` in the repository root, then `REMEX_*` environment variables,
//! then command-line flags, each stronger than the one before, resolved into one validated
//! [`Options`] value before any work starts; and the environments targets run in.
//!
//! Every option is an [`OptionSpec`] in an [`OptionRegistry`]: the built-in ones, and those
//! plugins declare at run time. From the same specs come the parser, the `REMEX_*` and `--flag`
//! names, the help text and the override fields of environment targets:
//!
//! - `[GLOBAL] remote_execution` is also `REMEX_REMOTE_EXECUTION` and `--remote-execution`
//!   (`--no-remote-execution` turns it off);
//! - `[python-bootstrap] search_path` is also `REMEX_PYTHON_BOOTSTRAP_SEARCH_PATH` and
//!   `--python-bootstrap-search-path=...`.
//!
//! In a variable or a flag, a list is a TOML array (`["a", "b"]`) or items separated by commas,
//! and a table is a TOML inline table or `key=value` items separated by commas. A list flag
//! given several times collects every value. A value from a later source replaces an earlier
//! one whole.
//!
//! A run loads its options in two steps: [`OptionInputs::read`] reads the inputs,
//! [`OptionInputs::bootstrap`] checks the built-in options (enough to open the store and load
//! plugins), and once plugins have registered their options, [`OptionInputs::resolve`] checks
//! everything. [`Environments::resolve`] then gives each target its environment.

mod builtin;
mod environment_kinds;
mod environments;
mod error;
mod help;
mod inputs;
mod options;
mod parse;
mod registry;
mod remote;
mod resolve;
mod rules;
mod spec;
mod suggest;

#[cfg(test)]
mod environments_tests;
#[cfg(test)]
mod options_tests;
#[cfg(test)]
mod rules_tests;
#[cfg(test)]
mod test_support;

use std::path::{Path, PathBuf};

pub use builtin::{
    ENVIRONMENTS_SCOPE, PATH_PLACEHOLDER, PLUGINS_SCOPE, POLICY_SCOPE, PROTOC_SCOPE,
    PYTHON_BOOTSTRAP_SCOPE, SYSTEM_BINARIES_SCOPE,
};
pub use environment_kinds::{
    LOCAL_ENVIRONMENT_KIND, PLATFORMS, REMOTE_ENVIRONMENT_KIND, environment_kinds, host_platform,
    is_environment_kind,
};
pub use environments::{EnvironmentError, EnvironmentProblem, Environments, ResolvedEnvironment};
pub use error::{OptionsError, RegistryError, Source};
pub use help::{kind_help, scope_for_help, scope_help};
pub use inputs::OptionInputs;
pub use options::{
    EnvironmentsOptions, GlobalOptions, Options, PluginOptions, PolicyMode, PolicyOptions,
    ProtocOptions, PythonBootstrapOptions, SystemBinariesOptions,
};
pub use registry::OptionRegistry;
pub use remote::{CacheContentBehavior, Headers, RemoteAddress, Secret};
pub use resolve::{ResolvedOptions, ResolvedValue};
pub use spec::{GLOBAL_SCOPE, OptionKey, OptionSpec, OptionType, OptionValue, ScopeSpec};

/// The name of the options file, which also marks the repository root.
pub const CONFIG_FILE: &str = "remex.toml";

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

/// Loads and checks the built-in options for a run started in `cwd`, from `remex.toml`, the
/// `REMEX_*` entries of `variables`, and `flags`.
pub fn load(
    cwd: &Path,
    variables: impl IntoIterator<Item = (String, String)>,
    flags: impl IntoIterator<Item = String>,
) -> Result<Options, OptionsError> {
    OptionInputs::read(cwd, variables, flags)?.resolve(&OptionRegistry::builtin())
}

/// `remex` under the user's cache directory, as `~/.cache/remex`.
pub fn default_store_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("remex")
}

/// Where compiled plugins are cached: beside the default store, whatever `local_store_dir`
/// says. A compiled plugin depends only on the plugin and this build of remex (the file name
/// says both), not on a repository's action results, so a fresh local store (as on a CI
/// machine that keeps its tool caches) does not compile every plugin again.
pub fn compiled_plugins_dir() -> PathBuf {
    default_store_dir().join("plugins-compiled")
}
