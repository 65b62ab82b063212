//! Uploads: `FindMissingBlobs` in bounded chunks, small blobs in `BatchUpdateBlobs` requests
//! under the server's limit, large ones streamed from the local store's files with ByteStream
//! `Write`, resumed after an interruption from what `QueryWriteStatus` says the server has.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read as _, Seek as _, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, Stream};
use remex_proto::bytestream::{QueryWriteStatusRequest, QueryWriteStatusResponse, WriteRequest};
use remex_proto::reapi;
use remex_store::{Digest, LocalStore, StoreError};
use uuid::Uuid;

use crate::batch;
use crate::client::{Inner, Limits, blocking, unique_non_empty, within};
use crate::convert;
use crate::error::ReapiError;
use crate::inflight::{self, Job};
use crate::metadata::CallContext;
use crate::resource::{self, BlobEncoding};
use crate::retry::{RetryDecision, retry_decision};

/// Digests per `FindMissingBlobs` request: about 80 bytes each, so requests stay near 320 KiB.
const FIND_MISSING_CHUNK: usize = 4096;

/// Blobs an upload takes from memory rather than from the local store: an action's own
/// `Action`, `Command` and `Directory` messages, which need never be written to disk.
pub(crate) type InMemory = BTreeMap<Digest, Bytes>;

/// zstd level for uploads: the fastest, since uploads compete with the build for two cores.
const ZSTD_LEVEL: i32 = 1;

/// Bytes from the start of a blob compressed to decide whether the rest is worth compressing.
const COMPRESSION_SAMPLE: u64 = 64 * 1024;

/// What [`RemoteClient::upload_blobs`](crate::RemoteClient::upload_blobs) found and moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UploadSummary {
    /// Distinct non-empty blobs asked about.
    pub checked: usize,
    /// Blobs the server lacked, uploaded by this call or by a concurrent one.
    pub missing: usize,
    pub missing_bytes: u64,
}

impl Inner {
    pub async fn upload_blobs(
        &self,
        digests: &[Digest],
        context: &CallContext,
    ) -> Result<UploadSummary, ReapiError> {
        let wanted = unique_non_empty(digests);
        let missing = self.find_missing_blobs(&wanted, context).await?;
        self.upload_missing(&missing, &InMemory::new(), context)
            .await?;
        Ok(UploadSummary {
            checked: wanted.len(),
            missing: missing.len(),
            missing_bytes: missing.iter().map(|d| d.size_bytes).sum(),
        })
    }

    pub async fn find_missing_blobs(
        &self,
        digests: &[Digest],
        context: &CallContext,
    ) -> Result<Vec<Digest>, ReapiError> {
        let wanted = unique_non_empty(digests);
        let chunks = wanted
            .chunks(FIND_MISSING_CHUNK)
            .map(|chunk| self.find_missing_chunk(chunk, context));
        let missing = futures::future::try_join_all(chunks).await?;
        Ok(missing.into_iter().flatten().collect())
    }

    async fn find_missing_chunk(
        &self,
        chunk: &[Digest],
        context: &CallContext,
    ) -> Result<Vec<Digest>, ReapiError> {
        let rpc = "FindMissingBlobs";
        let timeout = self.options.store_rpc_timeout;
        let missing = self
            .retrier
            .run(rpc, || async {
                let _permit = Limits::acquire(&self.limits.store).await?;
                let message = reapi::FindMissingBlobsRequest {
                    instance_name: self.options.instance_name.clone(),
                    blob_digests: convert::to_protos(chunk),
                    ..Default::default()
                };
                let request = self.store_request(context, message, timeout);
                let mut client = self.cas_client();
                let response = within(rpc, timeout, client.find_missing_blobs(request)).await;
                let response = response.map_err(|s| self.store_error(rpc, s))?.into_inner();
                let digests = response.missing_blob_digests.iter();
                digests
                    .map(|d| convert::required_digest(rpc, Some(d)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        // Only what we asked about: anything else is no blob of ours to upload.
        let asked: HashSet<&Digest> = chunk.iter().collect();
        Ok(missing.into_iter().filter(|d| asked.contains(d)).collect())
    }

    /// The blobs among `digests` the server lacks, asked in one `FindMissingBlobs` with those
    /// of every other action asking at the same time; see [`Coalescer`].
    ///
    /// [`Coalescer`]: crate::coalesce::Coalescer
    pub async fn find_missing_together(
        self: &Arc<Self>,
        digests: &[Digest],
    ) -> Result<Vec<Digest>, ReapiError> {
        let inner = self.clone();
        let call = move |lists: Vec<Vec<Digest>>| {
            let inner = inner.clone();
            async move {
                let all: Vec<Digest> = lists.into_iter().flatten().collect();
                // Shared by many actions, so the call names none of them.
                let missing = inner
                    .find_missing_blobs(&all, &CallContext::default())
                    .await?;
                Ok(missing.into_iter().collect::<HashSet<Digest>>())
            }
        };
        let missing = self.missing_blobs.submit(digests.to_vec(), call).await?;
        Ok(digests
            .iter()
            .filter(|d| missing.contains(d))
            .copied()
            .collect())
    }

    /// Uploads the blobs among `missing` that `memory` holds in `BatchUpdateBlobs` calls shared
    /// with every other action doing the same at the time (see [`Coalescer`]): a new action's
    /// `Action` and `Command` are two small blobs, and a call of their own would cost the
    /// client more than the rest of the action's execution. Returns the blobs still to
    /// upload: those not in memory, and any the shared call did not store, which the usual
    /// path retries.
    ///
    /// [`Coalescer`]: crate::coalesce::Coalescer
    pub async fn upload_messages_together(
        self: &Arc<Self>,
        missing: &[Digest],
        memory: &InMemory,
    ) -> Vec<Digest> {
        let mine: InMemory = missing
            .iter()
            .filter(|d| d.size_bytes > 0)
            .filter_map(|d| Some((*d, memory.get(d)?.clone())))
            .collect();
        let rest = missing.iter().filter(|d| !mine.contains_key(d)).copied();
        let mut left: Vec<Digest> = rest.collect();
        if mine.is_empty() {
            return left;
        }
        let inner = self.clone();
        let call = move |lists: Vec<InMemory>| {
            let inner = inner.clone();
            async move {
                Ok(inner
                    .upload_merged(lists.into_iter().flatten().collect())
                    .await)
            }
        };
        let digests: Vec<Digest> = mine.keys().copied().collect();
        match self.message_uploads.submit(mine, call).await {
            Ok(unstored) => left.extend(digests.into_iter().filter(|d| unstored.contains(d))),
            Err(_) => left.extend(digests),
        }
        left
    }

    /// One shared upload of in-memory blobs, in batches within the server's limit; returns
    /// the blobs it did not store. Nothing is retried here: the owners of what failed upload
    /// it again on the usual path, which retries.
    async fn upload_merged(&self, blobs: InMemory) -> HashSet<Digest> {
        let digests: Vec<Digest> = blobs.keys().copied().collect();
        let instance_name = &self.options.instance_name;
        let plan = batch::plan_uploads(instance_name, &digests, self.features.batch_limit);
        let context = CallContext::default();
        let calls = plan.batches.iter().map(|batch| async {
            match self.batch_update_once(batch, &blobs, &context).await {
                Ok(refused) => refused.into_iter().map(|(d, _)| d).collect(),
                Err(_) => batch.clone(),
            }
        });
        let unstored: HashSet<Digest> = futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .chain(plan.streamed)
            .collect();
        for digest in digests.iter().filter(|d| !unstored.contains(d)) {
            self.stats.count_upload(digest.size_bytes);
        }
        unstored
    }

    /// Uploads blobs the server lacks, each once even when callers race for it: those in
    /// `memory` from there, the others from the local store.
    pub async fn upload_missing(
        &self,
        missing: &[Digest],
        memory: &InMemory,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        let mut todo = unique_non_empty(missing);
        while !todo.is_empty() {
            let (claims, waiting) = self.uploads.claim(&todo);
            let digests: Vec<Digest> = claims.iter().map(|c| c.digest).collect();
            let jobs = self.upload_jobs(&digests, memory, context);
            let ours = inflight::run_jobs(claims, jobs);
            let (ours, theirs) = futures::join!(ours, waiting.wait());
            ours?;
            todo = theirs?;
        }
        Ok(())
    }

    fn upload_jobs<'a>(
        &'a self,
        digests: &[Digest],
        memory: &'a InMemory,
        context: &'a CallContext,
    ) -> Vec<Job<'a>> {
        let instance_name = &self.options.instance_name;
        let plan = batch::plan_uploads(instance_name, digests, self.features.batch_limit);
        let batches = plan.batches.into_iter().map(|batch| {
            async move {
                let result = self.upload_batch(&batch, memory, context).await;
                (batch, result)
            }
            .boxed()
        });
        let streams = plan.streamed.into_iter().map(|digest| {
            async move {
                let result = self.stream_blob(digest, memory, context).await;
                (vec![digest], result)
            }
            .boxed()
        });
        batches.chain(streams).collect()
    }

    /// Streams a blob too large for a batch. One held in memory is stored locally first: a
    /// ByteStream upload reads its blob from a file, so that it can resume at any offset.
    async fn stream_blob(
        &self,
        digest: Digest,
        memory: &InMemory,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        if let Some(bytes) = memory.get(&digest) {
            let (store, bytes) = (self.store.clone(), bytes.clone());
            blocking(move || Ok(store.put_with_digest(&digest, &bytes)?)).await?;
        }
        self.write_blob(digest, context).await
    }

    /// One batch, retried with only the blobs that failed until all are in.
    async fn upload_batch(
        &self,
        digests: &[Digest],
        memory: &InMemory,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        let mut pending = digests.to_vec();
        let mut attempts = self.retrier.attempts("BatchUpdateBlobs");
        loop {
            let failures = match self.batch_update_once(&pending, memory, context).await {
                Ok(failures) => failures,
                Err(error) => {
                    attempts.wait(error).await?;
                    continue;
                }
            };
            let failed: HashSet<Digest> = failures.iter().map(|(d, _)| *d).collect();
            for digest in pending.iter().filter(|d| !failed.contains(d)) {
                self.stats.count_upload(digest.size_bytes);
            }
            let Some(error) = worst(failures) else {
                return Ok(());
            };
            pending.retain(|d| failed.contains(d));
            attempts.wait(error).await?;
        }
    }

    /// A batch's blobs in the order of `digests`: from `memory` where it has them, else read
    /// from the local store.
    async fn read_blobs(
        &self,
        digests: &[Digest],
        memory: &InMemory,
    ) -> Result<Vec<(Digest, Bytes)>, ReapiError> {
        let stored: Vec<Digest> = digests
            .iter()
            .filter(|d| !memory.contains_key(d))
            .copied()
            .collect();
        let mut read = self.read_local_blobs(&stored).await?.into_iter();
        let take = |digest: &Digest| match memory.get(digest) {
            Some(bytes) => Some((*digest, bytes.clone())),
            None => read.next(),
        };
        let blobs: Option<Vec<_>> = digests.iter().map(take).collect();
        blobs.ok_or_else(|| {
            ReapiError::protocol("BatchUpdateBlobs", "a blob of the batch was not read")
        })
    }

    /// Reads a batch's blobs into one buffer, each blob a slice of it. The buffer is allocated
    /// here, on a runtime thread, and only filled on the blocking pool: glibc's allocator (the
    /// `remex` binary uses mimalloc, other users of this crate may not) gives each thread that
    /// allocates its own arena, and megabyte buffers allocated all over the blocking pool
    /// stayed cached there, about 15 MiB more resident memory in the upload benchmark.
    async fn read_local_blobs(
        &self,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, Bytes)>, ReapiError> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let total: u64 = digests.iter().map(|d| d.size_bytes).sum();
        let mut buffer = vec![0u8; usize::try_from(total).unwrap_or(usize::MAX)];
        let store = self.store.clone();
        let owned = digests.to_vec();
        let buffer = blocking(move || {
            let mut rest = buffer.as_mut_slice();
            for digest in &owned {
                let (slot, after) = rest.split_at_mut(digest.size_bytes as usize);
                read_blob_into(&store, digest, slot)?;
                rest = after;
            }
            Ok(Bytes::from(buffer))
        })
        .await?;

        let mut start = 0;
        let mut blobs = Vec::with_capacity(digests.len());
        for digest in digests {
            let end = start + digest.size_bytes as usize;
            blobs.push((*digest, buffer.slice(start..end)));
            start = end;
        }
        Ok(blobs)
    }

    /// One `BatchUpdateBlobs` call; returns the blobs the server refused, with why. The blobs
    /// are read only once their bytes fit in the upload budget and a place is free, so waiting
    /// batches hold no memory; the bytes count until the answer, since the encoded request
    /// lives until the last of it is sent.
    async fn batch_update_once(
        &self,
        pending: &[Digest],
        memory: &InMemory,
        context: &CallContext,
    ) -> Result<Vec<(Digest, ReapiError)>, ReapiError> {
        let rpc = "BatchUpdateBlobs";
        let timeout = self.options.store_rpc_timeout;
        let bytes = pending.iter().map(|d| d.size_bytes).sum();
        let _bytes = self.limits.reserve_upload(bytes).await?;
        let _permit = Limits::acquire(&self.limits.store).await?;
        let blobs = self.read_blobs(pending, memory).await?;
        let message = reapi::BatchUpdateBlobsRequest {
            instance_name: self.options.instance_name.clone(),
            requests: blobs
                .into_iter()
                .map(|(d, data)| batch::upload_entry(&d, data))
                .collect(),
            ..Default::default()
        };
        let request = self.store_request(context, message, timeout);
        let mut client = self.cas_client();
        let response = within(rpc, timeout, client.batch_update_blobs(request)).await;
        let response = response.map_err(|s| self.store_error(rpc, s))?.into_inner();
        refused_blobs(pending, &response.responses)
    }

    /// Streams one blob from its file in the local store.
    async fn write_blob(&self, digest: Digest, context: &CallContext) -> Result<(), ReapiError> {
        let path = self.store.blob_path(&digest);
        if !path.is_file() {
            return Err(StoreError::Missing(digest).into());
        }
        if self.features.zstd && compressible(&path).await? {
            self.write_compressed(digest, &path, context).await?;
        } else {
            self.write_resumable(digest, &path, context).await?;
        }
        self.stats.count_upload(digest.size_bytes);
        Ok(())
    }

    /// An uncompressed upload, resumed from the server's `committed_size` after a failure.
    async fn write_resumable(
        &self,
        digest: Digest,
        path: &Path,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        let instance_name = &self.options.instance_name;
        let encoding = BlobEncoding::Identity;
        let name = resource::write_name(instance_name, Uuid::new_v4(), &digest, encoding);
        let mut attempts = self.retrier.attempts("Write");
        let mut offset = 0;
        loop {
            let write = self.write_once(&name, path, digest, offset, encoding, context);
            let error = match write.await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            attempts.wait(error).await?;

            // Ask how far the server got; a server that does not know starts over.
            let status = self.query_write_status(&name, context).await;
            let committed = match status {
                Some(status) if status.complete => return Ok(()),
                Some(status) => u64::try_from(status.committed_size).unwrap_or(0),
                None => 0,
            };
            if committed > digest.size_bytes {
                let detail = format!("{committed} bytes committed of the {digest} blob");
                return Err(ReapiError::protocol("QueryWriteStatus", detail));
            }
            if committed > offset {
                attempts.progressed();
            }
            offset = committed;
        }
    }

    /// A zstd upload. Its offsets mix compressed and uncompressed sizes, so an interrupted
    /// one starts over under a fresh name rather than resuming.
    async fn write_compressed(
        &self,
        digest: Digest,
        path: &Path,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        let instance_name = &self.options.instance_name;
        let encoding = BlobEncoding::Zstd;
        let mut attempts = self.retrier.attempts("Write");
        loop {
            let name = resource::write_name(instance_name, Uuid::new_v4(), &digest, encoding);
            match self
                .write_once(&name, path, digest, 0, encoding, context)
                .await
            {
                Ok(()) => return Ok(()),
                Err(error) => attempts.wait(error).await?,
            }
        }
    }

    /// One `Write` call from `offset` (in the blob's own bytes) to the end.
    async fn write_once(
        &self,
        name: &str,
        path: &Path,
        digest: Digest,
        offset: u64,
        encoding: BlobEncoding,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        let rpc = "Write";
        // A stream holds about two chunks: the one being read and the one being sent.
        let chunk_bytes = self.options.chunk_bytes.max(1);
        let held = (2 * chunk_bytes as u64).min(digest.size_bytes - offset);
        let _bytes = self.limits.reserve_upload(held).await?;
        let _permit = Limits::acquire(&self.limits.store).await?;
        let failure = Arc::new(Mutex::new(None));
        let source = WriteSource::open(path, name, digest, offset, encoding, failure.clone());
        let requests = source.await?.with_chunk_bytes(chunk_bytes).into_stream();

        let timeout = self.transfer_timeout(digest.size_bytes - offset);
        let request = self.store_request(context, requests, timeout);
        let mut client = self.bytestream_client();
        let response = within(rpc, timeout, client.write(request)).await;

        // A local read failure ends the stream early; it, not the server's view, is the cause.
        if let Some(source) = failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Err(read_error(path, source));
        }
        let response = response.map_err(|s| self.store_error(rpc, s))?.into_inner();
        check_committed(digest, encoding, response.committed_size)
    }

    async fn query_write_status(
        &self,
        name: &str,
        context: &CallContext,
    ) -> Option<QueryWriteStatusResponse> {
        let rpc = "QueryWriteStatus";
        let timeout = self.options.store_rpc_timeout;
        let _permit = Limits::acquire(&self.limits.store).await.ok()?;
        let message = QueryWriteStatusRequest {
            resource_name: name.to_owned(),
        };
        let request = self.store_request(context, message, timeout);
        let mut client = self.bytestream_client();
        let response = within(rpc, timeout, client.query_write_status(request)).await;
        response.ok().map(tonic::Response::into_inner)
    }

    /// `store_rpc_timeout` for each `chunk_bytes` of a transfer, so large blobs get time in
    /// proportion to their size.
    pub fn transfer_timeout(&self, bytes: u64) -> Duration {
        let chunk = self.options.chunk_bytes.max(1) as u64;
        let chunks = bytes.div_ceil(chunk).clamp(1, u64::from(u32::MAX));
        let chunks = u32::try_from(chunks).unwrap_or(u32::MAX);
        self.options.store_rpc_timeout.saturating_mul(chunks)
    }
}

/// An uncompressed upload must end with every byte committed; a compressed one reports `-1`
/// when the blob was already there and a compressed length otherwise, neither of which can be
/// checked here (the server checks the digest itself).
fn check_committed(
    digest: Digest,
    encoding: BlobEncoding,
    committed: i64,
) -> Result<(), ReapiError> {
    match encoding {
        BlobEncoding::Zstd => Ok(()),
        BlobEncoding::Identity if u64::try_from(committed) == Ok(digest.size_bytes) => Ok(()),
        BlobEncoding::Identity => {
            let detail = format!("the server committed {committed} bytes of the {digest} blob");
            Err(ReapiError::protocol("Write", detail))
        }
    }
}

/// Matches a batch's answers to the blobs sent: by digest, or by position when the digest is
/// left out (Bazel's test server does that). Returns the refused blobs with why.
fn refused_blobs(
    sent: &[Digest],
    responses: &[reapi::batch_update_blobs_response::Response],
) -> Result<Vec<(Digest, ReapiError)>, ReapiError> {
    let rpc = "BatchUpdateBlobs";
    let mut answered = HashSet::new();
    let mut refused = Vec::new();
    for (position, response) in responses.iter().enumerate() {
        let digest = match convert::optional_digest(rpc, response.digest.as_ref())? {
            Some(digest) => digest,
            None => *sent
                .get(position)
                .ok_or_else(|| ReapiError::protocol(rpc, "more answers than blobs sent"))?,
        };
        if !sent.contains(&digest) || !answered.insert(digest) {
            let detail =
                format!("an answer for {digest}, which was not sent or was answered twice");
            return Err(ReapiError::protocol(rpc, detail));
        }
        if let Some(status) = response.status.as_ref().filter(|s| s.code != 0) {
            refused.push((digest, ReapiError::from_rpc_status(rpc, status)));
        }
    }
    if let Some(unanswered) = sent.iter().find(|d| !answered.contains(d)) {
        return Err(ReapiError::protocol(
            rpc,
            format!("no answer for {unanswered}"),
        ));
    }
    Ok(refused)
}

/// The failure that decides a batch's fate: one that retrying cannot fix, if any.
pub(crate) fn worst(failures: Vec<(Digest, ReapiError)>) -> Option<ReapiError> {
    let fatal = |e: &ReapiError| {
        e.code()
            .is_none_or(|code| retry_decision(code) == RetryDecision::Fail)
    };
    let mut errors = failures.into_iter().map(|(_, e)| e);
    let first = errors.next()?;
    if fatal(&first) {
        return Some(first);
    }
    Some(errors.find(fatal).unwrap_or(first))
}

/// Fills `slot` with the blob, which must be exactly that long: the store checked its hash
/// when it was written, its size is checked here.
fn read_blob_into(store: &LocalStore, digest: &Digest, slot: &mut [u8]) -> Result<(), ReapiError> {
    let path = store.blob_path(digest);
    let mut file = store.open_blob(digest)?;
    let length = file.metadata().map_err(|e| read_error(&path, e))?.len();
    if length != digest.size_bytes {
        let detail = format!("{length} bytes on disk for the blob {digest}");
        let source = io::Error::new(io::ErrorKind::InvalidData, detail);
        return Err(read_error(&path, source));
    }
    file.read_exact(slot).map_err(|e| read_error(&path, e))
}

/// Whether zstd shrinks the start of the blob by a tenth or more. Incompressible blobs (media,
/// archives, already compressed outputs) would cost CPU on both ends for nothing and lose the
/// resumable upload; level 1 skips over them at about 2.7 GB/s here, still a third of a core
/// for a gigabyte a second. Compressible ones save bandwidth wherever the network, not the
/// CPU, is what limits (level 1 compresses a binary about 4 to 1 at some 450 MB/s).
async fn compressible(path: &Path) -> Result<bool, ReapiError> {
    let path = path.to_owned();
    blocking(move || {
        let file = File::open(&path).map_err(|e| read_error(&path, e))?;
        let mut sample = Vec::new();
        let read = file.take(COMPRESSION_SAMPLE).read_to_end(&mut sample);
        read.map_err(|e| read_error(&path, e))?;
        let compressed = zstd::bulk::compress(&sample, ZSTD_LEVEL);
        let compressed = compressed.map_err(|e| read_error(&path, e))?;
        Ok(compressed.len() * 10 <= sample.len() * 9)
    })
    .await
}

fn read_error(path: &Path, source: io::Error) -> ReapiError {
    ReapiError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    }
}

/// The messages of one `Write`, read from the blob's file as the server takes them.
struct WriteSource {
    /// `None` only while a read runs on the blocking pool, or after one failed there.
    file: Option<File>,
    resource_name: Option<String>,
    /// Bytes of the blob read so far.
    read: u64,
    /// The next message's `write_offset`: the blob's offset for uncompressed uploads; for
    /// compressed ones the compressed bytes sent so far (after a first offset of 0).
    write_offset: u64,
    size: u64,
    chunk_bytes: usize,
    encoder: Option<zstd::stream::write::Encoder<'static, Vec<u8>>>,
    done: bool,
    /// Where a local read failure is left for the caller, since the stream cannot carry it.
    failure: Arc<Mutex<Option<io::Error>>>,
}

impl WriteSource {
    async fn open(
        path: &Path,
        name: &str,
        digest: Digest,
        offset: u64,
        encoding: BlobEncoding,
        failure: Arc<Mutex<Option<io::Error>>>,
    ) -> Result<Self, ReapiError> {
        let owned = path.to_owned();
        let file = blocking(move || {
            let mut file = File::open(&owned).map_err(|e| read_error(&owned, e))?;
            if offset > 0 {
                let seek = file.seek(io::SeekFrom::Start(offset));
                seek.map_err(|e| read_error(&owned, e))?;
            }
            Ok(file)
        })
        .await?;
        let encoder = match encoding {
            BlobEncoding::Identity => None,
            BlobEncoding::Zstd => Some(
                zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)
                    .map_err(|e| read_error(path, e))?,
            ),
        };
        Ok(Self {
            file: Some(file),
            resource_name: Some(name.to_owned()),
            read: offset,
            write_offset: offset,
            size: digest.size_bytes,
            chunk_bytes: 1024 * 1024,
            encoder,
            done: false,
            failure,
        })
    }

    fn with_chunk_bytes(mut self, chunk_bytes: usize) -> Self {
        self.chunk_bytes = chunk_bytes.max(1);
        self
    }

    fn into_stream(self) -> impl Stream<Item = WriteRequest> + Send + 'static {
        futures::stream::unfold(self, |mut source| async move {
            match source.next_request().await {
                Ok(request) => request.map(|r| (r, source)),
                Err(error) => {
                    let mut slot = source
                        .failure
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    *slot = Some(error);
                    None
                }
            }
        })
    }

    async fn next_request(&mut self) -> io::Result<Option<WriteRequest>> {
        while !self.done {
            let remaining = self.size - self.read;
            let len = remaining.min(self.chunk_bytes as u64);
            let raw = self.read_chunk(len).await?;
            self.read += raw.len() as u64;
            let finish = self.read == self.size;
            let data = self.encode(raw, finish)?;
            if data.is_empty() && !finish {
                // The compressor holds these bytes back for now.
                continue;
            }
            self.done = finish;
            let request = WriteRequest {
                resource_name: self.resource_name.take().unwrap_or_default(),
                write_offset: self.write_offset as i64,
                finish_write: finish,
                data: Bytes::from(data),
            };
            self.write_offset += request.data.len() as u64;
            return Ok(Some(request));
        }
        Ok(None)
    }

    /// The next `len` bytes of the file, read on the blocking pool: a plain `read` into the
    /// message's own buffer, where `tokio::fs` would read into its buffer and copy.
    async fn read_chunk(&mut self, len: u64) -> io::Result<Vec<u8>> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("an earlier read of the blob failed"))?;
        // Allocated here rather than on the blocking pool; see `read_local_blobs`.
        let mut raw = vec![0u8; len as usize];
        let read = tokio::task::spawn_blocking(move || {
            let read = file.read_exact(&mut raw);
            (file, read.map(|()| raw))
        });
        let (file, raw) = read.await.map_err(io::Error::other)?;
        self.file = Some(file);
        raw
    }

    fn encode(&mut self, raw: Vec<u8>, finish: bool) -> io::Result<Vec<u8>> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(raw);
        };
        encoder.write_all(&raw)?;
        let mut out = std::mem::take(encoder.get_mut());
        if finish && let Some(encoder) = self.encoder.take() {
            out.extend(encoder.finish()?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;
    use crate::client_tests::harness_with;
    use crate::fake::FakeConfig;

    const KIB: usize = 1024;

    fn status(code: Code) -> remex_proto::rpc::Status {
        remex_proto::rpc::Status {
            code: code as i32,
            ..Default::default()
        }
    }

    fn answer(digest: Option<Digest>, code: Code) -> reapi::batch_update_blobs_response::Response {
        reapi::batch_update_blobs_response::Response {
            digest: digest.map(|d| d.to_proto()),
            status: Some(status(code)),
        }
    }

    #[test]
    fn answers_without_digests_match_by_position() {
        let sent = [Digest::of_bytes(b"a"), Digest::of_bytes(b"b")];
        let answers = [
            answer(None, Code::Ok),
            answer(None, Code::ResourceExhausted),
        ];
        let refused = refused_blobs(&sent, &answers).expect("matched");
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, sent[1]);
    }

    #[test]
    fn answers_for_unsent_or_missing_blobs_break_the_protocol() {
        let sent = [Digest::of_bytes(b"a")];
        let stranger = [answer(Some(Digest::of_bytes(b"z")), Code::Ok)];
        assert!(matches!(
            refused_blobs(&sent, &stranger),
            Err(ReapiError::Protocol { .. })
        ));
        assert!(matches!(
            refused_blobs(&sent, &[]),
            Err(ReapiError::Protocol { .. })
        ));
    }

    /// `count` distinct blobs of `size` bytes in `store`.
    fn put_blobs(store: &remex_store::LocalStore, count: usize, size: usize) -> Vec<Digest> {
        (0..count)
            .map(|i| {
                let mut data = vec![7u8; size];
                data[..8].copy_from_slice(&(i as u64).to_le_bytes());
                store.put_bytes(&data).expect("put")
            })
            .collect()
    }

    /// Uploads `digests` through a fake that holds every call a little, so calls overlap,
    /// and returns the most store calls it saw in flight at once.
    async fn peak_uploads_in_flight(
        blob_size: usize,
        count: usize,
        adjust: impl FnOnce(&mut crate::RemoteOptions),
    ) -> usize {
        let config = FakeConfig {
            max_batch_total_size_bytes: 64 * KIB as i64,
            call_delay: Duration::from_millis(5),
            ..FakeConfig::default()
        };
        let h = harness_with(config, adjust).await;
        let digests = put_blobs(&h.store, count, blob_size);
        h.client
            .upload_blobs(digests.clone(), &CallContext::default())
            .await
            .expect("uploads");
        let state = h.server.state();
        let missing: Vec<_> = digests.iter().filter(|d| !state.has_blob(d)).collect();
        assert!(missing.is_empty(), "not uploaded: {missing:?}");
        state.peaks().store
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_in_flight_stay_within_the_byte_budget() {
        // One 40 KiB blob per batch under a 64 KiB limit; 100 KiB of budget fits two.
        let budget = 100 * KIB;
        let peak = peak_uploads_in_flight(40 * KIB, 24, |options| {
            options.upload_bytes_in_flight = budget;
        })
        .await;
        assert!(
            peak * 40 * KIB <= budget,
            "{peak} batches of 40 KiB in flight"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_hold_two_chunks_each_of_the_byte_budget() {
        // Blobs over the batch limit are streamed in 16 KiB chunks: 32 KiB each in flight.
        let budget = 64 * KIB;
        let peak = peak_uploads_in_flight(100 * KIB, 6, |options| {
            options.chunk_bytes = 16 * KIB;
            options.upload_bytes_in_flight = budget;
        })
        .await;
        assert!(peak * 32 * KIB <= budget, "{peak} streams in flight");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_larger_than_the_byte_budget_goes_alone() {
        let peak = peak_uploads_in_flight(40 * KIB, 3, |options| {
            options.upload_bytes_in_flight = 10 * KIB;
        })
        .await;
        assert_eq!(peak, 1, "batches in flight at once");
    }

    #[test]
    fn a_fatal_refusal_outweighs_transient_ones() {
        let d = Digest::of_bytes(b"a");
        let failures = vec![
            (d, ReapiError::status("x", Code::Unavailable, "")),
            (d, ReapiError::status("x", Code::InvalidArgument, "")),
        ];
        let worst = worst(failures).expect("some");
        assert_eq!(worst.code(), Some(Code::InvalidArgument));
    }
}
