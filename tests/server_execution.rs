//! The embedded server's Execution service: operation streams, the action cache in front of
//! execution, re-attaching with WaitExecution, missing inputs, timeouts, outputs, platform
//! properties and the worker pool.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use futures::StreamExt;
use prost::Message;
use remex_proto::reapi;
use remex_proto::reapi::execution_stage::Value as Stage;
use remex_store::Digest;
use tonic::Code;

use crate::server_fixture::{
    ActionSpec, TestServer, execute, execute_request, metadata_of, missing_subjects, read_blob,
    response_of, run_action, subject, upload,
};

fn stdout_of(server: &TestServer, result: &reapi::ActionResult) -> String {
    let digest = Digest::from_proto_field(result.stdout_digest.as_ref()).expect("stdout");
    String::from_utf8(server.store.read(&digest).expect("stdout blob")).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_streams_queued_executing_completed_then_serves_from_the_cache() {
    let server = TestServer::start().await;
    let spec = ActionSpec::shell("cat in.txt; echo done").file("in.txt", b"input\n");
    let first = run_action(&server, &spec).await;
    let stages = [Stage::Queued, Stage::Executing, Stage::Completed].map(|s| s as i32);
    assert_eq!(first.stages(), stages);
    assert_eq!(first.code(), 0);
    assert!(!first.response.cached_result);
    assert_eq!(first.result().exit_code, 0);
    assert_eq!(stdout_of(&server, first.result()), "input\ndone\n");
    let names: Vec<_> = first.operations.iter().map(|op| op.name.clone()).collect();
    assert!(
        names
            .iter()
            .all(|n| n == &names[0] && n.starts_with("operations/"))
    );
    let metadata = metadata_of(&first.operations[0]);
    assert_eq!(metadata.action_digest, Some(spec.build().digest.to_proto()));

    let second = run_action(&server, &spec).await;
    assert!(second.response.cached_result);
    assert_eq!(second.stages(), [Stage::Completed as i32]);
    assert_eq!(second.result().stdout_digest, first.result().stdout_digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_cache_lookup_and_do_not_cache_run_again() {
    let server = TestServer::start().await;
    let mut client = server.execution().await;
    let spec = ActionSpec::shell("date +%s%N");
    let built = spec.build();
    upload(&mut server.cas().await, &built.blobs).await;
    execute(&mut client, execute_request(&built.digest))
        .await
        .expect("first");

    let mut request = execute_request(&built.digest);
    request.skip_cache_lookup = true;
    let again = execute(&mut client, request).await.expect("again");
    assert!(!again.response.cached_result);

    let mut spec = ActionSpec::shell("echo uncached");
    spec.do_not_cache = true;
    let built = spec.build();
    upload(&mut server.cas().await, &built.blobs).await;
    for _ in 0..2 {
        let run = execute(&mut client, execute_request(&built.digest))
            .await
            .expect("run");
        assert!(!run.response.cached_result);
    }
    let action = remex_store::ActionDigest(built.digest);
    assert_eq!(server.store.get_action_result(&action).expect("ac"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_results_and_are_not_cached() {
    let server = TestServer::start().await;
    let spec = ActionSpec::shell("echo oops >&2; exit 3");
    let run = run_action(&server, &spec).await;
    assert_eq!(run.code(), 0, "a non-zero exit is an outcome");
    assert_eq!(run.result().exit_code, 3);
    let again = run_action(&server, &spec).await;
    assert!(!again.response.cached_result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_execution_reattaches_to_running_and_finished_operations() {
    let server = TestServer::start().await;
    let mut client = server.execution().await;
    let spec = ActionSpec::shell("sleep 1; echo slept");
    let built = spec.build();
    upload(&mut server.cas().await, &built.blobs).await;

    // Take the first update, then drop the stream as a flaky network would.
    let mut stream = client
        .execute(execute_request(&built.digest))
        .await
        .expect("execute")
        .into_inner();
    let first = stream.next().await.expect("an update").expect("ok");
    drop(stream);
    assert!(!first.done);

    let request = reapi::WaitExecutionRequest {
        name: first.name.clone(),
    };
    let waited: Vec<_> = client
        .wait_execution(request.clone())
        .await
        .expect("wait")
        .into_inner()
        .map(|op| op.expect("update"))
        .collect()
        .await;
    let last = waited.last().expect("updates");
    assert!(last.done);
    let response = response_of(last);
    assert_eq!(
        stdout_of(&server, response.result.as_ref().expect("result")),
        "slept\n"
    );

    let finished: Vec<_> = client
        .wait_execution(request)
        .await
        .expect("wait again")
        .into_inner()
        .collect()
        .await;
    assert_eq!(
        finished.len(),
        1,
        "a finished operation answers with its final state"
    );

    let unknown = reapi::WaitExecutionRequest {
        name: "operations/no-such-operation".into(),
    };
    let status = client.wait_execution(unknown).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_inputs_are_listed_in_a_precondition_failure() {
    let server = TestServer::start().await;
    let mut client = server.execution().await;
    let spec = ActionSpec::shell("cat a b")
        .file("a", b"first input")
        .file("dir/b", b"second input");
    let built = spec.build();
    // Everything but the two files and the `Command`.
    let command = built.blobs[built.blobs.len() - 2].clone();
    let uploaded: Vec<_> = built
        .blobs
        .iter()
        .filter(|b| {
            ![
                b"first input".as_slice(),
                b"second input".as_slice(),
                &command,
            ]
            .contains(&b.as_slice())
        })
        .cloned()
        .collect();
    upload(&mut server.cas().await, &uploaded).await;

    let status = execute(&mut client, execute_request(&built.digest))
        .await
        .err()
        .expect("missing inputs");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let mut subjects = missing_subjects(&status);
    subjects.sort();
    let mut expected = vec![
        subject(&Digest::of_bytes(&command)),
        subject(&Digest::of_bytes(b"first input")),
        subject(&Digest::of_bytes(b"second input")),
    ];
    expected.sort();
    assert_eq!(subjects, expected);

    let absent_action = Digest::of_bytes(b"no such action");
    let status = execute(&mut client, execute_request(&absent_action))
        .await
        .err()
        .expect("missing action");
    assert_eq!(missing_subjects(&status), [subject(&absent_action)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_process_group_and_keeps_partial_output() {
    let server = TestServer::start().await;
    let marker = server.dir.path().join("survivor");
    let script = format!(
        "echo started; (sleep 3; touch {}) & sleep 30",
        marker.display()
    );
    let mut spec = ActionSpec::shell(&script);
    spec.timeout = Some(Duration::from_millis(500));
    let started = Instant::now();
    let run = run_action(&server, &spec).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(run.code(), Code::DeadlineExceeded as i32);
    assert_eq!(stdout_of(&server, run.result()), "started\n");

    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !marker.exists(),
        "the background child was killed with its group"
    );
    let action = remex_store::ActionDigest(spec.build().digest);
    assert_eq!(server.store.get_action_result(&action).expect("ac"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_keep_files_directories_symlinks_and_executable_bits() {
    let server = TestServer::start().await;
    let script = "mkdir -p out/dir/sub; echo tool > out/tool; chmod +x out/tool; \
                  echo data > out/dir/sub/data; ln -s sub/data out/dir/link; \
                  ln -s tool out/alias";
    let spec = ActionSpec::shell(script).outputs(&["out/alias", "out/dir", "out/tool"]);
    let run = run_action(&server, &spec).await;
    let result = run.result();
    assert_eq!(result.exit_code, 0, "{}", stdout_of(&server, result));

    let tool = &result.output_files[0];
    assert_eq!(tool.path, "out/tool");
    assert!(tool.is_executable);
    assert_eq!(
        read_blob(&server, tool.digest.as_ref().expect("d")).await,
        b"tool\n"
    );

    assert_eq!(result.output_symlinks.len(), 1);
    assert_eq!(result.output_symlinks[0].path, "out/alias");
    assert_eq!(result.output_symlinks[0].target, "tool");

    let directory = &result.output_directories[0];
    assert_eq!(directory.path, "out/dir");
    let tree_bytes = read_blob(&server, directory.tree_digest.as_ref().expect("tree")).await;
    let tree = reapi::Tree::decode(tree_bytes.as_slice()).expect("a Tree");
    let root = tree.root.expect("root");
    assert_eq!(root.symlinks[0].name, "link");
    assert_eq!(root.symlinks[0].target, "sub/data");
    assert_eq!(root.directories[0].name, "sub");
    assert_eq!(tree.children[0].files[0].name, "data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_output_fields_are_honoured() {
    let server = TestServer::start().await;
    let mut spec = ActionSpec::shell("echo f > file; mkdir d; echo g > d/g; ln -s file link");
    spec.output_files = vec!["file".into(), "link".into()];
    spec.output_directories = vec!["d".into()];
    let run = run_action(&server, &spec).await;
    let result = run.result();
    assert_eq!(result.output_files.len(), 1);
    assert_eq!(result.output_directories.len(), 1);
    assert_eq!(result.output_file_symlinks.len(), 1, "{result:?}");
    assert_eq!(result.output_symlinks.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_properties_the_server_lacks_are_named() {
    let server =
        TestServer::start_with(|b| b.platform([("OSFamily".to_owned(), "linux".to_owned())])).await;
    let mut spec = ActionSpec::shell("true");
    spec.platform = vec![("OSFamily".into(), "linux".into())];
    assert_eq!(run_action(&server, &spec).await.result().exit_code, 0);

    spec.platform
        .push(("container-image".into(), "docker://gcc".into()));
    let built = spec.build();
    upload(&mut server.cas().await, &built.blobs).await;
    let mut client = server.execution().await;
    let status = execute(&mut client, execute_request(&built.digest))
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("container-image=docker://gcc"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_pool_bounds_how_many_actions_run_at_once() {
    let server = TestServer::start_with(|b| b.workers(2)).await;
    let log = server.dir.path().join("log");
    std::fs::write(&log, b"").expect("log");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let mut runs = Vec::new();
    for i in 0..6 {
        let script = format!(
            "echo start >> {log}; sleep 0.3; echo end >> {log}",
            log = log.display()
        );
        let mut spec = ActionSpec::shell(&script);
        spec.salt = vec![i];
        let built = spec.build();
        upload(&mut server.cas().await, &built.blobs).await;
        let mut client = server.execution().await;
        runs.push(tokio::spawn(async move {
            execute(&mut client, execute_request(&built.digest)).await
        }));
    }
    for run in runs {
        assert_eq!(run.await.expect("task").expect("execute").code(), 0);
    }

    let text = std::fs::read_to_string(&log).expect("log");
    let mut running = 0i32;
    let mut peak = 0;
    for line in text.lines() {
        running += if line == "start" { 1 } else { -1 };
        peak = peak.max(running);
    }
    assert_eq!(peak, 2, "at most two at once, and two did overlap:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_metadata_is_accepted_and_not_required() {
    let server = TestServer::start().await;
    let spec = ActionSpec::shell("true");
    let built = spec.build();
    upload(&mut server.cas().await, &built.blobs).await;
    let mut client = server.execution().await;

    let metadata = reapi::RequestMetadata {
        tool_details: Some(reapi::ToolDetails {
            tool_name: "remex-test".into(),
            tool_version: "0".into(),
        }),
        action_mnemonic: "Test".into(),
        ..Default::default()
    };
    let mut request = tonic::Request::new(execute_request(&built.digest));
    let value = tonic::metadata::MetadataValue::from_bytes(&metadata.encode_to_vec());
    request
        .metadata_mut()
        .insert_bin(remex_proto::REQUEST_METADATA_HEADER, value);
    let mut stream = client
        .execute(request)
        .await
        .expect("with metadata")
        .into_inner();
    while let Some(update) = stream.next().await {
        update.expect("update");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_fails_queued_operations_explicitly() {
    let server = TestServer::start_with(|b| b.workers(1).shutdown_grace(Duration::ZERO)).await;
    let mut client = server.execution().await;
    let mut streams = Vec::new();
    for i in 0..2 {
        let mut spec = ActionSpec::shell("sleep 20");
        spec.salt = vec![i];
        let built = spec.build();
        upload(&mut server.cas().await, &built.blobs).await;
        let stream = client
            .execute(execute_request(&built.digest))
            .await
            .expect("execute")
            .into_inner();
        streams.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let stopping = tokio::spawn(server.stop());
    for stream in streams {
        let updates: Vec<_> = stream.map(|op| op.expect("update")).collect().await;
        let last = updates.last().expect("updates");
        assert!(last.done, "every operation ends, done");
        let code = response_of(last).status.map_or(0, |s| s.code);
        assert_eq!(code, Code::Unavailable as i32);
    }
    stopping.await.expect("stopped");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
