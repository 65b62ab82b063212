//! `plan` run natively against the SDK's fake host.

use remex_plugin_sdk::testing::{FakeHost, environment, target, with_option};
use remex_plugin_sdk::{Environment, FieldValue, Process, Target, Toolchain};

use crate::Protobuf;

const SHA256: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn tools() -> FakeHost {
    FakeHost::new()
        .binary("unzip", "/usr/bin/unzip")
        .binary("sha256sum", "/usr/bin/sha256sum")
        .binary("sh", "/bin/sh")
}

fn text(value: &str) -> FieldValue {
    FieldValue::Text(value.to_owned())
}

fn configured() -> Environment {
    let env = with_option(
        environment("ci"),
        "protoc",
        "archive",
        text("3rdparty/protoc.zip"),
    );
    with_option(env, "protoc", "sha256", text(SHA256))
}

fn greeting() -> Target {
    target("//src/proto:greeting", "protobuf_sources")
        .list("sources", &["src/proto/greeting.proto"])
        .text("source_root", "src")
        .build()
}

fn plan(environment: Environment) -> Result<Vec<Process>, String> {
    Protobuf::plan(greeting(), environment).map_err(|e| e.message)
}

#[test]
fn generates_python_modules_beside_the_protos() {
    let _host = tools().install();
    let processes = plan(configured()).expect("plans");
    let process = &processes[0];

    assert_eq!(process.output_files, ["src/proto/greeting_pb2.py"]);
    assert_eq!(
        process.inputs,
        ["3rdparty/protoc.zip", "src/proto/greeting.proto"]
    );
    let tail: Vec<&str> = process.argv[3..].iter().map(String::as_str).collect();
    let expected = [
        "protoc",
        "/usr/bin/sha256sum",
        "/usr/bin/unzip",
        "3rdparty/protoc.zip",
        SHA256,
        "src",
        "src/proto/greeting.proto",
    ];
    assert_eq!(tail, expected);
}

#[test]
fn a_missing_unzip_names_the_environment_and_the_option() {
    let _host = FakeHost::new().binary("sh", "/bin/sh").install();
    let message = plan(configured()).expect_err("no unzip");
    assert!(
        message.contains("cannot find `unzip` in environment `ci`"),
        "{message}"
    );
    assert!(
        message.contains("`[system-binaries].system_binary_paths`"),
        "{message}"
    );
}

#[test]
fn the_archive_must_be_configured() {
    let _host = tools().install();
    let message = plan(environment("ci")).expect_err("no archive");
    assert!(
        message.contains("`[protoc].archive` is not set for environment `ci`"),
        "{message}"
    );
}

#[test]
fn the_archive_must_be_in_the_repository() {
    let _host = tools().install();
    let env = with_option(configured(), "protoc", "archive", text("/tmp/protoc.zip"));
    let env = Environment {
        options: env.options.into_iter().rev().collect(),
        ..env
    };
    let message = plan(env).expect_err("absolute archive");
    assert!(
        message.contains("relative to the repository root"),
        "{message}"
    );
}
