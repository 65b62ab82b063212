//! The bundled `shell` plugin: its description and its plans.

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use remex_model::{Environment, FieldType, FieldValue, Process};

use super::{FakeServices, list, load, services, target, text};
use crate::{LocalHostServices, Plugin, PluginError, PluginHost, PluginLimits};

static SHELL: LazyLock<Plugin> = LazyLock::new(|| {
    let host = PluginHost::new(PluginLimits::default(), None).expect("host starts");
    load(&host, "bundled:shell", remex_bundled::SHELL)
});

fn plan(
    target: &remex_model::Target,
    environment: &Environment,
    fake: &Arc<FakeServices>,
) -> Result<Vec<Process>, PluginError> {
    SHELL.plan(
        target,
        environment,
        Path::new("/nonexistent-repo"),
        &services(fake),
    )
}

#[test]
fn describes_shell_command() {
    assert_eq!(SHELL.name(), "shell");
    assert_eq!(SHELL.version(), "0.1.0");
    let kinds: Vec<&str> = SHELL.kinds().iter().map(|k| k.name.as_str()).collect();
    assert_eq!(kinds, ["shell_command"]);

    let fields: Vec<(&str, FieldType, bool)> = SHELL.kinds()[0]
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.ty, f.required))
        .collect();
    assert_eq!(
        fields,
        [
            ("command", FieldType::Text, true),
            ("outputs", FieldType::TextList, false),
            ("tools", FieldType::TextList, false),
            ("sources", FieldType::Sources, false),
            ("timeout", FieldType::Integer, false),
            ("extra_env_vars", FieldType::TextList, false),
        ]
    );
}

#[test]
fn plans_one_shell_process() {
    let target = target(
        "//app:pack",
        "shell_command",
        &[
            ("command", text("zip -r out.zip src && mkdir -p dist")),
            ("outputs", list(&["out.zip", "dist/"])),
            ("tools", list(&["zip", "mkdir"])),
            ("sources", list(&["app/src/a.txt", "app/src/b.txt"])),
            ("timeout", FieldValue::Integer(90)),
            ("extra_env_vars", list(&["LANG=C", "EMPTY="])),
        ],
    );
    let fake = FakeServices::with(&[("zip", "/usr/bin/zip"), ("mkdir", "/bin/mkdir")]);

    let processes = plan(&target, &Environment::local(), &fake).expect("plans");

    let expected = Process {
        description: "run shell_command //app:pack".to_owned(),
        argv: ["/bin/sh", "-c", "zip -r out.zip src && mkdir -p dist"]
            .map(String::from)
            .to_vec(),
        env: [("EMPTY", ""), ("LANG", "C"), ("PATH", "/usr/bin:/bin")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        input_files: vec!["app/src/a.txt".to_owned(), "app/src/b.txt".to_owned()],
        output_files: vec!["out.zip".to_owned()],
        output_directories: vec!["dist".to_owned()],
        working_directory: "app".to_owned(),
        timeout: Some(Duration::from_secs(90)),
        platform: Vec::new(),
    };
    assert_eq!(processes, [expected]);
}

#[test]
fn looks_for_tools_on_the_default_search_path() {
    let target = target(
        "//:t",
        "shell_command",
        &[("command", text("zip")), ("tools", list(&["zip"]))],
    );
    let fake = FakeServices::with(&[("zip", "/usr/bin/zip")]);

    plan(&target, &Environment::local(), &fake).expect("plans");

    let search_path = ["/usr/bin", "/bin"].map(String::from).to_vec();
    assert_eq!(
        fake.asked(),
        [("__local__".to_owned(), "zip".to_owned(), search_path)]
    );
}

#[test]
fn looks_for_tools_on_the_environments_system_binary_paths() {
    let target = target(
        "//:t",
        "shell_command",
        &[("command", text("zip")), ("tools", list(&["zip"]))],
    );
    let mut environment = Environment::local();
    environment.options.insert(
        (
            "system-binaries".to_owned(),
            "system_binary_paths".to_owned(),
        ),
        list(&["/opt/tools/bin", "<PATH>"]),
    );
    let fake = FakeServices::with(&[("zip", "/opt/tools/bin/zip")]);

    let processes = plan(&target, &environment, &fake).expect("plans");

    let search_path = ["/opt/tools/bin", "<PATH>"].map(String::from).to_vec();
    assert_eq!(
        fake.asked(),
        [("__local__".to_owned(), "zip".to_owned(), search_path)]
    );
    assert_eq!(
        processes[0].env.get("PATH").map(String::as_str),
        Some("/opt/tools/bin")
    );
}

#[test]
fn sets_no_path_without_tools() {
    let target = target("//:t", "shell_command", &[("command", text("true"))]);
    let fake = FakeServices::with(&[]);

    let processes = plan(&target, &Environment::local(), &fake).expect("plans");

    assert!(processes[0].env.is_empty(), "{:?}", processes[0].env);
    assert!(fake.asked().is_empty());
}

#[test]
fn a_missing_tool_is_a_plan_error_naming_it_and_the_option() {
    let target = target(
        "//app:pack",
        "shell_command",
        &[("command", text("unzip x")), ("tools", list(&["unzip"]))],
    );
    let environment = Environment {
        name: "linux_ci".to_owned(),
        remote: true,
        ..Environment::local()
    };

    let err = plan(&target, &environment, &FakeServices::with(&[])).err();

    let Some(PluginError::Plan { site, message }) = &err else {
        panic!("expected a plan error, got {err:?}");
    };
    assert_eq!(site.plugin, "shell@0.1.0");
    assert_eq!(site.target.as_deref(), Some("//app:pack"));
    for needle in [
        "`unzip`",
        "`linux_ci`",
        "`[system-binaries].system_binary_paths`",
    ] {
        assert!(
            message.contains(needle),
            "{needle} missing from {message:?}"
        );
    }
}

#[test]
fn rejects_outputs_outside_the_working_directory() {
    for output in ["../x", "/abs", "a/../../b"] {
        let target = target(
            "//app:t",
            "shell_command",
            &[("command", text("true")), ("outputs", list(&[output]))],
        );
        let err = plan(&target, &Environment::local(), &FakeServices::with(&[])).err();
        assert!(
            matches!(err, Some(PluginError::Plan { .. })),
            "{output}: {err:?}"
        );
    }
}

#[test]
fn rejects_malformed_env_vars_and_timeouts() {
    let bad_env = target(
        "//:t",
        "shell_command",
        &[
            ("command", text("true")),
            ("extra_env_vars", list(&["NOVALUE"])),
        ],
    );
    let bad_timeout = target(
        "//:t",
        "shell_command",
        &[
            ("command", text("true")),
            ("timeout", FieldValue::Integer(0)),
        ],
    );
    for target in [bad_env, bad_timeout] {
        let err = plan(&target, &Environment::local(), &FakeServices::with(&[])).err();
        assert!(matches!(err, Some(PluginError::Plan { .. })), "{err:?}");
    }
}

#[test]
fn an_unknown_kind_names_the_kind() {
    let target = target("//:t", "python_tests", &[]);
    let err = plan(&target, &Environment::local(), &FakeServices::with(&[])).err();
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        message,
        "plugin `shell@0.1.0` planning `//:t`: the plugin does not provide the target kind \
         `python_tests`"
    );
}

#[test]
fn finds_real_tools_with_local_host_services() {
    let target = target(
        "//:t",
        "shell_command",
        &[("command", text("sh -c true")), ("tools", list(&["sh"]))],
    );
    let services: Arc<dyn crate::HostServices> = Arc::new(LocalHostServices::new());

    let processes = SHELL
        .plan(&target, &Environment::local(), Path::new("."), &services)
        .expect("plans");

    let path = processes[0].env.get("PATH").cloned().unwrap_or_default();
    assert!(path == "/usr/bin" || path == "/bin", "{path}");
}

#[test]
fn plans_from_a_tokio_blocking_thread() {
    for flavor in ["multi_thread", "current_thread"] {
        let runtime = match flavor {
            "multi_thread" => tokio::runtime::Builder::new_multi_thread().build(),
            _ => tokio::runtime::Builder::new_current_thread().build(),
        }
        .expect("runtime starts");
        let target = target("//:t", "shell_command", &[("command", text("true"))]);

        let planned = runtime.block_on(async move {
            let fake = FakeServices::with(&[]);
            tokio::task::spawn_blocking(move || plan(&target, &Environment::local(), &fake))
                .await
                .expect("blocking task completes")
        });

        assert!(planned.is_ok(), "{flavor}: {planned:?}");
    }
}

/// Not an assertion: prints the cost of one `plan` call, for `--nocapture` readers.
#[test]
fn measures_plan_cost() {
    let target = target(
        "//app:pack",
        "shell_command",
        &[("command", text("true")), ("tools", list(&["zip"]))],
    );
    let fake = FakeServices::with(&[("zip", "/usr/bin/zip")]);
    plan(&target, &Environment::local(), &fake).expect("plans");

    let calls = 200;
    let start = Instant::now();
    for _ in 0..calls {
        plan(&target, &Environment::local(), &fake).expect("plans");
    }
    let per_call = start.elapsed() / calls;
    println!("shell plan: {per_call:?} per call ({calls} calls)");
}
