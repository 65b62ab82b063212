//! Fixtures for the embedded server's tests: a server on `127.0.0.1:0` over a store in a
//! temporary directory, the generated tonic clients pointed at it, and actions built and
//! uploaded through the CAS the way a client would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use remex_proto::bytestream::byte_stream_client::ByteStreamClient;
use remex_proto::longrunning::{Operation, operation};
use remex_proto::reapi;
use remex_proto::reapi::action_cache_client::ActionCacheClient;
use remex_proto::reapi::content_addressable_storage_client::ContentAddressableStorageClient;
use remex_proto::reapi::execution_client::ExecutionClient;
use remex_server::{RunningServer, ServerBuilder};
use remex_store::{Digest, InputEntry, InputTreeBuilder, LocalStore};
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// A server over a fresh store, stopped (cleanly) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub store: LocalStore,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    running: Option<RunningServer>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|builder| builder).await
    }

    /// A server with the builder adjusted by `configure` (workers, platform, TLS, token).
    pub async fn start_with(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path().join("store")).expect("open store");
        let (stop, stopped) = oneshot::channel::<()>();
        let builder = configure(ServerBuilder::new(store.clone()).workers(4));
        let address: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let running = builder
            .serve(address, async move {
                let _ = stopped.await;
            })
            .await
            .expect("server starts");
        Self {
            addr: running.local_addr(),
            store,
            dir,
            stop: Some(stop),
            running: Some(running),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connects")
    }

    pub async fn cas(&self) -> ContentAddressableStorageClient<Channel> {
        ContentAddressableStorageClient::new(self.channel().await)
    }

    pub async fn bytestream(&self) -> ByteStreamClient<Channel> {
        ByteStreamClient::new(self.channel().await)
    }

    pub async fn action_cache(&self) -> ActionCacheClient<Channel> {
        ActionCacheClient::new(self.channel().await)
    }

    pub async fn execution(&self) -> ExecutionClient<Channel> {
        ExecutionClient::new(self.channel().await)
    }

    /// Asks the server to stop and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.wait().await.expect("server stops cleanly");
        }
    }
}

/// Uploads blobs with one `BatchUpdateBlobs` and checks each was accepted.
pub async fn upload(cas: &mut ContentAddressableStorageClient<Channel>, blobs: &[Vec<u8>]) {
    let blobs: Vec<Vec<u8>> = blobs.iter().filter(|b| !b.is_empty()).cloned().collect();
    let request = batch_update_request(&blobs);
    let response = cas.batch_update_blobs(request).await.expect("batch update");
    for blob in response.into_inner().responses {
        let code = blob.status.map_or(-1, |s| s.code);
        assert_eq!(code, 0, "blob {:?} refused", blob.digest);
    }
}

/// One `BatchUpdateBlobs` request holding every blob of `blobs`, each with its digest.
pub fn batch_update_request(blobs: &[Vec<u8>]) -> reapi::BatchUpdateBlobsRequest {
    let requests = blobs
        .iter()
        .map(|blob| reapi::batch_update_blobs_request::Request {
            digest: Some(Digest::of_bytes(blob).to_proto()),
            data: Bytes::from(blob.clone()),
            compressor: 0,
        })
        .collect();
    reapi::BatchUpdateBlobsRequest {
        requests,
        ..Default::default()
    }
}

/// An action to build, upload and execute.
#[derive(Clone, Debug, Default)]
pub struct ActionSpec {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// `(path, content, is_executable)`.
    pub files: Vec<(String, Vec<u8>, bool)>,
    /// `(path, target)`.
    pub symlinks: Vec<(String, String)>,
    pub output_paths: Vec<String>,
    pub output_files: Vec<String>,
    pub output_directories: Vec<String>,
    pub working_directory: String,
    pub timeout: Option<Duration>,
    pub platform: Vec<(String, String)>,
    pub do_not_cache: bool,
    /// Makes otherwise equal actions distinct.
    pub salt: Vec<u8>,
}

/// An action and every blob it needs, not yet uploaded.
pub struct BuiltAction {
    pub digest: Digest,
    pub blobs: Vec<Vec<u8>>,
}

impl ActionSpec {
    /// `sh -c SCRIPT`.
    pub fn shell(script: &str) -> Self {
        Self {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: BTreeMap::from([("PATH".into(), "/usr/bin:/bin".into())]),
            ..Default::default()
        }
    }

    pub fn file(mut self, path: &str, content: &[u8]) -> Self {
        self.files.push((path.into(), content.to_vec(), false));
        self
    }

    pub fn outputs(mut self, paths: &[&str]) -> Self {
        self.output_paths = paths.iter().map(|p| p.to_string()).collect();
        self.output_paths.sort();
        self
    }

    pub fn build(&self) -> BuiltAction {
        let mut blobs = Vec::new();
        let mut tree = InputTreeBuilder::new();
        for (path, content, is_executable) in &self.files {
            blobs.push(content.clone());
            let digest = Digest::of_bytes(content);
            let entry = InputEntry::File {
                digest,
                is_executable: *is_executable,
            };
            tree.add(path, entry).expect("input file");
        }
        for (path, target) in &self.symlinks {
            let entry = InputEntry::Symlink {
                target: target.clone(),
            };
            tree.add(path, entry).expect("input symlink");
        }
        let tree = tree.build();
        blobs.extend(tree.directories.iter().map(|(_, bytes)| bytes.clone()));
        self.finish(tree.root_digest, blobs)
    }

    /// The action over a given input root (possibly invalid, possibly absent).
    pub fn finish(&self, input_root: Digest, mut blobs: Vec<Vec<u8>>) -> BuiltAction {
        let platform = self.platform().filter(|p| !p.properties.is_empty());
        let command = reapi::Command {
            arguments: self.argv.clone(),
            environment_variables: self
                .env
                .iter()
                .map(|(name, value)| reapi::command::EnvironmentVariable {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            output_paths: self.output_paths.clone(),
            output_files: self.output_files.clone(),
            output_directories: self.output_directories.clone(),
            working_directory: self.working_directory.clone(),
            platform: platform.clone(),
            ..Default::default()
        };
        let command = command.encode_to_vec();
        let action = reapi::Action {
            command_digest: Some(Digest::of_bytes(&command).to_proto()),
            input_root_digest: Some(input_root.to_proto()),
            timeout: self.timeout.map(|t| t.try_into().expect("duration")),
            do_not_cache: self.do_not_cache,
            salt: Bytes::from(self.salt.clone()),
            platform,
        };
        let action = action.encode_to_vec();
        let digest = Digest::of_bytes(&action);
        blobs.push(command);
        blobs.push(action);
        BuiltAction { digest, blobs }
    }

    fn platform(&self) -> Option<reapi::Platform> {
        let mut properties: Vec<_> = self
            .platform
            .iter()
            .map(|(name, value)| reapi::platform::Property {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        properties.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
        Some(reapi::Platform { properties })
    }
}

/// What one `Execute` call streamed.
pub struct Executed {
    pub operations: Vec<Operation>,
    pub response: reapi::ExecuteResponse,
}

impl Executed {
    pub fn stages(&self) -> Vec<i32> {
        self.operations
            .iter()
            .map(|op| metadata_of(op).stage)
            .collect()
    }

    pub fn result(&self) -> &reapi::ActionResult {
        self.response.result.as_ref().expect("a result")
    }

    pub fn code(&self) -> i32 {
        self.response.status.as_ref().map_or(0, |s| s.code)
    }
}

pub fn metadata_of(operation: &Operation) -> reapi::ExecuteOperationMetadata {
    let any = operation.metadata.as_ref().expect("operation metadata");
    assert_eq!(
        any.type_url,
        "type.googleapis.com/build.bazel.remote.execution.v2.ExecuteOperationMetadata"
    );
    reapi::ExecuteOperationMetadata::decode(any.value.as_slice()).expect("metadata decodes")
}

pub fn response_of(operation: &Operation) -> reapi::ExecuteResponse {
    let Some(operation::Result::Response(any)) = &operation.result else {
        panic!("operation has no response: {operation:?}");
    };
    assert_eq!(
        any.type_url,
        "type.googleapis.com/build.bazel.remote.execution.v2.ExecuteResponse"
    );
    reapi::ExecuteResponse::decode(any.value.as_slice()).expect("response decodes")
}

pub fn execute_request(digest: &Digest) -> reapi::ExecuteRequest {
    reapi::ExecuteRequest {
        action_digest: Some(digest.to_proto()),
        ..Default::default()
    }
}

/// Calls `Execute` and follows the stream to the end.
pub async fn execute(
    client: &mut ExecutionClient<Channel>,
    request: reapi::ExecuteRequest,
) -> Result<Executed, tonic::Status> {
    let mut stream = client.execute(request).await?.into_inner();
    let mut operations = Vec::new();
    while let Some(operation) = stream.next().await {
        operations.push(operation?);
    }
    let last = operations.last().expect("at least one operation");
    assert!(last.done, "the stream ended before the operation was done");
    let response = response_of(last);
    Ok(Executed {
        operations,
        response,
    })
}

/// Uploads the action's blobs and executes it.
pub async fn run_action(server: &TestServer, spec: &ActionSpec) -> Executed {
    let built = spec.build();
    upload(&mut server.cas().await, &built.blobs).await;
    let mut client = server.execution().await;
    execute(&mut client, execute_request(&built.digest))
        .await
        .expect("execute")
}

/// Reads a whole blob through ByteStream.
pub async fn read_blob(server: &TestServer, digest: &reapi::Digest) -> Vec<u8> {
    let mut client = server.bytestream().await;
    let request = remex_proto::bytestream::ReadRequest {
        resource_name: format!("blobs/{}/{}", digest.hash, digest.size_bytes),
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

/// The `PreconditionFailure` subjects carried by a status.
pub fn missing_subjects(status: &tonic::Status) -> Vec<String> {
    let details = remex_proto::rpc::Status::decode(status.details()).expect("google.rpc.Status");
    details
        .details
        .iter()
        .filter(|any| any.type_url == "type.googleapis.com/google.rpc.PreconditionFailure")
        .flat_map(|any| {
            let failure = remex_proto::rpc::PreconditionFailure::decode(any.value.as_slice())
                .expect("PreconditionFailure decodes");
            failure.violations.into_iter().map(|v| {
                assert_eq!(v.r#type, "MISSING");
                v.subject
            })
        })
        .collect()
}

pub fn subject(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.hex(), digest.size_bytes)
}

/// The real `remex serve` binary, killed when dropped.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl ServeProcess {
    /// Starts `remex serve --listen 127.0.0.1:0 --store STORE ARGS...` and waits for the line
    /// with the address it listens on.
    pub fn spawn(store: &std::path::Path, args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_remex"))
            .args(["serve", "--listen", "127.0.0.1:0", "--store"])
            .arg(store)
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("remex serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("a line from remex serve");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self { child, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connects")
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill_hard(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
