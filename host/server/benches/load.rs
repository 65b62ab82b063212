//! Load benchmark of the embedded server: `CLIENTS` concurrent clients each upload and execute
//! `ACTIONS` small actions (`cat` of a unique input), then run them all again as cache hits;
//! then one large blob goes up and down through ByteStream. Reports throughput and the
//! server's peak resident memory (VmHWM), measured in a separate server process so the
//! clients' memory does not count.
//!
//! Run: `cargo bench -p remex-server --bench load` (release). `REMEX_BENCH_CLIENTS`,
//! `REMEX_BENCH_ACTIONS`, `REMEX_BENCH_WORKERS` and `REMEX_BENCH_BLOB_MIB` change the sizes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use remex_proto::bytestream::byte_stream_client::ByteStreamClient;
use remex_proto::bytestream::{ReadRequest, WriteRequest};
use remex_proto::reapi;
use remex_proto::reapi::content_addressable_storage_client::ContentAddressableStorageClient;
use remex_proto::reapi::execution_client::ExecutionClient;
use remex_server::ServerBuilder;
use remex_store::{Digest, InputEntry, InputTreeBuilder, LocalStore};
use tonic::transport::Channel;

const SERVE_ENV: &str = "REMEX_BENCH_SERVE";

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> BenchResult<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match std::env::var_os(SERVE_ENV) {
        Some(store) => runtime.block_on(serve(store.into())),
        None => runtime.block_on(drive()),
    }
}

/// The server process: serves the store until stdin closes.
async fn serve(store: std::path::PathBuf) -> BenchResult<()> {
    let store = LocalStore::open(store)?;
    let workers = setting("REMEX_BENCH_WORKERS", 0);
    let mut builder = ServerBuilder::new(store);
    if workers > 0 {
        builder = builder.workers(workers);
    }
    let stdin_closed = async {
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
    };
    let address: SocketAddr = "127.0.0.1:0".parse()?;
    let server = builder.serve(address, stdin_closed).await?;
    println!("{}", server.local_addr());
    server.wait().await?;
    Ok(())
}

struct ServerProcess {
    child: Child,
    address: SocketAddr,
}

impl ServerProcess {
    fn start(store: &std::path::Path) -> BenchResult<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(SERVE_ENV, store)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let address = line.trim().parse()?;
        Ok(Self { child, address })
    }

    fn peak_memory_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        vm_hwm(&status)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn drive() -> BenchResult<()> {
    let clients = setting("REMEX_BENCH_CLIENTS", 50);
    let actions = setting("REMEX_BENCH_ACTIONS", 200);
    let blob_mib = setting("REMEX_BENCH_BLOB_MIB", 256);
    let dir = tempfile::tempdir()?;
    let server = ServerProcess::start(&dir.path().join("store"))?;
    let url = format!("http://{}", server.address);

    let cold = run_load(&url, clients, actions).await?;
    report("executed", clients * actions, cold);
    let hot = run_load(&url, clients, actions).await?;
    report("cache hits", clients * actions, hot);
    let memory_after_load = server.peak_memory_kib();

    let (up, down) = big_blob(&url, blob_mib << 20).await?;
    let mib = blob_mib as f64;
    println!(
        "bytestream: {blob_mib} MiB up in {up:?} ({:.0} MiB/s), down in {down:?} ({:.0} MiB/s)",
        mib / up.as_secs_f64(),
        mib / down.as_secs_f64()
    );
    let kib = |v: Option<u64>| v.map_or("unknown".to_owned(), |k| format!("{} MiB", k / 1024));
    println!(
        "server peak RSS (VmHWM) after the action load: {}",
        kib(memory_after_load)
    );
    println!(
        "server peak RSS (VmHWM) after the large blob:  {}",
        kib(server.peak_memory_kib())
    );
    Ok(())
}

fn report(what: &str, count: usize, elapsed: Duration) {
    println!(
        "{what}: {count} actions in {elapsed:.2?}: {:.0} actions/s",
        count as f64 / elapsed.as_secs_f64()
    );
}

async fn run_load(url: &str, clients: usize, actions: usize) -> BenchResult<Duration> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let channel = Channel::from_shared(url.to_owned())?.connect().await?;
        tasks.push(tokio::spawn(run_client(channel, client, actions)));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

async fn run_client(channel: Channel, client: usize, actions: usize) -> BenchResult<()> {
    let mut cas = ContentAddressableStorageClient::new(channel.clone());
    let mut execution = ExecutionClient::new(channel);
    for action in 0..actions {
        let input = format!("client {client} action {action}\n").into_bytes();
        let (digest, blobs) = build_action(&input)?;
        upload(&mut cas, blobs).await?;
        let response = execute(&mut execution, &digest).await?;
        let result = response.result.ok_or("no result")?;
        if result.stdout_digest != Some(Digest::of_bytes(&input).to_proto()) {
            return Err(format!("client {client} action {action}: wrong output").into());
        }
    }
    Ok(())
}

fn build_action(input: &[u8]) -> BenchResult<(Digest, Vec<Vec<u8>>)> {
    let mut tree = InputTreeBuilder::new();
    let file = InputEntry::File {
        digest: Digest::of_bytes(input),
        is_executable: false,
    };
    tree.add("in", file)?;
    let tree = tree.build();
    let mut blobs = vec![input.to_vec()];
    blobs.extend(tree.directories.iter().map(|(_, bytes)| bytes.clone()));
    let command = reapi::Command {
        arguments: vec!["/bin/cat".into(), "in".into()],
        ..Default::default()
    }
    .encode_to_vec();
    let action = reapi::Action {
        command_digest: Some(Digest::of_bytes(&command).to_proto()),
        input_root_digest: Some(tree.root_digest.to_proto()),
        ..Default::default()
    }
    .encode_to_vec();
    let digest = Digest::of_bytes(&action);
    blobs.push(command);
    blobs.push(action);
    Ok((digest, blobs))
}

async fn upload(
    cas: &mut ContentAddressableStorageClient<Channel>,
    blobs: Vec<Vec<u8>>,
) -> BenchResult<()> {
    let requests = blobs
        .into_iter()
        .map(|blob| reapi::batch_update_blobs_request::Request {
            digest: Some(Digest::of_bytes(&blob).to_proto()),
            data: Bytes::from(blob),
            compressor: 0,
        })
        .collect();
    let request = reapi::BatchUpdateBlobsRequest {
        requests,
        ..Default::default()
    };
    let response = cas.batch_update_blobs(request).await?.into_inner();
    if response
        .responses
        .iter()
        .any(|r| r.status.as_ref().is_some_and(|s| s.code != 0))
    {
        return Err("a blob was refused".into());
    }
    Ok(())
}

async fn execute(
    execution: &mut ExecutionClient<Channel>,
    digest: &Digest,
) -> BenchResult<reapi::ExecuteResponse> {
    let request = reapi::ExecuteRequest {
        action_digest: Some(digest.to_proto()),
        ..Default::default()
    };
    let mut stream = execution.execute(request).await?.into_inner();
    let mut last = None;
    while let Some(operation) = stream.next().await {
        last = Some(operation?);
    }
    let result = last.and_then(|op| op.result).ok_or("no final operation")?;
    let remex_proto::longrunning::operation::Result::Response(any) = result else {
        return Err("the operation failed".into());
    };
    let response = reapi::ExecuteResponse::decode(any.value.as_slice())?;
    match response.status.as_ref().map_or(0, |s| s.code) {
        0 => Ok(response),
        code => Err(format!("execution status {code}").into()),
    }
}

/// Uploads and downloads one `size`-byte blob through ByteStream in 1 MiB pieces.
async fn big_blob(url: &str, size: usize) -> BenchResult<(Duration, Duration)> {
    let channel = Channel::from_shared(url.to_owned())?.connect().await?;
    let mut client = ByteStreamClient::new(channel);
    let piece: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let pieces = size / piece.len();
    let whole = digest_of_repeated(&piece, pieces);
    let name = format!("uploads/bench/blobs/{}/{}", whole.hex(), whole.size_bytes);

    let started = Instant::now();
    let piece = Bytes::from(piece);
    let requests = futures::stream::iter((0..pieces).map(move |i| WriteRequest {
        resource_name: if i == 0 { name.clone() } else { String::new() },
        write_offset: (i * piece.len()) as i64,
        finish_write: i + 1 == pieces,
        data: piece.clone(),
    }));
    client.write(requests).await?;
    let up = started.elapsed();

    let started = Instant::now();
    let request = ReadRequest {
        resource_name: format!("blobs/{}/{}", whole.hex(), whole.size_bytes),
        read_offset: 0,
        read_limit: 0,
    };
    let mut stream = client.read(request).await?.into_inner();
    let mut received = 0usize;
    while let Some(chunk) = stream.next().await {
        received += chunk?.data.len();
    }
    if received != pieces << 20 {
        return Err(format!("read {received} bytes back").into());
    }
    Ok((up, started.elapsed()))
}

/// The digest of `piece` repeated `count` times, computed without building the whole blob.
fn digest_of_repeated(piece: &[u8], count: usize) -> Digest {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for _ in 0..count {
        hasher.update(piece);
    }
    Digest {
        hash: hasher.finalize().into(),
        size_bytes: (piece.len() * count) as u64,
    }
}
