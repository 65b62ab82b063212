//! Loading options: precedence of the three sources, Pants' remote settings, flags, plugin
//! options, and the agreement between the spec table, the typed options and the help.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use remex_model::Address;

use crate::builtin::PROTOC_SCOPE;
use crate::remote::CacheContentBehavior;
use crate::resolve::defaults;
use crate::test_support::{TestRepo, assert_mentions};
use crate::*;

#[test]
fn flag_beats_variable_beats_file_beats_default() {
    let repo = TestRepo::new(
        "[GLOBAL]\nremote_store_rpc_retries = 5\n\n[python-bootstrap]\nnames = [\"python3.12\"]\n",
    );
    let retries = |o: &Options| o.global.remote_store_rpc_retries;

    let none = TestRepo::new("");
    assert_eq!(retries(&none.options(&[], &[])), 2, "Pants' default");

    let from_file = repo.options(&[], &[]);
    assert_eq!(retries(&from_file), 5);
    assert_eq!(from_file.python_bootstrap.names, ["python3.12"]);
    let source = from_file
        .resolved
        .source(GLOBAL_SCOPE, "remote_store_rpc_retries");
    assert_eq!(source.to_string(), "remex.toml:2");

    let variables = [
        ("REMEX_REMOTE_STORE_RPC_RETRIES", "7"),
        ("REMEX_PYTHON_BOOTSTRAP_NAMES", "python3.11,python3"),
    ];
    let from_variable = repo.options(&variables, &[]);
    assert_eq!(retries(&from_variable), 7);
    assert_eq!(
        from_variable.python_bootstrap.names,
        ["python3.11", "python3"]
    );

    let flags = [
        "--remote-store-rpc-retries=9",
        "--python-bootstrap-names=python3.13",
    ];
    let from_flag = repo.options(&variables, &flags);
    assert_eq!(retries(&from_flag), 9);
    assert_eq!(from_flag.python_bootstrap.names, ["python3.13"]);
    let source = from_flag.resolved.source(PYTHON_BOOTSTRAP_SCOPE, "names");
    assert_eq!(source, Source::Flag("--python-bootstrap-names".into()));
}

#[test]
fn reads_a_pants_users_remote_settings_with_the_same_meaning() {
    // The `[GLOBAL]` remote settings of a `pants.toml`, copied verbatim.
    let repo = TestRepo::new(
        r#"
[GLOBAL]
remote_execution = true
remote_store_address = "grpcs://remote.example.com:443"
remote_execution_address = "grpcs://remote.example.com:443"
remote_instance_name = "main"
remote_execution_extra_platform_properties = [
  "OSFamily=linux",
  "container-image=docker://gcr.io/flame-public/rbe-ubuntu20-04@sha256:abc=def",
]
process_execution_remote_parallelism = 64
remote_ca_certs_path = "certs/ca.pem"
"#,
    );
    let global = repo.options(&[], &[]).global;

    assert!(global.remote_execution);
    let address = RemoteAddress {
        tls: true,
        host: "remote.example.com".into(),
        port: 443,
    };
    assert_eq!(global.remote_store_address.as_ref(), Some(&address));
    assert_eq!(global.remote_execution_address.as_ref(), Some(&address));
    assert_eq!(address.uri(), "https://remote.example.com:443");
    assert_eq!(global.remote_instance_name.as_deref(), Some("main"));
    assert_eq!(
        global.remote_execution_extra_platform_properties,
        [
            ("OSFamily".to_owned(), "linux".to_owned()),
            (
                "container-image".to_owned(),
                "docker://gcr.io/flame-public/rbe-ubuntu20-04@sha256:abc=def".to_owned()
            ),
        ]
    );
    assert_eq!(global.process_execution_remote_parallelism, 64);
    assert_eq!(
        global.remote_ca_certs_path,
        Some(repo.root().join("certs/ca.pem"))
    );

    // What the user did not set keeps Pants' defaults.
    assert!(!global.remote_cache_read && !global.remote_cache_write);
    assert_eq!(global.remote_store_rpc_timeout_millis, 30_000);
    assert_eq!(global.remote_cache_rpc_timeout_millis, 1_500);
    assert_eq!(global.remote_store_chunk_bytes, 1024 * 1024);
    assert_eq!(global.remote_store_batch_api_size_limit, 4 * 1024 * 1024);
    assert_eq!(global.remote_execution_overall_deadline_secs, 3_600);
    assert_eq!(global.cache_content_behavior, CacheContentBehavior::Fetch);
}

#[test]
fn finds_the_root_above_the_working_directory() {
    let repo = TestRepo::new("[GLOBAL]\nlocal_store_dir = \"store\"\n");
    let sub = repo.root().join("src/app");
    std::fs::create_dir_all(&sub).expect("mkdir");

    let options = load(&sub, [], []).expect("loads");
    assert_eq!(options.repo_root, repo.root());
    assert_eq!(options.config_file, Some(repo.root().join(CONFIG_FILE)));
    // A path in remex.toml is relative to the root; on the command line, to where remex runs.
    assert_eq!(options.global.local_store_dir, repo.root().join("store"));
    let flag = load(&sub, [], ["--local-store-dir=here".to_owned()]).expect("loads");
    assert_eq!(flag.global.local_store_dir, sub.join("here"));
}

#[test]
fn without_remex_toml_the_working_directory_is_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = load(dir.path(), [], []).expect("loads");
    assert_eq!(options.repo_root, dir.path());
    assert_eq!(options.config_file, None);
    assert_eq!(options.global.local_store_dir, default_store_dir());
}

#[test]
fn bare_and_negated_flags_switch_booleans() {
    let repo = TestRepo::new(
        "[GLOBAL]\nremote_cache_read = true\nremote_store_address = \"grpc://c:1\"\n",
    );
    assert!(repo.options(&[], &[]).global.remote_cache_read);
    assert!(
        !repo
            .options(&[], &["--no-remote-cache-read"])
            .global
            .remote_cache_read
    );
    let on = repo.options(
        &[("REMEX_REMOTE_CACHE_READ", "false")],
        &["--remote-cache-read"],
    );
    assert!(on.global.remote_cache_read);
    let explicit = repo.options(&[], &["--remote-cache-read=false"]);
    assert!(!explicit.global.remote_cache_read);
}

#[test]
fn a_repeated_list_flag_collects_every_value() {
    let repo = TestRepo::new("[system-binaries]\nsystem_binary_paths = [\"/opt/bin\"]\n");
    let flags = [
        "--system-binaries-system-binary-paths=<PATH>",
        "--system-binaries-system-binary-paths=/usr/bin,/bin",
    ];
    let options = repo.options(&[], &flags);
    assert_eq!(
        options.system_binaries.system_binary_paths,
        ["<PATH>", "/usr/bin", "/bin"]
    );
}

#[test]
fn tables_come_from_toml_tables_variables_and_flags() {
    let repo = TestRepo::new(
        "[GLOBAL]\nremote_store_headers = { x-team = \"build\" }\n\n\
         [environments-preview.names]\nlinux = \"//envs:linux\"\n",
    );
    let options = repo.options(&[], &[]);
    let headers: Vec<_> = options.global.remote_store_headers.iter().collect();
    assert_eq!(headers, [("x-team", "build")]);
    let linux = Address::parse("//envs:linux", "").expect("address");
    assert_eq!(
        options.environments.names,
        BTreeMap::from([("linux".to_owned(), linux)])
    );

    let variable = [("REMEX_REMOTE_EXECUTION_HEADERS", "x-a=1, x-b=2")];
    let flag = ["--remote-store-headers={ \"x-c\" = \"3\" }"];
    let options = repo.options(&variable, &flag);
    let execution: Vec<_> = options.global.remote_execution_headers.iter().collect();
    assert_eq!(execution, [("x-a", "1"), ("x-b", "2")]);
    let store: Vec<_> = options.global.remote_store_headers.iter().collect();
    assert_eq!(store, [("x-c", "3")]);
}

#[test]
fn the_bearer_token_is_read_from_a_file_and_sent_to_both_servers() {
    let repo = TestRepo::new("[GLOBAL]\nremote_oauth_bearer_token = \"@secrets/token\"\n");
    repo.write("secrets/token", "s3cret\n");
    let global = repo.options(&[], &[]).global;
    assert_eq!(
        global
            .remote_oauth_bearer_token
            .as_ref()
            .map(Secret::expose),
        Some("s3cret")
    );
    for headers in [global.store_headers(), global.execution_headers()] {
        let all: Vec<_> = headers.iter().collect();
        assert_eq!(all, [("authorization", "Bearer s3cret")]);
    }
    assert!(
        !format!("{global:?}").contains("s3cret"),
        "the token leaked into Debug"
    );

    let plain = repo.options(&[("REMEX_REMOTE_OAUTH_BEARER_TOKEN", "t0ken")], &[]);
    assert_eq!(
        plain.global.remote_oauth_bearer_token,
        Some(Secret::new("t0ken"))
    );
}

#[test]
fn unknown_variables_warn_only_when_they_look_like_an_option() {
    let repo = TestRepo::new("");
    let variables = [
        ("REMEX_REMOTE_EXECUTON", "true"),
        ("REMEX_TEST_CACHE", "/var/cache"),
    ];
    let options = repo.options(&variables, &[]);
    assert!(!options.global.remote_execution);
    assert_eq!(options.warnings.len(), 1, "{:?}", options.warnings);
    assert_mentions(
        &options.warnings[0],
        &["`REMEX_REMOTE_EXECUTON`", "`REMEX_REMOTE_EXECUTION`"],
    );
}

fn register_tool(registry: &mut OptionRegistry) {
    registry
        .register_scope("mytool", "A plugin's tool")
        .expect("scope");
    let spec = OptionSpec::new(
        "mytool",
        "version",
        OptionType::Text,
        "Which version to run",
    )
    .with_default(OptionValue::Text("1.0".into()))
    .environment_aware();
    registry.register(spec).expect("option");
}

#[test]
fn plugin_options_wait_for_registration_and_then_resolve_like_any_other() {
    let repo = TestRepo::new("[mytool]\nversion = \"2.0\"\n");
    let inputs = repo.inputs(&[], &["--mytool-version=3.0"]);

    // Before plugins are loaded, their scopes are left alone.
    inputs.bootstrap().expect("bootstrap skips plugin scopes");
    let before = inputs
        .resolve(&OptionRegistry::builtin())
        .expect_err("unknown scope");
    assert_mentions(
        &before.to_string(),
        &["remex.toml:1", "unknown scope `[mytool]`"],
    );

    let mut registry = OptionRegistry::builtin();
    register_tool(&mut registry);
    let options = inputs.resolve(&registry).expect("registered");
    let version = options.resolved.get("mytool", "version").expect("resolved");
    assert_eq!(version.value, Some(OptionValue::Text("3.0".into())));
    assert_eq!(version.source, Source::Flag("--mytool-version".into()));
}

#[test]
fn bootstrap_still_checks_the_builtin_scopes() {
    let repo = TestRepo::new("[plugins]\ndeadline = 5\n");
    let error = repo.inputs(&[], &[]).bootstrap().expect_err("unknown key");
    assert_mentions(
        &error.to_string(),
        &["remex.toml:2", "`[plugins].deadline`", "`deadline_ms`"],
    );
}

#[test]
fn registration_refuses_options_that_would_clash() {
    let mut registry = OptionRegistry::builtin();
    let builtin = registry
        .register_scope("protoc", "again")
        .expect_err("built in");
    assert!(
        matches!(builtin, RegistryError::BuiltinScope { .. }),
        "{builtin}"
    );

    registry.register_scope("remote", "clashes").expect("scope");
    let spec = OptionSpec::new("remote", "store_address", OptionType::Text, "");
    let clash = registry.register(spec).expect_err("flag clash");
    assert_mentions(
        &clash.to_string(),
        &["`--remote-store-address`", "[GLOBAL].remote_store_address"],
    );

    registry.register_scope("tool", "dict").expect("scope");
    let dict = OptionSpec::new("tool", "env", OptionType::Dict, "").environment_aware();
    assert!(matches!(
        registry.register(dict),
        Err(RegistryError::NotAField { .. })
    ));
    let bad = OptionSpec::new("tool", "jobs", OptionType::Integer { min: 1 }, "")
        .with_default(OptionValue::Integer(0));
    assert!(matches!(
        registry.register(bad),
        Err(RegistryError::BadDefault { .. })
    ));
    let named = OptionSpec::new("tool", "Bad-Name", OptionType::Text, "");
    assert!(matches!(
        registry.register(named),
        Err(RegistryError::InvalidName { .. })
    ));
    let unscoped = OptionSpec::new("nowhere", "x", OptionType::Text, "");
    assert!(matches!(
        registry.register(unscoped),
        Err(RegistryError::UnknownScope { .. })
    ));
    let reserved = OptionSpec::new("extra", "platform_properties", OptionType::TextList, "");
    registry.register_scope("extra", "").expect("scope");
    let reserved = registry
        .register(reserved.environment_aware())
        .expect_err("reserved field");
    assert!(
        matches!(reserved, RegistryError::ReservedField { .. }),
        "{reserved}"
    );
}

/// The names of a struct's fields, checked by the compiler to be all of them: the pattern has
/// no `..`, so a field added to the struct and not here fails to compile.
macro_rules! field_names {
    ($value:expr, $ty:ident { $($field:ident),* $(,)? }) => {{
        let $ty { $($field: _),* } = $value;
        BTreeSet::from([$(stringify!($field)),*])
    }};
}

fn spec_names<'a>(registry: &'a OptionRegistry, scope: &'a str) -> BTreeSet<&'a str> {
    registry
        .scope_specs(scope)
        .map(|s| s.name.as_str())
        .collect()
}

#[test]
fn every_typed_option_has_a_spec_and_every_spec_a_typed_option() {
    let registry = OptionRegistry::builtin();
    let options = TestRepo::new("").options(&[], &[]);
    let Options {
        repo_root: _,
        config_file: _,
        global,
        plugins,
        policy,
        python_bootstrap,
        system_binaries,
        protoc,
        environments,
        resolved: _,
        warnings: _,
    } = options;

    let global_fields = field_names!(
        global,
        GlobalOptions {
            remote_execution,
            remote_cache_read,
            remote_cache_write,
            remote_store_address,
            remote_execution_address,
            remote_instance_name,
            remote_execution_extra_platform_properties,
            process_execution_remote_parallelism,
            remote_ca_certs_path,
            remote_client_certs_path,
            remote_client_key_path,
            remote_oauth_bearer_token,
            remote_store_headers,
            remote_execution_headers,
            remote_store_chunk_bytes,
            remote_store_rpc_retries,
            remote_store_rpc_concurrency,
            remote_store_rpc_timeout_millis,
            remote_store_batch_api_size_limit,
            remote_cache_rpc_concurrency,
            remote_cache_rpc_timeout_millis,
            remote_execution_overall_deadline_secs,
            process_execution_local_parallelism,
            process_execution_cache_namespace,
            cache_content_behavior,
            local_store_dir,
        }
    );
    let scopes = [
        (GLOBAL_SCOPE, global_fields),
        (
            PLUGINS_SCOPE,
            field_names!(
                plugins,
                PluginOptions {
                    paths,
                    deadline_ms,
                    memory_limit_mib
                }
            ),
        ),
        (
            POLICY_SCOPE,
            field_names!(policy, PolicyOptions { plugins, mode }),
        ),
        (
            PYTHON_BOOTSTRAP_SCOPE,
            field_names!(
                python_bootstrap,
                PythonBootstrapOptions { search_path, names }
            ),
        ),
        (
            SYSTEM_BINARIES_SCOPE,
            field_names!(
                system_binaries,
                SystemBinariesOptions {
                    system_binary_paths
                }
            ),
        ),
        (
            PROTOC_SCOPE,
            field_names!(protoc, ProtocOptions { archive, sha256 }),
        ),
        (
            ENVIRONMENTS_SCOPE,
            field_names!(environments, EnvironmentsOptions { names }),
        ),
    ];
    for (scope, fields) in &scopes {
        assert_eq!(
            fields,
            &spec_names(&registry, scope),
            "fields and specs of `[{scope}]`"
        );
    }
    let typed: BTreeSet<&str> = scopes.iter().map(|(scope, _)| *scope).collect();
    let registered: BTreeSet<&str> = registry.scopes().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(typed, registered, "every built-in scope has a typed struct");
}

/// A valid value of `spec`'s type other than its default.
fn other_value(spec: &OptionSpec) -> OptionValue {
    match (&spec.ty, &spec.default) {
        (OptionType::Bool, default) => OptionValue::Bool(default != &Some(OptionValue::Bool(true))),
        (OptionType::Integer { .. }, Some(OptionValue::Integer(i))) => OptionValue::Integer(i + 1),
        (OptionType::Integer { min }, _) => OptionValue::Integer(min + 1),
        (OptionType::Address, _) => OptionValue::Text("grpc://other:1".into()),
        (OptionType::Choice(choices), default) => {
            let other = choices
                .iter()
                .find(|c| default != &Some(OptionValue::Text((*c).clone())));
            OptionValue::Text(other.expect("a second choice").clone())
        }
        (OptionType::Text | OptionType::Path | OptionType::Secret, _) => {
            OptionValue::Text("other".into())
        }
        (OptionType::TextList | OptionType::KeyValueList, _) => {
            OptionValue::List(vec!["k=v".into()])
        }
        (OptionType::Dict, _) => OptionValue::Dict(BTreeMap::from([("k".into(), "//:k".into())])),
    }
}

#[test]
fn every_spec_is_read_into_the_typed_options() {
    let registry = OptionRegistry::builtin();
    let repo = TestRepo::new("");
    let inputs = repo.inputs(&[], &[]);
    let typed = |resolved| {
        let o = Options::build(&inputs, resolved, Vec::new()).expect("builds");
        format!(
            "{:?}",
            (
                o.global,
                o.plugins,
                o.policy,
                o.python_bootstrap,
                o.system_binaries,
                o.protoc,
                o.environments
            )
        )
    };
    let baseline = typed(defaults(&registry));

    for spec in registry.specs() {
        let mut resolved = defaults(&registry);
        resolved.set(spec, other_value(spec), Source::Flag(spec.key().flag()));
        assert_ne!(
            typed(resolved),
            baseline,
            "`{}` changes nothing it is read into",
            spec.key()
        );
    }
}

#[test]
fn help_lists_every_option_the_parser_reads() {
    let registry = OptionRegistry::builtin();
    for scope in registry.scopes() {
        let help = scope_help(&registry, &scope.name, None).expect("a known scope");
        for spec in registry.scope_specs(&scope.name) {
            let key = spec.key();
            let block = help
                .split("\n\n")
                .find(|block| block.starts_with(&format!("{}\n", spec.name)))
                .unwrap_or_else(|| panic!("no entry for `{key}` in:\n{help}"));
            let flag = key.flag();
            let variable = key.variable();
            assert_mentions(block, &[&spec.ty.to_string(), &flag, &variable, &spec.help]);
        }
        let entries = help.split("\n\n").count() - 1;
        assert_eq!(entries, registry.scope_specs(&scope.name).count(), "{help}");
    }
}

#[test]
fn help_shows_current_values_and_their_sources_but_never_secrets() {
    let repo = TestRepo::new(
        "[GLOBAL]\nremote_instance_name = \"main\"\nremote_oauth_bearer_token = \"s3cret\"\n",
    );
    let options = repo.options(&[("REMEX_REMOTE_STORE_RPC_RETRIES", "4")], &[]);
    let registry = OptionRegistry::builtin();
    let help = scope_help(&registry, "GLOBAL", Some(&options.resolved)).expect("global");
    assert_mentions(
        &help,
        &[
            "current: \"main\" (remex.toml:2)",
            "current: 4 (environment variable `REMEX_REMOTE_STORE_RPC_RETRIES`)",
            "current: <hidden> (remex.toml:3)",
            "process_execution_remote_parallelism\n    type: int, default: 128",
        ],
    );
    assert!(!help.contains("s3cret"), "{help}");
    assert_eq!(scope_for_help(&registry, "global"), Some(GLOBAL_SCOPE));
    assert_eq!(scope_for_help(&registry, "nope"), None);
}

#[test]
fn default_paths_hold_the_placeholder_not_the_hosts_path() {
    let options = TestRepo::new("").options(&[("PATH", "/host/bin")], &[]);
    assert_eq!(options.python_bootstrap.search_path, [PATH_PLACEHOLDER]);
    assert_eq!(options.python_bootstrap.names, ["python3"]);
    assert_eq!(
        options.system_binaries.system_binary_paths,
        ["/usr/bin", "/bin", "/usr/local/bin"]
    );
    assert_eq!(
        options.plugins.deadline(),
        std::time::Duration::from_secs(5)
    );
    assert_eq!(options.plugins.memory_limit_bytes(), 256 << 20);
    assert_eq!(options.plugins.paths, Vec::<PathBuf>::new());
}

#[test]
fn policy_options_read_the_variables_the_policy_gate_documents() {
    let variables = [
        (
            "REMEX_POLICY_PLUGINS",
            "policies/no-network.wasm, policies/timeouts.wasm",
        ),
        ("REMEX_POLICY_MODE", "warn"),
    ];
    let policy = TestRepo::new("").options(&variables, &[]).policy;
    let expected = ["policies/no-network.wasm", "policies/timeouts.wasm"].map(PathBuf::from);
    assert_eq!(policy.plugins, expected);
    assert_eq!(policy.mode, PolicyMode::Warn);
    let error = TestRepo::new("[policy]\nmode = \"audit\"\n").error(&[], &[]);
    assert_mentions(&error, &["remex.toml:2", "`enforce` or `warn`", "`audit`"]);
}
