//! The ActionCache service. A cached result is only served while every blob it refers to is
//! still in the CAS, and an uploaded result is only stored once every blob it refers to is.

use std::sync::Arc;

use remex_proto::reapi;
use remex_proto::reapi::action_cache_server::ActionCache;
use remex_store::{ActionDigest, Digest, LocalStore};
use tonic::{Request, Response, Status};

use crate::results;
use crate::state::{Shared, blocking, check_digest_function};
use crate::status;

/// Bytes of stdout, stderr and output files inlined into one `GetActionResult` answer at most,
/// keeping it far below the 4 MiB clients accept by default.
const INLINE_LIMIT: u64 = 1 << 20;

pub(crate) struct ActionCacheService {
    shared: Arc<Shared>,
}

impl ActionCacheService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tonic::async_trait]
impl ActionCache for ActionCacheService {
    async fn get_action_result(
        &self,
        request: Request<reapi::GetActionResultRequest>,
    ) -> Result<Response<reapi::ActionResult>, Status> {
        let request = request.into_inner();
        self.shared.check_instance(&request.instance_name)?;
        check_digest_function(request.digest_function)?;
        let digest = action_digest(request.action_digest.as_ref())?;

        // Read on the reactor thread: an entry is one small file and a `stat` per blob it names,
        // served from the page cache, and handing the worker's other tasks to another thread
        // (`block_in_place`) cost more than that: 120 µs of server CPU per lookup, against 85 µs
        // without it.
        let result = lookup(&self.shared.store, &request, &digest)?;
        Ok(Response::new(result))
    }

    async fn update_action_result(
        &self,
        request: Request<reapi::UpdateActionResultRequest>,
    ) -> Result<Response<reapi::ActionResult>, Status> {
        let request = request.into_inner();
        self.shared.check_instance(&request.instance_name)?;
        check_digest_function(request.digest_function)?;
        let digest = action_digest(request.action_digest.as_ref())?;
        let mut result = request
            .action_result
            .ok_or_else(|| Status::invalid_argument("`action_result` is missing"))?;

        let store = &self.shared.store;
        blocking(|| {
            store_inlined(store, &mut result)?;
            let missing = results::missing_blobs(store, &result)?;
            if !missing.is_empty() {
                return Err(status::missing_blobs(&missing));
            }
            store
                .put_action_result(&digest, &result)
                .map_err(status::from_store)
        })?;
        tracing::debug!(action = %digest, "action result updated");
        Ok(Response::new(result))
    }
}

/// The usable entry of `digest`, with the blobs `request` asked for inlined.
fn lookup(
    store: &LocalStore,
    request: &reapi::GetActionResultRequest,
    digest: &ActionDigest,
) -> Result<reapi::ActionResult, Status> {
    let mut result = usable_result(store, digest)?
        .ok_or_else(|| Status::not_found(format!("no cached result for action {digest}")))?;
    inline(store, request, &mut result);
    Ok(result)
}

fn action_digest(digest: Option<&reapi::Digest>) -> Result<ActionDigest, Status> {
    Digest::from_proto_field(digest)
        .map(ActionDigest)
        .map_err(|e| status::bad_digest("action_digest", e))
}

/// The cached result for `digest` if it is there, decodes, and all its blobs are present.
/// Anything else is a miss: a result that cannot be used is no result.
pub(crate) fn usable_result(
    store: &LocalStore,
    digest: &ActionDigest,
) -> Result<Option<reapi::ActionResult>, Status> {
    let result = match store.get_action_result(digest) {
        Ok(Some(result)) => result,
        Ok(None) => return Ok(None),
        Err(error) => {
            tracing::debug!(action = %digest, %error, "unreadable action cache entry");
            return Ok(None);
        }
    };
    match results::missing_blobs(store, &result) {
        Ok(missing) if missing.is_empty() => Ok(Some(result)),
        Ok(missing) => {
            tracing::debug!(action = %digest, missing = missing.len(), "incomplete cached result");
            Ok(None)
        }
        Err(status) => {
            tracing::debug!(action = %digest, %status, "invalid cached result");
            Ok(None)
        }
    }
}

/// Fills `stdout_raw`, `stderr_raw` and output file `contents` as asked, within
/// [`INLINE_LIMIT`] bytes in all; what does not fit stays a digest only.
fn inline(
    store: &LocalStore,
    request: &reapi::GetActionResultRequest,
    result: &mut reapi::ActionResult,
) {
    let mut budget = INLINE_LIMIT;
    let mut take = |digest: Option<&reapi::Digest>| -> Option<bytes::Bytes> {
        let digest = Digest::from_proto_field(digest).ok()?;
        if digest.size_bytes > budget {
            return None;
        }
        let data = store.read(&digest).ok()?;
        budget -= digest.size_bytes;
        Some(bytes::Bytes::from(data))
    };
    if request.inline_stdout {
        result.stdout_raw = take(result.stdout_digest.as_ref()).unwrap_or_default();
    }
    if request.inline_stderr {
        result.stderr_raw = take(result.stderr_digest.as_ref()).unwrap_or_default();
    }
    for file in &mut result.output_files {
        if request.inline_output_files.contains(&file.path) {
            file.contents = take(file.digest.as_ref()).unwrap_or_default();
        }
    }
}

/// Moves inlined bytes (`stdout_raw`, `stderr_raw`, output file `contents`) into the CAS,
/// checked against their digests, so the stored result refers to blobs only.
fn store_inlined(store: &LocalStore, result: &mut reapi::ActionResult) -> Result<(), Status> {
    let streams = [
        ("stdout", &mut result.stdout_raw, &mut result.stdout_digest),
        ("stderr", &mut result.stderr_raw, &mut result.stderr_digest),
    ];
    for (what, raw, digest) in streams {
        if raw.is_empty() {
            continue;
        }
        *digest = Some(put_inlined(store, what, raw, digest.as_ref())?.to_proto());
        raw.clear();
    }
    for file in &mut result.output_files {
        if file.contents.is_empty() {
            continue;
        }
        let what = format!("output file `{}`", file.path);
        file.digest =
            Some(put_inlined(store, &what, &file.contents, file.digest.as_ref())?.to_proto());
        file.contents.clear();
    }
    Ok(())
}

fn put_inlined(
    store: &LocalStore,
    what: &str,
    data: &[u8],
    digest: Option<&reapi::Digest>,
) -> Result<Digest, Status> {
    let Some(digest) = digest else {
        return store.put_bytes(data).map_err(status::from_store);
    };
    let digest = Digest::from_proto(digest)
        .map_err(|e| Status::invalid_argument(format!("{what}: invalid digest: {e}")))?;
    store
        .put_with_digest(&digest, data)
        .map_err(|e| Status::invalid_argument(format!("{what}: {e}")))?;
    Ok(digest)
}
