//! `remex plugin`: install, list, info and remove, refusing components of another WIT version,
//! and a plugin made with `remex plugin new`, built with one cargo command and installed with
//! one remex command.

use std::process::Command;

use crate::support::{Repo, assert_exit, test_plugin};

#[test]
fn refuses_a_plugin_of_another_wit_version_naming_both() {
    let repo = Repo::new(&[]);
    let future = test_plugin("remex_plugin_testing_future_wit");
    let outcome = repo.run(&["plugin", "install", future.to_str().expect("utf-8 path")]);
    assert_exit(&outcome, 2);
    assert!(
        outcome.stderr.contains("`remex:plugin@9.0.0`"),
        "{}",
        outcome.all()
    );
    assert!(
        outcome.stderr.contains("`remex:plugin@0.1.0`"),
        "{}",
        outcome.all()
    );

    let listed = repo.run(&["plugin", "list"]);
    assert!(
        listed.stdout.contains("no plugins installed"),
        "{}",
        listed.all()
    );
}

/// Slow: builds a plugin crate for `wasm32-wasip2` (about a minute on two cores when the
/// SDK's dependencies are already in cargo's cache; it needs no network then).
#[test]
fn a_new_plugin_builds_installs_and_runs() {
    let repo = Repo::new(&[(
        "app/BUILD",
        "hello_world_message(name = \"hi\", message = \"hey\")\n",
    )]);
    let crate_dir = repo.root().join("../hello-world");
    let crate_arg = crate_dir.to_str().expect("utf-8 path");
    assert_exit(
        &repo.run(&["plugin", "new", "hello-world", "--dir", crate_arg]),
        0,
    );

    let built = Command::new(env!("CARGO"))
        .args(["build", "--target", "wasm32-wasip2", "--release", "--quiet"])
        .current_dir(&crate_dir)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("cargo runs");
    assert!(built.success(), "the generated plugin does not build");

    let wasm = crate_dir.join("target/wasm32-wasip2/release/remex_plugin_hello_world.wasm");
    let installed = repo.run(&["plugin", "install", wasm.to_str().expect("utf-8 path")]);
    assert_exit(&installed, 0);
    assert!(
        installed.stdout.contains("`hello_world_message`"),
        "{}",
        installed.all()
    );

    let info = repo.run(&["plugin", "info", "hello-world"]);
    assert!(
        info.stdout.contains("kind `hello_world_message`"),
        "{}",
        info.all()
    );

    let outcome = repo.run(&["test", "::"]);
    assert_exit(&outcome, 0);

    assert_exit(&repo.run(&["plugin", "remove", "hello-world"]), 0);
    let listed = repo.run(&["plugin", "list"]);
    assert!(
        listed.stdout.contains("no plugins installed"),
        "{}",
        listed.all()
    );
}
