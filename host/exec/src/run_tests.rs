use std::collections::BTreeMap;

use remex_proto::reapi;
use remex_store::{ActionDigest, InputEntry, InputTreeBuilder, LocalStore};

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    executor: LocalExecutor,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path()).expect("open store");
    Fixture {
        executor: LocalExecutor::new(store),
        _dir: dir,
    }
}

fn stage(
    store: &LocalStore,
    argv: &[&str],
    env: &[(&str, &str)],
    inputs: &[(&str, &[u8])],
    outputs: &[&str],
    timeout: Option<Duration>,
) -> ActionDigest {
    let mut tree = InputTreeBuilder::new();
    for (path, content) in inputs {
        let digest = store.put_bytes(content).expect("put input");
        let entry = InputEntry::File {
            digest,
            is_executable: false,
        };
        tree.add(path, entry).expect("add input");
    }
    let tree = tree.build();
    for (_, bytes) in &tree.directories {
        store.put_bytes(bytes).expect("put directory");
    }
    let env: BTreeMap<_, _> = env.iter().copied().collect();
    let command = reapi::Command {
        arguments: argv.iter().map(|s| s.to_string()).collect(),
        environment_variables: env
            .into_iter()
            .map(|(name, value)| reapi::command::EnvironmentVariable {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect(),
        output_paths: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let action = reapi::Action {
        command_digest: Some(store.put_message(&command).expect("put").to_proto()),
        input_root_digest: Some(tree.root_digest.to_proto()),
        timeout: timeout.map(|t| t.try_into().expect("duration")),
        ..Default::default()
    };
    ActionDigest(store.put_message(&action).expect("put action"))
}

fn stdout_of(store: &LocalStore, result: &reapi::ActionResult) -> String {
    let digest = Digest::from_proto_field(result.stdout_digest.as_ref()).expect("digest");
    String::from_utf8(store.read(&digest).expect("read stdout")).expect("utf-8")
}

#[tokio::test]
async fn runs_with_exactly_the_commands_environment() {
    let f = fixture();
    let store = f.executor.store();
    let digest = stage(
        store,
        &["/usr/bin/env"],
        &[("ONLY", "this")],
        &[],
        &[],
        None,
    );
    let outcome = f.executor.run(&digest).await.expect("runs");
    assert_eq!(outcome.result.exit_code, 0);
    assert_eq!(stdout_of(store, &outcome.result), "ONLY=this\n");
}

#[tokio::test]
async fn inputs_are_materialized_and_outputs_collected() {
    let f = fixture();
    let store = f.executor.store();
    let script =
        "cat in/a.txt > out/copy.txt; mkdir -p dir/sub; echo x > dir/sub/f; chmod +x dir/sub/f";
    let digest = stage(
        store,
        &["/bin/sh", "-c", script],
        &[],
        &[("in/a.txt", b"hello\n")],
        &["out/copy.txt", "dir"],
        None,
    );
    let outcome = f.executor.run(&digest).await.expect("runs");
    let result = &outcome.result;
    assert_eq!(result.exit_code, 0, "stderr: {result:?}");
    assert_eq!(result.output_files.len(), 1);
    let copy = Digest::from_proto_field(result.output_files[0].digest.as_ref()).expect("digest");
    assert_eq!(store.read(&copy).expect("read"), b"hello\n");

    assert_eq!(result.output_directories.len(), 1);
    let tree_digest =
        Digest::from_proto_field(result.output_directories[0].tree_digest.as_ref()).expect("d");
    let tree: reapi::Tree = store.read_message(&tree_digest).expect("tree");
    let sub = &tree.children[0];
    assert!(sub.files[0].is_executable, "{tree:?}");
}

#[tokio::test]
async fn second_run_is_served_from_the_cache_and_failures_are_not_cached() {
    let f = fixture();
    let store = f.executor.store();
    let ok = stage(store, &["/bin/sh", "-c", "echo hi"], &[], &[], &[], None);
    assert!(!f.executor.run(&ok).await.expect("first").cached);
    assert!(f.executor.run(&ok).await.expect("second").cached);

    let failing = stage(store, &["/bin/sh", "-c", "exit 3"], &[], &[], &[], None);
    let first = f.executor.run(&failing).await.expect("first");
    assert_eq!(first.result.exit_code, 3);
    assert!(!f.executor.run(&failing).await.expect("second").cached);
}

#[tokio::test]
async fn timeout_kills_the_process_group_and_keeps_output() {
    let f = fixture();
    let store = f.executor.store();
    let script = "echo started; sleep 30 & sleep 30";
    let limit = Some(Duration::from_millis(300));
    let digest = stage(store, &["/bin/sh", "-c", script], &[], &[], &[], limit);
    let started = std::time::Instant::now();
    let outcome = f.executor.run(&digest).await.expect("runs");
    assert!(outcome.timed_out);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stdout_of(store, &outcome.result), "started\n");
}

#[tokio::test]
async fn missing_program_is_an_error_naming_it() {
    let f = fixture();
    let digest = stage(f.executor.store(), &["/no/such/tool"], &[], &[], &[], None);
    let err = f.executor.run(&digest).await.expect_err("no such program");
    assert!(err.to_string().contains("/no/such/tool"), "{err}");
}
