//! The action cache: looking an action's result up, and recording the result of an action run
//! on this machine (`remote_cache_write`).

use remex_action::PreparedAction;
use remex_proto::reapi;
use remex_store::{ActionDigest, Digest};
use tonic::Code;

use crate::client::{Inner, Limits, within};
use crate::convert;
use crate::error::ReapiError;
use crate::metadata::CallContext;

impl Inner {
    pub async fn get_action_result(
        &self,
        action: &ActionDigest,
        context: &CallContext,
    ) -> Result<Option<reapi::ActionResult>, ReapiError> {
        let rpc = "GetActionResult";
        let timeout = self.options.cache_rpc_timeout;
        let found = self
            .retrier
            .run(rpc, || async {
                let _permit = Limits::acquire(&self.limits.cache).await?;
                let message = reapi::GetActionResultRequest {
                    instance_name: self.options.instance_name.clone(),
                    action_digest: Some(action.0.to_proto()),
                    ..Default::default()
                };
                let request = self.store_request(context, message, timeout);
                let mut client = self.action_cache_client();
                match within(rpc, timeout, client.get_action_result(request)).await {
                    Ok(response) => Ok(Some(response.into_inner())),
                    // The cache's way of saying "miss".
                    Err(status) if status.code() == Code::NotFound => Ok(None),
                    Err(status) => Err(self.store_error(rpc, status)),
                }
            })
            .await?;
        self.stats.count_cache_lookup(found.is_some());
        Ok(found)
    }

    pub async fn update_action_result(
        &self,
        action: &PreparedAction,
        result: &reapi::ActionResult,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        if !self.features.action_cache_update {
            return Err(ReapiError::Unsupported {
                address: self.store_connection().address.clone(),
                what: "action cache writes (`update_enabled` is false)".into(),
            });
        }
        let blobs = self.result_upload_set(action, result).await?;
        self.upload_blobs(&blobs, context).await?;

        let rpc = "UpdateActionResult";
        let timeout = self.options.cache_rpc_timeout;
        self.retrier
            .run(rpc, || async {
                let _permit = Limits::acquire(&self.limits.cache).await?;
                let message = reapi::UpdateActionResultRequest {
                    instance_name: self.options.instance_name.clone(),
                    action_digest: Some(action.digest.0.to_proto()),
                    action_result: Some(result.clone()),
                    ..Default::default()
                };
                let request = self.store_request(context, message, timeout);
                let mut client = self.action_cache_client();
                let response = within(rpc, timeout, client.update_action_result(request)).await;
                response.map_err(|s| self.store_error(rpc, s))?;
                Ok(())
            })
            .await
    }

    /// The `Action`, its `Command`, and every blob the result names, with the files inside
    /// its output trees (read from the local store, where a local run left them).
    async fn result_upload_set(
        &self,
        action: &PreparedAction,
        result: &reapi::ActionResult,
    ) -> Result<Vec<Digest>, ReapiError> {
        let command = convert::required_digest("Action", action.action.command_digest.as_ref())?;
        let mut blobs = vec![action.digest.0, command];
        blobs.extend(convert::result_blobs(result)?);
        let trees = convert::result_trees(result)?;
        blobs.extend(self.local_tree_files(trees).await?);
        Ok(blobs)
    }
}
