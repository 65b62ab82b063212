use std::os::unix::fs::symlink;
use std::time::Duration;

use super::*;
use crate::{RACY_WINDOW, digest_directory_on_disk, hash_file, tree_of_directory};

/// A tree with every kind of entry: files small, empty and larger than a read buffer,
/// executable files, symlinks (to a file, a directory, nowhere), empty directories at several
/// depths, and enough files in enough directories to keep every thread busy.
fn write_mixed_tree(root: &Path) {
    let make_dir = |path: &str| fs::create_dir_all(root.join(path)).expect("mkdir");
    let write = |path: &str, content: &[u8]| fs::write(root.join(path), content).expect("write");
    for dir in ["src/a/b", "bin", "empty", "nested/only/empty", "links"] {
        make_dir(dir);
    }
    write("README", b"read me\n");
    write("src/empty.txt", b"");
    write("src/a/big.bin", &vec![7u8; 3 * READ_BUFFER_BYTES + 5]);
    write("bin/tool", b"#!/bin/sh\necho hi\n");
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).expect("chmod");
    write("bin/owner-only", b"x");
    fs::set_permissions(
        root.join("bin/owner-only"),
        fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    symlink("../README", root.join("links/to-file")).expect("symlink");
    symlink("../src", root.join("links/to-dir")).expect("symlink");
    symlink("nowhere", root.join("links/dangling")).expect("symlink");
    for d in 0..12 {
        make_dir(&format!("many/d{d}"));
        for f in 0..25 {
            write(&format!("many/d{d}/f{f}"), format!("{d}/{f}").as_bytes());
        }
    }
}

fn sequential(root: &Path) -> InputTree {
    tree_of_directory(root, &mut |path| hash_file(path)).expect("sequential digest")
}

fn assert_same_tree(actual: &InputTree, expected: &InputTree) {
    assert_eq!(actual.root_digest, expected.root_digest);
    assert_eq!(actual.directories, expected.directories);
}

#[test]
fn parallel_digest_equals_sequential_digest_on_a_mixed_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_mixed_tree(dir.path());
    let expected = sequential(dir.path());
    for _ in 0..3 {
        let parallel = digest_directory_on_disk(dir.path()).expect("parallel digest");
        assert_same_tree(&parallel, &expected);
    }
}

#[test]
fn every_thread_count_gives_the_same_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_mixed_tree(dir.path());
    let expected = sequential(dir.path());
    for threads in [1, 2, 5] {
        let mut dirs = walk(dir.path(), threads, None).expect("walk");
        hash_missing(&mut dirs, threads, None).expect("hash");
        assert_same_tree(&build(dirs, threads).expect("build"), &expected);
    }
}

#[test]
fn a_relative_root_is_digested_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_mixed_tree(dir.path());
    let relative = dir.path().join("src/a/../..");
    assert_same_tree(
        &digest_directory_on_disk(&relative).expect("digest"),
        &sequential(dir.path()),
    );
}

#[test]
fn an_empty_root_and_a_missing_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = digest_directory_on_disk(dir.path()).expect("digest");
    assert_eq!(tree.root_digest, sequential(dir.path()).root_digest);
    assert!(digest_directory_on_disk(&dir.path().join("missing")).is_err());
    let cache = FileDigests::open(dir.path());
    assert!(digest_directory_cached(&dir.path().join("missing"), &cache).is_err());
}

#[test]
fn cached_digest_equals_sequential_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = tempfile::tempdir().expect("tempdir");
    write_mixed_tree(dir.path());
    let cache = FileDigests::open(store.path());
    let cached = digest_directory_cached(dir.path(), &cache).expect("digest");
    assert_same_tree(&cached, &sequential(dir.path()));
}

#[test]
fn files_written_just_now_are_hashed_again_next_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = tempfile::tempdir().expect("tempdir");
    write_mixed_tree(dir.path());
    let cache = FileDigests::open(store.path());
    digest_directory_cached(dir.path(), &cache).expect("digest");
    assert!(cache.is_empty());
}

#[test]
fn a_second_run_takes_unchanged_files_from_the_cache_and_rehashes_changed_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = tempfile::tempdir().expect("tempdir");
    write_mixed_tree(dir.path());
    // Let the files age past the racy window, so that the first run records them.
    std::thread::sleep(RACY_WINDOW + Duration::from_millis(100));
    let cache = FileDigests::open(store.path());
    let first = digest_directory_cached(dir.path(), &cache).expect("digest");
    assert_eq!(cache.len(), 12 * 25 + 5);
    cache.save().expect("save");

    // Poison one entry: only a run that trusts the cache can see the false digest.
    let root = fs::canonicalize(dir.path()).expect("canonicalize");
    let readme = root.join("README");
    let metadata = fs::symlink_metadata(&readme).expect("stat");
    let poisoned = Digest {
        size_bytes: metadata.len(),
        ..Digest::of_bytes(b"not the readme")
    };
    let reopened = FileDigests::open(store.path());
    reopened.record(
        &readme,
        &metadata,
        poisoned,
        SystemTime::now() + RACY_WINDOW * 10,
    );
    let second = digest_directory_cached(dir.path(), &reopened).expect("digest");
    assert_ne!(second.root_digest, first.root_digest);

    // A change to the file, even to the same size, makes it read again.
    fs::write(&readme, b"READ ME\n").expect("write");
    let third = digest_directory_cached(dir.path(), &reopened).expect("digest");
    assert_same_tree(&third, &sequential(dir.path()));
    assert_ne!(third.root_digest, first.root_digest);
}
