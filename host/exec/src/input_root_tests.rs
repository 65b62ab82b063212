use remex_proto::reapi;
use remex_store::{Digest, LocalStore};

use super::*;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path()).expect("open");
    (dir, store)
}

fn file(store: &LocalStore, name: &str, content: &[u8]) -> reapi::FileNode {
    reapi::FileNode {
        name: name.into(),
        digest: Some(store.put_bytes(content).expect("put").to_proto()),
        ..Default::default()
    }
}

fn absent_file(name: &str, content: &[u8]) -> reapi::FileNode {
    reapi::FileNode {
        name: name.into(),
        digest: Some(Digest::of_bytes(content).to_proto()),
        ..Default::default()
    }
}

fn link(name: &str, target: &str) -> reapi::SymlinkNode {
    reapi::SymlinkNode {
        name: name.into(),
        target: target.into(),
        ..Default::default()
    }
}

fn dir(store: &LocalStore, name: &str, directory: &reapi::Directory) -> reapi::DirectoryNode {
    reapi::DirectoryNode {
        name: name.into(),
        digest: Some(store.put_message(directory).expect("put").to_proto()),
    }
}

fn check(store: &LocalStore, root: &reapi::Directory) -> Result<(), ExecError> {
    let digest = store.put_message(root).expect("put root");
    check_input_root(store, &digest)
}

fn assert_invalid(result: Result<(), ExecError>, path: &str, problem: &str) {
    let err = result.expect_err("invalid");
    let text = err.to_string();
    assert!(matches!(err, ExecError::InvalidPath { .. }), "{text}");
    assert!(
        text.contains(&format!("`{path}`")),
        "names `{path}`: {text}"
    );
    assert!(text.contains(problem), "says `{problem}`: {text}");
}

#[test]
fn a_canonical_tree_passes() {
    let (_dir, store) = store();
    let sub = reapi::Directory {
        files: vec![file(&store, "b.txt", b"b")],
        symlinks: vec![link("up", "../a.txt")],
        ..Default::default()
    };
    let root = reapi::Directory {
        files: vec![file(&store, "a.txt", b"a")],
        directories: vec![dir(&store, "sub", &sub)],
        symlinks: vec![link("z", "sub/b.txt")],
        ..Default::default()
    };
    check(&store, &root).expect("valid");
}

#[test]
fn names_that_are_not_one_segment_are_refused() {
    let (_dir, store) = store();
    let cases = [
        ("a/b", "contains `/`"),
        (".", "not names"),
        ("..", "not names"),
        ("nul\0", "NUL"),
    ];
    for (name, problem) in cases {
        let root = reapi::Directory {
            files: vec![file(&store, name, b"x")],
            ..Default::default()
        };
        assert_invalid(check(&store, &root), name, problem);
    }
    let root = reapi::Directory {
        files: vec![file(&store, "", b"x")],
        ..Default::default()
    };
    assert_invalid(check(&store, &root), ".", "empty name");
}

#[test]
fn bad_names_deep_in_the_tree_are_named_by_their_path() {
    let (_dir, store) = store();
    let inner = reapi::Directory {
        files: vec![file(&store, "..", b"x")],
        ..Default::default()
    };
    let root = reapi::Directory {
        directories: vec![dir(&store, "outer", &inner)],
        ..Default::default()
    };
    assert_invalid(check(&store, &root), "outer/..", "not names");
}

#[test]
fn unsorted_and_duplicate_entries_are_refused() {
    let (_dir, store) = store();
    let unsorted = reapi::Directory {
        files: vec![file(&store, "b", b"b"), file(&store, "a", b"a")],
        ..Default::default()
    };
    assert_invalid(check(&store, &unsorted), "a", "not sorted");

    let twice = reapi::Directory {
        files: vec![file(&store, "a", b"a"), file(&store, "a", b"a")],
        ..Default::default()
    };
    assert_invalid(check(&store, &twice), "a", "twice");

    let across = reapi::Directory {
        files: vec![file(&store, "same", b"a")],
        symlinks: vec![link("same", "x")],
        ..Default::default()
    };
    assert_invalid(check(&store, &across), "same", "twice");
}

#[test]
fn symlinks_out_of_the_root_are_refused() {
    let (_dir, store) = store();
    let cases: &[(&str, &str)] = &[
        ("../etc", "out"),
        ("a/../../x", "out"),
        ("/etc/passwd", "absolute"),
    ];
    for (target, problem) in cases {
        let root = reapi::Directory {
            symlinks: vec![link("l", target)],
            ..Default::default()
        };
        assert_invalid(check(&store, &root), "l", problem);
    }
}

#[test]
fn symlinks_are_followed_physically_not_lexically() {
    let (_dir, store) = store();
    // `here/..` is the root's parent once `here` resolves to the root itself, though the text
    // `here/..` alone looks harmless.
    let root = reapi::Directory {
        symlinks: vec![link("here", "."), link("sneaky", "here/..")],
        ..Default::default()
    };
    assert_invalid(check(&store, &root), "sneaky", "leads out");

    let sub = reapi::Directory {
        symlinks: vec![link("deep", "../../x")],
        ..Default::default()
    };
    let root = reapi::Directory {
        directories: vec![dir(&store, "sub", &sub)],
        ..Default::default()
    };
    assert_invalid(check(&store, &root), "sub/deep", "leads out");
}

#[test]
fn symlink_loops_are_not_escapes() {
    let (_dir, store) = store();
    let root = reapi::Directory {
        symlinks: vec![link("a", "b"), link("b", "a")],
        ..Default::default()
    };
    check(&store, &root).expect("a loop stays inside");
}

#[test]
fn every_missing_blob_is_listed() {
    let (_dir, store) = store();
    let absent_dir = reapi::Directory {
        files: vec![file(&store, "x", b"x")],
        ..Default::default()
    };
    let absent_dir_digest = Digest::of_message(&absent_dir).0;
    let root = reapi::Directory {
        files: vec![absent_file("a", b"one"), absent_file("b", b"two")],
        directories: vec![reapi::DirectoryNode {
            name: "d".into(),
            digest: Some(absent_dir_digest.to_proto()),
        }],
        ..Default::default()
    };
    let err = check(&store, &root).expect_err("missing");
    let ExecError::MissingInputs(missing) = err else {
        panic!("expected missing inputs, got {err}");
    };
    let expected = vec![
        Digest::of_bytes(b"one"),
        Digest::of_bytes(b"two"),
        absent_dir_digest,
    ];
    assert_eq!(missing, expected);
}
