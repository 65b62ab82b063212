//! The ContentAddressableStorage service: presence checks, batch uploads and downloads (each
//! blob verified, each with its own status), and `GetTree` in pages.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use remex_proto::reapi;
use remex_proto::reapi::content_addressable_storage_server::ContentAddressableStorage;
use remex_proto::rpc;
use remex_store::{Digest, LocalStore, StoreError};
use tonic::{Request, Response, Status};

use crate::compression;
use crate::state::{Shared, blocking, check_digest_function};
use crate::status;

/// Blobs of one batch stored at once, each lane on its own blocking thread.
const UPDATE_LANES: usize = 8;

/// Directories per `GetTreeResponse` when the client does not say.
const DEFAULT_PAGE_SIZE: usize = 1000;

/// Encoded directories per `GetTreeResponse` at most, well under the 4 MiB gRPC clients
/// accept by default.
const PAGE_BYTES: usize = 2 << 20;

pub(crate) struct CasService {
    shared: Arc<Shared>,
}

impl CasService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn check(&self, instance_name: &str, digest_function: i32) -> Result<(), Status> {
        self.shared.check_instance(instance_name)?;
        check_digest_function(digest_function)
    }

    /// Refuses batches whose blobs add up to more than the advertised limit.
    fn check_batch_size(&self, total: u64, what: &str) -> Result<(), Status> {
        let limit = self.shared.settings.max_batch_total_size_bytes;
        if total > limit {
            return Err(Status::invalid_argument(format!(
                "{what} of {total} bytes is over the batch limit of {limit} bytes; \
                 use ByteStream for large blobs"
            )));
        }
        Ok(())
    }
}

pub(crate) type GetTreeStream =
    futures::stream::Iter<std::vec::IntoIter<Result<reapi::GetTreeResponse, Status>>>;

#[tonic::async_trait]
impl ContentAddressableStorage for CasService {
    async fn find_missing_blobs(
        &self,
        request: Request<reapi::FindMissingBlobsRequest>,
    ) -> Result<Response<reapi::FindMissingBlobsResponse>, Status> {
        let request = request.into_inner();
        self.check(&request.instance_name, request.digest_function)?;
        let digests = request
            .blob_digests
            .iter()
            .map(|d| Digest::from_proto(d).map_err(|e| status::bad_digest("blob_digests", e)))
            .collect::<Result<Vec<_>, _>>()?;

        let store = &self.shared.store;
        let missing = blocking(|| {
            let mut seen = HashSet::new();
            digests
                .into_iter()
                .filter(|d| seen.insert(*d) && !store.contains(d))
                .map(|d| d.to_proto())
                .collect()
        });
        let missing_blob_digests = missing;
        Ok(Response::new(reapi::FindMissingBlobsResponse {
            missing_blob_digests,
        }))
    }

    async fn batch_update_blobs(
        &self,
        request: Request<reapi::BatchUpdateBlobsRequest>,
    ) -> Result<Response<reapi::BatchUpdateBlobsResponse>, Status> {
        let request = request.into_inner();
        self.check(&request.instance_name, request.digest_function)?;
        let total = request.requests.iter().map(|r| r.data.len() as u64).sum();
        self.check_batch_size(total, "a batch update")?;

        let responses = update_in_lanes(&self.shared.store, request.requests).await;
        Ok(Response::new(reapi::BatchUpdateBlobsResponse { responses }))
    }

    async fn batch_read_blobs(
        &self,
        request: Request<reapi::BatchReadBlobsRequest>,
    ) -> Result<Response<reapi::BatchReadBlobsResponse>, Status> {
        let request = request.into_inner();
        self.check(&request.instance_name, request.digest_function)?;
        let total = request
            .digests
            .iter()
            .map(|d| u64::try_from(d.size_bytes).unwrap_or(0))
            .sum();
        self.check_batch_size(total, "a batch read")?;

        let zstd = reapi::compressor::Value::Zstd as i32;
        let compress = request.acceptable_compressors.contains(&zstd);
        let store = &self.shared.store;
        let responses = blocking(|| {
            request
                .digests
                .iter()
                .map(|digest| read_one(store, digest, compress))
                .collect()
        });
        Ok(Response::new(reapi::BatchReadBlobsResponse { responses }))
    }

    type GetTreeStream = GetTreeStream;

    async fn get_tree(
        &self,
        request: Request<reapi::GetTreeRequest>,
    ) -> Result<Response<Self::GetTreeStream>, Status> {
        let request = request.into_inner();
        self.check(&request.instance_name, request.digest_function)?;
        let root = Digest::from_proto_field(request.root_digest.as_ref())
            .map_err(|e| status::bad_digest("root_digest", e))?;
        let offset = parse_page_token(&request.page_token)?;
        let page_size = match usize::try_from(request.page_size) {
            Ok(0) | Err(_) => DEFAULT_PAGE_SIZE,
            Ok(size) => size,
        };

        let directories = blocking(|| walk_tree(&self.shared.store, &root))?;
        if offset > directories.len() {
            return Err(Status::invalid_argument(format!(
                "page_token `{offset}` is past the end of the tree"
            )));
        }
        let pages = paginate(&directories, offset, page_size);
        Ok(Response::new(futures::stream::iter(pages)))
    }
}

/// Stores a batch's blobs on the blocking pool, in up to [`UPDATE_LANES`] lanes at once, and
/// answers in the order of the request. In a durable store each blob waits for its own
/// `sync_data` (milliseconds on many disks) before it counts as stored; lanes let those waits
/// overlap, and the file system can often flush them together, while one blob still is
/// acknowledged only once its own bytes are on disk. Lanes rather than a task per blob, so a
/// batch of thousands of small blobs does not start thousands of threads.
async fn update_in_lanes(
    store: &LocalStore,
    blobs: Vec<reapi::batch_update_blobs_request::Request>,
) -> Vec<reapi::batch_update_blobs_response::Response> {
    let lane_count = blobs.len().clamp(1, UPDATE_LANES);
    let mut lanes: Vec<Vec<_>> = (0..lane_count).map(|_| Vec::new()).collect();
    for (position, blob) in blobs.into_iter().enumerate() {
        lanes[position % lane_count].push((position, blob));
    }
    let runs = lanes.into_iter().map(|lane| {
        let store = store.clone();
        let digests: Vec<_> = lane.iter().map(|(i, b)| (*i, b.digest.clone())).collect();
        let run = tokio::task::spawn_blocking(move || {
            let mut answers = Vec::with_capacity(lane.len());
            for (position, blob) in lane {
                let status = update_one(&store, &blob);
                answers.push((position, answer(blob.digest, status)));
            }
            answers
        });
        async move {
            // A lane that panicked still answers for each of its blobs.
            run.await.unwrap_or_else(|error| {
                let status = Status::internal(format!("storing the blob failed: {error}"));
                let failed = |(i, digest)| (i, answer(digest, status::to_rpc(&status)));
                digests.into_iter().map(failed).collect()
            })
        }
    });
    let mut answers: Vec<_> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    answers.sort_by_key(|(position, _)| *position);
    answers.into_iter().map(|(_, answer)| answer).collect()
}

fn answer(
    digest: Option<reapi::Digest>,
    status: rpc::Status,
) -> reapi::batch_update_blobs_response::Response {
    reapi::batch_update_blobs_response::Response {
        digest,
        status: Some(status),
    }
}

/// Stores one blob of a batch, verified against its digest, and says how it went.
fn update_one(
    store: &LocalStore,
    blob: &reapi::batch_update_blobs_request::Request,
) -> rpc::Status {
    let digest = match Digest::from_proto_field(blob.digest.as_ref()) {
        Ok(digest) => digest,
        Err(e) => return status::to_rpc(&status::bad_digest("digest", e)),
    };
    let data = match decode_batch_data(blob, &digest) {
        Ok(data) => data,
        Err(status) => return status::to_rpc(&status),
    };
    match store.put_with_digest(&digest, &data) {
        Ok(()) => status::ok(),
        Err(error) => status::to_rpc(&status::from_store(error)),
    }
}

fn decode_batch_data(
    blob: &reapi::batch_update_blobs_request::Request,
    digest: &Digest,
) -> Result<Bytes, Status> {
    use reapi::compressor::Value;
    match Value::try_from(blob.compressor) {
        Ok(Value::Identity) => Ok(blob.data.clone()),
        Ok(Value::Zstd) => compression::decompress(&blob.data, digest)
            .map(Bytes::from)
            .map_err(|e| {
                Status::invalid_argument(format!("blob {digest}: invalid zstd data: {e}"))
            }),
        _ => Err(Status::invalid_argument(format!(
            "blob {digest}: compressor {} is not supported; use ZSTD or IDENTITY",
            blob.compressor
        ))),
    }
}

/// Reads one blob of a batch; a missing blob is `NOT_FOUND` in its own status.
fn read_one(
    store: &LocalStore,
    digest: &reapi::Digest,
    compress: bool,
) -> reapi::batch_read_blobs_response::Response {
    let mut response = reapi::batch_read_blobs_response::Response {
        digest: Some(digest.clone()),
        ..Default::default()
    };
    let read = Digest::from_proto(digest)
        .map_err(|e| status::bad_digest("digests", e))
        .and_then(|digest| store.read(&digest).map_err(status::from_store));
    let data = match read {
        Ok(data) => data,
        Err(status) => {
            response.status = Some(status::to_rpc(&status));
            return response;
        }
    };
    // Compressed only when it helps: tiny blobs grow under zstd.
    match compress.then(|| compression::compress(&data)) {
        Some(Ok(compressed)) if compressed.len() < data.len() => {
            response.data = Bytes::from(compressed);
            response.compressor = reapi::compressor::Value::Zstd as i32;
        }
        _ => response.data = Bytes::from(data),
    }
    response.status = Some(status::ok());
    response
}

fn parse_page_token(token: &str) -> Result<usize, Status> {
    if token.is_empty() {
        return Ok(0);
    }
    token.parse().map_err(|_| {
        Status::invalid_argument(format!(
            "page_token `{token}` was not issued by this server"
        ))
    })
}

/// Every distinct directory under `root`, breadth-first, root first. Directories missing from
/// the CAS are left out with what is below them, as REAPI specifies; a missing root is
/// `NOT_FOUND`.
fn walk_tree(store: &LocalStore, root: &Digest) -> Result<Vec<reapi::Directory>, Status> {
    let mut seen = HashSet::from([*root]);
    let mut queue = VecDeque::from([*root]);
    let mut directories = Vec::new();
    while let Some(digest) = queue.pop_front() {
        let bytes = match store.read(&digest) {
            Ok(bytes) => bytes,
            Err(StoreError::Missing(_)) if digest != *root => continue,
            Err(error) => return Err(status::from_store(error)),
        };
        let directory = reapi::Directory::decode(bytes.as_slice()).map_err(|e| {
            Status::invalid_argument(format!("blob {digest} is not a `Directory`: {e}"))
        })?;
        for child in &directory.directories {
            if let Ok(child) = Digest::from_proto_field(child.digest.as_ref())
                && seen.insert(child)
            {
                queue.push_back(child);
            }
        }
        directories.push(directory);
    }
    Ok(directories)
}

/// Splits the directories from `offset` into pages of at most `page_size` directories and
/// [`PAGE_BYTES`] bytes (but at least one directory), each naming where the next begins.
fn paginate(
    directories: &[reapi::Directory],
    offset: usize,
    page_size: usize,
) -> Vec<Result<reapi::GetTreeResponse, Status>> {
    let mut pages = Vec::new();
    let mut start = offset;
    while start < directories.len() || pages.is_empty() {
        let mut end = start;
        let mut bytes = 0;
        while end < directories.len() && end - start < page_size {
            let size = directories[end].encoded_len();
            if end > start && bytes + size > PAGE_BYTES {
                break;
            }
            bytes += size;
            end += 1;
        }
        let next_page_token = if end < directories.len() {
            end.to_string()
        } else {
            String::new()
        };
        pages.push(Ok(reapi::GetTreeResponse {
            directories: directories[start..end].to_vec(),
            next_page_token,
        }));
        start = end;
    }
    pages
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn named(name: &str) -> reapi::Directory {
        reapi::Directory {
            symlinks: vec![reapi::SymlinkNode {
                name: name.into(),
                target: "x".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn pages_cover_every_directory_once_and_chain_their_tokens() {
        let directories: Vec<_> = (0..7).map(|i| named(&i.to_string())).collect();
        let pages = paginate(&directories, 0, 3);
        let pages: Vec<_> = pages.into_iter().map(|p| p.expect("page")).collect();
        let sizes: Vec<_> = pages.iter().map(|p| p.directories.len()).collect();
        assert_eq!(sizes, [3, 3, 1]);
        let tokens: Vec<_> = pages.iter().map(|p| p.next_page_token.as_str()).collect();
        assert_eq!(tokens, ["3", "6", ""]);

        let rest = paginate(&directories, 6, 3);
        assert_eq!(rest.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lanes_answer_every_blob_in_request_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("store");
        // More blobs than lanes, every seventh announced under a digest it does not match.
        let blobs: Vec<_> = (0..3 * UPDATE_LANES as u8)
            .map(|i| {
                let data = Bytes::from(vec![i; 100]);
                let digest = if i % 7 == 3 {
                    Digest::of_bytes(b"something else")
                } else {
                    Digest::of_bytes(&data)
                };
                reapi::batch_update_blobs_request::Request {
                    digest: Some(digest.to_proto()),
                    data,
                    compressor: 0,
                }
            })
            .collect();

        let answers = update_in_lanes(&store, blobs.clone()).await;
        assert_eq!(answers.len(), blobs.len());
        for (i, (blob, answer)) in blobs.iter().zip(&answers).enumerate() {
            assert_eq!(answer.digest, blob.digest, "answer {i} is for another blob");
            let code = answer.status.as_ref().map_or(-1, |s| s.code);
            let digest = Digest::from_proto_field(blob.digest.as_ref()).expect("digest");
            if i % 7 == 3 {
                assert_ne!(code, 0, "blob {i} does not match its digest");
            } else {
                assert_eq!(code, 0, "blob {i}");
                assert!(store.contains(&digest), "blob {i} is not stored");
            }
        }
    }

    #[test]
    fn foreign_page_tokens_are_refused() {
        let status = parse_page_token("abc").expect_err("not ours");
        assert_eq!(status.code(), Code::InvalidArgument);
    }
}
