//! What the services share: the store and executor, the settings, the upload and operation
//! registries, the worker pool, and the flag that says the server is stopping.

use std::sync::Arc;
use std::time::Duration;

use remex_exec::LocalExecutor;
use remex_store::LocalStore;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{Semaphore, watch};
use tonic::Status;

use crate::operations::Operations;
use crate::platform::Platform;
use crate::uploads::Uploads;

/// Settings resolved by the builder.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Instance names served; empty means any.
    pub instance_names: Vec<String>,
    pub max_batch_total_size_bytes: u64,
    /// Size of each `ReadResponse` chunk.
    pub read_chunk_bytes: usize,
    /// How long running actions may go on once the server is told to stop.
    pub shutdown_grace: Duration,
    /// How long a finished operation can still be found by `WaitExecution`.
    pub operation_retention: Duration,
}

pub(crate) struct Shared {
    pub store: LocalStore,
    pub executor: LocalExecutor,
    pub settings: Settings,
    pub platform: Platform,
    pub uploads: Uploads,
    pub operations: Operations,
    /// One permit per worker: how many actions run at once.
    pub workers: Arc<Semaphore>,
    stopping: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(
        store: LocalStore,
        settings: Settings,
        platform: Platform,
        workers: usize,
    ) -> Self {
        Self {
            executor: LocalExecutor::new(store.clone()),
            store,
            operations: Operations::new(settings.operation_retention),
            settings,
            platform,
            uploads: Uploads::default(),
            workers: Arc::new(Semaphore::new(workers)),
            stopping: watch::Sender::new(false),
        }
    }

    /// Refuses instance names this server was not told to serve.
    pub(crate) fn check_instance(&self, name: &str) -> Result<(), Status> {
        let names = &self.settings.instance_names;
        if names.is_empty() || names.iter().any(|n| n == name) {
            return Ok(());
        }
        Err(Status::invalid_argument(format!(
            "unknown instance name `{name}`; this server serves {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// Marks the server as stopping: new executions are refused, queued ones fail, running
    /// ones get the grace period.
    pub(crate) fn stop(&self) {
        self.stopping.send_replace(true);
    }

    pub(crate) fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Resolves once the server is stopping.
    pub(crate) async fn stopped(&self) {
        let mut receiver = self.stopping.subscribe();
        // An error means the sender is gone, which only happens when the server is.
        let _ = receiver.wait_for(|stopping| *stopping).await;
    }
}

/// Runs blocking file work from async code: on a multi-threaded runtime the worker thread
/// hands its other tasks away first; on a current-thread runtime (tests) it just runs.
pub(crate) fn blocking<R>(work: impl FnOnce() -> R) -> R {
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Refuses digest functions other than SHA-256; `UNKNOWN` (unset) means SHA-256, as REAPI
/// says for servers that offer only one.
pub(crate) fn check_digest_function(value: i32) -> Result<(), Status> {
    use remex_proto::reapi::digest_function::Value;
    match Value::try_from(value) {
        Ok(Value::Unknown | Value::Sha256) => Ok(()),
        Ok(other) => Err(Status::invalid_argument(format!(
            "digest function {} is not supported; this server uses SHA256",
            other.as_str_name()
        ))),
        Err(_) => Err(Status::invalid_argument(format!(
            "digest function {value} is not supported; this server uses SHA256"
        ))),
    }
}
