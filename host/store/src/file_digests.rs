//! A persistent cache of file digests, so that a new process need not read again a file that
//! an earlier one hashed and that has not changed since.
//!
//! An entry is keyed by the file's absolute path (by a 64-bit hash of it, see [`path_key`]) and
//! holds while the file's device, inode, size, modification time and status-change time (both
//! to the nanosecond) are the ones it was hashed with. Writing a file moves its mtime; setting
//! the mtime back, renaming a file over it or changing its mode moves its ctime, which no
//! ordinary program can set. The mode itself is not part of an entry: the executable bit is no
//! part of a file's digest. Device and inode name one file, so two paths whose keys collide
//! only ever take each other's entry for a miss.
//!
//! Timestamps have a granularity (the kernel's clock tick, coarser on some file systems), so a
//! file written again in the tick it was read in keeps its timestamps but not its content. As
//! with Git's "racy clean" entries, a digest is recorded only when both times are at least
//! [`RACY_WINDOW`] older than the moment its reading began (its metadata taken before that);
//! a file changed more recently is hashed again by the next run, which records it then.
//!
//! The cache is one file, `<store root>/file-digests`, in a compact binary format (see
//! [`MAGIC`]). A missing, truncated, corrupt or other-version file reads as an empty cache: the
//! cache only ever saves work, so it never stops any. Saving keeps every entry loaded or
//! recorded, up to [`MAX_SAVED_ENTRIES`]; entries of deleted files stay until then, costing 88
//! bytes each. [`FileDigests::save`] writes a temporary file in the store's `tmp/` and renames
//! it into place, so a reader never sees half a file; of two processes saving at once, the
//! last rename wins and the other's new entries are recomputed when next needed.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::NamedTempFile;

use crate::digest::Digest;
use crate::local::{StoreError, io_error};

/// How much older than the start of its reading a file's mtime and ctime must be for its
/// digest to be trusted later. A second covers the timestamp granularity of every common
/// Linux file system except FAT (two seconds).
pub const RACY_WINDOW: Duration = Duration::from_secs(1);

/// At most this many entries are saved, which bounds the file (176 MB) and its loading time.
/// Entries used or recorded by this process are kept first.
const MAX_SAVED_ENTRIES: usize = 2_000_000;

/// The name of the cache file under the store root.
const FILE_NAME: &str = "file-digests";

/// The file starts with this, then a little-endian `u32` format version, a `u32` of zero, a
/// `u64` entry count and a `u64` checksum of everything after the header. Each entry is the
/// path key, device, inode, size, mtime seconds, mtime nanoseconds, ctime seconds, ctime
/// nanoseconds (`u64`, `u64`, `u64`, `u64`, `i64`, `u32`, `i64`, `u32`, little-endian) and the
/// 32-byte SHA-256: fixed-size entries, read without an allocation each.
const MAGIC: &[u8; 8] = b"remexFD\n";
/// Bumped whenever the layout or [`path_key`] changes.
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 32;
const ENTRY_BYTES: usize = 8 * 4 + (8 + 4) * 2 + 32;

/// Shards of the map, each behind its own lock, so that threads looking up different files
/// rarely wait for each other.
const SHARDS: usize = 16;

/// File digests remembered across processes; see the module documentation for when an entry
/// is trusted. Share one between threads by reference or in an `Arc`.
pub struct FileDigests {
    file: PathBuf,
    temp_dir: PathBuf,
    shards: Vec<Mutex<Shard>>,
    /// Whether the entries differ from the file's, so that `save` has something to write.
    changed: AtomicBool,
    /// Held through a whole save, so that an older snapshot never replaces a newer one.
    saving: Mutex<()>,
}

impl std::fmt::Debug for FileDigests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDigests")
            .field("file", &self.file)
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

/// Entries by path key. The keys are hashes already, so the map uses them as they are.
type Shard = HashMap<u64, Entry, BuildHasherDefault<KeyHasher>>;

#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; this is here for completeness.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

struct Entry {
    stamp: FileStamp,
    hash: [u8; 32],
    /// Looked up or recorded by this process: kept first when the cache is over its cap.
    used: bool,
}

/// What must be unchanged for a file's recorded digest to hold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    mtime: Timestamp,
    ctime: Timestamp,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Timestamp {
    seconds: i64,
    nanos: u32,
}

impl Timestamp {
    fn new(seconds: i64, nanos: i64) -> Self {
        Self {
            seconds,
            // The kernel keeps nanoseconds within 0..1e9; out of range would be a bad file
            // system, and only ever makes the entry miss.
            nanos: u32::try_from(nanos).unwrap_or(u32::MAX),
        }
    }

    fn as_nanos(self) -> i128 {
        i128::from(self.seconds) * 1_000_000_000 + i128::from(self.nanos)
    }
}

impl FileStamp {
    pub(crate) fn of(metadata: &Metadata) -> Self {
        Self {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            mtime: Timestamp::new(metadata.mtime(), metadata.mtime_nsec()),
            ctime: Timestamp::new(metadata.ctime(), metadata.ctime_nsec()),
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Whether the file may have changed, within the timestamp granularity, after its reading
    /// began at `hashed_at`.
    fn is_racy(&self, hashed_at: SystemTime) -> bool {
        let Ok(since_epoch) = hashed_at.duration_since(UNIX_EPOCH) else {
            return true;
        };
        let trusted_before = since_epoch.saturating_sub(RACY_WINDOW).as_nanos() as i128;
        self.mtime.as_nanos() > trusted_before || self.ctime.as_nanos() > trusted_before
    }
}

impl FileDigests {
    /// Loads the cache of the local store at `store_root`. A missing or unreadable cache file
    /// gives an empty cache.
    pub fn open(store_root: &Path) -> Self {
        let file = store_root.join(FILE_NAME);
        let shards = match fs::read(&file) {
            Ok(bytes) => decode(&bytes).unwrap_or_else(|reason| {
                tracing::debug!(path = %file.display(), reason, "file digests ignored");
                empty_shards()
            }),
            Err(error) => {
                if error.kind() != io::ErrorKind::NotFound {
                    tracing::debug!(path = %file.display(), %error, "file digests not read");
                }
                empty_shards()
            }
        };
        Self {
            file,
            temp_dir: store_root.join("tmp"),
            shards: shards.into_iter().map(Mutex::new).collect(),
            changed: AtomicBool::new(false),
            saving: Mutex::new(()),
        }
    }

    /// The digest recorded for the file at `path` (absolute), if `metadata` (from
    /// `symlink_metadata` or `DirEntry::metadata`, taken now) shows it unchanged since.
    pub fn lookup(&self, path: &Path, metadata: &Metadata) -> Option<Digest> {
        if !metadata.is_file() {
            return None;
        }
        self.lookup_key(
            path_key(path.as_os_str().as_bytes()),
            &FileStamp::of(metadata),
        )
    }

    /// [`lookup`](Self::lookup) by the path's key, for a regular file.
    pub(crate) fn lookup_key(&self, key: u64, stamp: &FileStamp) -> Option<Digest> {
        let mut shard = lock(self.shard(key));
        let entry = shard.get_mut(&key)?;
        if entry.stamp != *stamp {
            // The file changed: its old digest can never be right again.
            shard.remove(&key);
            self.changed.store(true, Ordering::Relaxed);
            return None;
        }
        entry.used = true;
        Some(Digest {
            hash: entry.hash,
            size_bytes: entry.stamp.size,
        })
    }

    /// Remembers that the file at `path` (absolute), as `metadata` describes it, has
    /// `digest`. `metadata` must be taken before the reading began at `hashed_at`. A file
    /// changed too recently to be trusted, or whose size is not the digest's, is not recorded.
    pub fn record(&self, path: &Path, metadata: &Metadata, digest: Digest, hashed_at: SystemTime) {
        if metadata.is_file() {
            let key = path_key(path.as_os_str().as_bytes());
            self.record_key(key, &FileStamp::of(metadata), digest, hashed_at);
        }
    }

    /// [`record`](Self::record) by the path's key, for a regular file.
    pub(crate) fn record_key(
        &self,
        key: u64,
        stamp: &FileStamp,
        digest: Digest,
        hashed_at: SystemTime,
    ) {
        if stamp.size != digest.size_bytes || stamp.is_racy(hashed_at) {
            return;
        }
        let mut shard = lock(self.shard(key));
        if let Some(entry) = shard.get_mut(&key)
            && entry.stamp == *stamp
            && entry.hash == digest.hash
        {
            entry.used = true;
            return;
        }
        let entry = Entry {
            stamp: *stamp,
            hash: digest.hash,
            used: true,
        };
        shard.insert(key, entry);
        self.changed.store(true, Ordering::Relaxed);
    }

    /// How many digests the cache holds.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the cache back to the store if anything changed since it was loaded or last
    /// saved: to a temporary file, then renamed over the old one.
    pub fn save(&self) -> Result<(), StoreError> {
        let _saving = self.saving.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.changed.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let result = self.write_file();
        if result.is_err() {
            self.changed.store(true, Ordering::Relaxed);
        }
        result
    }

    fn write_file(&self) -> Result<(), StoreError> {
        let bytes = self.encode();
        fs::create_dir_all(&self.temp_dir).map_err(io_error("create", &self.temp_dir))?;
        let mut temp = NamedTempFile::new_in(&self.temp_dir)
            .map_err(io_error("create a file in", &self.temp_dir))?;
        let temp_path = temp.path().to_owned();
        temp.write_all(&bytes)
            .map_err(io_error("write", &temp_path))?;
        temp.persist(&self.file)
            .map_err(|e| io_error("rename into", &self.file)(e.error))?;
        Ok(())
    }

    fn shard(&self, key: u64) -> &Mutex<Shard> {
        &self.shards[shard_index(key)]
    }

    /// The file's bytes: every used entry, then unused ones while under the cap.
    fn encode(&self) -> Vec<u8> {
        let shards: Vec<MutexGuard<'_, Shard>> = self.shards.iter().map(lock).collect();
        let used = shards
            .iter()
            .flat_map(|shard| shard.values())
            .filter(|entry| entry.used)
            .count();
        let mut unused_allowed = MAX_SAVED_ENTRIES.saturating_sub(used);
        let mut used_allowed = MAX_SAVED_ENTRIES;

        let entries: usize = shards.iter().map(|shard| shard.len()).sum();
        let mut body = Vec::with_capacity(entries.min(MAX_SAVED_ENTRIES) * ENTRY_BYTES);
        let mut count = 0u64;
        for (&key, entry) in shards.iter().flat_map(|shard| shard.iter()) {
            let allowed = if entry.used {
                &mut used_allowed
            } else {
                &mut unused_allowed
            };
            if *allowed == 0 {
                continue;
            }
            *allowed -= 1;
            encode_entry(&mut body, key, entry);
            count += 1;
        }

        let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(&checksum(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }
}

fn empty_shards() -> Vec<Shard> {
    (0..SHARDS).map(|_| Shard::default()).collect()
}

/// Below this many entries, one thread fills the shards faster than two can start.
const PARALLEL_LOAD_ENTRIES: usize = 16 * 1024;

/// The shards held in a cache file's bytes, or why they cannot be used.
fn decode(bytes: &[u8]) -> Result<Vec<Shard>, &'static str> {
    let mut header = Reader(bytes);
    if header.take(MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Err("not a file-digests file");
    }
    if header.u32() != Some(VERSION) || header.u32() != Some(0) {
        return Err("another format version");
    }
    let count = header.u64().ok_or("truncated header")?;
    let expected_checksum = header.u64().ok_or("truncated header")?;
    let body = header.0;
    if checksum(body) != expected_checksum {
        return Err("checksum mismatch");
    }
    let count = usize::try_from(count).map_err(|_| "entry count too large")?;
    if Some(body.len()) != count.checked_mul(ENTRY_BYTES) {
        return Err("entry count does not match the file's size");
    }

    let mut shards = empty_shards();
    for shard in &mut shards {
        shard.reserve(count / SHARDS + count / (4 * SHARDS) + 1);
    }
    // Filling the maps is mostly waiting for memory; each thread fills its own shards, reading
    // every entry's key and skipping those of other shards.
    let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let threads = if count < PARALLEL_LOAD_ENTRIES {
        1
    } else {
        threads.min(SHARDS)
    };
    let per_thread = SHARDS.div_ceil(threads);
    std::thread::scope(|scope| {
        for (part, group) in shards.chunks_mut(per_thread).enumerate() {
            let first = part * per_thread;
            let mut fill = move || {
                for bytes in body.chunks_exact(ENTRY_BYTES) {
                    let Some((key, entry)) = decode_entry(&mut Reader(bytes)) else {
                        continue;
                    };
                    if let Some(shard) = shard_index(key)
                        .checked_sub(first)
                        .and_then(|index| group.get_mut(index))
                    {
                        shard.insert(key, entry);
                    }
                }
            };
            if threads == 1 {
                fill();
            } else {
                scope.spawn(fill);
            }
        }
    });
    Ok(shards)
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A thread that panicked holding the lock left the map whole (no map operation here
    // panics midway), so its entries stay usable.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which shard holds `key`: bits that neither the map's bucket index (low bits) nor its
/// control bytes (top seven bits) use, so that each shard's keys still spread evenly.
fn shard_index(key: u64) -> usize {
    (key >> 32) as usize % SHARDS
}

/// The cache key of an absolute path: a 64-bit hash of its bytes, the same in every process
/// (so it is stored in the file). Built from 128-bit multiplications, in the manner of
/// wyhash; not meant to resist chosen collisions, which only ever cost a file's re-hashing.
pub(crate) fn path_key(path: &[u8]) -> u64 {
    const SEEDS: [u64; 3] = [
        0xa076_1d64_78bd_642f,
        0xe703_7ed1_a0b4_28db,
        0x8ebc_6af0_9c88_c6e3,
    ];
    let fold = |a: u64, b: u64| {
        let product = u128::from(a) * u128::from(b);
        (product as u64) ^ ((product >> 64) as u64)
    };
    let word = |bytes: &[u8]| {
        let mut word = [0u8; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(word)
    };

    let mut state = SEEDS[0] ^ path.len() as u64;
    let mut blocks = path.chunks_exact(16);
    for block in &mut blocks {
        let (low, high) = block.split_at(8);
        state = fold(word(low) ^ SEEDS[1], word(high) ^ state);
    }
    let rest = blocks.remainder();
    let (low, high) = rest.split_at(rest.len().min(8));
    state = fold(word(low) ^ SEEDS[1], word(high) ^ state);
    fold(state ^ SEEDS[2], path.len() as u64 ^ SEEDS[1])
}

fn encode_entry(out: &mut Vec<u8>, key: u64, entry: &Entry) {
    let stamp = &entry.stamp;
    for field in [key, stamp.device, stamp.inode, stamp.size] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    for time in [stamp.mtime, stamp.ctime] {
        out.extend_from_slice(&time.seconds.to_le_bytes());
        out.extend_from_slice(&time.nanos.to_le_bytes());
    }
    out.extend_from_slice(&entry.hash);
}

fn decode_entry(reader: &mut Reader<'_>) -> Option<(u64, Entry)> {
    let key = reader.u64()?;
    let device = reader.u64()?;
    let inode = reader.u64()?;
    let size = reader.u64()?;
    let mut time = || {
        let seconds = reader.u64()? as i64;
        let nanos = reader.u32()?;
        Some(Timestamp { seconds, nanos })
    };
    let mtime = time()?;
    let ctime = time()?;
    let hash = reader.take(32)?.try_into().ok()?;
    let stamp = FileStamp {
        device,
        inode,
        size,
        mtime,
        ctime,
    };
    let entry = Entry {
        stamp,
        hash,
        used: false,
    };
    Some((key, entry))
}

/// Reads little-endian fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// A fast 64-bit checksum, not a cryptographic one: it only has to catch a file cut short or
/// damaged on disk. Four independent lanes keep the multiplier busy; each step is a bijection
/// of its lane, so a change to any one 8-byte word always changes the result.
fn checksum(bytes: &[u8]) -> u64 {
    const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |state: u64, word: u64| (state ^ word).wrapping_mul(MULTIPLIER).rotate_left(29);

    let mut lanes = [1u64, 2, 3, 4];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
            *lane = mix(*lane, word);
        }
    }
    let mut state = mix(0, bytes.len() as u64);
    for lane in lanes {
        state = mix(state, lane);
    }
    for &byte in blocks.remainder() {
        state = mix(state, u64::from(byte));
    }
    state
}

#[cfg(test)]
#[path = "file_digests_tests.rs"]
mod tests;
