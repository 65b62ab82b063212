//! BUILD file evaluation and target specs.
//!
//! [`evaluate_repository`] evaluates every `BUILD` and `BUILD.remex` file of a repository as
//! Starlark (the extended dialect, without `load()`). Each target kind a plugin provides is a
//! global function taking keyword arguments only; a call declares a target:
//!
//! ```starlark
//! __defaults__(all = dict(environment = "remote"), python_tests = dict(timeout = 60))
//!
//! shell_command(
//!     name = "pack",
//!     command = "tar cf out.tar *.txt",
//!     sources = ["*.txt", "data/**/*.csv", "!secret.txt"],
//!     dependencies = [":lib", "//tools:zip"],
//! )
//! ```
//!
//! Every target has `name`, `dependencies`, `environment` (default `__local__`) and
//! `description`, then its kind's fields. Fields are checked against their declared types,
//! defaulted, and `Sources` globs are resolved to existing files. `__defaults__` sets field
//! defaults for its directory and every directory below; a directory's own call wins, field by
//! field, over its parents'. Every error names the file and line to fix.
//!
//! [`TargetSpec`] and [`select`] turn command-line arguments such as `src/app:tests` or `::`
//! into targets.

#[allow(
    unsafe_code,
    reason = "starlark's `ProvidesStaticType` derive emits an `unsafe impl`; the module has no \
              unsafe code of its own"
)]
mod builtin;
mod defaults;
mod error;
mod evaluate;
mod files;
mod graph;
mod kinds;
mod sources;
mod spec;
mod suggest;
mod target;
mod values;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use remex_model::{KindSpec, Target};

pub use error::{BuildFileError, Problem};
pub use spec::{SpecError, TargetSpec, select};

use defaults::Defaults;
use evaluate::{DirectoryState, Evaluation};
use files::{BuildFilePath, RepoFiles, split_parent};
use kinds::KindTable;

/// Evaluates every `BUILD` and `BUILD.remex` file under `repo_root` (skipping hidden
/// directories and `dist/` and `target/` at any depth), with the given target kinds callable.
///
/// Returns the targets in address order. Directories are evaluated parents first, so that
/// `__defaults__` reaches the directories below; `BUILD` comes before `BUILD.remex`, and both
/// share one namespace of target names. Once every file is evaluated, each dependency must
/// name an existing target and no dependency may lead back to where it started.
pub fn evaluate_repository(
    repo_root: &Path,
    kinds: &[KindSpec],
) -> Result<Vec<Target>, BuildFileError> {
    let files = RepoFiles::scan(repo_root)?;
    let evaluation = Evaluation::new(KindTable::new(kinds), &files);
    let mut defaults_by_dir: HashMap<String, Rc<Defaults>> = HashMap::new();
    let mut targets = Vec::new();
    for group in files.build_files().chunk_by(|a, b| a.dir == b.dir) {
        let dir = group[0].dir.as_str();
        let inherited = inherited_defaults(&defaults_by_dir, dir);
        let state = RefCell::new(DirectoryState::new(dir, inherited));
        for build_file in group {
            let source = read_build_file(repo_root, build_file)?;
            evaluation.evaluate_file(&build_file.path, source, &state)?;
        }
        let (declared, defaults) = state.into_inner().finish();
        targets.extend(declared);
        defaults_by_dir.insert(dir.to_owned(), defaults);
    }
    targets.sort_by(|a, b| a.address.cmp(&b.address));
    graph::check_dependencies(&targets)?;
    Ok(targets)
}

/// The defaults of the nearest ancestor directory that has BUILD files.
fn inherited_defaults(by_dir: &HashMap<String, Rc<Defaults>>, dir: &str) -> Rc<Defaults> {
    let mut current = dir;
    while !current.is_empty() {
        current = split_parent(current).0;
        if let Some(defaults) = by_dir.get(current) {
            return Rc::clone(defaults);
        }
    }
    Rc::new(Defaults::default())
}

fn read_build_file(repo_root: &Path, build_file: &BuildFilePath) -> Result<String, BuildFileError> {
    fs::read_to_string(repo_root.join(&build_file.path)).map_err(|source| BuildFileError::Io {
        path: PathBuf::from(&build_file.path),
        source,
    })
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod evaluate_tests;
