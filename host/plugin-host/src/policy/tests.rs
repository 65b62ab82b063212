//! Tests against real policy components: the example policies and the hostile test policies,
//! all built from `plugins/` by `remex-bundled`.

mod examples;
mod hostile;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use super::{ActionDescription, ActionEnvironment, Decision, Policy, PolicyEngine, PolicyLimits};

/// One engine for every test, with the default limits.
static ENGINE: LazyLock<PolicyEngine> =
    LazyLock::new(|| PolicyEngine::new(PolicyLimits::default(), None).expect("engine starts"));

fn example_path(name: &str) -> PathBuf {
    Path::new(remex_bundled::POLICIES_DIR).join(format!("{name}.wasm"))
}

fn test_policy_path(name: &str) -> PathBuf {
    Path::new(remex_bundled::TEST_PLUGINS_DIR).join(format!("{name}.wasm"))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

fn load_with(engine: &PolicyEngine, path: &Path) -> Policy {
    let origin = path.display().to_string();
    engine
        .load(&origin, &read(path))
        .unwrap_or_else(|err| panic!("loading `{origin}` failed: {err}"))
}

fn example(name: &str) -> Policy {
    load_with(&ENGINE, &example_path(name))
}

/// An action every example policy allows.
fn action() -> ActionDescription {
    ActionDescription {
        target: "//src/app:tests".to_owned(),
        environment: ActionEnvironment {
            name: "linux_ci".to_owned(),
            remote: true,
            platform: vec![("OSFamily".to_owned(), "linux".to_owned())],
        },
        argv: vec!["/bin/sh".to_owned(), "-c".to_owned(), "pytest".to_owned()],
        env: vec![
            ("HOME".to_owned(), "/tmp".to_owned()),
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
        ],
        platform: vec![
            ("OSFamily".to_owned(), "linux".to_owned()),
            (
                "container-image".to_owned(),
                "docker://ubuntu:24.04".to_owned(),
            ),
            ("dockerNetwork".to_owned(), "off".to_owned()),
        ],
        working_directory: "src/app".to_owned(),
        input_files: 12,
        input_bytes: 34_567,
        output_paths: vec!["report.xml".to_owned()],
        timeout: Some(Duration::from_secs(300)),
        action_hash: "ab".repeat(32),
        action_size_bytes: 142,
    }
}

/// The policy's own reason for denying `action`, failing the test on anything else.
fn denied_reason(policy: &Policy, action: &ActionDescription) -> String {
    match policy.evaluate(action) {
        Decision::Deny(denial) => match denial.cause {
            super::DenialCause::Denied(reason) => reason,
            other => panic!("`{}` failed instead of denying: {other}", policy.id()),
        },
        Decision::Allow => panic!("`{}` allowed {action:?}", policy.id()),
    }
}

fn assert_allows(policy: &Policy, action: &ActionDescription) {
    let decision = policy.evaluate(action);
    assert_eq!(decision, Decision::Allow, "`{}` on {action:?}", policy.id());
}

#[test]
fn defaults_match_the_documented_limits() {
    let limits = PolicyLimits::default();
    assert_eq!(limits.fuel, 50_000_000);
    assert_eq!(limits.memory_bytes, 64 * 1024 * 1024);
    assert_eq!(limits.max_reason_bytes, 4096);
}

#[test]
fn policies_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<PolicyEngine>();
    assert_send_sync::<super::PolicySet>();
}

#[test]
fn rejects_bytes_that_are_not_a_component() {
    let err = ENGINE.load("/p/broken.wasm", b"\0asm\x01\0\0\0").err();
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.starts_with("cannot compile policy `broken@sha256:"),
        "{message}"
    );
}

#[test]
fn rejects_a_component_without_evaluate() {
    let err = ENGINE.load("/p/empty.wasm", b"\0asm\x0d\0\x01\0").err();
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.ends_with("from `/p/empty.wasm` is not a `remex:plugin/policy@0.1.0` component"),
        "{message}"
    );
}

#[test]
fn a_toolchain_plugin_is_not_a_policy() {
    let err = ENGINE.load("shell.wasm", remex_bundled::SHELL).err();
    assert!(
        matches!(err, Some(super::PolicyError::Imports { .. })),
        "{err:?}"
    );
}

#[test]
fn compiled_policies_are_cached_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Some(dir.path().join("compiled"));
    for _ in 0..2 {
        let engine = PolicyEngine::new(PolicyLimits::default(), cache.clone()).expect("engine");
        let policy = load_with(&engine, &example_path("max-timeout"));
        assert_allows(&policy, &action());
    }
    let entries = std::fs::read_dir(dir.path().join("compiled")).expect("cache dir exists");
    assert_eq!(entries.count(), 1, "one artifact for one component");
}
