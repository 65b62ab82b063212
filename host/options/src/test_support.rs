//! Fixtures shared by this crate's tests: a repository in a temporary directory.

use std::path::{Path, PathBuf};

use crate::{OptionInputs, OptionRegistry, Options, OptionsError};

/// A repository with a `remex.toml`, in a temporary directory.
pub(crate) struct TestRepo {
    dir: tempfile::TempDir,
}

impl TestRepo {
    /// A repository whose `remex.toml` holds `config`.
    pub(crate) fn new(config: &str) -> Self {
        let repo = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        repo.write("remex.toml", config);
        repo
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn write(&self, path: &str, content: &str) -> PathBuf {
        let full = self.root().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&full, content).expect("write");
        full
    }

    /// The inputs of a run in the root with these variables and flags.
    pub(crate) fn inputs(&self, variables: &[(&str, &str)], flags: &[&str]) -> OptionInputs {
        let variables = variables.iter().map(|(k, v)| ((*k).into(), (*v).into()));
        let flags = flags.iter().map(|f| (*f).to_owned());
        OptionInputs::read(self.root(), variables, flags).expect("remex.toml reads")
    }

    /// Options resolved with the built-in registry.
    pub(crate) fn load(
        &self,
        variables: &[(&str, &str)],
        flags: &[&str],
    ) -> Result<Options, OptionsError> {
        let variables = variables.iter().map(|(k, v)| ((*k).into(), (*v).into()));
        let flags = flags.iter().map(|f| (*f).to_owned());
        OptionInputs::read(self.root(), variables, flags)?.resolve(&OptionRegistry::builtin())
    }

    /// Options that must load.
    pub(crate) fn options(&self, variables: &[(&str, &str)], flags: &[&str]) -> Options {
        self.load(variables, flags)
            .unwrap_or_else(|e| panic!("options should load: {e}"))
    }

    /// The message of the error loading must fail with.
    pub(crate) fn error(&self, variables: &[(&str, &str)], flags: &[&str]) -> String {
        match self.load(variables, flags) {
            Ok(options) => panic!("options should not load: {options:?}"),
            Err(e) => e.to_string(),
        }
    }
}

/// Asserts that `text` contains every one of `parts`, showing `text` when not.
#[track_caller]
pub(crate) fn assert_mentions(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "expected {part:?} in:\n{text}");
    }
}
