//! The ByteStream service over the CAS: `Read` with offsets and limits, resumable `Write`, and
//! `QueryWriteStatus`, for plain and zstd-compressed blobs. Blobs stream between the socket and
//! the disk in chunks; a whole blob is never in memory.
//!
//! Offsets follow REAPI: for `compressed-blobs`, `read_offset` and the first `write_offset` of a
//! stream count uncompressed bytes, later `write_offset`s add the compressed bytes sent, and
//! `QueryWriteStatus` reports the uncompressed bytes committed (where to resume). A finished
//! write answers `committed_size` = the blob's size, or for a compressed upload the stream's
//! final `write_offset`; a blob that already exists answers at once with its size, or -1 for a
//! compressed upload.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use remex_proto::bytestream::byte_stream_server::ByteStream;
use remex_proto::bytestream::{
    QueryWriteStatusRequest, QueryWriteStatusResponse, ReadRequest, ReadResponse, WriteRequest,
    WriteResponse,
};
use remex_store::{BlobWriter, Digest, LocalStore};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::compression::{self, Sink, SinkError};
use crate::resource::{self, Encoding, WriteResource};
use crate::state::Shared;
use crate::status;
use crate::uploads::Claim;

/// How many read chunks may wait for a slow client: the memory one `Read` can hold.
const READ_QUEUE: usize = 4;

/// How many received pieces may wait for the disk: the memory one `Write` can hold beyond
/// what HTTP/2 flow control lets in.
const WRITE_QUEUE: usize = 4;

pub(crate) struct ByteStreamService {
    shared: Arc<Shared>,
}

impl ByteStreamService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

pub(crate) type ReadStream = ReceiverStream<Result<ReadResponse, Status>>;

#[tonic::async_trait]
impl ByteStream for ByteStreamService {
    type ReadStream = ReadStream;

    async fn read(
        &self,
        request: Request<ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let request = request.into_inner();
        let resource = resource::parse_read(&request.resource_name)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.shared.check_instance(&resource.instance_name)?;
        let range = read_range(&request, &resource.digest, resource.encoding)?;
        let compressed = resource.encoding == Encoding::Zstd;

        let file = if resource.digest.is_empty_blob() {
            None
        } else {
            Some(open_checked(&self.shared, &resource.digest)?)
        };
        let chunk = self.shared.settings.read_chunk_bytes;
        let (sender, receiver) = mpsc::channel(READ_QUEUE);
        tokio::task::spawn_blocking(move || {
            let sent = send_blob(file, range, compressed, chunk, &sender);
            if let Err(error) = sent {
                let _ = sender.blocking_send(Err(Status::internal(error.to_string())));
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn write(
        &self,
        request: Request<Streaming<WriteRequest>>,
    ) -> Result<Response<WriteResponse>, Status> {
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the write stream has no messages"))?;
        let resource = resource::parse_write(&first.resource_name)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.shared.check_instance(&resource.instance_name)?;

        let upload = Upload::new(&self.shared, resource, first.resource_name.clone());
        if upload.blob_exists() {
            return Ok(Response::new(upload.already_stored()));
        }
        let response = upload.run(first, &mut stream).await?;
        Ok(Response::new(response))
    }

    async fn query_write_status(
        &self,
        request: Request<QueryWriteStatusRequest>,
    ) -> Result<Response<QueryWriteStatusResponse>, Status> {
        let name = request.into_inner().resource_name;
        let resource =
            resource::parse_write(&name).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.shared.check_instance(&resource.instance_name)?;

        let digest = resource.digest;
        if self.shared.store.contains(&digest) {
            return Ok(Response::new(QueryWriteStatusResponse {
                committed_size: size_of(&digest),
                complete: true,
            }));
        }
        match self.shared.uploads.committed(&name) {
            Some(committed) => Ok(Response::new(QueryWriteStatusResponse {
                committed_size: i64::try_from(committed).unwrap_or(i64::MAX),
                complete: false,
            })),
            None => Err(Status::not_found(format!(
                "no upload `{name}` is in progress"
            ))),
        }
    }
}

/// The byte range a read asks for: `[offset, offset + length)` of the uncompressed blob.
#[derive(Clone, Copy, Debug)]
struct ReadRange {
    offset: u64,
    length: u64,
}

fn read_range(
    request: &ReadRequest,
    digest: &Digest,
    encoding: Encoding,
) -> Result<ReadRange, Status> {
    let size = digest.size_bytes;
    let offset = u64::try_from(request.read_offset)
        .ok()
        .filter(|offset| *offset <= size)
        .ok_or_else(|| {
            Status::out_of_range(format!(
                "read_offset {} is outside blob {digest}",
                request.read_offset
            ))
        })?;
    let limit = u64::try_from(request.read_limit).map_err(|_| {
        Status::invalid_argument(format!("read_limit {} is negative", request.read_limit))
    })?;
    if encoding == Encoding::Zstd && limit != 0 {
        return Err(Status::invalid_argument(
            "read_limit must be 0 when reading compressed-blobs",
        ));
    }
    let remaining = size - offset;
    let length = if limit == 0 {
        remaining
    } else {
        limit.min(remaining)
    };
    Ok(ReadRange { offset, length })
}

/// Opens a blob for reading; a file whose length is not the digest's size is data loss.
fn open_checked(shared: &Shared, digest: &Digest) -> Result<std::fs::File, Status> {
    let file = shared.store.open_blob(digest).map_err(status::from_store)?;
    let length = file
        .metadata()
        .map_err(|e| Status::internal(format!("cannot inspect blob {digest}: {e}")))?
        .len();
    if length != digest.size_bytes {
        return Err(Status::data_loss(format!(
            "blob {digest} is {length} bytes on disk"
        )));
    }
    Ok(file)
}

/// Streams the range of the blob (or its zstd compression) into `sender`, chunk by chunk,
/// until the reader is done or the client has gone.
fn send_blob(
    file: Option<std::fs::File>,
    range: ReadRange,
    compressed: bool,
    chunk: usize,
    sender: &mpsc::Sender<Result<ReadResponse, Status>>,
) -> io::Result<()> {
    let raw: Box<dyn Read> = match file {
        Some(mut file) => {
            file.seek(SeekFrom::Start(range.offset))?;
            Box::new(file.take(range.length))
        }
        None => Box::new(io::empty()),
    };
    let mut reader: Box<dyn Read> = if compressed {
        Box::new(compression::encoder(BufReader::new(raw))?)
    } else {
        raw
    };
    let mut buffer = vec![0u8; chunk];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let data = Bytes::copy_from_slice(&buffer[..n]);
        if sender.blocking_send(Ok(ReadResponse { data })).is_err() {
            return Ok(());
        }
    }
}

fn size_of(digest: &Digest) -> i64 {
    i64::try_from(digest.size_bytes).unwrap_or(i64::MAX)
}

/// One `Write` call.
struct Upload<'a> {
    shared: &'a Shared,
    resource: WriteResource,
    name: String,
}

impl<'a> Upload<'a> {
    fn new(shared: &'a Shared, resource: WriteResource, name: String) -> Self {
        Self {
            shared,
            resource,
            name,
        }
    }

    fn compressed(&self) -> bool {
        self.resource.encoding == Encoding::Zstd
    }

    fn blob_exists(&self) -> bool {
        self.shared.store.contains(&self.resource.digest)
    }

    /// REAPI's answer when the blob is already there: the full size, or -1 for a compressed
    /// upload, and no error.
    fn already_stored(&self) -> WriteResponse {
        let committed_size = if self.compressed() {
            -1
        } else {
            size_of(&self.resource.digest)
        };
        WriteResponse { committed_size }
    }

    /// Receives the stream here while a blocking thread writes and hashes what came before,
    /// so neither waits for the other and no reactor thread blocks on the disk.
    async fn run(
        &self,
        first: WriteRequest,
        stream: &mut Streaming<WriteRequest>,
    ) -> Result<WriteResponse, Status> {
        let mut claim = self.shared.uploads.claim(&self.name)?;
        let writer = self.resume(&mut claim, first.write_offset)?;
        let sink = Sink::new(writer, self.compressed())
            .map_err(|e| Status::internal(format!("cannot start a zstd decoder: {e}")))?;
        claim.set_sink(sink);

        let (pieces, queue) = mpsc::channel(WRITE_QUEUE);
        let target = Target {
            store: self.shared.store.clone(),
            digest: self.resource.digest,
            name: self.name.clone(),
        };
        let writing = tokio::task::spawn_blocking(move || write_pieces(claim, queue, &target));
        let received = self.receive(first, stream, &pieces).await;
        // The writer drains what is queued and ends; if this call is dropped instead, the
        // same happens, and the partial blob is kept for a resume.
        drop(pieces);
        let written = writing
            .await
            .map_err(|e| Status::internal(format!("the upload's writer failed: {e}")))?;

        // The writer's failure is the cause when both failed: receiving then only saw it stop.
        let written = written?;
        match (received?, written) {
            (_, Written::AlreadyStored) => Ok(self.already_stored()),
            (Some(offset), Written::Committed) => {
                let committed_size = if self.compressed() {
                    offset
                } else {
                    size_of(&self.resource.digest)
                };
                Ok(WriteResponse { committed_size })
            }
            (_, Written::Committed | Written::Interrupted) => Err(Status::internal(format!(
                "upload `{}` ended without its last message written",
                self.name
            ))),
        }
    }

    /// Checks each message and queues its bytes for the writer. Returns the stream's final
    /// `write_offset`, or `None` when the writer stopped taking pieces (its outcome says why).
    async fn receive(
        &self,
        first: WriteRequest,
        stream: &mut Streaming<WriteRequest>,
        pieces: &mpsc::Sender<Piece>,
    ) -> Result<Option<i64>, Status> {
        let mut offset = first.write_offset;
        let mut message = first;
        loop {
            self.check_message(&message, offset)?;
            offset += message.data.len() as i64;
            let last = message.finish_write;
            let piece = Piece {
                data: message.data,
                last,
            };
            if pieces.send(piece).await.is_err() {
                return Ok(None);
            }
            if last {
                return Ok(Some(offset));
            }
            message = stream.message().await?.ok_or_else(|| {
                Status::invalid_argument("the write stream ended before `finish_write`")
            })?;
        }
    }

    /// The blob writer for a stream starting at `write_offset`: the partial blob of an earlier
    /// stream if the offset continues it, a fresh one if the offset is 0.
    fn resume(&self, claim: &mut Claim, write_offset: i64) -> Result<BlobWriter, Status> {
        let writer = match claim.take_writer() {
            Some(writer) => writer,
            None => (self.shared.store)
                .blob_writer(&self.resource.digest)
                .map_err(status::from_store)?,
        };
        let mut writer = writer;
        if write_offset == 0 && writer.written() > 0 {
            writer.restart().map_err(status::from_store)?;
        }
        if u64::try_from(write_offset).ok() != Some(writer.written()) {
            let committed = writer.written();
            claim.set_sink(Sink::Identity(Box::new(writer)));
            return Err(Status::invalid_argument(format!(
                "write_offset {write_offset} does not continue upload `{}`, which has {committed} \
                 bytes; ask QueryWriteStatus where to resume",
                self.name
            )));
        }
        Ok(writer)
    }

    fn check_message(&self, message: &WriteRequest, offset: i64) -> Result<(), Status> {
        if !message.resource_name.is_empty() && message.resource_name != self.name {
            return Err(Status::invalid_argument(format!(
                "resource_name changed in the middle of a write, from `{}` to `{}`",
                self.name, message.resource_name
            )));
        }
        if message.write_offset != offset {
            return Err(Status::invalid_argument(format!(
                "write_offset {} should be {offset}, where the previous message ended",
                message.write_offset
            )));
        }
        Ok(())
    }
}

/// Bytes of one `WriteRequest`, on their way to the writer thread.
struct Piece {
    data: Bytes,
    /// The message had `finish_write`.
    last: bool,
}

/// How the writer thread left an upload.
enum Written {
    /// Every byte arrived, matched the digest, and is stored.
    Committed,
    /// Another upload stored the same blob first.
    AlreadyStored,
    /// The pieces stopped before the last one: the partial blob waits for a resume.
    Interrupted,
}

/// What the writer thread needs to know of its upload.
struct Target {
    store: LocalStore,
    digest: Digest,
    name: String,
}

/// The writer thread: writes (and so hashes) each piece, publishing progress for
/// `QueryWriteStatus`, and commits after the last. Dropping the claim unfinished, when the
/// pieces stop early or a write fails, keeps the partial blob for a resume.
fn write_pieces(
    mut claim: Claim,
    mut queue: mpsc::Receiver<Piece>,
    target: &Target,
) -> Result<Written, Status> {
    while let Some(piece) = queue.blocking_recv() {
        let Some(sink) = claim.sink() else {
            return Err(Status::internal("the upload has no sink"));
        };
        sink.write(piece.data).map_err(|e| target.sink_status(e))?;
        claim.report_progress();
        if piece.last {
            target.commit(claim)?;
            return Ok(Written::Committed);
        }
        // Another client finished the same blob: this upload is moot.
        if target.store.contains(&target.digest) {
            claim.finish();
            return Ok(Written::AlreadyStored);
        }
    }
    Ok(Written::Interrupted)
}

impl Target {
    /// Checks the finished blob against its digest and stores it (synced to disk first when
    /// the store is durable).
    fn commit(&self, mut claim: Claim) -> Result<(), Status> {
        let Some(sink) = claim.take_sink() else {
            return Err(Status::internal("the upload has no sink"));
        };
        // Whatever happens next, this upload is over: a blob that does not match will not
        // match on a retry either.
        claim.finish();
        let writer = sink.finish().map_err(|e| self.sink_status(e))?;
        let written = writer.written();
        if written != self.digest.size_bytes {
            return Err(Status::invalid_argument(format!(
                "upload `{}` finished after {written} of {} bytes",
                self.name, self.digest.size_bytes
            )));
        }
        writer.commit().map_err(status::from_store)
    }

    fn sink_status(&self, error: SinkError) -> Status {
        match error {
            SinkError::Store(error) => status::from_store(error),
            SinkError::Zstd(_) => {
                Status::invalid_argument(format!("upload `{}`: {error}", self.name))
            }
        }
    }
}
