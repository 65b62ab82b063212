//! The options built into remex. `[GLOBAL]` carries Pants' remote options with their names,
//! meanings and defaults, so that a `pants.toml`'s remote settings read the same here.

use std::collections::BTreeMap;

use crate::options::PolicyMode;
use crate::remote::CacheContentBehavior;
use crate::spec::{GLOBAL_SCOPE, OptionSpec, OptionType, OptionValue, ScopeSpec};

/// `[plugins]`.
pub const PLUGINS_SCOPE: &str = "plugins";
/// `[policy]`.
pub const POLICY_SCOPE: &str = "policy";
/// `[python-bootstrap]`.
pub const PYTHON_BOOTSTRAP_SCOPE: &str = "python-bootstrap";
/// `[system-binaries]`.
pub const SYSTEM_BINARIES_SCOPE: &str = "system-binaries";
/// `[protoc]`.
pub const PROTOC_SCOPE: &str = "protoc";
/// `[environments-preview]`.
pub const ENVIRONMENTS_SCOPE: &str = "environments-preview";

/// The entry of a search path that stands for the `PATH` of the environment a process runs
/// in. remex keeps it as written; the plugin host expands it per environment.
pub const PATH_PLACEHOLDER: &str = "<PATH>";

/// Whether only the host reads options of `scope`; plugins never see them.
pub(crate) fn is_host_scope(scope: &str) -> bool {
    [
        GLOBAL_SCOPE,
        PLUGINS_SCOPE,
        POLICY_SCOPE,
        ENVIRONMENTS_SCOPE,
    ]
    .contains(&scope)
}

/// The built-in scopes, in the order help lists them.
pub(crate) fn scopes() -> Vec<ScopeSpec> {
    let scope = |name: &str, help: &str| ScopeSpec {
        name: name.to_owned(),
        help: help.to_owned(),
    };
    vec![
        scope(
            GLOBAL_SCOPE,
            "Options of every run: the remote servers, and how much runs at once",
        ),
        scope(
            PLUGINS_SCOPE,
            "Toolchain plugins kept in the repository, and the limits of each plugin call",
        ),
        scope(
            POLICY_SCOPE,
            "Policy plugins that approve or deny every action before it runs",
        ),
        scope(
            PYTHON_BOOTSTRAP_SCOPE,
            "How Python interpreters are found in the environment a process runs in",
        ),
        scope(
            SYSTEM_BINARIES_SCOPE,
            "Where system tools are found in the environment a process runs in",
        ),
        scope(
            PROTOC_SCOPE,
            "The Protocol Buffers compiler that `protobuf_sources` runs",
        ),
        scope(
            ENVIRONMENTS_SCOPE,
            "Named environments, which targets select with their `environment` field",
        ),
    ]
}

/// Every built-in option.
pub(crate) fn specs() -> Vec<OptionSpec> {
    let mut specs = remote_specs();
    specs.extend(execution_specs());
    specs.extend(tool_specs());
    specs
}

fn global(name: &str, ty: OptionType, help: &str) -> OptionSpec {
    OptionSpec::new(GLOBAL_SCOPE, name, ty, help)
}

fn at_least(min: i64) -> OptionType {
    OptionType::Integer { min }
}

fn int(value: i64) -> OptionValue {
    OptionValue::Integer(value)
}

fn list(items: &[&str]) -> OptionValue {
    OptionValue::List(items.iter().map(|s| (*s).to_owned()).collect())
}

fn empty_dict() -> OptionValue {
    OptionValue::Dict(BTreeMap::new())
}

/// Where remote work goes, and how remex connects and authenticates.
fn remote_specs() -> Vec<OptionSpec> {
    use OptionType::{Address, Bool, Dict, KeyValueList, Path, Secret, Text};
    let off = OptionValue::Bool(false);
    vec![
        global(
            "remote_execution",
            Bool,
            "Run processes on the execution server at `remote_execution_address`",
        )
        .with_default(off.clone()),
        global(
            "remote_cache_read",
            Bool,
            "Look up processes run on this machine in the remote action cache",
        )
        .with_default(off.clone()),
        global(
            "remote_cache_write",
            Bool,
            "Store results of processes run on this machine in the remote action cache",
        )
        .with_default(off),
        global(
            "remote_store_address",
            Address,
            "The CAS and action cache server, `grpc://host:port` or `grpcs://host:port`",
        ),
        global(
            "remote_execution_address",
            Address,
            "The execution server, `grpc://host:port` or `grpcs://host:port`",
        ),
        global(
            "remote_instance_name",
            Text,
            "The REAPI instance name sent with every request; unset sends the empty name",
        ),
        global(
            "remote_execution_extra_platform_properties",
            KeyValueList,
            "Platform properties (`key=value`) of remote processes when no environments are named",
        )
        .with_default(list(&[])),
        global(
            "remote_ca_certs_path",
            Path,
            "PEM certificates trusted for `grpcs://` servers instead of the system's roots",
        ),
        global(
            "remote_client_certs_path",
            Path,
            "PEM client certificate chain for mutual TLS; needs `remote_client_key_path`",
        ),
        global(
            "remote_client_key_path",
            Path,
            "PEM private key of the client certificate; needs `remote_client_certs_path`",
        ),
        global(
            "remote_oauth_bearer_token",
            Secret,
            "Sent as `authorization: Bearer <token>` to both servers; `@path` reads a file",
        ),
        global(
            "remote_store_headers",
            Dict,
            "Headers sent with every request to the store server",
        )
        .with_default(empty_dict()),
        global(
            "remote_execution_headers",
            Dict,
            "Headers sent with every request to the execution server",
        )
        .with_default(empty_dict()),
    ]
}

/// How much runs at once, how long it may take, and how remote results are cached.
fn execution_specs() -> Vec<OptionSpec> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cores = i64::try_from(cores).unwrap_or(i64::MAX);
    let behaviors = CacheContentBehavior::CHOICES.map(str::to_owned).to_vec();
    vec![
        global(
            "process_execution_remote_parallelism",
            at_least(1),
            "How many processes may run remotely at once",
        )
        .with_default(int(128)),
        global(
            "process_execution_local_parallelism",
            at_least(1),
            "How many processes may run on this machine at once; defaults to its core count",
        )
        .with_default(int(cores)),
        global(
            "process_execution_cache_namespace",
            OptionType::Text,
            "Mixed into every action's cache key, to keep caches that must not mix apart",
        ),
        global(
            "remote_store_chunk_bytes",
            at_least(1),
            "Size in bytes of the chunks in which large blobs are streamed",
        )
        .with_default(int(1024 * 1024)),
        global(
            "remote_store_rpc_retries",
            at_least(0),
            "How many times a failed store request is retried",
        )
        .with_default(int(2)),
        global(
            "remote_store_rpc_concurrency",
            at_least(1),
            "How many store requests may be in flight at once",
        )
        .with_default(int(128)),
        global(
            "remote_store_rpc_timeout_millis",
            at_least(1),
            "Timeout of one store request, in milliseconds",
        )
        .with_default(int(30_000)),
        global(
            "remote_store_batch_api_size_limit",
            at_least(1),
            "Largest batch upload or download in bytes; larger blobs are streamed",
        )
        .with_default(int(4 * 1024 * 1024)),
        global(
            "remote_cache_rpc_concurrency",
            at_least(1),
            "How many action cache requests may be in flight at once",
        )
        .with_default(int(128)),
        global(
            "remote_cache_rpc_timeout_millis",
            at_least(1),
            "Timeout of one action cache lookup, in milliseconds",
        )
        .with_default(int(1_500)),
        global(
            "remote_execution_overall_deadline_secs",
            at_least(1),
            "How long one remote execution may take, queueing included, in seconds",
        )
        .with_default(int(3_600)),
        global(
            "cache_content_behavior",
            OptionType::Choice(behaviors),
            "Outputs of cache hits: `fetch` downloads, `validate` checks, `defer` trusts them",
        )
        .with_default(OptionValue::Text("fetch".into())),
        global(
            "local_store_dir",
            OptionType::Path,
            "Where the local CAS and action cache live",
        )
        .with_default(OptionValue::Text(
            crate::default_store_dir().display().to_string(),
        )),
    ]
}

/// Plugins, the tools they look for, and named environments.
fn tool_specs() -> Vec<OptionSpec> {
    use OptionType::{Choice, Dict, Text, TextList};
    let modes = PolicyMode::CHOICES.map(str::to_owned).to_vec();
    vec![
        OptionSpec::new(
            PLUGINS_SCOPE,
            "paths",
            TextList,
            "Plugin components (`.wasm`) kept in the repository, relative to its root",
        )
        .with_default(list(&[])),
        OptionSpec::new(
            PLUGINS_SCOPE,
            "deadline_ms",
            at_least(1),
            "How long one plugin call may run, in milliseconds",
        )
        .with_default(int(5_000)),
        OptionSpec::new(
            PLUGINS_SCOPE,
            "memory_limit_mib",
            at_least(1),
            "How much memory one plugin instance may use, in MiB",
        )
        .with_default(int(256)),
        OptionSpec::new(
            POLICY_SCOPE,
            "plugins",
            TextList,
            "Policy components (`.wasm`) every action is checked against, relative to the root",
        )
        .with_default(list(&[])),
        OptionSpec::new(
            POLICY_SCOPE,
            "mode",
            Choice(modes),
            "What a denial does: `enforce` stops the action, `warn` prints it and runs it",
        )
        .with_default(OptionValue::Text("enforce".into())),
        OptionSpec::new(
            PYTHON_BOOTSTRAP_SCOPE,
            "search_path",
            TextList,
            "Directories searched for Python, in order; `<PATH>` is the environment's `PATH`",
        )
        .with_default(list(&[PATH_PLACEHOLDER]))
        .environment_aware(),
        OptionSpec::new(
            PYTHON_BOOTSTRAP_SCOPE,
            "names",
            TextList,
            "Interpreter names looked for in each directory of `search_path`",
        )
        .with_default(list(&["python3"]))
        .environment_aware(),
        OptionSpec::new(
            SYSTEM_BINARIES_SCOPE,
            "system_binary_paths",
            TextList,
            "Directories searched for tools such as `unzip`; `<PATH>` is the environment's `PATH`",
        )
        .with_default(list(&["/usr/bin", "/bin", "/usr/local/bin"]))
        .environment_aware(),
        OptionSpec::new(
            PROTOC_SCOPE,
            "archive",
            Text,
            "A protoc release `.zip` for the platform, relative to the root; needs `sha256`",
        )
        .environment_aware(),
        OptionSpec::new(
            PROTOC_SCOPE,
            "sha256",
            Text,
            "The SHA-256 of `archive` as 64 hex digits, checked before the archive is used",
        )
        .environment_aware(),
        OptionSpec::new(
            ENVIRONMENTS_SCOPE,
            "names",
            Dict,
            "Short environment names, each the address of a `*_environment` target",
        )
        .with_default(empty_dict()),
    ]
}
