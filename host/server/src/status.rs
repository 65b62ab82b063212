//! How failures become gRPC statuses, in one place: the codes clients act on (`NOT_FOUND`
//! means upload or execute again, `FAILED_PRECONDITION` with missing blobs means upload those
//! and retry, `INVALID_ARGUMENT` means do not retry) are chosen here and nowhere else.

use bytes::Bytes;
use prost::Message;
use remex_exec::ExecError;
use remex_proto::rpc;
use remex_store::{Digest, DigestError, StoreError};
use tonic::{Code, Status};

const PRECONDITION_FAILURE_TYPE: &str = "type.googleapis.com/google.rpc.PreconditionFailure";

/// A store failure while serving a request.
pub(crate) fn from_store(error: StoreError) -> Status {
    match &error {
        StoreError::Missing(_) => Status::not_found(error.to_string()),
        StoreError::Corrupt(DigestError::Mismatch { .. }) | StoreError::Overflow { .. } => {
            Status::invalid_argument(error.to_string())
        }
        StoreError::Corrupt(_) => Status::invalid_argument(error.to_string()),
        StoreError::BadActionResult { .. } => Status::data_loss(error.to_string()),
        StoreError::Io { .. } => {
            tracing::warn!(%error, "store failure");
            Status::internal(error.to_string())
        }
    }
}

/// A failure to prepare or run an action.
pub(crate) fn from_exec(error: ExecError) -> Status {
    match error {
        ExecError::MissingInputs(digests) => missing_blobs(&digests),
        ExecError::MissingInput(digest) | ExecError::Store(StoreError::Missing(digest)) => {
            missing_blobs(&[digest])
        }
        ExecError::Store(error) => from_store(error),
        ExecError::BadAction(_)
        | ExecError::BadDigest(_)
        | ExecError::InvalidPath { .. }
        | ExecError::Spawn { .. } => Status::invalid_argument(error.to_string()),
        ExecError::Io { .. } => {
            tracing::warn!(%error, "executor failure");
            Status::internal(error.to_string())
        }
    }
}

/// A digest field that does not parse, naming the field.
pub(crate) fn bad_digest(field: &str, error: DigestError) -> Status {
    Status::invalid_argument(format!("invalid `{field}`: {error}"))
}

/// `FAILED_PRECONDITION` listing every missing blob in a `PreconditionFailure`, one `MISSING`
/// violation each, with subject `blobs/{hash}/{size}`, as REAPI asks: clients upload exactly
/// these and retry.
pub(crate) fn missing_blobs(digests: &[Digest]) -> Status {
    let violations = digests
        .iter()
        .map(|digest| rpc::precondition_failure::Violation {
            r#type: "MISSING".to_owned(),
            subject: format!("blobs/{}/{}", digest.hex(), digest.size_bytes),
            description: String::new(),
        })
        .collect();
    let failure = rpc::PreconditionFailure { violations };
    let first = digests.first().map(Digest::to_string).unwrap_or_default();
    let message = format!(
        "{} blobs are missing from the CAS, first {first}",
        digests.len()
    );
    with_detail(
        Code::FailedPrecondition,
        message,
        PRECONDITION_FAILURE_TYPE,
        &failure,
    )
}

fn with_detail(code: Code, message: String, type_url: &str, detail: &impl Message) -> Status {
    let status = rpc::Status {
        code: code as i32,
        message: message.clone(),
        details: vec![prost_types::Any {
            type_url: type_url.to_owned(),
            value: detail.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, Bytes::from(status.encode_to_vec()))
}

/// The `google.rpc.Status` form of a status, details included, for fields such as
/// `ExecuteResponse.status` and per-blob batch results.
pub(crate) fn to_rpc(status: &Status) -> rpc::Status {
    let details = rpc::Status::decode(status.details())
        .map(|decoded| decoded.details)
        .unwrap_or_default();
    rpc::Status {
        code: status.code() as i32,
        message: status.message().to_owned(),
        details,
    }
}

pub(crate) fn ok() -> rpc::Status {
    rpc::Status::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_blobs_carry_a_precondition_failure_per_digest() {
        let digests = [Digest::of_bytes(b"a"), Digest::of_bytes(b"b")];
        let status = missing_blobs(&digests);
        assert_eq!(status.code(), Code::FailedPrecondition);

        let decoded = rpc::Status::decode(status.details()).expect("google.rpc.Status");
        assert_eq!(decoded.details[0].type_url, PRECONDITION_FAILURE_TYPE);
        let failure =
            rpc::PreconditionFailure::decode(decoded.details[0].value.as_slice()).expect("decode");
        let subjects: Vec<_> = failure
            .violations
            .iter()
            .map(|v| v.subject.clone())
            .collect();
        let expected: Vec<_> = digests
            .iter()
            .map(|d| format!("blobs/{}/{}", d.hex(), d.size_bytes))
            .collect();
        assert_eq!(subjects, expected);
        assert!(failure.violations.iter().all(|v| v.r#type == "MISSING"));
    }

    #[test]
    fn rpc_form_keeps_the_details() {
        let status = missing_blobs(&[Digest::of_bytes(b"a")]);
        let rpc = to_rpc(&status);
        assert_eq!(rpc.code, Code::FailedPrecondition as i32);
        assert_eq!(rpc.details.len(), 1);
    }
}
