//! The client against the fault-injecting fake: retries, resumes, verification, deadlines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use remex_action::OutputFields;
use remex_store::{Digest, LocalStore};
use tempfile::TempDir;
use tonic::Code;

use crate::fake::{FakeConfig, FakeServer, Fault, InstantClock, Rpc, prepared_action};
use crate::{CallContext, ExecuteOptions, ReapiError, RemoteClient, RemoteOptions, ResultOrigin};

/// A fake server, a client of it with an instant clock, and the client's local store.
pub(crate) struct Harness {
    pub server: FakeServer,
    pub clock: Arc<InstantClock>,
    pub store: LocalStore,
    pub client: RemoteClient,
    _dir: TempDir,
}

pub(crate) fn options_for(server: &FakeServer, clock: &Arc<InstantClock>) -> RemoteOptions {
    let mut options = RemoteOptions::new(server.address());
    options.execution_address = Some(server.address());
    options.clock = clock.clone();
    options
}

pub(crate) async fn harness(config: FakeConfig) -> Harness {
    harness_with(config, |_| {}).await
}

pub(crate) async fn harness_with(
    config: FakeConfig,
    adjust: impl FnOnce(&mut RemoteOptions),
) -> Harness {
    let server = FakeServer::start(config).await.expect("fake starts");
    let clock = Arc::new(InstantClock::with_jitter(1.0));
    let mut options = options_for(&server, &clock);
    adjust(&mut options);
    let dir = scratch_dir();
    let store = LocalStore::open(dir.path()).expect("store");
    let client = RemoteClient::connect(options, store.clone())
        .await
        .expect("connects");
    Harness {
        server,
        clock,
        store,
        client,
        _dir: dir,
    }
}

/// Downloads `digest`, which must fail, and checks that nothing was stored for it.
async fn failed_download(h: &Harness, digest: Digest) -> ReapiError {
    let error = h
        .client
        .download_blobs([digest], &context())
        .await
        .expect_err("the download fails");
    assert!(!h.store.contains(&digest));
    error
}

fn context() -> CallContext {
    CallContext::default()
}

/// Bytes that differ from blob to blob: half noise, half zeros, so zstd halves them.
fn blob_bytes(size: usize, seed: u8) -> Vec<u8> {
    let mut state = u64::from(seed) + 1;
    (0..size)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i % 2 == 0 { state as u8 } else { 0 }
        })
        .collect()
}

/// A scratch directory, in memory where the machine has `/dev/shm`: thousands of synced
/// store files are slow to write and to remove on a virtual disk.
pub(crate) fn scratch_dir() -> TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir")
}

/// A second local store, for downloads that must not find the blob already there.
fn fresh_store() -> (TempDir, LocalStore) {
    let dir = scratch_dir();
    let store = LocalStore::open(dir.path()).expect("store");
    (dir, store)
}

async fn second_client(h: &Harness, store: &LocalStore) -> RemoteClient {
    let options = options_for(&h.server, &h.clock);
    RemoteClient::connect(options, store.clone())
        .await
        .expect("connects")
}

fn small_batches() -> FakeConfig {
    FakeConfig {
        max_batch_total_size_bytes: 64 * 1024,
        ..FakeConfig::default()
    }
}

#[tokio::test]
async fn capabilities_are_asked_once_per_client() {
    let h = harness(FakeConfig::default()).await;
    let digest = h.store.put_bytes(b"one").expect("put");
    h.client
        .upload_blobs([digest], &context())
        .await
        .expect("upload");
    h.client
        .download_blobs([digest], &context())
        .await
        .expect("download");
    assert_eq!(h.server.state().calls(Rpc::GetCapabilities), 1);
    assert_eq!(h.client.output_fields(), OutputFields::Paths);
}

#[tokio::test]
async fn every_call_carries_headers_token_user_agent_instance_and_request_metadata() {
    let config = FakeConfig {
        instance_name: "main/linux".into(),
        required_token: Some("s3cret".into()),
        ..FakeConfig::default()
    };
    let h = harness_with(config, |options| {
        options.instance_name = "main/linux".into();
        options.oauth_bearer_token = Some("s3cret".into());
        options
            .store_headers
            .insert("x-team".into(), "build".into());
        options
            .execution_headers
            .insert("x-pool".into(), "large".into());
    })
    .await;
    let action = prepared_action(&h.store, &["true"], &[("src/a.txt", b"a")], &[]).expect("action");
    let options = ExecuteOptions {
        target_id: "//src:a".into(),
        ..ExecuteOptions::default()
    };
    h.client.execute(&action, &options).await.expect("executes");

    let seen = h.server.state().seen();
    assert!(seen.len() >= 4, "{seen:?}");
    for call in &seen {
        assert!(call.user_agent.starts_with("remex/"), "{call:?}");
        let metadata = call.request_metadata.as_ref().expect("RequestMetadata");
        let tool = metadata.tool_details.as_ref().expect("tool details");
        assert_eq!(tool.tool_name, "remex");
        assert_eq!(metadata.tool_invocation_id, h.client.invocation_id());
        let execution = matches!(call.rpc, Rpc::Execute | Rpc::WaitExecution);
        let header = if execution { "x-pool" } else { "x-team" };
        let other = if execution { "x-team" } else { "x-pool" };
        assert!(call.headers.contains_key(header), "{call:?}");
        assert!(!call.headers.contains_key(other), "{call:?}");
    }
    let execute = seen
        .iter()
        .find(|c| c.rpc == Rpc::Execute)
        .expect("an Execute");
    let metadata = execute.request_metadata.as_ref().expect("RequestMetadata");
    assert_eq!(metadata.action_id, action.digest.0.hex());
    assert_eq!(metadata.target_id, "//src:a");
}

#[tokio::test]
async fn unavailable_a_hundred_times_fails_after_the_retry_budget_without_waiting() {
    let h = harness(FakeConfig::default()).await;
    let digest = h.store.put_bytes(b"blob").expect("put");
    let state = h.server.state();
    state.inject_times(Rpc::FindMissingBlobs, Fault::Status(Code::Unavailable), 100);

    let started = Instant::now();
    let error = h
        .client
        .upload_blobs([digest], &context())
        .await
        .expect_err("fails");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, ReapiError::RetriesExhausted { attempts: 4, .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("UNAVAILABLE") && message.contains("4 attempts"),
        "{message}"
    );
    assert_eq!(state.calls(Rpc::FindMissingBlobs), 4);
    assert_eq!(h.clock.sleeps().len(), 3, "{:?}", h.clock.sleeps());
    let stats = h.client.stats();
    assert_eq!((stats.retries, stats.gave_up), (3, 1), "{stats:?}");
}

#[tokio::test]
async fn resource_exhausted_is_retried_after_the_servers_retry_info() {
    let h = harness(FakeConfig::default()).await;
    let digest = h.store.put_bytes(b"blob").expect("put");
    let delay = Duration::from_millis(1500);
    let fault = Fault::StatusWithRetryInfo(Code::ResourceExhausted, delay);
    h.server.state().inject(Rpc::BatchUpdateBlobs, fault);

    h.client
        .upload_blobs([digest], &context())
        .await
        .expect("uploads");
    assert!(h.server.state().has_blob(&digest));
    assert_eq!(h.clock.sleeps(), vec![delay]);
}

#[tokio::test]
async fn a_refused_token_is_not_retried() {
    let config = FakeConfig {
        required_token: Some("right".into()),
        ..FakeConfig::default()
    };
    let server = FakeServer::start(config).await.expect("fake");
    let clock = Arc::new(InstantClock::default());
    let mut options = options_for(&server, &clock);
    options.oauth_bearer_token = Some("wrong".into());
    let (_dir, store) = fresh_store();

    let error = RemoteClient::connect(options, store)
        .await
        .expect_err("refused");
    assert_eq!(error.code(), Some(Code::Unauthenticated), "{error}");
    assert!(matches!(error, ReapiError::Status { .. }), "{error:?}");
    assert_eq!(server.state().calls(Rpc::GetCapabilities), 1);
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_a_connection_error() {
    // A port that was free a moment ago: nothing listens there now.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let clock = Arc::new(InstantClock::default());
    let mut options = RemoteOptions::new(format!("grpc://127.0.0.1:{port}"));
    options.clock = clock.clone();
    let (_dir, store) = fresh_store();

    let error = RemoteClient::connect(options, store)
        .await
        .expect_err("refused");
    let ReapiError::RetriesExhausted { last, .. } = &error else {
        panic!("expected retries to run out, got {error:?}");
    };
    assert!(matches!(**last, ReapiError::Connection { .. }), "{last:?}");
    assert!(error.to_string().contains("cannot reach"), "{error}");
    assert_eq!(clock.sleeps().len(), 3);
}

#[tokio::test]
async fn a_dropped_execute_stream_is_resumed_with_wait_execution() {
    let h = harness(FakeConfig::default()).await;
    let action = prepared_action(&h.store, &["exit", "0"], &[("a", b"a")], &[]).expect("action");
    h.server.state().inject(Rpc::Execute, Fault::DropAfterName);

    let outcome = h
        .client
        .execute(&action, &ExecuteOptions::default())
        .await
        .expect("runs");
    assert_eq!(outcome.origin, ResultOrigin::Executed);
    let state = h.server.state();
    assert_eq!(state.executions(&action.digest), 1, "executed once");
    assert_eq!(state.calls(Rpc::Execute), 1);
    assert_eq!(state.calls(Rpc::WaitExecution), 1);
    assert_eq!(h.client.stats().execution_resumes, 1);
}

#[tokio::test]
async fn wait_execution_not_found_executes_again() {
    let h = harness(FakeConfig::default()).await;
    let action = prepared_action(&h.store, &["exit", "0"], &[("a", b"a")], &[]).expect("action");
    let state = h.server.state();
    state.inject(Rpc::Execute, Fault::DropAfterName);
    state.inject(Rpc::WaitExecution, Fault::Status(Code::NotFound));

    let outcome = h
        .client
        .execute(&action, &ExecuteOptions::default())
        .await
        .expect("runs");
    assert_eq!(state.calls(Rpc::Execute), 2);
    // The first run finished on the server, so the second Execute finds it in its cache.
    assert_eq!(outcome.origin, ResultOrigin::ExecutionCache);
}

#[tokio::test]
async fn missing_inputs_named_by_execute_are_uploaded_and_the_action_retried() {
    let h = harness(FakeConfig::default()).await;
    let action = prepared_action(&h.store, &["true"], &[("in.txt", b"input")], &[]).expect("a");
    let input = Digest::of_bytes(b"input");
    h.server
        .state()
        .inject(Rpc::Execute, Fault::Evict(vec![input]));

    let outcome = h
        .client
        .execute(&action, &ExecuteOptions::default())
        .await
        .expect("runs");
    assert_eq!(outcome.origin, ResultOrigin::Executed);
    assert!(h.server.state().has_blob(&input));
    assert_eq!(h.server.state().calls(Rpc::Execute), 2);
    assert_eq!(h.client.stats().missing_input_rounds, 1);
}

#[tokio::test]
async fn missing_inputs_reported_in_the_execute_response_are_uploaded_too() {
    let h = harness(FakeConfig::default()).await;
    let action = prepared_action(&h.store, &["true"], &[("in.txt", b"input")], &[]).expect("a");
    let input = Digest::of_bytes(b"input");
    h.server
        .state()
        .inject(Rpc::Execute, Fault::EvictInResponse(vec![input]));

    h.client
        .execute(&action, &ExecuteOptions::default())
        .await
        .expect("runs");
    assert_eq!(h.server.state().executions(&action.digest), 1);
    assert_eq!(h.client.stats().missing_input_rounds, 1);
}

#[tokio::test]
async fn wrong_bytes_from_a_batch_read_are_an_error_and_nothing_is_stored() {
    let h = harness(FakeConfig::default()).await;
    let digest = Digest::of_bytes(b"the right bytes");
    h.server
        .state()
        .insert_wrong_blob(digest, &b"the wrong bytes"[..]);

    let error = failed_download(&h, digest).await;
    assert!(
        matches!(error, ReapiError::DigestMismatch { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn wrong_bytes_from_a_bytestream_read_are_an_error_and_nothing_is_stored() {
    let h = harness(small_batches()).await;
    let data = blob_bytes(200_000, 1);
    let digest = h.server.state().insert_blob(data);
    h.server.state().inject(Rpc::Read, Fault::Corrupt);

    let error = failed_download(&h, digest).await;
    assert!(
        matches!(error, ReapiError::DigestMismatch { .. }),
        "{error:?}"
    );
    let leftovers = std::fs::read_dir(h.store.temp_dir()).expect("ls").count();
    assert_eq!(leftovers, 0, "temporary files left behind");
}

#[tokio::test]
async fn a_truncated_read_is_resumed_by_offset() {
    let h = harness(small_batches()).await;
    let data = blob_bytes(200_000, 2);
    let digest = h.server.state().insert_blob(data.clone());
    h.server.state().inject(Rpc::Read, Fault::Truncate(70_000));

    h.client
        .download_blobs([digest], &context())
        .await
        .expect("downloads");
    assert_eq!(h.store.read(&digest).expect("stored"), data);
    assert_eq!(h.server.state().read_offsets(), vec![0, 70_000]);
}

#[tokio::test]
async fn a_read_truncated_every_time_is_an_error_never_a_corrupt_blob() {
    let h = harness(small_batches()).await;
    let digest = h.server.state().insert_blob(blob_bytes(200_000, 3));
    h.server
        .state()
        .inject_times(Rpc::Read, Fault::Truncate(0), 100);

    let error = failed_download(&h, digest).await;
    assert!(
        matches!(error, ReapiError::RetriesExhausted { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_slower_than_the_deadline_is_a_deadline_error() {
    let h = harness_with(FakeConfig::default(), |options| {
        options.overall_deadline = Some(Duration::from_millis(300));
    })
    .await;
    let action = prepared_action(&h.store, &["true"], &[], &[]).expect("action");
    h.server
        .state()
        .inject(Rpc::Execute, Fault::Delay(Duration::from_secs(30)));

    let started = Instant::now();
    let error = h
        .client
        .execute(&action, &ExecuteOptions::default())
        .await
        .expect_err("late");
    assert!(
        matches!(error, ReapiError::DeadlineExceeded { .. }),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn large_blobs_stream_through_bytestream_both_ways() {
    let h = harness_with(small_batches(), |options| options.chunk_bytes = 16 * 1024).await;
    let data = blob_bytes(300_000, 4);
    let digest = h.store.put_bytes(&data).expect("put");

    h.client
        .upload_blobs([digest], &context())
        .await
        .expect("uploads");
    let state = h.server.state();
    assert_eq!(state.blob(&digest).expect("uploaded").as_ref(), &data[..]);
    assert_eq!(
        (state.calls(Rpc::Write), state.calls(Rpc::BatchUpdateBlobs)),
        (1, 0)
    );
    let name = &state.resource_names()[0];
    assert!(
        name.starts_with("uploads/") && name.contains("/blobs/"),
        "{name}"
    );

    let (_dir, other) = fresh_store();
    let reader = second_client(&h, &other).await;
    reader
        .download_blobs([digest], &context())
        .await
        .expect("downloads");
    assert_eq!(other.read(&digest).expect("stored"), data);
}

#[tokio::test]
async fn an_interrupted_write_resumes_from_the_committed_size() {
    let h = harness_with(small_batches(), |options| options.chunk_bytes = 16 * 1024).await;
    let data = blob_bytes(300_000, 5);
    let digest = h.store.put_bytes(&data).expect("put");
    h.server
        .state()
        .inject(Rpc::Write, Fault::InterruptWrite(100_000));

    h.client
        .upload_blobs([digest], &context())
        .await
        .expect("uploads");
    let state = h.server.state();
    assert_eq!(state.blob(&digest).expect("uploaded").as_ref(), &data[..]);
    assert_eq!(
        (state.calls(Rpc::Write), state.calls(Rpc::QueryWriteStatus)),
        (2, 1)
    );
    let names = state.resource_names();
    assert_eq!(names[0], names[1], "the resumed upload keeps its name");
}

#[tokio::test]
async fn a_write_the_server_completes_early_is_accepted() {
    let h = harness_with(small_batches(), |options| options.chunk_bytes = 16 * 1024).await;
    let large = blob_bytes(200_000, 7);
    let inputs: [(&str, &[u8]); 1] = [("big.bin", &large)];
    let action = prepared_action(&h.store, &["true"], &inputs, &[]).expect("action");
    let digest = Digest::of_bytes(&large);
    // The server claims the blob is missing although it has it, so the second `Write` finds
    // it there and answers after its first message.
    h.server
        .state()
        .inject(Rpc::Execute, Fault::ReportMissing(vec![digest]));

    h.client
        .execute(&action, &ExecuteOptions::default())
        .await
        .expect("runs");
    assert_eq!(h.server.state().calls(Rpc::Write), 2);
    assert_eq!(h.server.state().executions(&action.digest), 1);
}

#[tokio::test]
async fn zstd_is_used_both_ways_when_offered() {
    let config = FakeConfig {
        zstd: true,
        ..small_batches()
    };
    let h = harness_with(config, |options| options.chunk_bytes = 16 * 1024).await;
    let data = blob_bytes(300_000, 6);
    let digest = h.store.put_bytes(&data).expect("put");

    h.client
        .upload_blobs([digest], &context())
        .await
        .expect("uploads");
    let (_dir, other) = fresh_store();
    let reader = second_client(&h, &other).await;
    h.server.state().inject(Rpc::Read, Fault::Truncate(20_000));
    reader
        .download_blobs([digest], &context())
        .await
        .expect("downloads");

    assert_eq!(other.read(&digest).expect("stored"), data);
    let names = h.server.state().resource_names();
    let compressed = |n: &String| {
        n.starts_with("compressed-blobs/zstd/") || n.contains("/compressed-blobs/zstd/")
    };
    assert!(names.iter().all(compressed), "{names:?}");
    assert_eq!(
        names.len(),
        3,
        "one write, a truncated read, its resume: {names:?}"
    );
}

#[tokio::test]
async fn batch_read_unimplemented_falls_back_to_bytestream() {
    let config = FakeConfig {
        batch_read_unimplemented: true,
        ..FakeConfig::default()
    };
    let h = harness(config).await;
    let state = h.server.state();
    let digests: Vec<Digest> = (0..3u8).map(|i| state.insert_blob(vec![i; 10])).collect();

    h.client
        .download_blobs(digests.clone(), &context())
        .await
        .expect("downloads");
    let more = state.insert_blob(&b"more"[..]);
    h.client
        .download_blobs([more], &context())
        .await
        .expect("downloads");

    assert!(digests.iter().all(|d| h.store.contains(d)));
    assert_eq!(
        state.calls(Rpc::BatchReadBlobs),
        1,
        "asked once, then remembered"
    );
    assert_eq!(state.calls(Rpc::Read), 4);
}

#[tokio::test]
async fn batch_update_answers_without_digests_are_matched_by_position() {
    let config = FakeConfig {
        batch_update_without_digests: true,
        ..FakeConfig::default()
    };
    let h = harness(config).await;
    let digests: Vec<Digest> = (0..3u8)
        .map(|i| h.store.put_bytes(&[i; 10]).expect("put"))
        .collect();

    h.client
        .upload_blobs(digests.clone(), &context())
        .await
        .expect("uploads");
    assert!(digests.iter().all(|d| h.server.state().has_blob(d)));
}

#[tokio::test]
async fn concurrent_uploads_of_one_blob_happen_once() {
    let config = FakeConfig {
        call_delay: Duration::from_millis(50),
        ..FakeConfig::default()
    };
    let h = harness(config).await;
    let digest = h.store.put_bytes(b"shared").expect("put");
    let (a, b) = (h.client.clone(), h.client.clone());
    let context = context();

    let (first, second) = tokio::join!(
        a.upload_blobs([digest], &context),
        b.upload_blobs([digest], &context)
    );
    first.expect("first");
    second.expect("second");
    assert_eq!(h.server.state().calls(Rpc::FindMissingBlobs), 2);
    assert_eq!(h.server.state().calls(Rpc::BatchUpdateBlobs), 1);
}

#[tokio::test]
async fn the_empty_blob_is_never_uploaded() {
    let h = harness(FakeConfig::default()).await;
    let summary = h
        .client
        .upload_blobs([Digest::EMPTY], &context())
        .await
        .expect("ok");
    assert_eq!(summary.checked, 0);
    let state = h.server.state();
    assert_eq!(
        state.calls(Rpc::FindMissingBlobs) + state.calls(Rpc::BatchUpdateBlobs),
        0
    );

    // An action with no inputs has the empty directory as its input root.
    let action = prepared_action(&h.store, &["true"], &[], &[]).expect("action");
    assert_eq!(action.input_root, Digest::EMPTY);
    h.client
        .execute(&action, &ExecuteOptions::default())
        .await
        .expect("runs");
}

#[tokio::test]
async fn a_one_mib_server_gets_no_batch_over_one_mib() {
    const MIB: usize = 1024 * 1024;
    let config = FakeConfig {
        max_batch_total_size_bytes: MIB as i64,
        ..FakeConfig::default()
    };
    let h = harness(config).await;
    let digests: Vec<Digest> = (0..12u8)
        .map(|i| {
            h.store
                .put_bytes(&blob_bytes(MIB / 2 - 40 + i as usize, i))
                .expect("put")
        })
        .collect();

    h.client
        .upload_blobs(digests.clone(), &context())
        .await
        .expect("uploads");
    let (_dir, other) = fresh_store();
    let reader = second_client(&h, &other).await;
    reader
        .download_blobs(digests.clone(), &context())
        .await
        .expect("downloads");

    let sizes = h.server.state().batch_sizes();
    assert!(sizes.len() >= 12, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s <= MIB), "{sizes:?}");
    assert!(digests.iter().all(|d| other.contains(d)));
}

#[tokio::test]
async fn a_non_zero_exit_and_a_timeout_are_outcomes() {
    let h = harness(FakeConfig::default()).await;
    let failing = prepared_action(&h.store, &["exit", "3"], &[], &[]).expect("action");
    let outcome = h
        .client
        .execute(&failing, &ExecuteOptions::default())
        .await
        .expect("ok");
    assert_eq!(outcome.result.exit_code, 3);
    assert!(!outcome.timed_out);

    let slow = prepared_action(&h.store, &["timeout"], &[], &[]).expect("action");
    let outcome = h
        .client
        .execute(&slow, &ExecuteOptions::default())
        .await
        .expect("ok");
    assert!(outcome.timed_out, "{outcome:?}");
}

#[tokio::test]
async fn operations_failing_every_time_use_the_retry_budget_once() {
    let h = harness(FakeConfig::default()).await;
    let action = prepared_action(&h.store, &["true"], &[("a", b"a")], &[]).expect("action");
    let state = h.server.state();
    state.inject_times(Rpc::Execute, Fault::OperationError(Code::Internal), 100);

    let error = h
        .client
        .execute(&action, &ExecuteOptions::default())
        .await
        .expect_err("fails");
    assert!(
        matches!(error, ReapiError::RetriesExhausted { attempts: 4, .. }),
        "{error}"
    );
    assert_eq!(state.calls(Rpc::Execute), 4);
}

#[tokio::test]
async fn a_cached_failure_is_executed_again_past_the_servers_cache() {
    let h = harness(FakeConfig::default()).await;
    let failing = prepared_action(&h.store, &["exit", "3"], &[("a", b"a")], &[]).expect("action");
    let options = ExecuteOptions::default();
    h.client.execute(&failing, &options).await.expect("first");
    let cached = h.server.state().action_result(&failing.digest);
    assert_eq!(
        cached.map(|r| r.exit_code),
        Some(3),
        "the fake caches failures"
    );

    let second = h.client.execute(&failing, &options).await.expect("second");
    assert_eq!(second.origin, ResultOrigin::Executed);
    assert_eq!(second.result.exit_code, 3);
    assert_eq!(h.server.state().executions(&failing.digest), 2);
}

#[tokio::test]
async fn an_actions_own_messages_upload_from_memory_and_stay_out_of_the_local_store() {
    let h = harness(FakeConfig::default()).await;
    let stored = prepared_action(&h.store, &["true"], &[], &[]).expect("action");
    let in_memory = with_messages_in_memory(stored);
    let (_dir, store) = fresh_store();
    let client = second_client(&h, &store).await;

    let outcome = client
        .execute(&in_memory, &ExecuteOptions::default())
        .await
        .expect("runs");
    assert_eq!(outcome.origin, ResultOrigin::Executed);
    let command = command_digest(&in_memory);
    for digest in [in_memory.digest.0, command] {
        assert!(h.server.state().has_blob(&digest), "{digest} not uploaded");
        assert!(
            !store.contains(&digest),
            "{digest} written to the local store"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_in_flight_share_their_find_missing_and_upload_calls() {
    let config = FakeConfig {
        call_delay: Duration::from_millis(20),
        ..FakeConfig::default()
    };
    let h = harness(config).await;
    let actions: Vec<_> = (0..20)
        .map(|i| {
            let argv = ["echo".to_owned(), i.to_string()];
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let stored = prepared_action(&h.store, &argv, &[], &[]).expect("action");
            with_messages_in_memory(stored)
        })
        .collect();
    let (_dir, store) = fresh_store();
    let client = second_client(&h, &store).await;

    let options = ExecuteOptions::default();
    let runs = actions.iter().map(|a| client.execute(a, &options));
    for outcome in futures::future::join_all(runs).await {
        assert_eq!(outcome.expect("runs").origin, ResultOrigin::Executed);
    }
    let state = h.server.state();
    for action in &actions {
        assert!(
            state.has_blob(&action.digest.0),
            "{} not uploaded",
            action.digest
        );
        assert!(
            state.has_blob(&command_digest(action)),
            "a command not uploaded"
        );
    }
    let (finds, uploads) = (
        state.calls(Rpc::FindMissingBlobs),
        state.calls(Rpc::BatchUpdateBlobs),
    );
    assert!(finds < 10, "{finds} FindMissingBlobs calls for 20 actions");
    assert!(
        uploads < 10,
        "{uploads} BatchUpdateBlobs calls for 20 actions"
    );
}

/// `stored` with its `Action` and `Command` held in memory, as `remex test` prepares them.
fn with_messages_in_memory(stored: remex_action::PreparedAction) -> remex_action::PreparedAction {
    let command = Digest::of_message(&stored.command);
    let action = Digest::of_message(&stored.action);
    let messages = [command, action].map(|(digest, bytes)| (digest, bytes.into()));
    remex_action::PreparedAction {
        messages: Arc::new(messages.into()),
        ..stored
    }
}

fn command_digest(action: &remex_action::PreparedAction) -> Digest {
    Digest::from_proto_field(action.action.command_digest.as_ref()).expect("command digest")
}

#[tokio::test]
async fn a_cached_result_skips_uploads_and_execution() {
    let h = harness(FakeConfig::default()).await;
    let action = prepared_action(&h.store, &["true"], &[("a", b"a")], &[]).expect("action");
    let options = ExecuteOptions::default();
    h.client.execute(&action, &options).await.expect("first");
    let uploads = h.server.state().calls(Rpc::FindMissingBlobs);

    let second = h.client.execute(&action, &options).await.expect("second");
    assert_eq!(second.origin, ResultOrigin::ActionCache);
    assert_eq!(h.server.state().calls(Rpc::FindMissingBlobs), uploads);
    assert_eq!(h.server.state().calls(Rpc::Execute), 1);

    let skip = ExecuteOptions {
        skip_cache_lookup: true,
        ..ExecuteOptions::default()
    };
    let third = h.client.execute(&action, &skip).await.expect("third");
    assert_eq!(third.origin, ResultOrigin::Executed);
    assert_eq!(h.server.state().executions(&action.digest), 2);
    let stats = h.client.stats();
    assert_eq!((stats.cache_hits, stats.cache_misses), (1, 1), "{stats:?}");
}

#[tokio::test]
async fn results_of_local_runs_are_written_with_their_outputs() {
    let h = harness(FakeConfig::default()).await;
    let action = prepared_action(&h.store, &["true"], &[], &["out.txt"]).expect("action");
    let output = h.store.put_bytes(b"made locally").expect("put");
    let result = remex_proto::reapi::ActionResult {
        output_files: vec![remex_proto::reapi::OutputFile {
            path: "out.txt".into(),
            digest: Some(output.to_proto()),
            ..Default::default()
        }],
        ..Default::default()
    };

    h.client
        .update_action_result(&action, &result, &context())
        .await
        .expect("written");
    assert!(h.server.state().has_blob(&output));
    let found = h
        .client
        .get_action_result(&action.digest, &context())
        .await
        .expect("read");
    assert_eq!(found, Some(result));
}

#[tokio::test]
async fn fetch_outputs_downloads_stdout_and_output_files() {
    let h = harness(FakeConfig::default()).await;
    let action = prepared_action(&h.store, &["true"], &[], &["out/a", "out/b"]).expect("action");
    let outcome = h
        .client
        .execute(&action, &ExecuteOptions::default())
        .await
        .expect("runs");
    let context = CallContext::for_action(&action.digest);

    h.client
        .fetch_outputs(&outcome.result, &context)
        .await
        .expect("fetched");
    let stdout = Digest::from_proto_field(outcome.result.stdout_digest.as_ref()).expect("digest");
    assert_eq!(h.store.read(&stdout).expect("stdout"), b"ran true\n");
    for file in &outcome.result.output_files {
        let digest = Digest::from_proto_field(file.digest.as_ref()).expect("digest");
        assert!(h.store.contains(&digest), "{}", file.path);
    }
}

#[tokio::test]
async fn operations_with_stage_metadata_are_followed_too() {
    let config = FakeConfig {
        operation_metadata: true,
        ..FakeConfig::default()
    };
    let h = harness(config).await;
    let action = prepared_action(&h.store, &["exit", "1"], &[], &[]).expect("action");
    let outcome = h
        .client
        .execute(&action, &ExecuteOptions::default())
        .await
        .expect("runs");
    assert_eq!(outcome.result.exit_code, 1);
}

#[tokio::test]
async fn old_servers_get_the_older_output_fields() {
    let config = FakeConfig {
        high_api_minor: 0,
        ..FakeConfig::default()
    };
    let h = harness(config).await;
    assert_eq!(h.client.output_fields(), OutputFields::FilesAndDirectories);
}

#[tokio::test]
async fn a_server_without_sha256_is_refused_when_connecting() {
    let config = FakeConfig {
        digest_functions: vec![remex_proto::reapi::digest_function::Value::Sha1 as i32],
        ..FakeConfig::default()
    };
    let server = FakeServer::start(config).await.expect("fake");
    let clock = Arc::new(InstantClock::default());
    let (_dir, store) = fresh_store();
    let error = RemoteClient::connect(options_for(&server, &clock), store)
        .await
        .expect_err("refused");
    assert!(matches!(error, ReapiError::Unsupported { .. }), "{error:?}");
    assert!(error.to_string().contains("SHA256"), "{error}");
}

#[tokio::test]
async fn execution_without_an_address_is_an_error_naming_the_option() {
    let h = harness_with(FakeConfig::default(), |options| {
        options.execution_address = None
    })
    .await;
    let action = prepared_action(&h.store, &["true"], &[], &[]).expect("action");
    let error = h
        .client
        .execute(&action, &ExecuteOptions::default())
        .await
        .expect_err("no");
    assert!(
        error.to_string().contains("`remote_execution_address`"),
        "{error}"
    );
}
