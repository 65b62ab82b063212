//! What every call carries besides its message: the connection's headers and token, the
//! `RequestMetadata` that lets a server's operators tell whose call it is, and a deadline.

use std::time::Duration;

use prost::Message;
use remex_proto::{REQUEST_METADATA_HEADER, reapi};
use remex_store::ActionDigest;
use tonic::metadata::MetadataValue;

use crate::channel::Connection;

/// Who a call is for, sent in `RequestMetadata`. Empty fields are simply not known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The action digest's hash, when the call serves one action.
    pub action_id: String,
    /// The target the action belongs to, such as `//src/app:tests`.
    pub target_id: String,
    /// A short word for the kind of action, such as `pytest`.
    pub action_mnemonic: String,
}

impl CallContext {
    /// The context of calls made for `action`.
    pub fn for_action(action: &ActionDigest) -> Self {
        Self {
            action_id: action.0.hex(),
            ..Self::default()
        }
    }

    /// The same context, naming `target`.
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target_id = target.into();
        self
    }
}

/// Wraps `message` in a request carrying `connection`'s headers, the `RequestMetadata` of
/// `context` for invocation `invocation_id`, and `timeout` for the server to see.
pub(crate) fn request<T>(
    connection: &Connection,
    invocation_id: &str,
    context: &CallContext,
    message: T,
    timeout: Option<Duration>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = connection.headers.clone();
    let encoded = request_metadata(invocation_id, context).encode_to_vec();
    request
        .metadata_mut()
        .insert_bin(REQUEST_METADATA_HEADER, MetadataValue::from_bytes(&encoded));
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    request
}

fn request_metadata(invocation_id: &str, context: &CallContext) -> reapi::RequestMetadata {
    reapi::RequestMetadata {
        tool_details: Some(reapi::ToolDetails {
            tool_name: "remex".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
        }),
        action_id: context.action_id.clone(),
        tool_invocation_id: invocation_id.to_owned(),
        correlated_invocations_id: String::new(),
        action_mnemonic: context.action_mnemonic.clone(),
        target_id: context.target_id.clone(),
        configuration_id: String::new(),
    }
}
