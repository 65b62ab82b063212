//! Connecting a run to its REAPI server, from the `[GLOBAL]` remote options.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use remex_client::{RemoteClient, RemoteOptions};
use remex_options::{GlobalOptions, Headers};

use crate::backend::Backend;
use crate::workspace::Workspace;

impl Workspace {
    /// The backend of this run: local only, or with the remote server the options name.
    pub async fn backend(&self) -> anyhow::Result<Backend> {
        let global = &self.options.global;
        let local = Backend::local(
            self.store.clone(),
            global.process_execution_local_parallelism,
        );
        if !global.uses_remote() {
            return Ok(local);
        }
        let options = remote_options(global)?;
        let client = RemoteClient::connect(options, self.store.clone())
            .await
            .context("cannot use the remote server of `remote_store_address`")?;
        Ok(Backend::with_remote(
            local,
            client,
            global.remote_cache_read,
            global.remote_cache_write,
        ))
    }
}

/// The client's settings from the validated options (which already checked that the needed
/// addresses are there and well formed).
fn remote_options(global: &GlobalOptions) -> anyhow::Result<RemoteOptions> {
    let store = global
        .remote_store_address
        .as_ref()
        .context("`remote_store_address` is not set")?;
    let mut options = RemoteOptions::new(store.to_string());
    options.execution_address = global
        .remote_execution_address
        .as_ref()
        .map(ToString::to_string);
    options.instance_name = global.remote_instance_name.clone().unwrap_or_default();
    options.ca_certs_path = global.remote_ca_certs_path.clone();
    options.client_certs_path = global.remote_client_certs_path.clone();
    options.client_key_path = global.remote_client_key_path.clone();
    options.store_headers = headers(&global.remote_store_headers);
    options.execution_headers = headers(&global.remote_execution_headers);
    options.oauth_bearer_token = global
        .remote_oauth_bearer_token
        .as_ref()
        .map(|t| t.expose().to_owned());
    options.chunk_bytes = global.remote_store_chunk_bytes;
    options.batch_size_limit = global.remote_store_batch_api_size_limit as u64;
    options.rpc_retries = global.remote_store_rpc_retries;
    options.store_rpc_concurrency = global.remote_store_rpc_concurrency;
    options.cache_rpc_concurrency = global.remote_cache_rpc_concurrency;
    options.execution_parallelism = global.process_execution_remote_parallelism;
    options.store_rpc_timeout = global.remote_store_rpc_timeout();
    options.cache_rpc_timeout = global.remote_cache_rpc_timeout();
    options.overall_deadline = Some(Duration::from_secs(
        global.remote_execution_overall_deadline_secs,
    ));
    Ok(options)
}

fn headers(headers: &Headers) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}
