//! An in-process REAPI server for tests, with a scripted queue of faults.
//!
//! [`FakeServer::start`] serves Capabilities, CAS, ByteStream, the action cache and Execution
//! on `127.0.0.1:0` over an in-memory map. Each call takes the next [`Fault`] queued for its
//! [`Rpc`], if any. The fake counts calls and the calls of each kind in flight at once, and
//! keeps what every call carried, so tests can check headers and limits.
//!
//! Execution is make-believe: `["exit", "N"]` exits with `N`, `["timeout"]` times out,
//! anything else exits 0; stdout says what ran; every declared output gets a small blob.

mod run;
mod services;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use remex_action::PreparedAction;
use remex_proto::build::bazel::semver::SemVer;
use remex_proto::{REQUEST_METADATA_HEADER, reapi};
use remex_store::{ActionDigest, Digest, InputEntry, InputTreeBuilder, LocalStore};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Code, Status};

use crate::options::{Clock, Sleep};

/// The calls the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rpc {
    GetCapabilities,
    FindMissingBlobs,
    BatchUpdateBlobs,
    BatchReadBlobs,
    Read,
    Write,
    QueryWriteStatus,
    GetActionResult,
    UpdateActionResult,
    Execute,
    WaitExecution,
}

impl Rpc {
    fn class(self) -> Option<Class> {
        match self {
            Self::GetCapabilities => None,
            Self::GetActionResult | Self::UpdateActionResult => Some(Class::Cache),
            Self::Execute | Self::WaitExecution => Some(Class::Execution),
            _ => Some(Class::Store),
        }
    }
}

#[derive(Clone, Copy)]
enum Class {
    Store,
    Cache,
    Execution,
}

/// What to do to one call instead of serving it plainly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fail with this code.
    Status(Code),
    /// Fail with this code and a `RetryInfo` asking for this delay.
    StatusWithRetryInfo(Code, Duration),
    /// Wait this long, then serve.
    Delay(Duration),
    /// `Execute`: send the operation's name, then break the stream; the action still runs
    /// and `WaitExecution` can find it.
    DropAfterName,
    /// `Execute`: forget these blobs just before checking the inputs, and fail the call with
    /// a `FAILED_PRECONDITION` naming what is missing.
    Evict(Vec<Digest>),
    /// `Execute`: the same, but reported in the finished operation's `ExecuteResponse`.
    EvictInResponse(Vec<Digest>),
    /// `Execute`: claim these blobs are missing although they are there.
    ReportMissing(Vec<Digest>),
    /// `Execute`: run nothing, and finish the operation with this error, as a server does when
    /// its worker fails.
    OperationError(Code),
    /// `Read`: send only the first `n` bytes, then end the stream cleanly.
    Truncate(usize),
    /// `Read` and `BatchReadBlobs`: send other bytes than the digest names.
    Corrupt,
    /// `Write`: keep the first `n` bytes, then fail with `UNAVAILABLE`.
    InterruptWrite(usize),
}

/// TLS for the fake: its certificate and key, and the CA client certificates must come from.
#[derive(Clone, Debug)]
pub struct FakeTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: Option<String>,
}

/// How the fake presents itself.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    pub instance_name: String,
    /// Advertised `max_batch_total_size_bytes`; batch requests over it are refused.
    pub max_batch_total_size_bytes: i64,
    pub zstd: bool,
    /// `high_api_version` is 2.`high_api_minor`.
    pub high_api_minor: i32,
    pub digest_functions: Vec<i32>,
    pub exec_enabled: bool,
    pub update_enabled: bool,
    /// When set, calls without `authorization: Bearer TOKEN` fail with `UNAUTHENTICATED`.
    pub required_token: Option<String>,
    /// Answer `BatchReadBlobs` with `UNIMPLEMENTED`, as Bazel's test server does.
    pub batch_read_unimplemented: bool,
    /// Leave digests out of `BatchUpdateBlobs` answers, as Bazel's test server does.
    pub batch_update_without_digests: bool,
    /// Send `ExecuteOperationMetadata` with operations (Bazel's test server sends none).
    pub operation_metadata: bool,
    /// Wait this long in every call, so that calls overlap.
    pub call_delay: Duration,
    pub tls: Option<FakeTls>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            instance_name: String::new(),
            max_batch_total_size_bytes: 4 * 1024 * 1024,
            zstd: false,
            high_api_minor: 3,
            digest_functions: vec![reapi::digest_function::Value::Sha256 as i32],
            exec_enabled: true,
            update_enabled: true,
            required_token: None,
            batch_read_unimplemented: false,
            batch_update_without_digests: false,
            operation_metadata: false,
            call_delay: Duration::ZERO,
            tls: None,
        }
    }
}

impl FakeConfig {
    fn capabilities(&self) -> reapi::ServerCapabilities {
        let zstd = reapi::compressor::Value::Zstd as i32;
        reapi::ServerCapabilities {
            cache_capabilities: Some(reapi::CacheCapabilities {
                digest_functions: self.digest_functions.clone(),
                action_cache_update_capabilities: Some(reapi::ActionCacheUpdateCapabilities {
                    update_enabled: self.update_enabled,
                }),
                max_batch_total_size_bytes: self.max_batch_total_size_bytes,
                supported_compressors: if self.zstd { vec![zstd] } else { Vec::new() },
                ..Default::default()
            }),
            execution_capabilities: Some(reapi::ExecutionCapabilities {
                digest_function: reapi::digest_function::Value::Sha256 as i32,
                exec_enabled: self.exec_enabled,
                ..Default::default()
            }),
            low_api_version: Some(version(0)),
            high_api_version: Some(version(self.high_api_minor)),
            ..Default::default()
        }
    }
}

fn version(minor: i32) -> SemVer {
    SemVer {
        major: 2,
        minor,
        ..Default::default()
    }
}

/// What one call carried.
#[derive(Clone, Debug)]
pub struct SeenCall {
    pub rpc: Rpc,
    pub request_metadata: Option<reapi::RequestMetadata>,
    pub user_agent: String,
    /// Every ASCII header but `authorization`.
    pub headers: BTreeMap<String, String>,
    pub authorization: Option<String>,
}

/// The most calls of each kind the fake saw in flight at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peaks {
    pub store: usize,
    pub cache: usize,
    pub execution: usize,
}

#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// Holds one place in a gauge while a call is served.
struct InFlightGuard<'a>(Option<&'a Gauge>);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Some(gauge) = self.0 {
            gauge.now.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The fake's memory, shared by its services and the test.
pub struct FakeState {
    config: FakeConfig,
    blobs: Mutex<HashMap<Digest, Bytes>>,
    action_results: Mutex<HashMap<Digest, reapi::ActionResult>>,
    faults: Mutex<HashMap<Rpc, VecDeque<Fault>>>,
    seen: Mutex<Vec<SeenCall>>,
    /// Partial uploads by resource name.
    writes: Mutex<HashMap<String, Vec<u8>>>,
    /// Finished operations by name, for `WaitExecution`.
    operations: Mutex<HashMap<String, remex_proto::longrunning::Operation>>,
    executions: Mutex<HashMap<Digest, usize>>,
    read_offsets: Mutex<Vec<i64>>,
    resource_names: Mutex<Vec<String>>,
    batch_sizes: Mutex<Vec<usize>>,
    gauges: [Gauge; 3],
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeState {
    fn new(config: FakeConfig) -> Self {
        Self {
            config,
            blobs: Mutex::default(),
            action_results: Mutex::default(),
            faults: Mutex::default(),
            seen: Mutex::default(),
            writes: Mutex::default(),
            operations: Mutex::default(),
            executions: Mutex::default(),
            read_offsets: Mutex::default(),
            resource_names: Mutex::default(),
            batch_sizes: Mutex::default(),
            gauges: Default::default(),
        }
    }

    /// Queues `fault` for the next call of `rpc`.
    pub fn inject(&self, rpc: Rpc, fault: Fault) {
        lock(&self.faults).entry(rpc).or_default().push_back(fault);
    }

    /// Queues `fault` for the next `times` calls of `rpc`.
    pub fn inject_times(&self, rpc: Rpc, fault: Fault, times: usize) {
        for _ in 0..times {
            self.inject(rpc, fault.clone());
        }
    }

    fn next_fault(&self, rpc: Rpc) -> Option<Fault> {
        lock(&self.faults).get_mut(&rpc)?.pop_front()
    }

    /// How many calls of `rpc` arrived.
    pub fn calls(&self, rpc: Rpc) -> usize {
        lock(&self.seen).iter().filter(|c| c.rpc == rpc).count()
    }

    /// What every call carried, in order of arrival.
    pub fn seen(&self) -> Vec<SeenCall> {
        lock(&self.seen).clone()
    }

    /// How many times the fake ran `action` (cache hits do not count).
    pub fn executions(&self, action: &ActionDigest) -> usize {
        lock(&self.executions).get(&action.0).copied().unwrap_or(0)
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        digest.is_empty_blob() || lock(&self.blobs).contains_key(digest)
    }

    pub fn blob(&self, digest: &Digest) -> Option<Bytes> {
        if digest.is_empty_blob() {
            return Some(Bytes::new());
        }
        lock(&self.blobs).get(digest).cloned()
    }

    /// Puts a blob in the fake's CAS, as if someone had uploaded it.
    pub fn insert_blob(&self, data: impl Into<Bytes>) -> Digest {
        let data = data.into();
        let digest = Digest::of_bytes(&data);
        lock(&self.blobs).insert(digest, data);
        digest
    }

    /// Puts a blob under a digest it does not match, to serve wrong bytes.
    pub fn insert_wrong_blob(&self, digest: Digest, data: impl Into<Bytes>) {
        lock(&self.blobs).insert(digest, data.into());
    }

    pub fn evict(&self, digests: &[Digest]) {
        let mut blobs = lock(&self.blobs);
        for digest in digests {
            blobs.remove(digest);
        }
    }

    pub fn action_result(&self, action: &ActionDigest) -> Option<reapi::ActionResult> {
        lock(&self.action_results).get(&action.0).cloned()
    }

    /// The `read_offset` of every `Read`, in order.
    pub fn read_offsets(&self) -> Vec<i64> {
        lock(&self.read_offsets).clone()
    }

    /// The resource name of every `Read` and `Write`, in order.
    pub fn resource_names(&self) -> Vec<String> {
        lock(&self.resource_names).clone()
    }

    /// The encoded size of every `BatchUpdateBlobs` request and `BatchReadBlobs` answer.
    pub fn batch_sizes(&self) -> Vec<usize> {
        lock(&self.batch_sizes).clone()
    }

    pub fn peaks(&self) -> Peaks {
        let peak = |i: usize| self.gauges[i].peak.load(Ordering::SeqCst);
        Peaks {
            store: peak(Class::Store as usize),
            cache: peak(Class::Cache as usize),
            execution: peak(Class::Execution as usize),
        }
    }

    fn enter(&self, rpc: Rpc) -> InFlightGuard<'_> {
        let Some(class) = rpc.class() else {
            return InFlightGuard(None);
        };
        let gauge = &self.gauges[class as usize];
        let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
        gauge.peak.fetch_max(now, Ordering::SeqCst);
        InFlightGuard(Some(gauge))
    }

    fn record<T>(&self, rpc: Rpc, request: &tonic::Request<T>) -> Option<String> {
        let metadata = request.metadata();
        let request_metadata = metadata
            .get_bin(REQUEST_METADATA_HEADER)
            .and_then(|v| v.to_bytes().ok())
            .and_then(|b| reapi::RequestMetadata::decode(b).ok());
        let text = |name: &str| {
            metadata
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut headers = BTreeMap::new();
        for entry in metadata.iter() {
            if let tonic::metadata::KeyAndValueRef::Ascii(key, value) = entry
                && key.as_str() != "authorization"
                && let Ok(value) = value.to_str()
            {
                headers.insert(key.as_str().to_owned(), value.to_owned());
            }
        }
        let authorization = text("authorization");
        lock(&self.seen).push(SeenCall {
            rpc,
            request_metadata,
            user_agent: text("user-agent").unwrap_or_default(),
            headers,
            authorization: authorization.clone(),
        });
        authorization
    }

    /// What every call does first: note it, check the token, count it in flight, and take its
    /// fault. A `Status` fault ends the call here; a `Delay` is served here.
    async fn begin<T>(&self, rpc: Rpc, request: &tonic::Request<T>) -> Result<Call<'_>, Status> {
        let authorization = self.record(rpc, request);
        let guard = self.enter(rpc);
        if let Some(token) = &self.config.required_token
            && authorization.as_deref() != Some(&format!("Bearer {token}"))
        {
            return Err(Status::unauthenticated("bad or missing token"));
        }
        if !self.config.call_delay.is_zero() {
            tokio::time::sleep(self.config.call_delay).await;
        }
        let fault = match self.next_fault(rpc) {
            Some(Fault::Status(code)) => return Err(Status::new(code, "injected fault")),
            Some(Fault::StatusWithRetryInfo(code, delay)) => {
                let details = crate::convert::retry_info_details(code, delay);
                return Err(Status::with_details(code, "injected fault", details.into()));
            }
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                None
            }
            other => other,
        };
        Ok(Call {
            fault,
            _guard: guard,
        })
    }

    fn check_instance(&self, instance_name: &str) -> Result<(), Status> {
        if instance_name == self.config.instance_name {
            Ok(())
        } else {
            let message = format!("unknown instance `{instance_name}`");
            Err(Status::invalid_argument(message))
        }
    }
}

/// A call being served.
struct Call<'a> {
    fault: Option<Fault>,
    _guard: InFlightGuard<'a>,
}

/// A running fake server; stops when dropped.
pub struct FakeServer {
    state: Arc<FakeState>,
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl FakeServer {
    /// Starts a fake with `config` on `127.0.0.1` and a free port.
    pub async fn start(config: FakeConfig) -> Result<Self, Box<dyn std::error::Error>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::new(FakeState::new(config));
        let (shutdown, stop) = oneshot::channel();
        let router = services::router(state.clone())?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let serve = router.serve_with_incoming_shutdown(incoming, async {
            let _ = stop.await;
        });
        let task = tokio::spawn(async move {
            if let Err(error) = serve.await {
                tracing::debug!(%error, "fake server stopped");
            }
        });
        Ok(Self {
            state,
            address,
            shutdown: Some(shutdown),
            task,
        })
    }

    /// `grpc://127.0.0.1:PORT`, or `grpcs://` with TLS.
    pub fn address(&self) -> String {
        let scheme = if self.state.config.tls.is_some() {
            "grpcs"
        } else {
            "grpc"
        };
        format!("{scheme}://{}", self.address)
    }

    pub fn state(&self) -> &FakeState {
        &self.state
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.abort();
    }
}

/// A clock whose sleeps end at once and are written down, with a fixed jitter.
#[derive(Debug, Default)]
pub struct InstantClock {
    sleeps: Mutex<Vec<Duration>>,
    jitter: f64,
}

impl InstantClock {
    pub fn with_jitter(jitter: f64) -> Self {
        Self {
            sleeps: Mutex::default(),
            jitter,
        }
    }

    /// Every sleep asked for, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        lock(&self.sleeps).clone()
    }
}

impl Clock for InstantClock {
    fn sleep(&self, duration: Duration) -> Sleep {
        lock(&self.sleeps).push(duration);
        Box::pin(std::future::ready(()))
    }

    fn jitter(&self) -> f64 {
        self.jitter
    }
}

/// Builds and stores an action the way `remex_action::prepare` would, from literal inputs:
/// `(path, content)` pairs, the arguments, and the declared outputs.
pub fn prepared_action(
    store: &LocalStore,
    arguments: &[&str],
    inputs: &[(&str, &[u8])],
    outputs: &[&str],
) -> Result<PreparedAction, Box<dyn std::error::Error>> {
    let mut tree = InputTreeBuilder::new();
    let mut input_bytes = 0;
    for (path, content) in inputs {
        let digest = store.put_bytes(content)?;
        input_bytes += digest.size_bytes;
        let entry = InputEntry::File {
            digest,
            is_executable: false,
        };
        tree.add(path, entry)?;
    }
    let tree = tree.build();
    for (_, bytes) in &tree.directories {
        store.put_bytes(bytes)?;
    }
    let command = reapi::Command {
        arguments: arguments.iter().map(|a| a.to_string()).collect(),
        output_paths: outputs.iter().map(|o| o.to_string()).collect(),
        ..Default::default()
    };
    let action = reapi::Action {
        command_digest: Some(store.put_message(&command)?.to_proto()),
        input_root_digest: Some(tree.root_digest.to_proto()),
        ..Default::default()
    };
    Ok(PreparedAction {
        digest: ActionDigest(store.put_message(&action)?),
        action,
        command,
        input_root: tree.root_digest,
        input_files: inputs.len(),
        input_bytes,
        // Everything is in the store already.
        messages: Default::default(),
    })
}
