//! Environment resolution over real BUILD files: matching, fallback chains, and the override
//! order of environment-aware options.

use remex_model::{FieldValue, KindSpec, Target};

use crate::test_support::{TestRepo, assert_mentions};
use crate::*;

const LINUX: &str = "linux_x86_64";

/// A kind of ordinary target, for targets that run somewhere.
fn job_kind() -> KindSpec {
    KindSpec {
        name: "job".into(),
        help: "Runs nothing".into(),
        fields: Vec::new(),
    }
}

struct Setup {
    options: Options,
    registry: OptionRegistry,
    targets: Vec<Target>,
}

fn setup(repo: &TestRepo, variables: &[(&str, &str)]) -> Setup {
    let registry = OptionRegistry::builtin();
    let options = repo
        .inputs(variables, &[])
        .resolve(&registry)
        .unwrap_or_else(|e| panic!("options: {e}"));
    let mut kinds = environment_kinds(&registry);
    kinds.push(job_kind());
    let targets = remex_buildfile::evaluate_repository(repo.root(), &kinds)
        .unwrap_or_else(|e| panic!("BUILD files: {e}"));
    Setup {
        options,
        registry,
        targets,
    }
}

impl Setup {
    fn resolve_on(&self, host: &str) -> Result<Environments, EnvironmentError> {
        Environments::resolve(&self.options, &self.registry, &self.targets, host)
    }

    fn environment_of(&self, address: &str) -> ResolvedEnvironment {
        let environments = self
            .resolve_on(LINUX)
            .unwrap_or_else(|e| panic!("resolves: {e}"));
        let target = self.target(address);
        environments.for_target(target).expect("resolved").clone()
    }

    fn error(&self, host: &str) -> String {
        match self.resolve_on(host) {
            Ok(environments) => panic!("should not resolve: {environments:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn target(&self, address: &str) -> &Target {
        self.targets
            .iter()
            .find(|t| t.address.to_string() == address)
            .unwrap_or_else(|| panic!("no target {address}"))
    }
}

fn option<'a>(environment: &'a ResolvedEnvironment, scope: &str, name: &str) -> &'a FieldValue {
    let key = (scope.to_owned(), name.to_owned());
    environment
        .environment
        .options
        .get(&key)
        .expect("option passed to plugins")
}

fn text_list(items: &[&str]) -> FieldValue {
    FieldValue::TextList(items.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn without_names_remote_execution_applies_to_every_target() {
    let repo = TestRepo::new(
        "[GLOBAL]\nremote_execution_extra_platform_properties = [\"OSFamily=linux\"]\n",
    );
    repo.write("BUILD", "job(name = \"a\")\n");

    let local = setup(&repo, &[]).environment_of("//:a");
    assert!(!local.environment.remote);
    assert_eq!(local.environment.name, "__local__");
    assert!(local.environment.platform.is_empty(), "{local:?}");

    let remote_on = [
        ("REMEX_REMOTE_EXECUTION", "true"),
        ("REMEX_REMOTE_STORE_ADDRESS", "grpc://cas:1"),
        ("REMEX_REMOTE_EXECUTION_ADDRESS", "grpc://exec:1"),
    ];
    let remote = setup(&repo, &remote_on).environment_of("//:a");
    assert!(remote.environment.remote);
    assert_eq!(
        remote.environment.platform,
        [("OSFamily".into(), "linux".into())]
    );
}

#[test]
fn without_names_a_named_environment_is_an_error_at_the_target() {
    let repo = TestRepo::new("");
    repo.write(
        "app/BUILD",
        "\njob(name = \"a\", environment = \"linux\")\n",
    );
    let error = setup(&repo, &[]).error(LINUX);
    assert_mentions(
        &error,
        &[
            "app/BUILD:2",
            "`//app:a`",
            "`environment = \"linux\"`",
            "defines no environments",
        ],
    );
}

const NAMED: &str = r#"
[environments-preview.names]
remote = "//envs:remote"
mac = "//envs:mac"
linux = "//envs:linux"
"#;

const ENVIRONMENTS: &str = r#"
remote_environment(
    name = "remote",
    extra_platform_properties = ["OSFamily=linux", "pool=large"],
    fallback_environment = "mac",
)
local_environment(
    name = "mac",
    compatible_platforms = ["macos_arm64"],
    fallback_environment = "linux",
)
local_environment(
    name = "linux",
    compatible_platforms = ["linux_x86_64", "linux_arm64"],
)
"#;

fn named_repo(global: &str) -> TestRepo {
    let repo = TestRepo::new(&format!("[GLOBAL]\n{global}\n{NAMED}"));
    repo.write("envs/BUILD", ENVIRONMENTS);
    repo.write("BUILD", "job(name = \"a\", environment = \"remote\")\n");
    repo
}

const REMOTE_ON: &str = "remote_execution = true\nremote_store_address = \"grpc://cas:1\"\n\
                         remote_execution_address = \"grpc://exec:1\"";

#[test]
fn a_remote_environment_is_used_when_remote_execution_is_on() {
    let resolved = setup(&named_repo(REMOTE_ON), &[]).environment_of("//:a");
    assert!(resolved.environment.remote);
    assert_eq!(resolved.environment.name, "remote");
    assert_eq!(
        resolved.environment.platform,
        [
            ("OSFamily".into(), "linux".into()),
            ("pool".into(), "large".into())
        ]
    );
    assert_eq!(resolved.platform.as_deref(), Some(LINUX));
    assert_eq!(resolved.chain, ["remote"]);
}

#[test]
fn fallbacks_are_followed_until_one_can_be_used() {
    let setup = setup(&named_repo(""), &[]);

    // Remote execution is off, and this machine is not a Mac: `remote` → `mac` → `linux`.
    let resolved = setup.environment_of("//:a");
    assert!(!resolved.environment.remote);
    assert_eq!(resolved.environment.name, "linux");
    assert_eq!(resolved.chain, ["remote", "mac", "linux"]);
    assert_eq!(
        resolved.target.as_ref().map(ToString::to_string).as_deref(),
        Some("//envs:linux")
    );

    // On a Mac the chain stops one step earlier.
    let on_mac = setup.resolve_on("macos_arm64").expect("resolves");
    let mac = on_mac.for_target(setup.target("//:a")).expect("resolved");
    assert_eq!(mac.chain, ["remote", "mac"]);
}

#[test]
fn no_usable_environment_names_the_whole_chain() {
    let setup = setup(&named_repo(""), &[]);
    // On a machine that is neither: `linux` has no fallback.
    let error = setup.error("freebsd_x86_64");
    assert_mentions(
        &error,
        &[
            "BUILD:1",
            "no usable environment for `//:a`",
            "`remote` is remote and `[GLOBAL].remote_execution` is off (default)",
            "`mac` is local for `macos_arm64` only",
            "`linux` is local for `linux_x86_64` or `linux_arm64` only",
            "this machine is `freebsd_x86_64`",
            "give `linux` (envs/BUILD:12) a `fallback_environment`",
        ],
    );
}

#[test]
fn fallback_cycles_are_errors() {
    let repo = TestRepo::new("[environments-preview.names]\na = \"//:a\"\nb = \"//:b\"\n");
    repo.write(
        "BUILD",
        "remote_environment(name = \"a\", fallback_environment = \"b\")\n\
         remote_environment(name = \"b\", fallback_environment = \"a\")\n\
         job(name = \"j\", environment = \"a\")\n",
    );
    let error = setup(&repo, &[]).error(LINUX);
    assert_mentions(&error, &["BUILD:3", "cycle", "`a` → `b` → `a`"]);
}

#[test]
fn unknown_names_are_errors_with_a_suggestion() {
    let repo = named_repo("");
    repo.write("app/BUILD", "job(name = \"t\", environment = \"linx\")\n");
    assert_mentions(
        &setup(&repo, &[]).error(LINUX),
        &[
            "app/BUILD:1",
            "`//app:t`",
            "`environment = \"linx\"`",
            "did you mean `linux`?",
        ],
    );

    let repo = named_repo("");
    repo.write(
        "envs/BUILD",
        &ENVIRONMENTS.replace(
            "fallback_environment = \"mac\"",
            "fallback_environment = \"macc\"",
        ),
    );
    assert_mentions(
        &setup(&repo, &[]).error(LINUX),
        &[
            "envs/BUILD:2",
            "`//envs:remote`",
            "`fallback_environment = \"macc\"`",
            "did you mean `mac`?",
        ],
    );
}

#[test]
fn names_must_map_to_environment_targets() {
    let repo = TestRepo::new(
        "[GLOBAL]\n\n[environments-preview]\nnames = { x = \"//:job\", y = \"//:missing\" }\n",
    );
    repo.write("BUILD", "job(name = \"job\")\n");
    assert_mentions(
        &setup(&repo, &[]).error(LINUX),
        &[
            "remex.toml:4",
            "maps `x` to `//:job`",
            "a `job` (BUILD:1)",
            "`remote_environment`",
        ],
    );
    let repo = TestRepo::new("[environments-preview]\nnames = { y = \"//:missing\" }\n");
    repo.write("BUILD", "job(name = \"job\")\n");
    assert_mentions(
        &setup(&repo, &[]).error(LINUX),
        &["remex.toml:2", "no BUILD file defines"],
    );
}

#[test]
fn environment_fields_are_checked() {
    let repo = TestRepo::new(&format!(
        "[GLOBAL]\n{REMOTE_ON}\n[environments-preview.names]\nr = \"//:r\"\n"
    ));
    repo.write(
        "BUILD",
        "remote_environment(name = \"r\", platform = \"linux_riscv\")\n\
         job(name = \"j\", environment = \"r\")\n",
    );
    assert_mentions(
        &setup(&repo, &[]).error(LINUX),
        &[
            "BUILD:1",
            "field `platform`",
            "`linux_riscv`",
            "`linux_x86_64`",
        ],
    );

    repo.write(
        "BUILD",
        "remote_environment(name = \"r\", extra_platform_properties = [\"pool\"])\n\
         job(name = \"j\", environment = \"r\")\n",
    );
    assert_mentions(
        &setup(&repo, &[]).error(LINUX),
        &[
            "BUILD:1",
            "`extra_platform_properties`",
            "`key=value`",
            "`pool`",
        ],
    );
}

#[test]
fn global_platform_properties_are_ignored_with_a_warning_once_names_exist() {
    let repo = named_repo("remote_execution_extra_platform_properties = [\"OSFamily=linux\"]");
    let options = setup(&repo, &[]).options;
    assert_eq!(options.warnings.len(), 1, "{:?}", options.warnings);
    assert_mentions(
        &options.warnings[0],
        &[
            "`[GLOBAL].remote_execution_extra_platform_properties` (remex.toml:2) is ignored",
            "`extra_platform_properties` field of each `remote_environment`",
        ],
    );
}

#[test]
fn an_environment_field_beats_remex_toml_which_beats_the_default() {
    let repo = TestRepo::new(&format!(
        "[GLOBAL]\n{REMOTE_ON}\n[python-bootstrap]\nnames = [\"python3.12\"]\n\n\
         [environments-preview.names]\nremote = \"//:remote\"\nlocal = \"//:local\"\n"
    ));
    repo.write(
        "BUILD",
        "remote_environment(name = \"remote\", python_bootstrap_names = [\"python3.11\"])\n\
         local_environment(name = \"local\", python_bootstrap_search_path = [\"/opt/py/bin\"])\n\
         job(name = \"r\", environment = \"remote\")\n\
         job(name = \"l\", environment = \"local\")\n\
         job(name = \"d\")\n",
    );
    let setup = setup(&repo, &[]);
    let names = (PYTHON_BOOTSTRAP_SCOPE, "names");
    let search_path = (PYTHON_BOOTSTRAP_SCOPE, "search_path");

    let remote = setup.environment_of("//:r");
    assert_eq!(
        option(&remote, names.0, names.1),
        &text_list(&["python3.11"]),
        "field wins"
    );
    assert_eq!(
        option(&remote, search_path.0, search_path.1),
        &text_list(&["<PATH>"]),
        "default"
    );

    let local = setup.environment_of("//:l");
    assert_eq!(
        option(&local, names.0, names.1),
        &text_list(&["python3.12"]),
        "remex.toml"
    );
    assert_eq!(
        option(&local, search_path.0, search_path.1),
        &text_list(&["/opt/py/bin"])
    );

    // `__local__` is the first local environment compatible with this machine.
    let default = setup.environment_of("//:d");
    assert_eq!(default.environment.name, "local");
}

#[test]
fn a_remote_environments_path_placeholder_is_never_the_hosts_path() {
    let repo = TestRepo::new(&format!(
        "[GLOBAL]\n{REMOTE_ON}\n\
         [system-binaries]\nsystem_binary_paths = [\"<PATH>\", \"/usr/bin\"]\n\
         [environments-preview.names]\nremote = \"//:remote\"\n"
    ));
    repo.write(
        "BUILD",
        "remote_environment(name = \"remote\")\njob(name = \"r\", environment = \"remote\")\n",
    );
    let host_path = "/home/me/.local/bin:/opt/host-only/bin";
    let setup = setup(&repo, &[("PATH", host_path), ("REMEX_PATH", host_path)]);
    let remote = setup.environment_of("//:r");

    let paths = option(&remote, SYSTEM_BINARIES_SCOPE, "system_binary_paths");
    assert_eq!(paths, &text_list(&["<PATH>", "/usr/bin"]));
    let python = option(&remote, PYTHON_BOOTSTRAP_SCOPE, "search_path");
    assert_eq!(python, &text_list(&[PATH_PLACEHOLDER]));
    let everything = format!("{:?}", remote.environment);
    assert!(
        !everything.contains("/opt/host-only/bin"),
        "host PATH leaked: {everything}"
    );
}

#[test]
fn plugins_see_tool_options_but_not_host_options() {
    let repo = TestRepo::new(&format!(
        "[protoc]\narchive = \"tools/protoc.zip\"\nsha256 = \"{}\"\n",
        "ab".repeat(32)
    ));
    repo.write("BUILD", "job(name = \"a\")\n");
    let resolved = setup(&repo, &[]).environment_of("//:a");
    let archive = option(&resolved, PROTOC_SCOPE, "archive");
    assert_eq!(archive, &FieldValue::Text("tools/protoc.zip".into()));
    let scopes: Vec<&str> = resolved
        .environment
        .options
        .keys()
        .map(|(s, _)| s.as_str())
        .collect();
    assert!(
        !scopes.iter().any(|s| [
            GLOBAL_SCOPE,
            PLUGINS_SCOPE,
            POLICY_SCOPE,
            ENVIRONMENTS_SCOPE
        ]
        .contains(s)),
        "{scopes:?}"
    );
}

#[test]
fn environment_kinds_carry_a_field_per_environment_aware_option() {
    let mut registry = OptionRegistry::builtin();
    registry.register_scope("mytool", "").expect("scope");
    let spec =
        OptionSpec::new("mytool", "version", OptionType::Text, "Which version").environment_aware();
    registry.register(spec).expect("option");

    for kind in environment_kinds(&registry) {
        let fields: Vec<&str> = kind.fields.iter().map(|f| f.name.as_str()).collect();
        for expected in [
            "fallback_environment",
            "python_bootstrap_search_path",
            "python_bootstrap_names",
            "system_binaries_system_binary_paths",
            "mytool_version",
        ] {
            assert!(
                fields.contains(&expected),
                "`{}` lacks `{expected}`: {fields:?}",
                kind.name
            );
        }
        let help = kind_help(&kind, &registry, None);
        assert_mentions(
            &help,
            &[
                "python_bootstrap_search_path\n    type: list[str], default: none",
                "when unset: `[python-bootstrap].search_path` = [\"<PATH>\"] (default)",
            ],
        );
    }
}
