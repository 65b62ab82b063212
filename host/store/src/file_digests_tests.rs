use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;

/// A reading start far enough after the files' writing that their entries are trusted, so
/// that tests need not wait out the racy window.
fn long_after_writing() -> SystemTime {
    SystemTime::now() + RACY_WINDOW * 10
}

fn write(path: &Path, content: &[u8]) -> Metadata {
    fs::write(path, content).expect("write");
    fs::symlink_metadata(path).expect("stat")
}

fn stat(path: &Path) -> Metadata {
    fs::symlink_metadata(path).expect("stat")
}

#[test]
fn a_recorded_digest_is_found_after_save_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a.txt");
    let metadata = write(&file, b"hello\n");
    let digest = Digest::of_bytes(b"hello\n");

    let cache = FileDigests::open(dir.path());
    assert_eq!(cache.lookup(&file, &metadata), None);
    cache.record(&file, &metadata, digest, long_after_writing());
    assert_eq!(cache.lookup(&file, &stat(&file)), Some(digest));
    cache.save().expect("save");

    let reopened = FileDigests::open(dir.path());
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened.lookup(&file, &stat(&file)), Some(digest));
    assert_eq!(fs::read_dir(dir.path().join("tmp")).expect("ls").count(), 0);
}

#[test]
fn new_content_of_another_size_is_not_taken_for_the_old() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a.txt");
    let metadata = write(&file, b"hello\n");
    let cache = FileDigests::open(dir.path());
    cache.record(
        &file,
        &metadata,
        Digest::of_bytes(b"hello\n"),
        long_after_writing(),
    );

    let changed = write(&file, b"hello, world\n");
    assert_eq!(cache.lookup(&file, &changed), None);
}

#[test]
fn new_content_of_the_same_size_with_a_new_mtime_is_not_taken_for_the_old() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a.txt");
    let metadata = write(&file, b"hello\n");
    let cache = FileDigests::open(dir.path());
    cache.record(
        &file,
        &metadata,
        Digest::of_bytes(b"hello\n"),
        long_after_writing(),
    );

    fs::write(&file, b"HELLO\n").expect("write");
    let later = metadata.modified().expect("mtime") + Duration::from_secs(5);
    fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_modified(later))
        .expect("set mtime");
    assert_eq!(cache.lookup(&file, &stat(&file)), None);
}

#[test]
fn an_mtime_set_back_is_caught_by_the_ctime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a.txt");
    let metadata = write(&file, b"hello\n");
    let cache = FileDigests::open(dir.path());
    cache.record(
        &file,
        &metadata,
        Digest::of_bytes(b"hello\n"),
        long_after_writing(),
    );

    // Past the coarsest kernel clock tick, so that the new ctime differs from the old.
    std::thread::sleep(Duration::from_millis(50));
    fs::write(&file, b"HELLO\n").expect("write");
    fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_modified(metadata.modified().expect("mtime")))
        .expect("set mtime");
    assert_eq!(stat(&file).modified().ok(), metadata.modified().ok());
    assert_eq!(cache.lookup(&file, &stat(&file)), None);
}

#[test]
fn a_file_changed_just_before_its_reading_is_not_trusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a.txt");
    let metadata = write(&file, b"hello\n");
    let digest = Digest::of_bytes(b"hello\n");
    let cache = FileDigests::open(dir.path());

    // Written now and read now: it may change again within the same timestamp tick.
    cache.record(&file, &metadata, digest, SystemTime::now());
    assert_eq!(cache.lookup(&file, &metadata), None);
    // Read half the window after its last change: still too close.
    let written = metadata.modified().expect("mtime");
    cache.record(&file, &metadata, digest, written + RACY_WINDOW / 2);
    assert_eq!(cache.lookup(&file, &metadata), None);
    assert!(cache.is_empty());

    cache.record(&file, &metadata, digest, long_after_writing());
    assert_eq!(cache.lookup(&file, &metadata), Some(digest));
}

#[test]
fn a_digest_of_another_size_or_a_non_file_is_not_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a.txt");
    let metadata = write(&file, b"hello\n");
    let cache = FileDigests::open(dir.path());
    // The file grew between its stat and its reading.
    let grown = Digest::of_bytes(b"hello, world\n");
    cache.record(&file, &metadata, grown, long_after_writing());
    let dir_metadata = stat(dir.path());
    cache.record(
        dir.path(),
        &dir_metadata,
        Digest::EMPTY,
        long_after_writing(),
    );
    assert!(cache.is_empty());
    assert_eq!(cache.lookup(dir.path(), &dir_metadata), None);
}

#[test]
fn saving_an_unchanged_cache_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = FileDigests::open(dir.path());
    cache.save().expect("save");
    assert!(!dir.path().join(FILE_NAME).exists());

    let file = dir.path().join("a.txt");
    let metadata = write(&file, b"x");
    cache.record(
        &file,
        &metadata,
        Digest::of_bytes(b"x"),
        long_after_writing(),
    );
    cache.save().expect("save");
    let saved = stat(&dir.path().join(FILE_NAME));

    let reopened = FileDigests::open(dir.path());
    assert!(reopened.lookup(&file, &metadata).is_some());
    reopened.save().expect("save");
    assert_eq!(stat(&dir.path().join(FILE_NAME)).ino(), saved.ino());
}

/// Saves a cache of `count` files under `dir` and returns the cache file's bytes.
fn saved_cache(dir: &Path, count: usize) -> Vec<u8> {
    let cache = FileDigests::open(dir);
    for i in 0..count {
        let file = dir.join(format!("f{i}"));
        let content = format!("content {i}");
        let metadata = write(&file, content.as_bytes());
        let digest = Digest::of_bytes(content.as_bytes());
        cache.record(&file, &metadata, digest, long_after_writing());
    }
    cache.save().expect("save");
    fs::read(dir.join(FILE_NAME)).expect("read")
}

#[test]
fn a_damaged_cache_file_reads_as_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = saved_cache(dir.path(), 20);
    assert_eq!(FileDigests::open(dir.path()).len(), 20);

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    let mut other_version = good.clone();
    other_version[8] += 1;
    let damaged = [
        good[..good.len() - 1].to_vec(),
        good[..HEADER_BYTES - 1].to_vec(),
        [good.as_slice(), b"x"].concat(),
        flipped,
        other_version,
        b"garbage".to_vec(),
        Vec::new(),
    ];
    for bytes in damaged {
        fs::write(dir.path().join(FILE_NAME), &bytes).expect("write");
        let cache = FileDigests::open(dir.path());
        assert!(cache.is_empty(), "{} bytes read as a cache", bytes.len());
        // And it can be saved over.
        let file = dir.path().join("f0");
        cache.record(
            &file,
            &stat(&file),
            Digest::of_bytes(b"content 0"),
            long_after_writing(),
        );
        cache.save().expect("save");
        assert_eq!(FileDigests::open(dir.path()).len(), 1);
    }
}

#[test]
fn a_cache_file_that_is_a_directory_reads_as_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join(FILE_NAME)).expect("mkdir");
    assert!(FileDigests::open(dir.path()).is_empty());
}

#[test]
fn threads_share_one_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<(PathBuf, Metadata, Digest)> = (0..400)
        .map(|i| {
            let file = dir.path().join(format!("f{i}"));
            let content = format!("content {i}");
            let metadata = write(&file, content.as_bytes());
            (file, metadata, Digest::of_bytes(content.as_bytes()))
        })
        .collect();
    let cache = Arc::new(FileDigests::open(dir.path()));

    // Every thread records and looks up every file, in its own order, while others save.
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let cache = Arc::clone(&cache);
            let files = &files;
            scope.spawn(move || {
                for step in 0..files.len() {
                    let (file, metadata, digest) = &files[(step * 7 + thread * 31) % files.len()];
                    cache.record(file, metadata, *digest, long_after_writing());
                    assert_eq!(cache.lookup(file, metadata), Some(*digest));
                    if step % 100 == 0 {
                        cache.save().expect("save");
                    }
                }
            });
        }
    });
    cache.save().expect("save");

    let reopened = FileDigests::open(dir.path());
    assert_eq!(reopened.len(), files.len());
    for (file, metadata, digest) in &files {
        assert_eq!(reopened.lookup(file, metadata), Some(*digest));
    }
}

#[test]
fn the_cache_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<FileDigests>();
}

#[test]
fn path_keys_of_similar_paths_differ() {
    let mut keys = std::collections::HashSet::new();
    for dir in 0..1000 {
        for file in 0..200 {
            let path = format!("/work/tree/d{dir:04}/f{file}.txt");
            assert!(keys.insert(path_key(path.as_bytes())), "{path}");
        }
    }
    // Every length around the 8- and 16-byte blocks, and zero bytes that pad a short tail.
    for len in 0..40 {
        assert!(keys.insert(path_key(&vec![b'a'; len])), "{len} bytes");
    }
    for len in 1..40 {
        assert!(keys.insert(path_key(&vec![0; len])), "{len} zero bytes");
    }
}

#[test]
fn checksum_sees_a_change_to_any_byte() {
    let bytes: Vec<u8> = (0..100u8).collect();
    let original = checksum(&bytes);
    for i in 0..bytes.len() {
        let mut changed = bytes.clone();
        changed[i] ^= 1;
        assert_ne!(checksum(&changed), original, "byte {i}");
    }
    assert_ne!(checksum(&bytes[..99]), original);
}
