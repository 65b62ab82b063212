//! What every request passes before reaching a service: the bearer token check (when the server
//! has a token) and the `RequestMetadata` header, logged when present and never required.

use std::sync::Arc;

use prost::Message;
use remex_proto::{REQUEST_METADATA_HEADER, reapi};
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The interceptor in front of every service.
#[derive(Clone, Debug, Default)]
pub(crate) struct Gate {
    token: Option<Arc<str>>,
}

impl Gate {
    pub(crate) fn new(token: Option<String>) -> Self {
        Self {
            token: token.map(Arc::from),
        }
    }

    fn check_token(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let presented = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match presented {
            Some(token) if same_secret(token.trim().as_bytes(), expected.as_bytes()) => Ok(()),
            Some(_) => Err(Status::unauthenticated("the bearer token is not accepted")),
            None => Err(Status::unauthenticated(
                "this server needs an `authorization: Bearer <token>` header",
            )),
        }
    }
}

impl Interceptor for Gate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        self.check_token(request.metadata())?;
        if let Some(metadata) = request_metadata(request.metadata()) {
            log_request_metadata(&metadata);
            request.extensions_mut().insert(metadata);
        }
        Ok(request)
    }
}

/// Compares without stopping at the first difference, so the time taken says nothing about
/// how much of a guessed token was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The decoded `RequestMetadata`, if the header is there and decodes.
fn request_metadata(metadata: &MetadataMap) -> Option<reapi::RequestMetadata> {
    let value = metadata.get_bin(REQUEST_METADATA_HEADER)?;
    let bytes = value.to_bytes().ok()?;
    reapi::RequestMetadata::decode(bytes).ok()
}

fn log_request_metadata(metadata: &reapi::RequestMetadata) {
    let tool = metadata.tool_details.as_ref();
    tracing::debug!(
        tool_name = tool.map_or("", |t| t.tool_name.as_str()),
        tool_version = tool.map_or("", |t| t.tool_version.as_str()),
        tool_invocation_id = %metadata.tool_invocation_id,
        correlated_invocations_id = %metadata.correlated_invocations_id,
        action_id = %metadata.action_id,
        action_mnemonic = %metadata.action_mnemonic,
        target_id = %metadata.target_id,
        "request metadata"
    );
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataValue;

    use super::*;

    fn request_with(header: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = header {
            let value = MetadataValue::try_from(value).expect("ascii");
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    #[test]
    fn without_a_token_everything_passes() {
        let mut gate = Gate::new(None);
        assert!(gate.call(request_with(None)).is_ok());
    }

    #[test]
    fn with_a_token_only_the_right_bearer_passes() {
        let mut gate = Gate::new(Some("s3cret".into()));
        assert!(gate.call(request_with(Some("Bearer s3cret"))).is_ok());
        for header in [
            None,
            Some("Bearer wrong"),
            Some("s3cret"),
            Some("Basic s3cret"),
        ] {
            let status = gate.call(request_with(header)).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{header:?}");
        }
    }

    #[test]
    fn request_metadata_is_read_when_present() {
        let metadata = reapi::RequestMetadata {
            action_mnemonic: "Compile".into(),
            ..Default::default()
        };
        let mut request = Request::new(());
        let value = MetadataValue::from_bytes(&metadata.encode_to_vec());
        request
            .metadata_mut()
            .insert_bin(REQUEST_METADATA_HEADER, value);
        let passed = Gate::new(None).call(request).expect("passes");
        let seen = passed.extensions().get::<reapi::RequestMetadata>();
        assert_eq!(seen.map(|m| m.action_mnemonic.as_str()), Some("Compile"));
    }
}
