//! Where actions run and which caches they use: the local executor with the local cache by
//! default; a REAPI server for targets whose environment is remote when `remote_execution` is
//! on; a remote cache beside local execution with `remote_cache_read` / `remote_cache_write`.

use std::sync::Arc;

use remex_action::{OutputFields, PreparedAction};
use remex_client::{CallContext, ClientStats, ExecuteOptions, RemoteClient, ResultOrigin};
use remex_exec::{ExecutionOutcome, LocalExecutor};
use remex_proto::reapi;
use remex_store::{Digest, LocalStore};
use tokio::sync::Semaphore;
use tracing::warn;

use crate::progress::Counters;

/// Where an action's result came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    LocalCache,
    RemoteCache,
    Local,
    Remote,
}

impl Place {
    pub fn cached(self) -> bool {
        matches!(self, Self::LocalCache | Self::RemoteCache)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::LocalCache => "local cache",
            Self::RemoteCache => "remote cache",
            Self::Local => "local",
            Self::Remote => "remote",
        }
    }
}

/// The result of one action and where it came from.
#[derive(Clone, Debug)]
pub struct ActionRun {
    pub result: reapi::ActionResult,
    pub timed_out: bool,
    pub place: Place,
    /// The server's message for the user, if any.
    pub message: String,
}

/// How a run executes actions.
#[derive(Clone)]
pub struct Backend {
    local: LocalExecutor,
    /// Places for processes run on this machine (`process_execution_local_parallelism`).
    /// Cache lookups and remote executions take none: the client bounds those itself.
    local_slots: Arc<Semaphore>,
    counters: Arc<Counters>,
    remote: Option<RemoteClient>,
    cache_read: bool,
    cache_write: bool,
}

impl Backend {
    /// Everything on this machine, at most `local_parallelism` processes at once.
    pub fn local(store: LocalStore, local_parallelism: usize) -> Self {
        Self {
            local: LocalExecutor::new(store),
            local_slots: Arc::new(Semaphore::new(local_parallelism.max(1))),
            counters: Arc::default(),
            remote: None,
            cache_read: false,
            cache_write: false,
        }
    }

    /// With a REAPI server for remote environments and, as asked, as a cache.
    pub fn with_remote(
        local: Self,
        client: RemoteClient,
        cache_read: bool,
        cache_write: bool,
    ) -> Self {
        Self {
            remote: Some(client),
            cache_read,
            cache_write,
            ..local
        }
    }

    pub fn store(&self) -> &LocalStore {
        self.local.store()
    }

    /// The output fields commands must carry where they run.
    pub fn output_fields(&self, remote: bool) -> OutputFields {
        match (&self.remote, remote) {
            (Some(client), true) => client.output_fields(),
            _ => OutputFields::Paths,
        }
    }

    /// Actions queued, running and done, for the live view.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Counters of the remote client, when there is one.
    pub fn remote_stats(&self) -> Option<ClientStats> {
        self.remote.as_ref().map(RemoteClient::stats)
    }

    /// Runs `prepared` remotely when its environment is remote, else locally. An action counts
    /// as running from here to its result, but for the time it is queued for a place on this
    /// machine.
    pub async fn run(
        &self,
        prepared: &PreparedAction,
        target: &str,
        remote: bool,
    ) -> Result<ActionRun, String> {
        self.counters.start();
        let result = match (&self.remote, remote) {
            (Some(client), true) => self.run_remote(client, prepared, target).await,
            (None, true) => Err("the environment is remote, but `remote_execution` is off".into()),
            (_, false) => self.run_local(prepared, target).await,
        };
        self.counters
            .finish(result.as_ref().is_ok_and(|r| r.place.cached()));
        result
    }

    async fn run_remote(
        &self,
        client: &RemoteClient,
        prepared: &PreparedAction,
        target: &str,
    ) -> Result<ActionRun, String> {
        let options = ExecuteOptions {
            target_id: target.to_owned(),
            ..ExecuteOptions::default()
        };
        let outcome = client
            .execute(prepared, &options)
            .await
            .map_err(|e| e.to_string())?;
        // Trees are small and say which files an output directory holds; the files themselves
        // stay on the server until someone reads them.
        let trees = tree_digests(&outcome.result);
        self.ensure_local(&trees, target).await?;
        let place = match outcome.origin {
            ResultOrigin::ActionCache | ResultOrigin::ExecutionCache => Place::RemoteCache,
            ResultOrigin::Executed => Place::Remote,
        };
        Ok(ActionRun {
            result: outcome.result,
            timed_out: outcome.timed_out,
            place,
            message: outcome.message,
        })
    }

    async fn run_local(
        &self,
        prepared: &PreparedAction,
        target: &str,
    ) -> Result<ActionRun, String> {
        let digest = &prepared.digest;
        if let Some(result) = self
            .local
            .cached_result(digest)
            .map_err(|e| e.to_string())?
        {
            return Ok(finished(result, Place::LocalCache));
        }
        if let Some(result) = self.remote_cache_lookup(prepared, target).await {
            return Ok(finished(result, Place::RemoteCache));
        }

        self.counters.queue();
        let slot = self.local_slots.acquire().await;
        self.counters.dequeue();
        let _slot = slot.map_err(|e| e.to_string())?;
        // The executor reads the action from the local store.
        let (store, to_store) = (self.store().clone(), prepared.clone());
        tokio::task::spawn_blocking(move || to_store.store_messages(&store))
            .await
            .map_err(|e| format!("storing the action stopped: {e}"))?
            .map_err(|e| e.to_string())?;
        let outcome = self.local.run(digest).await.map_err(|e| e.to_string())?;
        self.remote_cache_store(prepared, &outcome, target).await;
        Ok(ActionRun {
            place: if outcome.cached {
                Place::LocalCache
            } else {
                Place::Local
            },
            result: outcome.result,
            timed_out: outcome.timed_out,
            message: String::new(),
        })
    }

    /// A usable result from the remote cache, with its outputs fetched so that this machine
    /// can run what depends on them. Any failure is a miss: the action simply runs here.
    async fn remote_cache_lookup(
        &self,
        prepared: &PreparedAction,
        target: &str,
    ) -> Option<reapi::ActionResult> {
        let client = self.remote.as_ref().filter(|_| self.cache_read)?;
        let cx = CallContext::for_action(&prepared.digest).with_target(target);
        let found = client.get_action_result(&prepared.digest, &cx).await;
        let result = match found {
            Ok(result) => result?,
            Err(e) => {
                warn!(error = %e, "remote cache lookup failed; running locally");
                return None;
            }
        };
        // Some servers cache failures too; a failure is always run again, as here.
        if result.exit_code != 0 {
            return None;
        }
        if let Err(e) = client.fetch_outputs(&result, &cx).await {
            warn!(error = %e, "fetching cached outputs failed; running locally");
            return None;
        }
        let _ = self.store().put_action_result(&prepared.digest, &result);
        Some(result)
    }

    async fn remote_cache_store(
        &self,
        prepared: &PreparedAction,
        outcome: &ExecutionOutcome,
        target: &str,
    ) {
        let Some(client) = self.remote.as_ref().filter(|_| self.cache_write) else {
            return;
        };
        if outcome.cached || outcome.timed_out || outcome.result.exit_code != 0 {
            return;
        }
        let cx = CallContext::for_action(&prepared.digest).with_target(target);
        if let Err(e) = client
            .update_action_result(prepared, &outcome.result, &cx)
            .await
        {
            warn!(error = %e, "writing to the remote cache failed");
        }
    }

    /// Makes sure these blobs are in the local store, fetching them from the server if needed.
    pub async fn ensure_local(&self, digests: &[Digest], target: &str) -> Result<(), String> {
        let missing: Vec<Digest> = digests
            .iter()
            .filter(|d| !self.store().contains(d))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let Some(client) = &self.remote else {
            return Err(format!("blobs missing from the local store: {missing:?}"));
        };
        let cx = CallContext::default().with_target(target);
        client
            .download_blobs(missing, &cx)
            .await
            .map_err(|e| e.to_string())
    }
}

fn finished(result: reapi::ActionResult, place: Place) -> ActionRun {
    ActionRun {
        result,
        timed_out: false,
        place,
        message: String::new(),
    }
}

fn tree_digests(result: &reapi::ActionResult) -> Vec<Digest> {
    result
        .output_directories
        .iter()
        .filter_map(|d| Digest::from_proto_field(d.tree_digest.as_ref()).ok())
        .collect()
}
