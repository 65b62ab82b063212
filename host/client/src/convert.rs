//! Protobuf to domain conversions: the one place that opens `Any`, status details and optional
//! digest fields, so the rest of the client works with plain values.

use std::time::Duration;

use prost::Message;
use prost_types::Any;
use remex_proto::{reapi, rpc};
use remex_store::{Digest, DigestError};

use crate::error::{ReapiError, StatusDetails};

const RETRY_INFO: &str = "type.googleapis.com/google.rpc.RetryInfo";
const PRECONDITION_FAILURE: &str = "type.googleapis.com/google.rpc.PreconditionFailure";
#[cfg(any(test, feature = "fake"))]
const EXECUTE_RESPONSE: &str =
    "type.googleapis.com/build.bazel.remote.execution.v2.ExecuteResponse";
const EXECUTE_METADATA: &str =
    "type.googleapis.com/build.bazel.remote.execution.v2.ExecuteOperationMetadata";

/// The details of a status as tonic carries them: an encoded `google.rpc.Status`.
pub(crate) fn status_details(encoded: &[u8]) -> StatusDetails {
    match rpc::Status::decode(encoded) {
        Ok(status) => details_of(&status.details),
        // A server may send no details, or ones we cannot read; neither changes what we do.
        Err(_) => StatusDetails::default(),
    }
}

/// What the client acts on among a status's details.
pub(crate) fn details_of(details: &[Any]) -> StatusDetails {
    let mut found = StatusDetails::default();
    for any in details {
        match any.type_url.as_str() {
            RETRY_INFO => found.retry_delay = retry_delay(&any.value),
            PRECONDITION_FAILURE => found.missing_blobs.extend(missing_blobs(&any.value)),
            _ => {}
        }
    }
    found
}

fn retry_delay(encoded: &[u8]) -> Option<Duration> {
    let info = rpc::RetryInfo::decode(encoded).ok()?;
    let delay = info.retry_delay?;
    let seconds = u64::try_from(delay.seconds).ok()?;
    let nanos = u32::try_from(delay.nanos).ok()?;
    Some(Duration::new(seconds, nanos))
}

/// Digests named by `MISSING` violations, whose subject is `blobs/{hash}/{size}`.
fn missing_blobs(encoded: &[u8]) -> Vec<Digest> {
    let Ok(failure) = rpc::PreconditionFailure::decode(encoded) else {
        return Vec::new();
    };
    failure
        .violations
        .iter()
        .filter(|v| v.r#type == "MISSING")
        .filter_map(|v| v.subject.strip_prefix("blobs/")?.parse().ok())
        .collect()
}

/// Encodes a `MISSING` precondition failure as the details of a status (for the fake server).
#[cfg(any(test, feature = "fake"))]
pub(crate) fn missing_blobs_details(digests: &[Digest]) -> Vec<u8> {
    let violations = digests
        .iter()
        .map(|d| rpc::precondition_failure::Violation {
            r#type: "MISSING".into(),
            subject: format!("blobs/{d}"),
            description: String::new(),
        })
        .collect();
    let failure = rpc::PreconditionFailure { violations };
    let status = rpc::Status {
        code: tonic::Code::FailedPrecondition as i32,
        message: "missing blobs".into(),
        details: vec![any(PRECONDITION_FAILURE, &failure)],
    };
    status.encode_to_vec()
}

/// Encodes a `RetryInfo` as the details of a status (for the fake server).
#[cfg(any(test, feature = "fake"))]
pub(crate) fn retry_info_details(code: tonic::Code, delay: Duration) -> Vec<u8> {
    let info = rpc::RetryInfo {
        retry_delay: prost_types::Duration::try_from(delay).ok(),
    };
    let status = rpc::Status {
        code: code as i32,
        message: String::new(),
        details: vec![any(RETRY_INFO, &info)],
    };
    status.encode_to_vec()
}

#[cfg(any(test, feature = "fake"))]
fn any(type_url: &str, message: &impl Message) -> Any {
    Any {
        type_url: type_url.to_owned(),
        value: message.encode_to_vec(),
    }
}

/// Wraps an `ExecuteResponse` for an `Operation` (for the fake server).
#[cfg(any(test, feature = "fake"))]
pub(crate) fn execute_response_any(response: &reapi::ExecuteResponse) -> Any {
    any(EXECUTE_RESPONSE, response)
}

/// Wraps `ExecuteOperationMetadata` for an `Operation` (for the fake server).
#[cfg(any(test, feature = "fake"))]
pub(crate) fn execute_metadata_any(metadata: &reapi::ExecuteOperationMetadata) -> Any {
    any(EXECUTE_METADATA, metadata)
}

/// Opens the `ExecuteResponse` of a finished operation.
pub(crate) fn execute_response(any: &Any) -> Result<reapi::ExecuteResponse, ReapiError> {
    if !any
        .type_url
        .ends_with("build.bazel.remote.execution.v2.ExecuteResponse")
    {
        let detail = format!(
            "operation response is a `{}`, not an ExecuteResponse",
            any.type_url
        );
        return Err(ReapiError::protocol("Execute", detail));
    }
    reapi::ExecuteResponse::decode(any.value.as_slice()).map_err(|e| {
        ReapiError::protocol("Execute", format!("cannot decode the ExecuteResponse: {e}"))
    })
}

/// The stage an operation reports, when it carries metadata (Bazel's server sends none).
pub(crate) fn execution_stage(metadata: Option<&Any>) -> Option<reapi::execution_stage::Value> {
    let any = metadata.filter(|a| a.type_url == EXECUTE_METADATA)?;
    let metadata = reapi::ExecuteOperationMetadata::decode(any.value.as_slice()).ok()?;
    reapi::execution_stage::Value::try_from(metadata.stage).ok()
}

/// A digest field the server had to send.
pub(crate) fn required_digest(
    rpc: &'static str,
    digest: Option<&reapi::Digest>,
) -> Result<Digest, ReapiError> {
    Digest::from_proto_field(digest)
        .map_err(|e| ReapiError::protocol(rpc, format!("bad digest in the answer: {e}")))
}

/// A digest field the server may leave out, as Bazel's test server does in batch answers.
pub(crate) fn optional_digest(
    rpc: &'static str,
    digest: Option<&reapi::Digest>,
) -> Result<Option<Digest>, ReapiError> {
    match digest {
        None => Ok(None),
        Some(d) if d.hash.is_empty() && d.size_bytes == 0 => Ok(None),
        Some(d) => Digest::from_proto(d)
            .map(Some)
            .map_err(|e: DigestError| ReapiError::protocol(rpc, format!("bad digest: {e}"))),
    }
}

pub(crate) fn to_protos(digests: &[Digest]) -> Vec<reapi::Digest> {
    digests.iter().map(Digest::to_proto).collect()
}

/// Whether a `SemVer` is at least `major.minor`.
pub(crate) fn version_at_least(
    version: Option<&remex_proto::build::bazel::semver::SemVer>,
    major: i32,
    minor: i32,
) -> bool {
    version.is_some_and(|v| (v.major, v.minor) >= (major, minor))
}

/// Every blob an `ActionResult` names directly: stdout, stderr, output files and the `Tree`
/// of each output directory (whose files are found by reading the tree).
pub(crate) fn result_blobs(result: &reapi::ActionResult) -> Result<Vec<Digest>, ReapiError> {
    let mut blobs = Vec::new();
    let optional = [result.stdout_digest.as_ref(), result.stderr_digest.as_ref()];
    for digest in optional.into_iter().flatten() {
        blobs.push(required_digest("ActionResult", Some(digest))?);
    }
    for file in &result.output_files {
        blobs.push(required_digest("ActionResult", file.digest.as_ref())?);
    }
    for directory in &result.output_directories {
        blobs.push(required_digest(
            "ActionResult",
            directory.tree_digest.as_ref(),
        )?);
    }
    Ok(blobs)
}

/// The tree digests of an `ActionResult`'s output directories.
pub(crate) fn result_trees(result: &reapi::ActionResult) -> Result<Vec<Digest>, ReapiError> {
    result
        .output_directories
        .iter()
        .map(|d| required_digest("ActionResult", d.tree_digest.as_ref()))
        .collect()
}

/// Every file blob in a `Tree`.
pub(crate) fn tree_files(tree: &reapi::Tree) -> Result<Vec<Digest>, ReapiError> {
    let directories = tree.root.iter().chain(&tree.children);
    directory_files(directories)
}

/// Every file blob in some `Directory` messages.
pub(crate) fn directory_files<'a>(
    directories: impl IntoIterator<Item = &'a reapi::Directory>,
) -> Result<Vec<Digest>, ReapiError> {
    let mut files = Vec::new();
    for directory in directories {
        for file in &directory.files {
            files.push(required_digest("Tree", file.digest.as_ref())?);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_missing_blobs_and_retry_delay_from_details() {
        let digest = Digest::of_bytes(b"input");
        let details = status_details(&missing_blobs_details(&[digest]));
        assert_eq!(details.missing_blobs, vec![digest]);

        let details = status_details(&retry_info_details(
            tonic::Code::ResourceExhausted,
            Duration::from_millis(250),
        ));
        assert_eq!(details.retry_delay, Some(Duration::from_millis(250)));
    }

    #[test]
    fn garbage_details_are_ignored() {
        assert_eq!(status_details(b"\xff\xff"), StatusDetails::default());
    }
}
