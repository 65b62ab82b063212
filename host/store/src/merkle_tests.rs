use proptest::prelude::*;

use super::*;

fn file(content: &[u8], is_executable: bool) -> InputEntry {
    InputEntry::File {
        digest: Digest::of_bytes(content),
        is_executable,
    }
}

fn root_of(entries: &[(&str, InputEntry)]) -> String {
    let mut builder = InputTreeBuilder::new();
    for (path, entry) in entries {
        builder.add(path, entry.clone()).expect("valid entry");
    }
    builder.build().root_digest.to_string()
}

// Golden values from ../shared/cases/merkle.md, agreed by two other REAPI implementations.
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/0";
const CASE_A: &str = "0608f01adaf94e448cf951657f6aca1feb798a94f5934d47ca82a9c9bae83981/168";
const CASE_C: &str = "04e9cbb10a146948d68f0190b8afd47a2b2f22669625d3d238c478ea254c826a/154";

fn case_a() -> Vec<(&'static str, InputEntry)> {
    vec![
        ("a.txt", file(b"hello\n", false)),
        ("out", InputEntry::EmptyDirectory),
        (
            "lnk",
            InputEntry::Symlink {
                target: "a.txt".into(),
            },
        ),
    ]
}

fn case_c() -> Vec<(&'static str, InputEntry)> {
    vec![
        ("bin/tool", file(b"#!/bin/sh\necho hi\n", true)),
        ("src/x.c", file(b"int main(){return 0;}\n", false)),
    ]
}

#[test]
fn golden_empty_root() {
    assert_eq!(root_of(&[]), EMPTY);
}

#[test]
fn golden_case_a() {
    assert_eq!(root_of(&case_a()), CASE_A);
}

#[test]
fn golden_case_c_with_children() {
    let mut builder = InputTreeBuilder::new();
    for (path, entry) in case_c() {
        builder.add(path, entry).expect("valid entry");
    }
    let tree = builder.build();
    assert_eq!(tree.root_digest.to_string(), CASE_C);
    let children: Vec<String> = tree
        .directories
        .iter()
        .map(|(d, _)| d.to_string())
        .collect();
    for child in [
        "0c98e6802939418aa7d64d0527d4a29aa21cb2830b00a5be08c24763af96d65a/80",
        "728777f9dd482ce3bcaf0ca2f3949c8893d97731ff43864935b2fefd5386b754/77",
    ] {
        assert!(
            children.contains(&child.to_owned()),
            "{child} not in {children:?}"
        );
    }
}

#[test]
fn rejects_bad_paths_before_storing_anything() {
    let mut builder = InputTreeBuilder::new();
    let entry = file(b"x", false);
    for (path, expected) in [
        ("/etc/passwd", "absolute"),
        ("a//b", "empty segment"),
        ("a/../b", "`.` or `..`"),
        ("./a", "`.` or `..`"),
        ("", "empty"),
    ] {
        let err = builder.add(path, entry.clone()).expect_err(path);
        assert!(err.to_string().contains(expected), "{path}: {err}");
    }
}

#[test]
fn rejects_a_name_used_as_file_and_directory() {
    let mut builder = InputTreeBuilder::new();
    builder.add("a", file(b"x", false)).expect("first");
    let err = builder
        .add("a/b", file(b"y", false))
        .expect_err("file under file");
    assert!(matches!(err, MerkleError::UnderFile { .. }), "{err}");

    let mut builder = InputTreeBuilder::new();
    builder.add("a/b", file(b"y", false)).expect("first");
    let err = builder
        .add("a", file(b"x", false))
        .expect_err("file over dir");
    assert!(matches!(err, MerkleError::FileAndDirectory { .. }), "{err}");
}

#[test]
fn identical_duplicates_are_accepted_and_conflicting_ones_refused() {
    let mut builder = InputTreeBuilder::new();
    builder.add("a", file(b"x", false)).expect("first");
    builder.add("a", file(b"x", false)).expect("same again");
    let err = builder
        .add("a", file(b"x", true))
        .expect_err("different bit");
    assert!(matches!(err, MerkleError::Conflict { .. }), "{err}");
}

#[test]
fn digest_of_a_tree_on_disk_matches_the_golden_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a");
    fs::create_dir_all(a.join("out")).expect("mkdir");
    fs::write(a.join("a.txt"), "hello\n").expect("write");
    std::os::unix::fs::symlink("a.txt", a.join("lnk")).expect("symlink");
    assert_eq!(
        digest_directory_on_disk(&a)
            .expect("digest")
            .root_digest
            .to_string(),
        CASE_A
    );

    let c = dir.path().join("c");
    fs::create_dir_all(c.join("bin")).expect("mkdir");
    fs::create_dir_all(c.join("src")).expect("mkdir");
    fs::write(c.join("bin/tool"), "#!/bin/sh\necho hi\n").expect("write");
    fs::set_permissions(c.join("bin/tool"), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(c.join("src/x.c"), "int main(){return 0;}\n").expect("write");
    assert_eq!(
        digest_directory_on_disk(&c)
            .expect("digest")
            .root_digest
            .to_string(),
        CASE_C
    );
}

fn arbitrary_entries() -> impl Strategy<Value = Vec<(String, InputEntry)>> {
    let segment = "[a-d]{1,2}";
    let path = prop::collection::vec(segment, 1..4).prop_map(|s| s.join("/"));
    let entry = prop_oneof![
        (any::<u8>(), any::<bool>()).prop_map(|(b, x)| file(&[b], x)),
        "[a-z]{1,3}".prop_map(|target| InputEntry::Symlink { target }),
        Just(InputEntry::EmptyDirectory),
    ];
    prop::collection::vec((path, entry), 0..24)
}

/// Keeps the entries that can all stand in one tree, in the order given.
fn consistent(entries: Vec<(String, InputEntry)>) -> Vec<(String, InputEntry)> {
    let mut builder = InputTreeBuilder::new();
    entries
        .into_iter()
        .filter(|(path, entry)| builder.add(path, entry.clone()).is_ok())
        .collect()
}

proptest! {
    #[test]
    fn any_order_of_the_same_entries_gives_the_same_root(
        entries in arbitrary_entries().prop_map(consistent),
        seed in any::<u64>(),
    ) {
        let mut shuffled = entries.clone();
        // A deterministic shuffle driven by the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let build = |list: &[(String, InputEntry)]| {
            let mut builder = InputTreeBuilder::new();
            for (path, entry) in list {
                builder.add(path, entry.clone()).expect("consistent entries");
            }
            builder.build().root_digest
        };
        prop_assert_eq!(build(&entries), build(&shuffled));
    }

    #[test]
    fn add_never_panics(path in ".{0,12}") {
        let _ = InputTreeBuilder::new().add(&path, InputEntry::EmptyDirectory);
    }
}
