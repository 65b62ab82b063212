//! zstd, the one compressor this server offers, for batch RPCs (whole blobs in memory, bounded
//! by the batch limit) and for ByteStream (streamed, never a whole blob in memory).

use std::io::{self, Read, Write};

use bytes::Bytes;
use remex_store::{BlobWriter, Digest, StoreError};

/// Level 1: this server mostly talks to clients on the same machine or network, where speed
/// matters more than ratio.
const LEVEL: i32 = 1;

/// Compresses a whole (batch-sized) blob.
pub(crate) fn compress(data: &[u8]) -> io::Result<Vec<u8>> {
    zstd::bulk::compress(data, LEVEL)
}

/// Decompresses a whole (batch-sized) blob that should be `digest`, refusing to produce more
/// than its size, so a small bomb cannot fill memory.
pub(crate) fn decompress(data: &[u8], digest: &Digest) -> io::Result<Vec<u8>> {
    let decoder = zstd::stream::read::Decoder::new(data)?;
    let mut out = Vec::with_capacity(usize::try_from(digest.size_bytes).unwrap_or(0));
    decoder.take(digest.size_bytes + 1).read_to_end(&mut out)?;
    if out.len() as u64 > digest.size_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "decompresses to more than the {} bytes of {digest}",
                digest.size_bytes
            ),
        ));
    }
    Ok(out)
}

/// A reader yielding the zstd compression of another reader, for streamed reads.
pub(crate) fn encoder<R: io::BufRead>(reader: R) -> io::Result<impl Read> {
    zstd::stream::read::Encoder::with_buffer(reader, LEVEL)
}

/// Why a piece of a ByteStream write could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SinkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid zstd data: {0}")]
    Zstd(#[source] io::Error),
}

/// Where the bytes of one ByteStream write go: straight into the blob, or through a zstd
/// decoder first.
pub(crate) enum Sink {
    Identity(Box<BlobWriter>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Adapter>>),
}

impl Sink {
    pub(crate) fn new(writer: BlobWriter, compressed: bool) -> io::Result<Self> {
        if !compressed {
            return Ok(Self::Identity(Box::new(writer)));
        }
        let decoder = zstd::stream::write::Decoder::new(Adapter(writer))?;
        Ok(Self::Zstd(Box::new(decoder)))
    }

    /// Writes a piece of the stream as it arrives on the wire.
    pub(crate) fn write(&mut self, data: Bytes) -> Result<(), SinkError> {
        match self {
            Self::Identity(writer) => Ok(writer.write_bytes(data)?),
            Self::Zstd(decoder) => decoder.write_all(&data).map_err(sink_error),
        }
    }

    /// Uncompressed bytes of the blob written so far.
    pub(crate) fn written(&self) -> u64 {
        match self {
            Self::Identity(writer) => writer.written(),
            Self::Zstd(decoder) => decoder.get_ref().0.written(),
        }
    }

    /// The blob writer, with everything decoded so far written through.
    pub(crate) fn finish(self) -> Result<BlobWriter, SinkError> {
        match self {
            Self::Identity(writer) => Ok(*writer),
            Self::Zstd(mut decoder) => {
                decoder.flush().map_err(sink_error)?;
                Ok(decoder.into_inner().0)
            }
        }
    }
}

/// Lets a [`BlobWriter`] sit under a zstd decoder.
pub(crate) struct Adapter(BlobWriter);

impl Write for Adapter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A store error that went through the decoder as an `io::Error` comes back out as itself;
/// anything else the decoder reports is bad compressed data.
fn sink_error(error: io::Error) -> SinkError {
    if !error
        .get_ref()
        .is_some_and(|inner| inner.is::<StoreError>())
    {
        return SinkError::Zstd(error);
    }
    match error
        .into_inner()
        .map(|inner| inner.downcast::<StoreError>())
    {
        Some(Ok(store_error)) => SinkError::Store(*store_error),
        _ => SinkError::Zstd(io::Error::other(
            "a store error was lost in the zstd decoder",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_blobs_round_trip() {
        let data = b"compress me, compress me, compress me".repeat(10);
        let digest = Digest::of_bytes(&data);
        let compressed = compress(&data).expect("compress");
        assert!(compressed.len() < data.len());
        assert_eq!(decompress(&compressed, &digest).expect("decompress"), data);
    }

    #[test]
    fn decompression_stops_past_the_announced_size() {
        let data = vec![0u8; 1 << 20];
        let small = Digest::of_bytes(&data[..10]);
        let compressed = compress(&data).expect("compress");
        assert!(decompress(&compressed, &small).is_err());
    }

    #[test]
    fn streamed_decompression_fills_the_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = remex_store::LocalStore::open(dir.path()).expect("open");
        let data = b"streamed through zstd ".repeat(1000);
        let digest = Digest::of_bytes(&data);
        let compressed = compress(&data).expect("compress");

        let writer = store.blob_writer(&digest).expect("writer");
        let mut sink = Sink::new(writer, true).expect("sink");
        for piece in compressed.chunks(100) {
            sink.write(Bytes::copy_from_slice(piece)).expect("write");
        }
        sink.finish().expect("finish").commit().expect("commit");
        assert_eq!(store.read(&digest).expect("read"), data);
    }
}
