//! `plan` run natively against the SDK's fake host.

use remex_plugin_sdk::testing::{FakeHost, environment, target, with_option};
use remex_plugin_sdk::{EnvVar, FieldValue, Process, Toolchain};

use crate::Python;

const PYTHON: &str = "/usr/bin/python3";

fn version_probe(path: &str) -> [&str; 3] {
    [path, "-c", crate::interpreter::VERSION_SCRIPT_FOR_TESTS]
}

fn host(version: &str) -> FakeHost {
    FakeHost::new().binary("python3", PYTHON).probe(
        &version_probe(PYTHON),
        0,
        &format!("{version}\n"),
    )
}

fn tests_target() -> remex_plugin_sdk::testing::TargetBuilder {
    target("//src/app:tests", "python_tests")
        .list("sources", &["src/app/test_greet.py"])
        .text("source_root", "src")
        .dependency("//src/proto:greeting", &["src/proto/greeting_pb2.py"])
}

fn plan_one(target: remex_plugin_sdk::Target) -> Result<Process, String> {
    let mut processes = Python::plan(target, environment("__local__")).map_err(|e| e.message)?;
    assert_eq!(processes.len(), 1, "{processes:?}");
    Ok(processes.remove(0))
}

#[test]
fn runs_unittest_on_the_test_modules_with_only_the_interpreter_on_path() {
    let _host = host("3.11.2").install();
    let process = plan_one(tests_target().build()).expect("plans");

    assert_eq!(process.argv, [PYTHON, "-m", "unittest", "app.test_greet"]);
    assert_eq!(
        process.inputs,
        ["src/app/test_greet.py", "src/proto/greeting_pb2.py"]
    );
    assert!(
        process.env.contains(&EnvVar::new("PATH", "/usr/bin")),
        "{:?}",
        process.env
    );
    assert!(
        process.env.contains(&EnvVar::new("PYTHONPATH", "src")),
        "{:?}",
        process.env
    );
}

#[test]
fn skips_interpreters_that_miss_the_constraints() {
    let _host = host("3.7.1")
        .binary("python3.12", "/opt/py/bin/python3.12")
        .probe(&version_probe("/opt/py/bin/python3.12"), 0, "3.12.0\n")
        .install();
    let target = tests_target()
        .list("interpreter_constraints", &[">=3.8"])
        .build();
    let env = with_option(
        environment("ci"),
        "python-bootstrap",
        "names",
        FieldValue::TextList(vec!["python3".to_owned(), "python3.12".to_owned()]),
    );
    let processes = Python::plan(target, env).expect("plans");
    assert_eq!(processes[0].argv[0], "/opt/py/bin/python3.12");
}

#[test]
fn names_the_versions_found_when_none_fits() {
    let _host = host("3.7.1").install();
    let target = tests_target()
        .list("interpreter_constraints", &[">=3.8"])
        .build();
    let message = plan_one(target).expect_err("no interpreter fits");
    assert!(message.contains("`/usr/bin/python3` is 3.7.1"), "{message}");
    assert!(message.contains("environment `__local__`"), "{message}");
}

#[test]
fn pytest_must_be_installed() {
    let pytest_probe = [PYTHON, "-c", "import pytest"];
    let _host = host("3.11.2").probe(&pytest_probe, 1, "").install();
    let message = plan_one(tests_target().text("runner", "pytest").build()).expect_err("no pytest");
    assert!(message.contains("`pytest` is not installed"), "{message}");
}

#[test]
fn pytest_gets_the_test_files() {
    let pytest_probe = [PYTHON, "-c", "import pytest"];
    let _host = host("3.11.2").probe(&pytest_probe, 0, "").install();
    let process = plan_one(tests_target().text("runner", "pytest").build()).expect("plans");
    assert_eq!(
        process.argv,
        [PYTHON, "-m", "pytest", "src/app/test_greet.py"]
    );
}

#[test]
fn python_sources_plan_nothing() {
    let _host = FakeHost::new().install();
    let target = target("//lib:lib", "python_sources").list("sources", &["lib/a.py"]);
    let processes = Python::plan(target.build(), environment("__local__")).expect("plans");
    assert!(processes.is_empty());
}
