//! `remex digest` prints the golden root digests of ../shared/cases/merkle.md for the same trees
//! made on disk.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn digest_of(dir: &std::path::Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_remex"))
        .arg("digest")
        .arg(dir)
        .output()
        .expect("remex runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

#[test]
fn digest_prints_the_golden_values() {
    let scratch = tempfile::tempdir().expect("tempdir");

    let empty = scratch.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    assert_eq!(
        digest_of(&empty),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/0"
    );

    let a = scratch.path().join("a");
    fs::create_dir_all(a.join("out")).expect("mkdir");
    fs::write(a.join("a.txt"), "hello\n").expect("write");
    std::os::unix::fs::symlink("a.txt", a.join("lnk")).expect("symlink");
    assert_eq!(
        digest_of(&a),
        "0608f01adaf94e448cf951657f6aca1feb798a94f5934d47ca82a9c9bae83981/168"
    );

    let c = scratch.path().join("c");
    fs::create_dir_all(c.join("bin")).expect("mkdir");
    fs::create_dir_all(c.join("src")).expect("mkdir");
    fs::write(c.join("bin/tool"), "#!/bin/sh\necho hi\n").expect("write");
    fs::set_permissions(c.join("bin/tool"), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(c.join("src/x.c"), "int main(){return 0;}\n").expect("write");
    assert_eq!(
        digest_of(&c),
        "04e9cbb10a146948d68f0190b8afd47a2b2f22669625d3d238c478ea254c826a/154"
    );
}

#[test]
fn digest_of_a_missing_directory_fails_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_remex"))
        .args(["digest", "/no/such/dir"])
        .output()
        .expect("remex runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/no/such/dir"), "{stderr}");
}
