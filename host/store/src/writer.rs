//! Streaming writes into the CAS: a blob that arrives in pieces (a ByteStream upload) is hashed
//! while it is written to a temporary file, and becomes a blob only once its bytes match the
//! digest it was announced with. Nothing is held in memory but the piece being written.

use std::io::{Seek, Write};

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use crate::digest::{Digest, DigestError};
use crate::local::{LocalStore, StoreError, io_error};

/// A blob being written piece by piece. Dropping it without [`BlobWriter::commit`] removes the
/// partial file.
pub struct BlobWriter {
    store: LocalStore,
    expected: Digest,
    temp: NamedTempFile,
    hasher: Sha256,
    written: u64,
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
            hasher: Sha256::new(),
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
        let total = self.written + bytes.len() as u64;
        if total > self.expected.size_bytes {
            return Err(StoreError::Overflow {
                expected: self.expected,
                written: total,
            });
        }
        let path = self.temp.path().to_owned();
        self.temp
            .as_file_mut()
            .write_all(bytes)
            .map_err(io_error("write", &path))?;
        self.hasher.update(bytes);
        self.written = total;
        Ok(())
    }

    /// Discards everything written so far, to start the blob again from its first byte.
    pub fn restart(&mut self) -> Result<(), StoreError> {
        let path = self.temp.path().to_owned();
        let file = self.temp.as_file_mut();
        file.set_len(0).map_err(io_error("truncate", &path))?;
        file.rewind().map_err(io_error("seek", &path))?;
        self.hasher = Sha256::new();
        self.written = 0;
        Ok(())
    }

    /// Checks the bytes against the expected digest and, if they match, makes them the blob.
    pub fn commit(self) -> Result<(), StoreError> {
        let actual = Digest {
            hash: self.hasher.finalize().into(),
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
