//! Downloads: small blobs with `BatchReadBlobs` (ByteStream instead when the server answers
//! `UNIMPLEMENTED`, as Bazel's test server does), large ones with ByteStream `Read` into a
//! temporary file, resumed by offset. Every blob is checked against its digest before it
//! enters the local store; a blob that does not match never does.

use std::collections::HashSet;
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::FutureExt;
use remex_proto::bytestream::ReadRequest;
use remex_proto::reapi;
use remex_store::{Digest, LocalStore};
use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;
use tonic::Code;
use tracing::debug;

use crate::batch;
use crate::client::{Inner, Limits, blocking, unique_non_empty, within};
use crate::convert;
use crate::error::ReapiError;
use crate::inflight::{self, Job};
use crate::metadata::CallContext;
use crate::resource::{self, BlobEncoding};
use crate::upload::worst;

impl Inner {
    pub async fn download_blobs(
        &self,
        digests: &[Digest],
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        let mut todo = self.not_local(digests);
        while !todo.is_empty() {
            let (claims, waiting) = self.downloads.claim(&todo);
            let digests: Vec<Digest> = claims.iter().map(|c| c.digest).collect();
            let ours = inflight::run_jobs(claims, self.download_jobs(&digests, context));
            let (ours, theirs) = futures::join!(ours, waiting.wait());
            ours?;
            todo = self.not_local(&theirs?);
        }
        Ok(())
    }

    fn not_local(&self, digests: &[Digest]) -> Vec<Digest> {
        let mut wanted = unique_non_empty(digests);
        wanted.retain(|d| !self.store.contains(d));
        wanted
    }

    fn download_jobs<'a>(&'a self, digests: &[Digest], context: &'a CallContext) -> Vec<Job<'a>> {
        let plan = if self.batch_read_unimplemented.load(Ordering::Relaxed) {
            batch::BatchPlan {
                batches: Vec::new(),
                streamed: digests.to_vec(),
            }
        } else {
            batch::plan_downloads(digests, self.features.batch_limit)
        };
        let batches = plan.batches.into_iter().map(|batch| {
            async move {
                let result = self.read_batch(&batch, context).await;
                (batch, result)
            }
            .boxed()
        });
        let streams = plan.streamed.into_iter().map(|digest| {
            async move { (vec![digest], self.read_blob(digest, context).await) }.boxed()
        });
        batches.chain(streams).collect()
    }

    /// One batch, retried with only the blobs that failed until all are stored.
    async fn read_batch(
        &self,
        digests: &[Digest],
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        let mut pending = digests.to_vec();
        let mut attempts = self.retrier.attempts("BatchReadBlobs");
        loop {
            let error = match self.batch_read_once(&pending, context).await {
                Ok(failures) => {
                    let failed: HashSet<Digest> = failures.iter().map(|(d, _)| *d).collect();
                    let Some(error) = worst(failures) else {
                        return Ok(());
                    };
                    pending.retain(|d| failed.contains(d));
                    error
                }
                Err(error) if error.code() == Some(Code::Unimplemented) => {
                    debug!("`BatchReadBlobs` is unimplemented; reading with ByteStream");
                    self.batch_read_unimplemented.store(true, Ordering::Relaxed);
                    return self.read_each(&pending, context).await;
                }
                Err(error) => error,
            };
            attempts.wait(error).await?;
        }
    }

    async fn read_each(&self, digests: &[Digest], context: &CallContext) -> Result<(), ReapiError> {
        let reads = digests.iter().map(|d| self.read_blob(*d, context));
        futures::future::try_join_all(reads).await?;
        Ok(())
    }

    /// One `BatchReadBlobs` call: stores every blob that came back whole and returns the ones
    /// that failed, with why. A blob with the wrong bytes fails the whole call.
    async fn batch_read_once(
        &self,
        pending: &[Digest],
        context: &CallContext,
    ) -> Result<Vec<(Digest, ReapiError)>, ReapiError> {
        let rpc = "BatchReadBlobs";
        let timeout = self.options.store_rpc_timeout;
        let permit = Limits::acquire(&self.limits.store).await?;
        let message = reapi::BatchReadBlobsRequest {
            instance_name: self.options.instance_name.clone(),
            digests: convert::to_protos(pending),
            ..Default::default()
        };
        let request = self.store_request(context, message, timeout);
        let mut client = self.cas_client();
        let response = within(rpc, timeout, client.batch_read_blobs(request)).await;
        let response = response.map_err(|s| self.store_error(rpc, s))?.into_inner();
        drop(permit);

        let BatchAnswers { verified, failures } = sort_answers(pending, response.responses)?;
        let store = self.store.clone();
        let stored = verified
            .iter()
            .map(|(d, _)| d.size_bytes)
            .collect::<Vec<_>>();
        blocking(move || {
            for (digest, data) in &verified {
                store.put_with_digest(digest, data)?;
            }
            Ok(())
        })
        .await?;
        for size in stored {
            self.stats.count_download(size);
        }
        Ok(failures)
    }

    /// Streams one blob into a temporary file, resuming from the bytes already written.
    async fn read_blob(&self, digest: Digest, context: &CallContext) -> Result<(), ReapiError> {
        let encoding = if self.features.zstd {
            BlobEncoding::Zstd
        } else {
            BlobEncoding::Identity
        };
        let name = resource::read_name(&self.options.instance_name, &digest, encoding);
        let mut sink = BlobSink::create(&self.store, encoding)?;
        let mut attempts = self.retrier.attempts("Read");
        loop {
            let before = sink.written;
            let error = match self.read_once(&name, &mut sink, digest, context).await {
                Ok(()) if sink.written == digest.size_bytes => break,
                Ok(()) => truncated(sink.written, digest),
                Err(error) => error,
            };
            if sink.written > before {
                attempts.progressed();
            }
            attempts.wait(error).await?;
            sink.restart()?;
        }
        let temp = sink.finish(&digest).await?;
        self.adopt(temp, digest).await?;
        self.stats.count_download(digest.size_bytes);
        Ok(())
    }

    /// One `Read` call from the bytes the sink already has.
    async fn read_once(
        &self,
        name: &str,
        sink: &mut BlobSink,
        digest: Digest,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        let rpc = "Read";
        let _permit = Limits::acquire(&self.limits.store).await?;
        let message = ReadRequest {
            resource_name: name.to_owned(),
            read_offset: sink.written as i64,
            read_limit: 0,
        };
        let whole = self.transfer_timeout(digest.size_bytes - sink.written);
        let request = self.store_request(context, message, whole);
        let mut client = self.bytestream_client();

        // Each message gets `store_rpc_timeout`: a stalled stream fails, a slow one does not.
        let timeout = self.options.store_rpc_timeout;
        let stream = within(rpc, timeout, client.read(request)).await;
        let mut stream = stream.map_err(|s| self.store_error(rpc, s))?.into_inner();
        loop {
            let message = within(rpc, timeout, stream.message()).await;
            match message.map_err(|s| self.store_error(rpc, s))? {
                Some(message) => sink.write(&message.data, &digest).await?,
                None => return Ok(()),
            }
        }
    }

    /// Moves a verified temporary file into the local store.
    async fn adopt(&self, temp: NamedTempFile, digest: Digest) -> Result<(), ReapiError> {
        let store = self.store.clone();
        // The store hashes what it copies; the copy is the price of a store that never holds
        // a file it did not write itself.
        let stored = blocking(move || Ok(store.put_file(temp.path())?)).await?;
        if stored != digest {
            return Err(ReapiError::DigestMismatch {
                expected: digest,
                actual: stored,
            });
        }
        Ok(())
    }

    pub async fn fetch_outputs(
        &self,
        result: &reapi::ActionResult,
        context: &CallContext,
    ) -> Result<(), ReapiError> {
        self.store_inline_outputs(result).await?;
        self.download_blobs(&convert::result_blobs(result)?, context)
            .await?;
        let files = self
            .local_tree_files(convert::result_trees(result)?)
            .await?;
        self.download_blobs(&files, context).await
    }

    /// The files inside `Tree` blobs that are in the local store.
    pub async fn local_tree_files(&self, trees: Vec<Digest>) -> Result<Vec<Digest>, ReapiError> {
        let store = self.store.clone();
        blocking(move || {
            let mut files = Vec::new();
            for tree in trees {
                let tree: reapi::Tree = store.read_message(&tree)?;
                files.extend(convert::tree_files(&tree)?);
            }
            Ok(files)
        })
        .await
    }

    /// Output files whose contents came inline need no download, only a check.
    async fn store_inline_outputs(&self, result: &reapi::ActionResult) -> Result<(), ReapiError> {
        let mut inline = Vec::new();
        for file in result
            .output_files
            .iter()
            .filter(|f| !f.contents.is_empty())
        {
            let digest = convert::required_digest("ActionResult", file.digest.as_ref())?;
            digest
                .verify(&file.contents)
                .map_err(ReapiError::from_digest)?;
            inline.push((digest, file.contents.clone()));
        }
        let store = self.store.clone();
        blocking(move || {
            for (digest, contents) in &inline {
                store.put_with_digest(digest, contents)?;
            }
            Ok(())
        })
        .await
    }
}

/// A batch's answers: the blobs that came back whole, and the ones that failed with why.
struct BatchAnswers {
    verified: Vec<(Digest, Bytes)>,
    failures: Vec<(Digest, ReapiError)>,
}

/// Sorts a batch's answers, matched by digest, or by position when the server leaves the
/// digest out.
fn sort_answers(
    pending: &[Digest],
    responses: Vec<reapi::batch_read_blobs_response::Response>,
) -> Result<BatchAnswers, ReapiError> {
    let rpc = "BatchReadBlobs";
    let mut answered = HashSet::new();
    let mut verified = Vec::new();
    let mut failures = Vec::new();
    for (position, response) in responses.into_iter().enumerate() {
        let digest = match convert::optional_digest(rpc, response.digest.as_ref())? {
            Some(digest) => digest,
            None => *pending
                .get(position)
                .ok_or_else(|| ReapiError::protocol(rpc, "more answers than blobs asked for"))?,
        };
        if !pending.contains(&digest) || !answered.insert(digest) {
            let detail = format!("an answer for {digest}, which was not asked for or came twice");
            return Err(ReapiError::protocol(rpc, detail));
        }
        let status = response.status.clone().unwrap_or_default();
        match Code::from_i32(status.code) {
            Code::Ok => verified.push((digest, verified_data(digest, response)?)),
            Code::NotFound => return Err(ReapiError::MissingBlob(digest)),
            _ => failures.push((digest, ReapiError::from_rpc_status(rpc, &status))),
        }
    }
    if let Some(unanswered) = pending.iter().find(|d| !answered.contains(d)) {
        return Err(ReapiError::protocol(
            rpc,
            format!("no answer for {unanswered}"),
        ));
    }
    Ok(BatchAnswers { verified, failures })
}

fn verified_data(
    digest: Digest,
    response: reapi::batch_read_blobs_response::Response,
) -> Result<Bytes, ReapiError> {
    if response.compressor != reapi::compressor::Value::Identity as i32 {
        let detail = format!("{digest} came compressed although only identity was accepted");
        return Err(ReapiError::protocol("BatchReadBlobs", detail));
    }
    digest
        .verify(&response.data)
        .map_err(ReapiError::from_digest)?;
    Ok(response.data)
}

/// A stream that ended cleanly but early: like a dropped connection, worth resuming.
fn truncated(written: u64, digest: Digest) -> ReapiError {
    let message = format!(
        "the stream ended after {written} of the {} bytes of {digest}",
        digest.size_bytes
    );
    ReapiError::status("Read", Code::Unavailable, message)
}

/// Where a streamed blob goes: a temporary file next to the store, hashed as it is written.
struct BlobSink {
    temp: NamedTempFile,
    file: tokio::fs::File,
    hasher: Sha256,
    /// Bytes of the blob (uncompressed) written so far: where a resumed read starts.
    written: u64,
    encoding: BlobEncoding,
    decoder: Option<zstd::stream::write::Decoder<'static, Vec<u8>>>,
}

impl BlobSink {
    fn create(store: &LocalStore, encoding: BlobEncoding) -> Result<Self, ReapiError> {
        let dir = store.temp_dir();
        let temp = NamedTempFile::new_in(&dir).map_err(io_error("create a file in", &dir))?;
        let file = temp.reopen().map_err(io_error("open", temp.path()))?;
        Ok(Self {
            file: tokio::fs::File::from_std(file),
            temp,
            hasher: Sha256::new(),
            written: 0,
            encoding,
            decoder: new_decoder(encoding)?,
        })
    }

    /// A resumed compressed read is a new zstd stream starting at `written`.
    fn restart(&mut self) -> Result<(), ReapiError> {
        self.decoder = new_decoder(self.encoding)?;
        Ok(())
    }

    async fn write(&mut self, data: &[u8], digest: &Digest) -> Result<(), ReapiError> {
        let decoded;
        let plain = match self.decoder.as_mut() {
            None => data,
            Some(decoder) => {
                let bad =
                    |e: io::Error| ReapiError::protocol("Read", format!("bad zstd data: {e}"));
                decoder.write_all(data).map_err(bad)?;
                decoder.flush().map_err(bad)?;
                decoded = std::mem::take(decoder.get_mut());
                &decoded
            }
        };
        let written = self.written + plain.len() as u64;
        if written > digest.size_bytes {
            let detail = format!("more than the {} bytes of {digest}", digest.size_bytes);
            return Err(ReapiError::protocol("Read", detail));
        }
        self.hasher.update(plain);
        let path = self.temp.path().to_owned();
        self.file
            .write_all(plain)
            .await
            .map_err(io_error("write", &path))?;
        self.written = written;
        Ok(())
    }

    /// The file, if what was written is the blob `digest` names.
    async fn finish(mut self, digest: &Digest) -> Result<NamedTempFile, ReapiError> {
        let path = self.temp.path().to_owned();
        self.file.flush().await.map_err(io_error("write", &path))?;
        let actual = Digest {
            hash: self.hasher.finalize().into(),
            size_bytes: self.written,
        };
        if actual != *digest {
            return Err(ReapiError::DigestMismatch {
                expected: *digest,
                actual,
            });
        }
        Ok(self.temp)
    }
}

fn new_decoder(
    encoding: BlobEncoding,
) -> Result<Option<zstd::stream::write::Decoder<'static, Vec<u8>>>, ReapiError> {
    match encoding {
        BlobEncoding::Identity => Ok(None),
        BlobEncoding::Zstd => zstd::stream::write::Decoder::new(Vec::new())
            .map(Some)
            .map_err(|e| ReapiError::protocol("Read", format!("cannot start zstd: {e}"))),
    }
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ReapiError + 'a {
    move |source| ReapiError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}
