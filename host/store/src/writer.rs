//! Streaming writes into the CAS: a blob that arrives in pieces (a ByteStream upload) is hashed
//! while it is written to a temporary file, and becomes a blob only once its bytes match the
//! digest it was announced with. Nothing is held in memory but the pieces being written.

use std::io::{self, Seek, Write};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use crate::digest::{Digest, DigestError};
use crate::local::{LocalStore, StoreError, io_error};

/// From this size on, a piece given to [`BlobWriter::write_bytes`] is hashed on a thread of its
/// own while the writing thread copies it into the file. Copying into the page cache costs
/// about as much per byte as SHA-256, so a large blob is stored in about half the time;
/// smaller pieces are not worth the hand-over.
const HASH_THREAD_MIN_PIECE: usize = 256 * 1024;

/// How many pieces may wait for the hashing thread: enough to keep it busy while the file is
/// written, few enough that a slow hash holds back the stream instead of filling memory.
const HASH_QUEUE: usize = 2;

/// A blob being written piece by piece. Dropping it without [`BlobWriter::commit`] removes the
/// partial file.
pub struct BlobWriter {
    store: LocalStore,
    expected: Digest,
    temp: NamedTempFile,
    hashing: Hashing,
    written: u64,
}

/// Where the pieces are hashed.
enum Hashing {
    /// On the thread that writes them.
    Inline(Sha256),
    /// On a thread of its own, fed in order, which hands its hasher back when the queue closes.
    Thread {
        pieces: SyncSender<Bytes>,
        hasher: JoinHandle<Sha256>,
    },
}

impl Hashing {
    /// Moves the hash to a thread of its own, carrying on from where it is; it stays inline
    /// when no thread can be started.
    fn start_thread(&mut self) {
        let Self::Inline(hasher) = self else {
            return;
        };
        let mut hasher = hasher.clone();
        let (pieces, queue) = mpsc::sync_channel::<Bytes>(HASH_QUEUE);
        let hash = move || {
            for piece in queue {
                hasher.update(&piece);
            }
            hasher
        };
        let spawned = std::thread::Builder::new()
            .name("remex-blob-hash".to_owned())
            .spawn(hash);
        match spawned {
            Ok(hasher) => *self = Self::Thread { pieces, hasher },
            Err(error) => tracing::debug!(%error, "hashing a blob inline"),
        }
    }

    /// Hashes the next piece; `owned` gives the same bytes for a hashing thread to keep.
    fn update(&mut self, piece: &[u8], owned: impl FnOnce() -> Bytes) -> io::Result<()> {
        match self {
            Self::Inline(hasher) => hasher.update(piece),
            Self::Thread { pieces, .. } => pieces.send(owned()).map_err(|_| hash_thread_lost())?,
        }
        Ok(())
    }

    fn finalize(self) -> io::Result<[u8; 32]> {
        let hasher = match self {
            Self::Inline(hasher) => hasher,
            Self::Thread { pieces, hasher } => {
                drop(pieces);
                hasher.join().map_err(|_| hash_thread_lost())?
            }
        };
        Ok(hasher.finalize().into())
    }
}

fn hash_thread_lost() -> io::Error {
    io::Error::other("the thread hashing the blob stopped")
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("expected", &self.expected)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl BlobWriter {
    pub(crate) fn new(store: LocalStore, expected: Digest) -> Result<Self, StoreError> {
        let temp = store.new_temp_file()?;
        Ok(Self {
            store,
            expected,
            temp,
            hashing: Hashing::Inline(Sha256::new()),
            written: 0,
        })
    }

    /// The digest the finished blob must have.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    /// How many bytes have been written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `bytes`, refusing to grow past the expected size.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.append(bytes, || Bytes::copy_from_slice(bytes))
    }

    /// Like [`BlobWriter::write`] for a piece the caller already holds as [`Bytes`]: from a
    /// large piece on, the blob is hashed on another thread while this one writes the file.
    pub fn write_bytes(&mut self, bytes: Bytes) -> Result<(), StoreError> {
        if bytes.len() >= HASH_THREAD_MIN_PIECE {
            self.hashing.start_thread();
        }
        self.append(&bytes, || bytes.clone())
    }

    /// Hashes `bytes` (handing them to the hashing thread first, when there is one, so that
    /// both run at once) and writes them to the file.
    fn append(&mut self, bytes: &[u8], owned: impl FnOnce() -> Bytes) -> Result<(), StoreError> {
        self.check_room(bytes.len())?;
        let hashed = self.hashing.update(bytes, owned);
        hashed.map_err(|e| io_error("hash", self.temp.path())(e))?;
        self.write_file(bytes)
    }

    fn check_room(&self, len: usize) -> Result<(), StoreError> {
        let total = self.written + len as u64;
        if total > self.expected.size_bytes {
            return Err(StoreError::Overflow {
                expected: self.expected,
                written: total,
            });
        }
        Ok(())
    }

    fn write_file(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let written = self.temp.as_file_mut().write_all(bytes);
        written.map_err(|e| io_error("write", self.temp.path())(e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Discards everything written so far, to start the blob again from its first byte.
    pub fn restart(&mut self) -> Result<(), StoreError> {
        let path = self.temp.path().to_owned();
        let file = self.temp.as_file_mut();
        file.set_len(0).map_err(io_error("truncate", &path))?;
        file.rewind().map_err(io_error("seek", &path))?;
        self.hashing = Hashing::Inline(Sha256::new());
        self.written = 0;
        Ok(())
    }

    /// Checks the bytes against the expected digest and, if they match, makes them the blob.
    pub fn commit(self) -> Result<(), StoreError> {
        let path = self.temp.path().to_owned();
        let actual = Digest {
            hash: self.hashing.finalize().map_err(io_error("hash", &path))?,
            size_bytes: self.written,
        };
        if actual != self.expected {
            return Err(StoreError::Corrupt(DigestError::Mismatch {
                expected: self.expected,
                actual,
            }));
        }
        if self.store.contains(&self.expected) {
            return Ok(());
        }
        self.store.commit(self.temp, &self.expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_become_the_blob_once_they_match() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let data = b"hello, streaming world";
        let digest = Digest::of_bytes(data);
        let mut writer = store.blob_writer(&digest).expect("writer");
        writer.write(&data[..5]).expect("first piece");
        assert!(!store.contains(&digest));
        writer.write(&data[5..]).expect("second piece");
        assert_eq!(writer.written(), data.len() as u64);
        writer.commit().expect("commit");
        assert_eq!(store.read(&digest).expect("read"), data);
    }

    #[test]
    fn mismatching_bytes_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let digest = Digest::of_bytes(b"expected");
        let mut writer = store.blob_writer(&digest).expect("writer");
        writer.write(b"unexpect").expect("write");
        let err = writer.commit().expect_err("mismatch");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(!store.contains(&digest));
        assert_eq!(std::fs::read_dir(store.temp_dir()).expect("ls").count(), 0);
    }

    #[test]
    fn writing_past_the_size_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let digest = Digest::of_bytes(b"four");
        let mut writer = store.blob_writer(&digest).expect("writer");
        let err = writer.write(b"fives").expect_err("too long");
        assert!(matches!(err, StoreError::Overflow { .. }), "{err}");
    }

    /// A blob of `len` bytes that no two offsets of make the same piece.
    fn large_blob(len: usize) -> Bytes {
        (0..len)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<_>>()
            .into()
    }

    #[test]
    fn large_pieces_hashed_on_a_thread_make_the_same_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let data = large_blob(3 * HASH_THREAD_MIN_PIECE + 17);
        let digest = Digest::of_bytes(&data);
        let mut writer = store.blob_writer(&digest).expect("writer");
        // A small piece hashed inline, then large ones on the thread, then small ones again.
        writer.write_bytes(data.slice(..10)).expect("small");
        writer
            .write_bytes(data.slice(10..10 + HASH_THREAD_MIN_PIECE))
            .expect("large");
        assert!(matches!(writer.hashing, Hashing::Thread { .. }));
        let rest = 10 + HASH_THREAD_MIN_PIECE;
        writer
            .write_bytes(data.slice(rest..rest + 2 * HASH_THREAD_MIN_PIECE))
            .expect("large");
        writer
            .write(&data[rest + 2 * HASH_THREAD_MIN_PIECE..])
            .expect("tail");
        writer.commit().expect("commit");
        assert_eq!(store.read(&digest).expect("read"), data);
    }

    #[test]
    fn a_mismatch_hashed_on_a_thread_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let data = large_blob(HASH_THREAD_MIN_PIECE);
        let digest = Digest::of_bytes(&data);
        let mut wrong = data.to_vec();
        wrong[HASH_THREAD_MIN_PIECE / 2] ^= 1;
        let mut writer = store.blob_writer(&digest).expect("writer");
        writer.write_bytes(wrong.into()).expect("write");
        let err = writer.commit().expect_err("mismatch");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(!store.contains(&digest));
    }

    #[test]
    fn restart_after_hashing_on_a_thread_starts_a_fresh_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let data = large_blob(HASH_THREAD_MIN_PIECE + 1);
        let digest = Digest::of_bytes(&data);
        let mut writer = store.blob_writer(&digest).expect("writer");
        writer.write_bytes(data.slice(1..)).expect("wrong start");
        writer.restart().expect("restart");
        writer.write_bytes(data.clone()).expect("write");
        writer.commit().expect("commit");
        assert_eq!(store.read(&digest).expect("read"), data);
    }

    #[test]
    fn restart_discards_earlier_pieces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let digest = Digest::of_bytes(b"right");
        let mut writer = store.blob_writer(&digest).expect("writer");
        writer.write(b"wro").expect("write");
        writer.restart().expect("restart");
        writer.write(b"right").expect("write");
        writer.commit().expect("commit");
        assert_eq!(store.read(&digest).expect("read"), b"right");
    }
}
