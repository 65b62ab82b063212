//! Fixtures shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A repository in a temporary directory, with its own local store beside it.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// A repository with `remex.toml` and the given files (`path`, content).
    pub fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("repo")).expect("mkdir repo");
        let repo = Self { dir };
        repo.write("remex.toml", "[GLOBAL]\n");
        for (path, content) in files {
            repo.write(path, content);
        }
        repo
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn write(&self, path: &str, content: &str) {
        let full = self.root().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(full, content).expect("write");
    }

    /// A `remex` command run in the repository, with its store in the fixture.
    pub fn remex(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_remex"));
        command
            .args(args)
            .current_dir(self.root())
            .env("REMEX_LOCAL_STORE_DIR", self.store())
            .env_remove("RUST_LOG");
        command
    }

    pub fn run(&self, args: &[&str]) -> Outcome {
        Outcome::of(self.remex(args).output().expect("remex runs"))
    }
}

/// What a `remex` run printed and how it exited.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn of(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Everything printed, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn line_for(&self, address: &str) -> &str {
        let needle = format!(" {address} ");
        self.stdout
            .lines()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("no line for {address}:\n{}", self.all()))
    }
}

pub fn assert_exit(outcome: &Outcome, code: i32) {
    assert_eq!(outcome.code, code, "{}", outcome.all());
}

/// The directory of the test plugins built with remex.
pub fn test_plugin(name: &str) -> PathBuf {
    Path::new(remex_bundled::TEST_PLUGINS_DIR).join(format!("{name}.wasm"))
}
