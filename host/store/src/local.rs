//! The local store: blobs and action results on disk under one root directory.
//!
//! Layout: `cas/ab/<hash>` holds the blob whose SHA-256 starts with `ab`, `ac/ab/<hash>` the
//! encoded `ActionResult` for an action digest, `tmp/` the files being written. Every write goes
//! to a fresh temporary file in `tmp/` and is renamed into place, so a crash never leaves a blob
//! whose bytes do not match its name, and two remex processes writing the same blob both
//! succeed with the same content.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use prost::Message;
use remex_proto::reapi;
use tempfile::NamedTempFile;

use crate::digest::{ActionDigest, Digest, DigestError, buffer_for, hash_with_buffer};
use crate::file_digests::FileDigests;
use crate::writer::BlobWriter;

/// A failure of the local store, naming the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local store: cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("local store: blob {0} is not in the store")]
    Missing(Digest),
    #[error("local store: {0}")]
    Corrupt(#[from] DigestError),
    #[error("local store: action result for {digest} cannot be decoded: {source}")]
    BadActionResult {
        digest: ActionDigest,
        #[source]
        source: prost::DecodeError,
    },
    #[error("local store: {written} bytes written for blob {expected}, more than its size")]
    Overflow { expected: Digest, written: u64 },
}

pub(crate) fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// A content-addressable store and action cache on local disk.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
    /// Whether every write reaches the disk (`fsync`) before it becomes visible.
    durable: bool,
    /// The digests of files stored before, read from the store when first needed; shared by
    /// clones.
    file_digests: Arc<OnceLock<FileDigests>>,
}

impl LocalStore {
    /// The default root: `remex` under the user's cache directory (`~/.cache/remex`).
    pub fn default_root() -> PathBuf {
        dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("remex")
    }

    /// Opens (creating if needed) the store under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for sub in ["cas", "ac", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        }
        Ok(Self {
            root,
            durable: false,
            file_digests: Arc::default(),
        })
    }

    /// Makes every later write reach the disk before it becomes visible, so that even a power
    /// loss cannot leave a blob or action-cache entry with missing bytes. A shared server wants
    /// this; a developer's cache, which can always be recomputed, does not pay for it (a
    /// synced write costs milliseconds on many disks). Without it, writes are still atomic
    /// against a crash of the process: a blob becomes visible by rename once fully written.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Flushes `file` to the disk when the store is durable.
    fn sync(&self, file: &File, path: &Path) -> Result<(), StoreError> {
        if self.durable {
            file.sync_data().map_err(io_error("sync", path))?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A directory on the store's file system for temporary files and sandboxes, so that
    /// renames into the store never cross file systems.
    pub fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where the blob with this digest lives (whether or not it is there).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("cas").join(&hex[..2]).join(hex)
    }

    fn action_path(&self, digest: &ActionDigest) -> PathBuf {
        let hex = digest.0.hex();
        self.root.join("ac").join(&hex[..2]).join(hex)
    }

    /// Whether the blob is present. The empty blob always is.
    pub fn contains(&self, digest: &Digest) -> bool {
        digest.is_empty_blob() || self.blob_path(digest).is_file()
    }

    /// Stores `bytes` and returns their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of_bytes(bytes);
        self.put_verified(&digest, bytes)?;
        Ok(digest)
    }

    /// Stores `bytes` under `digest`, refusing bytes that do not match it.
    pub fn put_with_digest(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        digest.verify(bytes)?;
        self.put_verified(digest, bytes)
    }

    fn put_verified(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if self.contains(digest) {
            return Ok(());
        }
        let mut temp = self.new_temp_file()?;
        let temp_path = temp.path().to_owned();
        temp.write_all(bytes)
            .map_err(io_error("write", &temp_path))?;
        self.commit(temp, digest)
    }

    /// Stores a file's content, streaming it: hashed while copied, never held whole in memory.
    pub fn put_file(&self, path: &Path) -> Result<Digest, StoreError> {
        let source = File::open(path).map_err(io_error("open", path))?;
        let temp = self.new_temp_file()?;
        let temp_path = temp.path().to_owned();
        let mut buffer = buffer_for(&source);
        let mut tee = HashingCopy {
            source,
            sink: temp.as_file(),
            error: None,
        };
        let digest = hash_with_buffer(&mut tee, &mut buffer).map_err(io_error("read", path))?;
        if let Some(e) = tee.error {
            return Err(io_error("write", &temp_path)(e));
        }
        if !self.contains(&digest) {
            self.commit(temp, &digest)?;
        }
        Ok(digest)
    }

    /// Like [`LocalStore::put_file`] for a file whose `metadata` the caller has just read,
    /// skipping the read and copy when the file is unchanged (same inode, size and times)
    /// since an earlier call stored it, in this process or an earlier one; see
    /// [`FileDigests`]. [`LocalStore::save_file_digests`] keeps what was learned for later
    /// processes.
    pub fn put_file_cached(
        &self,
        path: &Path,
        metadata: &fs::Metadata,
    ) -> Result<Digest, StoreError> {
        let known = self.file_digests().lookup(path, metadata);
        if let Some(digest) = known.filter(|d| self.contains(d)) {
            return Ok(digest);
        }
        let reading_began = SystemTime::now();
        let digest = self.put_file(path)?;
        self.file_digests()
            .record(path, metadata, digest, reading_began);
        Ok(digest)
    }

    /// The digests of files stored before, as [`LocalStore::put_file_cached`] uses them.
    pub fn file_digests(&self) -> &FileDigests {
        self.file_digests
            .get_or_init(|| FileDigests::open(&self.root))
    }

    /// Writes what [`LocalStore::put_file_cached`] learned, if anything, for later processes.
    pub fn save_file_digests(&self) -> Result<(), StoreError> {
        match self.file_digests.get() {
            Some(digests) => digests.save(),
            None => Ok(()),
        }
    }

    /// Starts writing the blob `digest` piece by piece; see [`BlobWriter`].
    pub fn blob_writer(&self, digest: &Digest) -> Result<BlobWriter, StoreError> {
        BlobWriter::new(self.clone(), *digest)
    }

    /// Opens a blob for streaming reads. The empty blob needs no file and is not opened here.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest);
        match File::open(&path) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::Missing(*digest)),
            Err(e) => Err(io_error("open", &path)(e)),
        }
    }

    /// Removes what crashed writers and sandboxes left in the temporary directory, if it is
    /// older than `max_age`: a younger entry may belong to a writer that is still running, in
    /// this process or another one sharing the store. Returns how many entries were removed.
    pub fn remove_stale_temp_files(&self, max_age: Duration) -> Result<usize, StoreError> {
        let dir = self.temp_dir();
        let entries = fs::read_dir(&dir).map_err(io_error("list", &dir))?;
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let age = metadata
                .modified()
                .ok()
                .and_then(|modified| now.duration_since(modified).ok());
            if age.is_none_or(|age| age < max_age) {
                continue;
            }
            let path = entry.path();
            let gone = if metadata.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match gone {
                Ok(()) => removed += 1,
                Err(error) => tracing::debug!(path = %path.display(), %error, "stale entry stays"),
            }
        }
        Ok(removed)
    }

    pub(crate) fn new_temp_file(&self) -> Result<NamedTempFile, StoreError> {
        let dir = self.temp_dir();
        NamedTempFile::new_in(&dir).map_err(io_error("create a file in", &dir))
    }

    /// Makes a fully written temporary file the blob `digest`: flushed, read-only, renamed.
    pub(crate) fn commit(&self, temp: NamedTempFile, digest: &Digest) -> Result<(), StoreError> {
        let target = self.blob_path(digest);
        let temp_path = temp.path().to_owned();
        self.sync(temp.as_file(), &temp_path)?;
        set_read_only(&temp_path).map_err(io_error("chmod", &temp_path))?;
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_error("create", parent))?;
        }
        temp.persist(&target)
            .map_err(|e| io_error("rename into", &target)(e.error))?;
        Ok(())
    }

    /// Reads a whole blob, checking its size (its hash was checked when it was written).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        if digest.is_empty_blob() {
            return Ok(Vec::new());
        }
        let path = self.blob_path(digest);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(*digest));
            }
            Err(e) => return Err(io_error("read", &path)(e)),
        };
        if bytes.len() as u64 != digest.size_bytes {
            return Err(StoreError::Corrupt(DigestError::Mismatch {
                expected: *digest,
                actual: Digest::of_bytes(&bytes),
            }));
        }
        Ok(bytes)
    }

    /// Reads and decodes a blob holding a protobuf message.
    pub fn read_message<M: Message + Default>(&self, digest: &Digest) -> Result<M, StoreError> {
        let bytes = self.read(digest)?;
        M::decode(bytes.as_slice()).map_err(|source| {
            let path = self.blob_path(digest);
            io_error("decode", &path)(io::Error::new(io::ErrorKind::InvalidData, source))
        })
    }

    /// Stores a message and returns its digest.
    pub fn put_message(&self, message: &impl Message) -> Result<Digest, StoreError> {
        self.put_bytes(&message.encode_to_vec())
    }

    /// The cached result of an action, if any.
    pub fn get_action_result(
        &self,
        digest: &ActionDigest,
    ) -> Result<Option<reapi::ActionResult>, StoreError> {
        let path = self.action_path(digest);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("read", &path)(e)),
        };
        // A real result always names its stdout, so it is never empty; an empty entry can
        // only be what a power loss left of a write that was not synced.
        if bytes.is_empty() {
            return Ok(None);
        }
        let result = reapi::ActionResult::decode(bytes.as_slice()).map_err(|source| {
            StoreError::BadActionResult {
                digest: *digest,
                source,
            }
        })?;
        Ok(Some(result))
    }

    /// Records the result of an action, replacing any earlier one.
    pub fn put_action_result(
        &self,
        digest: &ActionDigest,
        result: &reapi::ActionResult,
    ) -> Result<(), StoreError> {
        let target = self.action_path(digest);
        let mut temp = self.new_temp_file()?;
        let temp_path = temp.path().to_owned();
        temp.write_all(&result.encode_to_vec())
            .map_err(io_error("write", &temp_path))?;
        // In a durable store, on disk before it is visible: an entry must never outlive its
        // content.
        self.sync(temp.as_file(), &temp_path)?;
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_error("create", parent))?;
        }
        temp.persist(&target)
            .map_err(|e| io_error("rename into", &target)(e.error))?;
        Ok(())
    }
}

fn set_read_only(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o444))
}

/// A reader that copies everything it reads into a sink, remembering the first write error.
struct HashingCopy<'a, R> {
    source: R,
    sink: &'a File,
    error: Option<io::Error>,
}

impl<R: Read> Read for HashingCopy<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read(buf)?;
        if self.error.is_none()
            && let Err(e) = self.sink.write_all(&buf[..n])
        {
            self.error = Some(e);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_files_are_stored_once_and_remembered_by_later_stores() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("input.txt");
        fs::write(&input, "first").expect("write");
        // Past the window in which a file may still change without a new timestamp.
        std::thread::sleep(crate::RACY_WINDOW + Duration::from_millis(100));
        let store = LocalStore::open(dir.path().join("store")).expect("open");
        let metadata = fs::symlink_metadata(&input).expect("stat");
        let first = store.put_file_cached(&input, &metadata).expect("put");
        assert_eq!(first, Digest::of_bytes(b"first"));
        store.save_file_digests().expect("save");

        let later = LocalStore::open(dir.path().join("store")).expect("open");
        assert_eq!(later.file_digests().lookup(&input, &metadata), Some(first));
        assert_eq!(
            later.put_file_cached(&input, &metadata).expect("put"),
            first
        );

        // Same size, new content: a new inode or new times, so it is read again.
        fs::write(&input, "other").expect("write");
        let metadata = fs::symlink_metadata(&input).expect("stat");
        let second = later.put_file_cached(&input, &metadata).expect("put");
        assert_eq!(second, Digest::of_bytes(b"other"));
        assert_eq!(later.read(&second).expect("read"), b"other");
    }

    #[test]
    fn blobs_round_trip_and_are_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let digest = store.put_bytes(b"hello").expect("put");
        assert_eq!(store.read(&digest).expect("read"), b"hello");

        let wrong = Digest::of_bytes(b"other");
        let err = store
            .put_with_digest(&wrong, b"hello")
            .expect_err("mismatch");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(!store.contains(&wrong));
    }

    #[test]
    fn put_file_streams_and_matches_put_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path().join("store")).expect("open");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join("big");
        fs::write(&path, &data).expect("write");
        let digest = store.put_file(&path).expect("put");
        assert_eq!(digest, Digest::of_bytes(&data));
        assert_eq!(store.read(&digest).expect("read"), data);
        assert_eq!(fs::read_dir(store.temp_dir()).expect("ls").count(), 0);
    }

    #[test]
    fn action_results_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let action = ActionDigest(Digest::of_bytes(b"action"));
        assert_eq!(store.get_action_result(&action).expect("get"), None);
        let result = reapi::ActionResult {
            exit_code: 3,
            ..Default::default()
        };
        store.put_action_result(&action, &result).expect("put");
        assert_eq!(store.get_action_result(&action).expect("get"), Some(result));
    }

    #[test]
    fn stale_temporary_files_are_removed_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        fs::write(store.temp_dir().join("left-behind"), b"x").expect("write");
        let hour = Duration::from_secs(3600);
        assert_eq!(store.remove_stale_temp_files(hour).expect("sweep"), 0);
        assert_eq!(
            store
                .remove_stale_temp_files(Duration::ZERO)
                .expect("sweep"),
            1
        );
        assert_eq!(fs::read_dir(store.temp_dir()).expect("ls").count(), 0);
    }

    #[test]
    fn open_blob_reports_missing_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let digest = store.put_bytes(b"present").expect("put");
        let mut text = String::new();
        store
            .open_blob(&digest)
            .expect("open")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "present");
        let absent = Digest::of_bytes(b"absent");
        let err = store.open_blob(&absent).expect_err("missing");
        assert!(matches!(err, StoreError::Missing(_)), "{err}");
    }

    #[test]
    fn concurrent_writers_of_one_blob_all_succeed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let data = vec![7u8; 100_000];
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| store.put_bytes(&data).expect("put"));
            }
        });
        let digest = Digest::of_bytes(&data);
        assert_eq!(store.read(&digest).expect("read"), data);
    }
}
