//! Input roots digested straight from a directory on disk, on one thread per core.
//!
//! Three steps. The walk lists directories on every thread, taking each file's metadata and,
//! with a [`FileDigests`] cache, looking the file up. Then the files the cache did not know are
//! hashed on every thread, largest first so that no thread is left alone with a big file at
//! the end; each is hashed to the size the walk saw (see [`hash_known_size`]). Last, each directory's `Directory` message is built, children before parents, from
//! its entries sorted by name: the same messages as [`InputTreeBuilder`] gives for the same
//! entries (the tests compare the two), without a path string per file.
//!
//! [`InputTreeBuilder`]: crate::InputTreeBuilder

use std::fs;
use std::io;
use std::mem;
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use remex_proto::reapi;
use rustix::fs::{Mode, OFlags};

use crate::digest::{Digest, READ_BUFFER_BYTES, hash_known_size};
use crate::file_digests::{FileDigests, FileStamp, path_key};
use crate::merkle::{InputTree, directory_node, file_node, symlink_node};

/// Like [`digest_directory_on_disk`](crate::digest_directory_on_disk), hashing only the files
/// `cache` does not already know unchanged, and recording the digests of those it hashes. The
/// caller saves the cache.
pub fn digest_directory_cached(root: &Path, cache: &FileDigests) -> io::Result<InputTree> {
    // The cache is keyed by absolute paths, and one spelling of each keeps its entries found.
    let root = fs::canonicalize(root)?;
    digest_directory(&root, Some(cache))
}

/// Walks `root` and hashes its files on a pool of threads, then builds the tree.
pub(crate) fn digest_directory(root: &Path, cache: Option<&FileDigests>) -> io::Result<InputTree> {
    let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let mut dirs = walk(root, threads, cache)?;
    hash_missing(&mut dirs, threads, cache)?;
    build(dirs, threads)
}

/// One directory of the tree, as the walk found it.
struct WalkedDir {
    /// The parent's index among all walked directories; `None` for the root.
    parent: Option<usize>,
    /// The parent's place as `(worker, index)` in the walking threads' own lists, until the
    /// walk turns it into `parent`.
    parent_place: Option<(usize, usize)>,
    /// The name in the parent (empty for the root).
    name: String,
    /// How many levels below the root, so that children can be built before parents.
    depth: usize,
    path: PathBuf,
    files: Vec<WalkedFile>,
    symlinks: Vec<reapi::SymlinkNode>,
    /// The files of `files` that the cache did not know (during the walk: every file).
    missing: Vec<MissingFile>,
}

/// A regular file (or anything that is neither a directory nor a symlink, which is read as
/// one, as the sequential walk does).
struct WalkedFile {
    name: String,
    is_executable: bool,
    /// Known from the cache, or filled in by the hashing step.
    digest: Option<Digest>,
}

struct MissingFile {
    /// Its index in the directory's `files`.
    index: usize,
    stamp: FileStamp,
    /// Its cache key; unused without a cache.
    key: u64,
}

/// A directory to list, and where it hangs in the tree.
struct PendingDir {
    path: PathBuf,
    /// The parent's place as `(worker, index)` in the walking threads' own lists.
    parent: Option<(usize, usize)>,
    name: String,
    depth: usize,
}

/// The directories still to list, shared by the walking threads.
struct DirQueue {
    state: Mutex<QueueState>,
    changed: Condvar,
}

struct QueueState {
    pending: Vec<PendingDir>,
    /// Directories being listed right now: while any is, more may still come.
    listing: usize,
    failed: Option<io::Error>,
}

impl DirQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next directory to list, waiting while others are being listed; `None` once the
    /// walk is over or has failed.
    fn next(&self) -> Option<PendingDir> {
        let mut state = self.lock();
        loop {
            if state.failed.is_some() {
                return None;
            }
            if let Some(dir) = state.pending.pop() {
                state.listing += 1;
                return Some(dir);
            }
            if state.listing == 0 {
                return None;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn finish(&self, listed: io::Result<Vec<PendingDir>>) {
        let mut state = self.lock();
        state.listing -= 1;
        match listed {
            Ok(subdirs) => state.pending.extend(subdirs),
            Err(error) => {
                state.failed.get_or_insert(error);
            }
        }
        self.changed.notify_all();
    }
}

/// Ends the walk if a thread panics while listing, so that the others stop waiting for the
/// directories it would have found; the panic then reaches the caller through `join`.
struct StopOnPanic<'a>(&'a DirQueue);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.listing -= 1;
        state
            .failed
            .get_or_insert_with(|| io::Error::other("a thread listing directories panicked"));
        self.0.changed.notify_all();
    }
}

/// Lists every directory under `root` on `threads` threads. The result holds each directory
/// once, parents' indices resolved.
fn walk(root: &Path, threads: usize, cache: Option<&FileDigests>) -> io::Result<Vec<WalkedDir>> {
    let queue = DirQueue {
        state: Mutex::new(QueueState {
            pending: vec![PendingDir {
                path: root.to_owned(),
                parent: None,
                name: String::new(),
                depth: 0,
            }],
            listing: 0,
            failed: None,
        }),
        changed: Condvar::new(),
    };
    let per_worker: Vec<Vec<WalkedDir>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                let queue = &queue;
                scope.spawn(move || {
                    let mut listed = Vec::new();
                    let mut buffer = vec![0u8; SMALL_FILE_BYTES as usize];
                    while let Some(dir) = queue.next() {
                        let unwinding = StopOnPanic(queue);
                        let place = (worker, listed.len());
                        let subdirs = list_directory(dir, place, cache, &mut buffer);
                        mem::forget(unwinding);
                        queue.finish(subdirs.map(|(walked, subdirs)| {
                            listed.push(walked);
                            subdirs
                        }));
                    }
                    listed
                })
            })
            .collect();
        workers.into_iter().map(join).collect()
    });
    if let Some(error) = queue.lock().failed.take() {
        return Err(error);
    }

    // One list, each parent named by its place in it.
    let mut offsets = Vec::with_capacity(per_worker.len());
    let mut total = 0;
    for listed in &per_worker {
        offsets.push(total);
        total += listed.len();
    }
    let mut dirs: Vec<WalkedDir> = per_worker.into_iter().flatten().collect();
    for dir in &mut dirs {
        dir.parent = dir
            .parent_place
            .map(|(worker, index)| offsets[worker] + index);
    }
    Ok(dirs)
}

fn join<T>(worker: std::thread::ScopedJoinHandle<'_, T>) -> T {
    worker
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Files up to this size are hashed by the thread that lists their directory, opened relative
/// to it: for a small file the kernel's work (a path walk from the root for every `open`, and
/// the file's pages scattered among other directories' reads) costs more than hashing it.
/// Larger files wait for the hashing step, which spreads them over the threads largest first.
const SMALL_FILE_BYTES: u64 = 64 * 1024;

/// Lists one directory: its files (looked up in `cache`, and hashed now when they are small),
/// symlinks and subdirectories, the last to be listed in turn. `place` is where the listing
/// thread keeps the result; `buffer` holds [`SMALL_FILE_BYTES`].
fn list_directory(
    dir: PendingDir,
    place: (usize, usize),
    cache: Option<&FileDigests>,
    buffer: &mut [u8],
) -> io::Result<(WalkedDir, Vec<PendingDir>)> {
    let mut walked = WalkedDir {
        parent: None,
        parent_place: dir.parent,
        name: dir.name,
        depth: dir.depth,
        path: dir.path,
        files: Vec::new(),
        symlinks: Vec::new(),
        missing: Vec::new(),
    };
    let mut subdirs = Vec::new();
    // The absolute path of each file in turn, for its cache key, without an allocation each.
    let mut file_path = walked.path.as_os_str().as_bytes().to_vec();
    if !file_path.ends_with(b"/") {
        file_path.push(b'/');
    }
    let prefix = file_path.len();

    for entry in fs::read_dir(&walked.path)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| not_utf8(&entry.path()))?;
        if kind.is_symlink() {
            let target = fs::read_link(entry.path())?.to_string_lossy().into_owned();
            walked.symlinks.push(symlink_node(name, target));
        } else if kind.is_dir() {
            subdirs.push(PendingDir {
                path: entry.path(),
                parent: Some(place),
                name,
                depth: walked.depth + 1,
            });
        } else {
            // Taken relative to the open directory: no walk down the whole path again.
            let metadata = entry.metadata()?;
            let key = cache.map_or(0, |_| {
                file_path.truncate(prefix);
                file_path.extend_from_slice(name.as_bytes());
                path_key(&file_path)
            });
            let index = walked.files.len();
            let stamp = FileStamp::of(&metadata);
            walked.missing.push(MissingFile { index, stamp, key });
            walked.files.push(WalkedFile {
                name,
                is_executable: metadata.permissions().mode() & 0o111 != 0,
                digest: None,
            });
        }
    }

    // Looked up together rather than between system calls: each lookup is mostly waiting for
    // memory, and back to back the processor overlaps those waits.
    if let Some(cache) = cache {
        walked.missing.retain(|file| {
            let digest = cache.lookup_key(file.key, &file.stamp);
            walked.files[file.index].digest = digest;
            digest.is_none()
        });
    }
    hash_small_files(&mut walked, cache, buffer)?;
    Ok((walked, subdirs))
}

/// Hashes the directory's missing files of at most [`SMALL_FILE_BYTES`], each opened relative
/// to the directory, and takes them off its missing list.
fn hash_small_files(
    walked: &mut WalkedDir,
    cache: Option<&FileDigests>,
    buffer: &mut [u8],
) -> io::Result<()> {
    let is_small = |file: &MissingFile| file.stamp.size() <= SMALL_FILE_BYTES;
    if !walked.missing.iter().any(is_small) {
        return Ok(());
    }
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let directory = rustix::fs::open(&walked.path, flags | OFlags::DIRECTORY, Mode::empty())?;
    let mut error = None;
    walked.missing.retain(|file| {
        if error.is_some() || !is_small(file) {
            return true;
        }
        let entry = &mut walked.files[file.index];
        let size = file.stamp.size();
        let hashed_at = SystemTime::now();
        let hashed = if size == 0 {
            // Nothing to read: as `hash_known_size` would, without opening the file.
            Ok(Digest::EMPTY)
        } else {
            rustix::fs::openat(&directory, entry.name.as_str(), flags, Mode::empty())
                .map_err(io::Error::from)
                .and_then(|fd| hash_known_size(&mut fs::File::from(fd), buffer, size))
        };
        match hashed {
            Ok(digest) => {
                if let Some(cache) = cache {
                    cache.record_key(file.key, &file.stamp, digest, hashed_at);
                }
                entry.digest = Some(digest);
                false
            }
            Err(e) => {
                let path = walked.path.join(&entry.name);
                error = Some(io::Error::new(e.kind(), format!("{}: {e}", path.display())));
                true
            }
        }
    });
    error.map_or(Ok(()), Err)
}

fn not_utf8(path: &Path) -> io::Error {
    let message = format!("path `{}` is not UTF-8", path.display());
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A file to hash, as `(directory index, index in the directory's missing files)`.
type MissingPlace = (usize, usize);

/// Hashes every file the cache did not know, largest first, recording each in `cache`.
fn hash_missing(
    dirs: &mut [WalkedDir],
    threads: usize,
    cache: Option<&FileDigests>,
) -> io::Result<()> {
    let mut missing: Vec<MissingPlace> = dirs
        .iter()
        .enumerate()
        .flat_map(|(dir, walked)| (0..walked.missing.len()).map(move |miss| (dir, miss)))
        .collect();
    let size = |&(dir, miss): &MissingPlace| dirs[dir].missing[miss].stamp.size();
    missing.sort_unstable_by_key(|item| std::cmp::Reverse(size(item)));

    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let shared: &[WalkedDir] = dirs;
    let results: Vec<io::Result<Vec<(MissingPlace, Digest)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(missing.len()))
            .map(|_| scope.spawn(|| hash_some(shared, &missing, &next, &failed, cache)))
            .collect();
        workers.into_iter().map(join).collect()
    });
    for result in results {
        for ((dir, miss), digest) in result? {
            let index = dirs[dir].missing[miss].index;
            dirs[dir].files[index].digest = Some(digest);
        }
    }
    Ok(())
}

/// One hashing thread: takes the next file of `missing` until none is left or a thread failed.
fn hash_some(
    dirs: &[WalkedDir],
    missing: &[MissingPlace],
    next: &AtomicUsize,
    failed: &AtomicBool,
    cache: Option<&FileDigests>,
) -> io::Result<Vec<(MissingPlace, Digest)>> {
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    let mut digests = Vec::new();
    while !failed.load(Ordering::Relaxed) {
        let Some(&(dir, miss)) = missing.get(next.fetch_add(1, Ordering::Relaxed)) else {
            break;
        };
        let walked = &dirs[dir];
        let file = &walked.missing[miss];
        let size = file.stamp.size();
        let hashed_at = SystemTime::now();
        let hashed = if size == 0 {
            // Nothing to read: as `hash_known_size` would, without opening the file.
            Ok(Digest::EMPTY)
        } else {
            let path = walked.path.join(&walked.files[file.index].name);
            fs::File::open(&path).and_then(|mut f| hash_known_size(&mut f, &mut buffer, size))
        };
        let digest = match hashed {
            Ok(digest) => digest,
            Err(error) => {
                failed.store(true, Ordering::Relaxed);
                return Err(error);
            }
        };
        if let Some(cache) = cache {
            cache.record_key(file.key, &file.stamp, digest, hashed_at);
        }
        digests.push(((dir, miss), digest));
    }
    Ok(digests)
}

/// Builds every directory's message, one level at a time from the deepest, so that each
/// child's digest is known before its parent needs it. A level with many entries is split
/// between the threads.
fn build(dirs: Vec<WalkedDir>, threads: usize) -> io::Result<InputTree> {
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); dirs.len()];
    let mut levels: Vec<Vec<usize>> = Vec::new();
    let mut names = Vec::with_capacity(dirs.len());
    let mut contents = Vec::with_capacity(dirs.len());
    let mut root = 0;
    for (index, dir) in dirs.into_iter().enumerate() {
        match dir.parent {
            Some(parent) => children[parent].push(index),
            None => root = index,
        }
        if levels.len() <= dir.depth {
            levels.resize_with(dir.depth + 1, Vec::new);
        }
        levels[dir.depth].push(index);
        names.push(dir.name);
        contents.push((dir.files, dir.symlinks));
    }

    let mut digests = vec![Digest::EMPTY; names.len()];
    let mut directories = Vec::with_capacity(names.len());
    for level in levels.iter().rev() {
        let jobs: Vec<DirectoryJob> = level
            .iter()
            .map(|&index| {
                let (files, symlinks) = mem::take(&mut contents[index]);
                let subdirs = children[index]
                    .iter()
                    .map(|&child| directory_node(mem::take(&mut names[child]), &digests[child]))
                    .collect();
                DirectoryJob {
                    index,
                    files,
                    symlinks,
                    subdirs,
                }
            })
            .collect();
        for (index, digest, bytes) in encode_level(jobs, threads)? {
            digests[index] = digest;
            directories.push((digest, bytes));
        }
    }

    // As the builder gives them: each distinct directory once, ordered by digest.
    directories.sort_unstable_by_key(|(digest, _)| *digest);
    directories.dedup_by(|a, b| a.0 == b.0);
    Ok(InputTree {
        root_digest: digests[root],
        directories,
    })
}

/// Everything one directory's message is made of.
struct DirectoryJob {
    index: usize,
    files: Vec<WalkedFile>,
    symlinks: Vec<reapi::SymlinkNode>,
    subdirs: Vec<reapi::DirectoryNode>,
}

/// Below this many entries in a level, starting threads costs more than it saves.
const PARALLEL_LEVEL_ENTRIES: usize = 4096;

/// Encodes one level's directories as `(index, digest, bytes)`.
fn encode_level(
    jobs: Vec<DirectoryJob>,
    threads: usize,
) -> io::Result<Vec<(usize, Digest, Vec<u8>)>> {
    let entries: usize = jobs.iter().map(|job| job.files.len()).sum();
    if threads < 2 || jobs.len() < 2 || entries < PARALLEL_LEVEL_ENTRIES {
        return jobs.into_iter().map(encode_directory).collect();
    }
    // Dealt out in turn, so that each thread gets about as many directories.
    let mut shares: Vec<Vec<DirectoryJob>> = (0..threads).map(|_| Vec::new()).collect();
    for (turn, job) in jobs.into_iter().enumerate() {
        shares[turn % threads].push(job);
    }
    let encoded: Vec<io::Result<Vec<_>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = shares
            .into_iter()
            .map(|share| scope.spawn(move || share.into_iter().map(encode_directory).collect()))
            .collect();
        workers.into_iter().map(join).collect()
    });
    let mut all = Vec::new();
    for share in encoded {
        all.extend(share?);
    }
    Ok(all)
}

/// One directory's message: each kind of entry sorted by name, as the builder writes them.
fn encode_directory(job: DirectoryJob) -> io::Result<(usize, Digest, Vec<u8>)> {
    let DirectoryJob {
        index,
        mut files,
        mut symlinks,
        mut subdirs,
    } = job;
    files.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    symlinks.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    subdirs.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    let files = files
        .into_iter()
        .map(|file| {
            let digest = file
                .digest
                .ok_or_else(|| io::Error::other("a file was not hashed"))?;
            Ok(file_node(file.name, &digest, file.is_executable))
        })
        .collect::<io::Result<_>>()?;
    let message = reapi::Directory {
        files,
        directories: subdirs,
        symlinks,
        node_properties: None,
    };
    let (digest, bytes) = Digest::of_message(&message);
    Ok((index, digest, bytes))
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
