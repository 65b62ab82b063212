//! Load: many concurrent clients, each uploading and executing many small actions, lose
//! nothing: every action runs, every output is right, every result is in the action cache.
//! The full-size run (50 clients × 200 actions) with throughput and memory numbers is the
//! `load` benchmark of `remex-server`; this test runs a smaller share of it in debug builds.

use std::time::Instant;

use remex_proto::reapi;
use remex_proto::reapi::action_cache_client::ActionCacheClient;
use remex_proto::reapi::content_addressable_storage_client::ContentAddressableStorageClient;
use remex_proto::reapi::execution_client::ExecutionClient;
use remex_store::Digest;
use tonic::transport::Channel;

use crate::server_fixture::{
    ActionSpec, TestServer, batch_update_request, execute, execute_request,
};

const CLIENTS: usize = 50;

/// Actions per client; `REMEX_LOAD_ACTIONS` raises it (200 is the full benchmark).
fn actions_per_client() -> usize {
    std::env::var("REMEX_LOAD_ACTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

fn spec(client: usize, action: usize) -> (ActionSpec, Vec<u8>) {
    let input = format!("client {client} action {action}\n").into_bytes();
    let mut spec = ActionSpec::shell("");
    spec.argv = vec!["/bin/cat".into(), "in".into()];
    spec.env.clear();
    let spec = spec.file("in", &input);
    (spec, input)
}

/// One client: uploads and executes its actions one after another, checking each output.
async fn client(channel: Channel, client: usize, actions: usize) -> Vec<Digest> {
    let mut cas = ContentAddressableStorageClient::new(channel.clone());
    let mut execution = ExecutionClient::new(channel);
    let mut digests = Vec::new();
    for action in 0..actions {
        let (spec, input) = spec(client, action);
        let built = spec.build();
        let upload = batch_update_request(&built.blobs);
        cas.batch_update_blobs(upload).await.expect("upload");

        let run = execute(&mut execution, execute_request(&built.digest))
            .await
            .expect("execute");
        assert_eq!(run.code(), 0, "client {client} action {action}");
        assert_eq!(run.result().exit_code, 0, "client {client} action {action}");
        let stdout = run.result().stdout_digest.clone();
        assert_eq!(stdout, Some(Digest::of_bytes(&input).to_proto()));
        digests.push(built.digest);
    }
    digests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients_lose_nothing() {
    let server = TestServer::start().await;
    let actions = actions_per_client();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..CLIENTS {
        let channel = server.channel().await;
        tasks.push(tokio::spawn(client(channel, index, actions)));
    }
    let mut digests = Vec::new();
    for task in tasks {
        digests.extend(task.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    assert_eq!(digests.len(), CLIENTS * actions);

    let mut cache = ActionCacheClient::new(server.channel().await);
    for digest in &digests {
        let request = reapi::GetActionResultRequest {
            action_digest: Some(digest.to_proto()),
            ..Default::default()
        };
        cache.get_action_result(request).await.expect("cached");
    }
    eprintln!(
        "load: {} actions from {CLIENTS} clients in {elapsed:?} ({:.0} actions/s)",
        digests.len(),
        digests.len() as f64 / elapsed.as_secs_f64()
    );
    server.stop().await;
}
