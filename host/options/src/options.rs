//! The resolved options as typed values, one struct per built-in scope. Each field is named
//! exactly as the option it holds, so that a test can hold the structs and the spec table to
//! each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use remex_model::Address;

use crate::builtin::{
    ENVIRONMENTS_SCOPE, PLUGINS_SCOPE, POLICY_SCOPE, PROTOC_SCOPE, PYTHON_BOOTSTRAP_SCOPE,
    SYSTEM_BINARIES_SCOPE,
};
use crate::error::{OptionsError, Source};
use crate::inputs::OptionInputs;
use crate::remote::{CacheContentBehavior, Headers, RemoteAddress, Secret};
use crate::resolve::ResolvedOptions;
use crate::spec::{GLOBAL_SCOPE, OptionKey};

/// The options of one run, checked and resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The directory holding `remex.toml`, or the working directory when there is none.
    pub repo_root: PathBuf,
    /// `remex.toml`, when there is one.
    pub config_file: Option<PathBuf>,
    pub global: GlobalOptions,
    pub plugins: PluginOptions,
    pub policy: PolicyOptions,
    pub python_bootstrap: PythonBootstrapOptions,
    pub system_binaries: SystemBinariesOptions,
    pub protoc: ProtocOptions,
    pub environments: EnvironmentsOptions,
    /// Every registered option, plugins' included, with where its value came from.
    pub resolved: ResolvedOptions,
    /// Settings that were accepted but have no effect, to show the user.
    pub warnings: Vec<String>,
}

/// `[GLOBAL]`: the remote servers and how remex uses them, with Pants' names and defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalOptions {
    pub remote_execution: bool,
    pub remote_cache_read: bool,
    pub remote_cache_write: bool,
    pub remote_store_address: Option<RemoteAddress>,
    pub remote_execution_address: Option<RemoteAddress>,
    pub remote_instance_name: Option<String>,
    /// `key=value` entries split at the first `=`, in the order written.
    pub remote_execution_extra_platform_properties: Vec<(String, String)>,
    pub process_execution_remote_parallelism: usize,
    pub remote_ca_certs_path: Option<PathBuf>,
    pub remote_client_certs_path: Option<PathBuf>,
    pub remote_client_key_path: Option<PathBuf>,
    /// The token itself: an `@path` value has been read from its file.
    pub remote_oauth_bearer_token: Option<Secret>,
    pub remote_store_headers: Headers,
    pub remote_execution_headers: Headers,
    pub remote_store_chunk_bytes: usize,
    pub remote_store_rpc_retries: u32,
    pub remote_store_rpc_concurrency: usize,
    pub remote_store_rpc_timeout_millis: u64,
    pub remote_store_batch_api_size_limit: usize,
    pub remote_cache_rpc_concurrency: usize,
    pub remote_cache_rpc_timeout_millis: u64,
    pub remote_execution_overall_deadline_secs: u64,
    pub process_execution_local_parallelism: usize,
    pub process_execution_cache_namespace: Option<String>,
    pub cache_content_behavior: CacheContentBehavior,
    pub local_store_dir: PathBuf,
}

impl GlobalOptions {
    /// Headers for the store server: `remote_store_headers`, plus `authorization` when a
    /// bearer token is set.
    pub fn store_headers(&self) -> Headers {
        self.with_token(self.remote_store_headers.clone())
    }

    /// Headers for the execution server: `remote_execution_headers`, plus `authorization`
    /// when a bearer token is set.
    pub fn execution_headers(&self) -> Headers {
        self.with_token(self.remote_execution_headers.clone())
    }

    fn with_token(&self, headers: Headers) -> Headers {
        match &self.remote_oauth_bearer_token {
            Some(token) => headers.with("authorization", format!("Bearer {}", token.expose())),
            None => headers,
        }
    }

    /// Whether any remote server is used at all.
    pub fn uses_remote(&self) -> bool {
        self.remote_execution || self.remote_cache_read || self.remote_cache_write
    }

    pub fn remote_store_rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.remote_store_rpc_timeout_millis)
    }

    pub fn remote_cache_rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.remote_cache_rpc_timeout_millis)
    }

    pub fn remote_execution_overall_deadline(&self) -> Duration {
        Duration::from_secs(self.remote_execution_overall_deadline_secs)
    }
}

/// `[plugins]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginOptions {
    /// Plugin components kept in the repository, relative to its root.
    pub paths: Vec<PathBuf>,
    pub deadline_ms: u64,
    pub memory_limit_mib: u64,
}

impl PluginOptions {
    /// How long one plugin call may run.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// How much memory one plugin instance may use.
    pub fn memory_limit_bytes(&self) -> usize {
        usize::try_from(self.memory_limit_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}

/// `[policy]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyOptions {
    /// Policy components, relative to the repository root.
    pub plugins: Vec<PathBuf>,
    pub mode: PolicyMode,
}

/// What a policy's denial does to the action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyMode {
    /// The action does not run, and its target fails with the policy's reason.
    Enforce,
    /// The denial is printed and the action runs anyway: for trying a policy out.
    Warn,
}

impl PolicyMode {
    /// The names the option accepts.
    pub const CHOICES: [&str; 2] = ["enforce", "warn"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "enforce" => Some(Self::Enforce),
            "warn" => Some(Self::Warn),
            _ => None,
        }
    }
}

/// `[python-bootstrap]`, as set in `remex.toml`; environments may override both options.
#[derive(Clone, Debug, PartialEq)]
pub struct PythonBootstrapOptions {
    /// May hold `<PATH>`, kept as written: it stands for the `PATH` of the environment a
    /// process runs in, which only the plugin host knows.
    pub search_path: Vec<String>,
    pub names: Vec<String>,
}

/// `[system-binaries]`, as set in `remex.toml`; environments may override it.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemBinariesOptions {
    /// May hold `<PATH>`, kept as written, like `[python-bootstrap].search_path`.
    pub system_binary_paths: Vec<String>,
}

/// `[protoc]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtocOptions {
    /// Relative to the repository root.
    pub archive: Option<String>,
    /// Lowercase hex.
    pub sha256: Option<String>,
}

/// `[environments-preview]`.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentsOptions {
    /// Short name → address of a `local_environment` or `remote_environment` target.
    pub names: BTreeMap<String, Address>,
}

/// Turns resolved values into typed ones; relative paths are resolved against the repository
/// root for `remex.toml` and the working directory for variables and flags.
struct Reader<'a> {
    resolved: &'a ResolvedOptions,
    inputs: &'a OptionInputs,
}

impl Options {
    pub(crate) fn build(
        inputs: &OptionInputs,
        resolved: ResolvedOptions,
        warnings: Vec<String>,
    ) -> Result<Self, OptionsError> {
        let reader = Reader {
            resolved: &resolved,
            inputs,
        };
        let global = reader.global()?;
        let plugins = reader.plugins();
        let policy = reader.policy();
        let python_bootstrap = reader.python_bootstrap();
        let system_binaries = reader.system_binaries();
        let protoc = reader.protoc();
        let environments = reader.environments();
        Ok(Self {
            repo_root: inputs.repo_root.clone(),
            config_file: inputs.config_file.clone(),
            global,
            plugins,
            policy,
            python_bootstrap,
            system_binaries,
            protoc,
            environments,
            resolved,
            warnings,
        })
    }
}

impl Reader<'_> {
    fn global(&self) -> Result<GlobalOptions, OptionsError> {
        let r = self.resolved;
        let g = GLOBAL_SCOPE;
        let address = |name| r.text(g, name).and_then(RemoteAddress::parse);
        let text = |name| r.text(g, name).map(str::to_owned);
        let headers = |name| Headers::new(r.dict(g, name));
        let behavior = r
            .text(g, "cache_content_behavior")
            .and_then(CacheContentBehavior::parse);
        Ok(GlobalOptions {
            remote_execution: r.bool(g, "remote_execution"),
            remote_cache_read: r.bool(g, "remote_cache_read"),
            remote_cache_write: r.bool(g, "remote_cache_write"),
            remote_store_address: address("remote_store_address"),
            remote_execution_address: address("remote_execution_address"),
            remote_instance_name: text("remote_instance_name"),
            remote_execution_extra_platform_properties: self.properties(),
            process_execution_remote_parallelism: self
                .count(g, "process_execution_remote_parallelism"),
            remote_ca_certs_path: self.path(g, "remote_ca_certs_path"),
            remote_client_certs_path: self.path(g, "remote_client_certs_path"),
            remote_client_key_path: self.path(g, "remote_client_key_path"),
            remote_oauth_bearer_token: self.token()?,
            remote_store_headers: headers("remote_store_headers"),
            remote_execution_headers: headers("remote_execution_headers"),
            remote_store_chunk_bytes: self.count(g, "remote_store_chunk_bytes"),
            remote_store_rpc_retries: self.number(g, "remote_store_rpc_retries"),
            remote_store_rpc_concurrency: self.count(g, "remote_store_rpc_concurrency"),
            remote_store_rpc_timeout_millis: self.number(g, "remote_store_rpc_timeout_millis"),
            remote_store_batch_api_size_limit: self.count(g, "remote_store_batch_api_size_limit"),
            remote_cache_rpc_concurrency: self.count(g, "remote_cache_rpc_concurrency"),
            remote_cache_rpc_timeout_millis: self.number(g, "remote_cache_rpc_timeout_millis"),
            remote_execution_overall_deadline_secs: self
                .number(g, "remote_execution_overall_deadline_secs"),
            process_execution_local_parallelism: self
                .count(g, "process_execution_local_parallelism"),
            process_execution_cache_namespace: text("process_execution_cache_namespace"),
            cache_content_behavior: behavior.unwrap_or(CacheContentBehavior::Fetch),
            local_store_dir: self
                .path(g, "local_store_dir")
                .unwrap_or_else(crate::default_store_dir),
        })
    }

    fn plugins(&self) -> PluginOptions {
        let paths = self.resolved.list(PLUGINS_SCOPE, "paths");
        PluginOptions {
            paths: paths.iter().map(PathBuf::from).collect(),
            deadline_ms: self.number(PLUGINS_SCOPE, "deadline_ms"),
            memory_limit_mib: self.number(PLUGINS_SCOPE, "memory_limit_mib"),
        }
    }

    fn policy(&self) -> PolicyOptions {
        let plugins = self.resolved.list(POLICY_SCOPE, "plugins");
        let mode = self
            .resolved
            .text(POLICY_SCOPE, "mode")
            .and_then(PolicyMode::parse);
        PolicyOptions {
            plugins: plugins.iter().map(PathBuf::from).collect(),
            mode: mode.unwrap_or(PolicyMode::Enforce),
        }
    }

    fn python_bootstrap(&self) -> PythonBootstrapOptions {
        let list = |name| self.resolved.list(PYTHON_BOOTSTRAP_SCOPE, name).to_vec();
        PythonBootstrapOptions {
            search_path: list("search_path"),
            names: list("names"),
        }
    }

    fn system_binaries(&self) -> SystemBinariesOptions {
        let paths = self
            .resolved
            .list(SYSTEM_BINARIES_SCOPE, "system_binary_paths");
        SystemBinariesOptions {
            system_binary_paths: paths.to_vec(),
        }
    }

    fn protoc(&self) -> ProtocOptions {
        let text = |name| self.resolved.text(PROTOC_SCOPE, name).map(str::to_owned);
        ProtocOptions {
            archive: text("archive"),
            sha256: text("sha256").map(|hash| hash.to_ascii_lowercase()),
        }
    }

    fn environments(&self) -> EnvironmentsOptions {
        // The rules have checked every address already.
        let names = self.resolved.dict(ENVIRONMENTS_SCOPE, "names");
        let names = names
            .into_iter()
            .filter_map(|(name, address)| Some((name, Address::parse(&address, "").ok()?)))
            .collect();
        EnvironmentsOptions { names }
    }

    fn properties(&self) -> Vec<(String, String)> {
        let option = "remote_execution_extra_platform_properties";
        let items = self.resolved.list(GLOBAL_SCOPE, option);
        items
            .iter()
            .filter_map(|item| item.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect()
    }

    /// An integer option with a minimum of at least 1, as a count.
    fn count(&self, scope: &str, name: &str) -> usize {
        self.number(scope, name)
    }

    /// An integer option with a non-negative minimum.
    fn number<T: TryFrom<i64> + Bounded>(&self, scope: &str, name: &str) -> T {
        T::try_from(self.resolved.integer(scope, name)).unwrap_or(T::MAX)
    }

    /// A path option, absolute. `~/` stands for the home directory.
    fn path(&self, scope: &str, name: &str) -> Option<PathBuf> {
        let text = self.resolved.text(scope, name)?;
        let source = self.resolved.source(scope, name);
        Some(self.absolute(text, &source))
    }

    fn absolute(&self, text: &str, source: &Source) -> PathBuf {
        if let (Some(rest), Some(home)) = (text.strip_prefix("~/"), dirs::home_dir()) {
            return home.join(rest);
        }
        let base: &Path = match source {
            Source::File { .. } => &self.inputs.repo_root,
            Source::Variable(_) | Source::Flag(_) | Source::Default => &self.inputs.cwd,
        };
        base.join(text)
    }

    /// The bearer token; `@path` reads it from a file, whose content must be one line.
    fn token(&self) -> Result<Option<Secret>, OptionsError> {
        let name = "remote_oauth_bearer_token";
        let Some(text) = self.resolved.text(GLOBAL_SCOPE, name) else {
            return Ok(None);
        };
        let Some(file) = text.strip_prefix('@') else {
            return Ok(Some(Secret::new(text)));
        };
        let at = self.resolved.source(GLOBAL_SCOPE, name);
        let key = OptionKey::new(GLOBAL_SCOPE, name);
        let path = self.absolute(file, &at);
        let content = std::fs::read_to_string(&path).map_err(|error| OptionsError::ReadSecret {
            at: at.clone(),
            key: key.clone(),
            path: path.clone(),
            error,
        })?;
        let token = content.trim();
        if token.is_empty() || token.contains(['\n', '\r']) {
            return Err(OptionsError::invalid(
                at,
                key,
                "a file holding the token on one line",
                &format!("`{}`, which is empty or has several lines", path.display()),
            ));
        }
        Ok(Some(Secret::new(token)))
    }
}

/// The largest value of an integer type, for options whose value does not fit.
trait Bounded {
    const MAX: Self;
}

impl Bounded for usize {
    const MAX: Self = usize::MAX;
}

impl Bounded for u64 {
    const MAX: Self = u64::MAX;
}

impl Bounded for u32 {
    const MAX: Self = u32::MAX;
}
