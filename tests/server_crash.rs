//! Crash safety: `remex serve` killed with SIGKILL in the middle of many concurrent uploads and
//! executions, then restarted on the same store, serves only blobs that match their digests,
//! keeps every blob it acknowledged, and has no action-cache entry pointing at a missing blob.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use remex_proto::bytestream::byte_stream_client::ByteStreamClient;
use remex_proto::bytestream::{ReadRequest, WriteRequest};
use remex_proto::reapi;
use remex_proto::reapi::content_addressable_storage_client::ContentAddressableStorageClient;
use remex_proto::reapi::execution_client::ExecutionClient;
use remex_store::Digest;
use tonic::transport::Channel;

use crate::server_fixture::{
    ActionSpec, ServeProcess, batch_update_request, execute, execute_request,
};

const UPLOADERS: usize = 24;

/// Bytes that differ for every (task, round), of a size between 1 KiB and about 1.5 MiB.
fn blob(task: usize, round: usize) -> Vec<u8> {
    let mut state = (task as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (round as u64 + 1);
    let size = 1024 + (state % 1_500_000) as usize;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

async fn write_blob(
    client: &mut ByteStreamClient<Channel>,
    data: &[u8],
) -> Result<(), tonic::Status> {
    let digest = Digest::of_bytes(data);
    let name = format!(
        "crash/uploads/{}/blobs/{}/{}",
        uuid::Uuid::new_v4(),
        digest.hex(),
        digest.size_bytes
    );
    let mut requests = Vec::new();
    let mut offset = 0;
    for piece in data.chunks(64 * 1024) {
        requests.push(WriteRequest {
            resource_name: if offset == 0 {
                name.clone()
            } else {
                String::new()
            },
            write_offset: offset as i64,
            finish_write: offset + piece.len() == data.len(),
            data: Bytes::copy_from_slice(piece),
        });
        offset += piece.len();
    }
    client.write(futures::stream::iter(requests)).await?;
    Ok(())
}

/// Uploads blobs (and every third round runs an action over one) until the server dies,
/// recording each blob the server acknowledged.
async fn uploader(channel: Channel, task: usize, acknowledged: Arc<Mutex<Vec<Digest>>>) {
    let mut bytestream = ByteStreamClient::new(channel.clone());
    let mut cas = ContentAddressableStorageClient::new(channel.clone());
    let mut execution = ExecutionClient::new(channel);
    for round in 0.. {
        let data = blob(task, round);
        if write_blob(&mut bytestream, &data).await.is_err() {
            return;
        }
        if let Ok(mut list) = acknowledged.lock() {
            list.push(Digest::of_bytes(&data));
        }
        if round % 3 == 0
            && run_action(&mut cas, &mut execution, task, round)
                .await
                .is_err()
        {
            return;
        }
    }
}

async fn run_action(
    cas: &mut ContentAddressableStorageClient<Channel>,
    execution: &mut ExecutionClient<Channel>,
    task: usize,
    round: usize,
) -> Result<(), tonic::Status> {
    let input = format!("task {task} round {round}\n").repeat(100);
    let spec = ActionSpec::shell("cat in > out; mkdir -p dir; cp in dir/copy")
        .file("in", input.as_bytes())
        .outputs(&["dir", "out"]);
    let built = spec.build();
    let request = batch_update_request(&built.blobs);
    cas.batch_update_blobs(request).await?;
    execute(execution, execute_request(&built.digest)).await?;
    Ok(())
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(shards) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    shards
        .flatten()
        .flat_map(|shard| {
            std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|entry| entry.path())
        .collect()
}

async fn read_via(client: &mut ByteStreamClient<Channel>, digest: &Digest) -> Vec<u8> {
    let request = ReadRequest {
        resource_name: format!("blobs/{}/{}", digest.hex(), digest.size_bytes),
        read_offset: 0,
        read_limit: 0,
    };
    let mut stream = client.read(request).await.expect("read").into_inner();
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk.expect("chunk").data);
    }
    data
}

/// Every blob the restarted server serves (everything under `cas/`) matches its name.
async fn check_blobs(server: &ServeProcess, store: &Path) -> usize {
    let mut client = ByteStreamClient::new(server.channel().await);
    let paths = files_under(&store.join("cas"));
    for path in &paths {
        let hash = path.file_name().and_then(|n| n.to_str()).expect("name");
        let size = std::fs::metadata(path).expect("metadata").len();
        let digest: Digest = format!("{hash}/{size}").parse().expect("a digest name");
        let data = read_via(&mut client, &digest).await;
        assert_eq!(
            Digest::of_bytes(&data),
            digest,
            "blob {} is torn",
            path.display()
        );
    }
    paths.len()
}

/// Every action-cache entry refers only to blobs the restarted server has.
async fn check_action_cache(server: &ServeProcess, store: &Path) -> usize {
    let mut cas = ContentAddressableStorageClient::new(server.channel().await);
    let local = remex_store::LocalStore::open(store).expect("store");
    let entries = files_under(&store.join("ac"));
    for path in &entries {
        let bytes = std::fs::read(path).expect("entry");
        let result = reapi::ActionResult::decode(bytes.as_slice()).expect("entry decodes");
        let mut digests: Vec<reapi::Digest> = Vec::new();
        digests.extend(result.output_files.iter().filter_map(|f| f.digest.clone()));
        digests.extend(result.stdout_digest.clone());
        digests.extend(result.stderr_digest.clone());
        for directory in &result.output_directories {
            let tree_digest = directory.tree_digest.clone().expect("tree digest");
            let parsed = Digest::from_proto(&tree_digest).expect("digest");
            let tree: reapi::Tree = local.read_message(&parsed).expect("tree present");
            for dir in tree.root.iter().chain(&tree.children) {
                digests.extend(dir.files.iter().filter_map(|f| f.digest.clone()));
            }
            digests.push(tree_digest);
        }
        let request = reapi::FindMissingBlobsRequest {
            blob_digests: digests,
            ..Default::default()
        };
        let missing = cas
            .find_missing_blobs(request)
            .await
            .expect("find")
            .into_inner();
        assert!(
            missing.missing_blob_digests.is_empty(),
            "entry {} refers to missing blobs {:?}",
            path.display(),
            missing.missing_blob_digests
        );
    }
    entries.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_uploads_leaves_only_whole_blobs_and_complete_cache_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let mut server = ServeProcess::spawn(&store, &["--workers", "2"]);
    let channel = server.channel().await;

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..UPLOADERS)
        .map(|task| tokio::spawn(uploader(channel.clone(), task, acknowledged.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill_hard();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    let acknowledged: HashSet<Digest> =
        acknowledged.lock().expect("list").iter().copied().collect();
    assert!(
        acknowledged.len() >= UPLOADERS,
        "uploads were under way: {}",
        acknowledged.len()
    );

    let server = ServeProcess::spawn(&store, &[]);
    let blobs = check_blobs(&server, &store).await;
    let entries = check_action_cache(&server, &store).await;
    let local = remex_store::LocalStore::open(&store).expect("store");
    for digest in &acknowledged {
        assert!(
            local.contains(digest),
            "acknowledged blob {digest} was lost"
        );
    }
    assert!(entries > 0, "some actions completed before the kill");
    eprintln!(
        "crash test: {} acknowledged uploads, {blobs} blobs and {entries} cache entries checked",
        acknowledged.len()
    );

    // The restarted server takes new work.
    let mut client = ByteStreamClient::new(server.channel().await);
    write_blob(&mut client, &blob(999, 0))
        .await
        .expect("upload after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_running_actions_fails_queued_ones_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = ServeProcess::spawn(&dir.path().join("store"), &["--workers", "1"]);
    let channel = server.channel().await;
    let mut cas = ContentAddressableStorageClient::new(channel.clone());
    let mut streams = Vec::new();
    for script in ["sleep 1; echo finished", "echo never started"] {
        let built = ActionSpec::shell(script).build();
        let upload = batch_update_request(&built.blobs);
        cas.batch_update_blobs(upload).await.expect("upload");
        let mut execution = ExecutionClient::new(channel.clone());
        let stream = execution
            .execute(execute_request(&built.digest))
            .await
            .expect("execute")
            .into_inner();
        streams.push(stream);
        // The first takes the only worker before the second is queued.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());

    let mut codes = Vec::new();
    for stream in streams {
        let updates: Vec<_> = stream.map(|op| op.expect("update")).collect().await;
        let last = updates.last().expect("updates");
        assert!(last.done, "ended with a final answer");
        let response = crate::server_fixture::response_of(last);
        codes.push(response.status.map_or(0, |s| s.code));
    }
    assert_eq!(
        codes,
        [0, tonic::Code::Unavailable as i32],
        "finished, then failed"
    );
    let exit = server.child.wait().expect("exits");
    assert!(exit.success(), "{exit:?}");
}
