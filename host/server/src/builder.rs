//! Setting a server up, starting it, and stopping it cleanly.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use remex_proto::bytestream::byte_stream_server::ByteStreamServer;
use remex_proto::reapi::action_cache_server::ActionCacheServer;
use remex_proto::reapi::capabilities_server::CapabilitiesServer;
use remex_proto::reapi::content_addressable_storage_server::ContentAddressableStorageServer;
use remex_proto::reapi::execution_server::ExecutionServer;
use remex_store::LocalStore;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::{Connected, Router, TcpIncoming};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::action_cache::ActionCacheService;
use crate::bytestream::ByteStreamService;
use crate::capabilities::CapabilitiesService;
use crate::cas::CasService;
use crate::error::ServerError;
use crate::execution::ExecutionService;
use crate::gate::Gate;
use crate::platform::Platform;
use crate::state::{Settings, Shared};

/// Temporary files older than this, left by a crashed writer, are removed at startup.
const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// How long connections may stay open once running actions have had their grace period.
const DRAIN: Duration = Duration::from_secs(5);

/// Bytes buffered in each direction of an in-process connection.
const IN_PROCESS_BUFFER: usize = 256 << 10;

/// Settings for a server over one [`LocalStore`], and the way to start it.
///
/// Defaults:
/// - `workers`: one per core ([`std::thread::available_parallelism`]);
/// - `platform`: no properties, so only actions that ask for none are accepted;
/// - `instance_names`: none, meaning every instance name is accepted (all share the store);
/// - `tls`: none (plaintext); `auth_token`: none (no authentication);
/// - `max_batch_total_size_bytes`: 4 MiB;
/// - `read_chunk_bytes`: 64 KiB per ByteStream `ReadResponse`;
/// - `shutdown_grace`: 10 s for running actions to finish once the server is told to stop;
/// - `operation_retention`: 10 min during which `WaitExecution` finds a finished operation.
#[derive(Debug)]
pub struct ServerBuilder {
    store: LocalStore,
    workers: usize,
    platform: Vec<(String, String)>,
    instance_names: Vec<String>,
    tls: Option<TlsOptions>,
    auth_token: Option<String>,
    max_batch_total_size_bytes: u64,
    read_chunk_bytes: usize,
    shutdown_grace: Duration,
    operation_retention: Duration,
}

/// The server's certificate and key, PEM-encoded, and optionally the certificate authority
/// client certificates must be signed by (mutual TLS). Without `client_ca_pem`, clients are not
/// asked for a certificate.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    pub certificate_pem: Vec<u8>,
    pub private_key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
}

/// Where to listen: an address to bind, or a listener already bound (to learn the port of
/// `127.0.0.1:0` before serving, for example).
#[derive(Debug)]
pub enum Listen {
    Address(SocketAddr),
    Listener(TcpListener),
}

impl From<SocketAddr> for Listen {
    fn from(address: SocketAddr) -> Self {
        Self::Address(address)
    }
}

impl From<TcpListener> for Listen {
    fn from(listener: TcpListener) -> Self {
        Self::Listener(listener)
    }
}

/// A server that is accepting connections.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// The address the server listens on, with the real port when it was asked for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Resolves when the server has stopped: after the shutdown future given to
    /// [`ServerBuilder::serve`] resolved, every operation finished or failed, and the
    /// connections closed.
    pub async fn wait(self) -> Result<(), ServerError> {
        self.task.await.map_err(ServerError::Task)?
    }

    /// Stops the server at once, without waiting for anything in flight.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// A server reached without a socket: each [`InProcessServer::connect`] is a new in-memory
/// connection, over which a gRPC client (for example a tonic `Endpoint` with
/// `connect_with_connector`) talks to the server as it would over TCP.
#[derive(Debug)]
pub struct InProcessServer {
    connector: InProcessConnector,
    task: JoinHandle<Result<(), ServerError>>,
}

/// Opens in-memory connections to an [`InProcessServer`]; cheap to clone, for connector
/// closures.
#[derive(Clone, Debug)]
pub struct InProcessConnector {
    connections: mpsc::Sender<DuplexStream>,
}

impl InProcessConnector {
    /// A new connection to the server.
    pub async fn connect(&self) -> Result<DuplexStream, ServerError> {
        let (client, server) = tokio::io::duplex(IN_PROCESS_BUFFER);
        self.connections
            .send(server)
            .await
            .map_err(|_| ServerError::Stopped)?;
        Ok(client)
    }
}

impl InProcessServer {
    pub fn connector(&self) -> InProcessConnector {
        self.connector.clone()
    }

    /// Resolves when the server has stopped, as [`RunningServer::wait`] does.
    pub async fn wait(self) -> Result<(), ServerError> {
        self.task.await.map_err(ServerError::Task)?
    }
}

impl ServerBuilder {
    /// A server over `store`, with the defaults listed on [`ServerBuilder`].
    pub fn new(store: LocalStore) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            store,
            workers,
            platform: Vec::new(),
            instance_names: Vec::new(),
            tls: None,
            auth_token: None,
            max_batch_total_size_bytes: 4 << 20,
            read_chunk_bytes: 64 << 10,
            shutdown_grace: Duration::from_secs(10),
            operation_retention: Duration::from_secs(600),
        }
    }

    /// How many actions run at once (at least one).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The platform properties this server offers, as `(name, value)` pairs. An action that
    /// asks for any other property is refused with `FAILED_PRECONDITION`.
    pub fn platform(mut self, properties: impl IntoIterator<Item = (String, String)>) -> Self {
        self.platform = properties.into_iter().collect();
        self
    }

    /// The instance names served; requests naming another are refused. None (the default)
    /// accepts every instance name.
    pub fn instance_names(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.instance_names = names.into_iter().collect();
        self
    }

    /// Serves over TLS.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Refuses, with `UNAUTHENTICATED`, every request without `authorization: Bearer <token>`.
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// The limit on a batch RPC's total blob size, advertised in the capabilities.
    pub fn max_batch_total_size_bytes(mut self, bytes: u64) -> Self {
        self.max_batch_total_size_bytes = bytes;
        self
    }

    /// How long running actions may go on once the server is told to stop, before they are
    /// killed and their operations failed with `UNAVAILABLE`.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Binds, starts serving in a background task, and returns once connections are accepted.
    /// When `shutdown` resolves the server stops taking new work: queued actions fail with
    /// `UNAVAILABLE`, running ones get the grace period and then fail the same way, and the
    /// server ends once its connections close.
    pub async fn serve(
        self,
        listen: impl Into<Listen>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<RunningServer, ServerError> {
        let listener = bind(listen.into()).await?;
        let local_addr = listener.local_addr().map_err(ServerError::LocalAddress)?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let task = self.start(incoming, shutdown)?;
        tracing::debug!(%local_addr, "server listening");
        Ok(RunningServer { local_addr, task })
    }

    /// Starts serving without a socket; see [`InProcessServer`]. Shutdown works as for
    /// [`ServerBuilder::serve`]; with [`ServerBuilder::tls`] set, connections speak TLS too.
    pub async fn serve_in_process(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<InProcessServer, ServerError> {
        let (connections, receiver) = mpsc::channel(64);
        let incoming = ReceiverStream::new(receiver).map(Ok::<_, io::Error>);
        let task = self.start(incoming, shutdown)?;
        Ok(InProcessServer {
            connector: InProcessConnector { connections },
            task,
        })
    }

    /// Spawns the server over `incoming` connections.
    fn start<I, IO>(
        self,
        incoming: I,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<JoinHandle<Result<(), ServerError>>, ServerError>
    where
        I: Stream<Item = Result<IO, io::Error>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    {
        let shared = Arc::new(self.shared());
        match shared.store.remove_stale_temp_files(STALE_TEMP_AGE) {
            Ok(removed) => tracing::debug!(removed, "stale temporary files removed"),
            Err(error) => tracing::debug!(%error, "cannot sweep temporary files"),
        }
        let router = self.router(&shared)?;
        let stopping = shared.clone();
        let signal = async move {
            shutdown.await;
            tracing::debug!("server stopping");
            stopping.stop();
        };
        Ok(tokio::spawn(run(router, incoming, signal, shared)))
    }

    fn shared(&self) -> Shared {
        let settings = Settings {
            instance_names: self.instance_names.clone(),
            max_batch_total_size_bytes: self.max_batch_total_size_bytes,
            read_chunk_bytes: self.read_chunk_bytes,
            shutdown_grace: self.shutdown_grace,
            operation_retention: self.operation_retention,
        };
        let platform = Platform::new(self.platform.iter().cloned());
        Shared::new(self.store.clone(), settings, platform, self.workers)
    }

    /// Every service behind the gate, accepting zstd-compressed messages, with room for a full
    /// batch plus its framing.
    fn router(self, shared: &Arc<Shared>) -> Result<Router, ServerError> {
        let mut server = Server::builder().http2_keepalive_interval(Some(Duration::from_secs(30)));
        if let Some(tls) = &self.tls {
            server = server
                .tls_config(tls_config(tls))
                .map_err(ServerError::Tls)?;
        }
        let gate = Gate::new(self.auth_token);
        let limit = usize::try_from(self.max_batch_total_size_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(1 << 20);
        let zstd = CompressionEncoding::Zstd;

        let capabilities = CapabilitiesServer::new(CapabilitiesService::new(shared.clone()))
            .accept_compressed(zstd);
        let cas = ContentAddressableStorageServer::new(CasService::new(shared.clone()))
            .accept_compressed(zstd)
            .send_compressed(zstd)
            .max_decoding_message_size(limit);
        // Compressed blobs travel in ByteStream's own zstd form; compressing them again in
        // gRPC would waste time.
        let bytestream = ByteStreamServer::new(ByteStreamService::new(shared.clone()))
            .accept_compressed(zstd)
            .max_decoding_message_size(limit);
        let action_cache = ActionCacheServer::new(ActionCacheService::new(shared.clone()))
            .accept_compressed(zstd)
            .send_compressed(zstd)
            .max_decoding_message_size(limit);
        let execution = ExecutionServer::new(ExecutionService::new(shared.clone()))
            .accept_compressed(zstd)
            .max_decoding_message_size(limit);

        Ok(server
            .add_service(InterceptedService::new(capabilities, gate.clone()))
            .add_service(InterceptedService::new(cas, gate.clone()))
            .add_service(InterceptedService::new(bytestream, gate.clone()))
            .add_service(InterceptedService::new(action_cache, gate.clone()))
            .add_service(InterceptedService::new(execution, gate)))
    }
}

fn tls_config(tls: &TlsOptions) -> ServerTlsConfig {
    let identity = Identity::from_pem(&tls.certificate_pem, &tls.private_key_pem);
    let config = ServerTlsConfig::new().identity(identity);
    match &tls.client_ca_pem {
        Some(ca) => config.client_ca_root(Certificate::from_pem(ca)),
        None => config,
    }
}

async fn bind(listen: Listen) -> Result<TcpListener, ServerError> {
    match listen {
        Listen::Listener(listener) => Ok(listener),
        Listen::Address(address) => TcpListener::bind(address)
            .await
            .map_err(|source| ServerError::Bind { address, source }),
    }
}

/// Serves until the signal, then waits for connections to close, but no longer than the
/// grace period plus [`DRAIN`]: a client that keeps a stream open cannot hold the server up.
async fn run<I, IO>(
    router: Router,
    incoming: I,
    signal: impl Future<Output = ()>,
    shared: Arc<Shared>,
) -> Result<(), ServerError>
where
    I: Stream<Item = Result<IO, io::Error>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
{
    let serving = router.serve_with_incoming_shutdown(incoming, signal);
    let deadline = async {
        shared.stopped().await;
        tokio::time::sleep(shared.settings.shutdown_grace + DRAIN).await;
    };
    tokio::select! {
        served = serving => served.map_err(ServerError::Transport),
        () = deadline => {
            tracing::debug!("connections still open after the grace period; closing them");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use hyper_util::rt::TokioIo;
    use remex_proto::reapi;
    use remex_proto::reapi::capabilities_client::CapabilitiesClient;
    use tonic::transport::Endpoint;

    use super::*;

    #[tokio::test]
    async fn in_process_servers_need_no_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("store");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let server = ServerBuilder::new(store)
            .serve_in_process(shutdown)
            .await
            .expect("starts");
        let connector = server.connector();
        let channel = Endpoint::from_static("http://in-process")
            .connect_with_connector(tower::service_fn(move |_| {
                let connector = connector.clone();
                async move { connector.connect().await.map(TokioIo::new) }
            }))
            .await
            .expect("connects");
        let mut client = CapabilitiesClient::new(channel);
        let request = reapi::GetCapabilitiesRequest::default();
        let capabilities = client.get_capabilities(request).await.expect("answers");
        assert!(capabilities.into_inner().execution_capabilities.is_some());

        drop(client);
        let _ = stop.send(());
        server.wait().await.expect("stops");
    }
}
