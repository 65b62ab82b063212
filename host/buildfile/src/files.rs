//! The files of a repository: listed once, then queried for BUILD files and source globs.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::BuildFileError;

/// The names of the files evaluated as BUILD files, in the order they are evaluated within a
/// directory.
pub(crate) const BUILD_FILE_NAMES: [&str; 2] = ["BUILD", "BUILD.remex"];

/// Directories never searched, at any depth: build outputs, not sources.
const SKIPPED_DIRECTORIES: [&str; 2] = ["dist", "target"];

/// A BUILD file, by its directory and its path, both relative to the repository root.
#[derive(Debug)]
pub(crate) struct BuildFilePath {
    pub(crate) dir: String,
    pub(crate) path: String,
}

/// Every file of a repository, as `/`-separated paths relative to its root, sorted.
///
/// Hidden directories and the [`SKIPPED_DIRECTORIES`] are left out, and so are symbolic links
/// to directories, which could loop. Names that are not UTF-8 cannot appear in an address or a
/// source list, so their files are left out too.
pub(crate) struct RepoFiles {
    files: Vec<String>,
}

impl RepoFiles {
    /// Lists the files under `root`.
    pub(crate) fn scan(root: &Path) -> Result<Self, BuildFileError> {
        let mut files = Vec::new();
        let mut pending = vec![String::new()];
        while let Some(dir) = pending.pop() {
            scan_directory(root, &dir, &mut files, &mut pending)?;
        }
        files.sort_unstable();
        Ok(Self { files })
    }

    /// The BUILD files, parents before children and `BUILD` before `BUILD.remex`.
    pub(crate) fn build_files(&self) -> Vec<BuildFilePath> {
        let mut found: Vec<BuildFilePath> = self
            .files
            .iter()
            .filter_map(|path| {
                let (dir, name) = split_parent(path);
                BUILD_FILE_NAMES.contains(&name).then(|| BuildFilePath {
                    dir: dir.to_owned(),
                    path: path.clone(),
                })
            })
            .collect();
        // Sorting by full path could put `a/0/BUILD` before `a/BUILD`; a directory is a prefix
        // of its children's, so sorting by directory first puts parents first.
        found.sort_by(|a, b| (&a.dir, &a.path).cmp(&(&b.dir, &b.path)));
        found
    }

    /// The files inside `dir`, at any depth, as paths relative to the repository root.
    pub(crate) fn under(&self, dir: &str) -> &[String] {
        if dir.is_empty() {
            return &self.files;
        }
        let prefix = format!("{dir}/");
        let start = self
            .files
            .partition_point(|path| path.as_str() < prefix.as_str());
        let len = self.files[start..].partition_point(|path| path.starts_with(&prefix));
        &self.files[start..start + len]
    }

    /// Whether the repository has this file.
    pub(crate) fn contains(&self, path: &str) -> bool {
        self.files
            .binary_search_by(|file| file.as_str().cmp(path))
            .is_ok()
    }
}

/// Splits `a/b/c` into `a/b` and `c`, and `c` into the empty directory and `c`.
pub(crate) fn split_parent(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Whether a file name is one of the [`BUILD_FILE_NAMES`].
pub(crate) fn is_build_file(path: &str) -> bool {
    BUILD_FILE_NAMES.contains(&split_parent(path).1)
}

/// Joins a directory relative to the repository root (empty for the root) and a name.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Adds the files of one directory to `files` and its subdirectories to `pending`.
fn scan_directory(
    root: &Path,
    dir: &str,
    files: &mut Vec<String>,
    pending: &mut Vec<String>,
) -> Result<(), BuildFileError> {
    let io_error = |source| BuildFileError::Io {
        path: PathBuf::from(if dir.is_empty() { "." } else { dir }),
        source,
    };
    for entry in fs::read_dir(root.join(dir)).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let file_type = entry.file_type().map_err(io_error)?;
        let path = join(dir, &name);
        if file_type.is_dir() {
            if !name.starts_with('.') && !SKIPPED_DIRECTORIES.contains(&name.as_str()) {
                pending.push(path);
            }
        } else if file_type.is_file() || is_link_to_file(&entry.path()) {
            files.push(path);
        }
    }
    Ok(())
}

/// Whether a path is a symbolic link to a regular file; broken links are not.
fn is_link_to_file(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|metadata| metadata.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(paths: &[&str]) -> RepoFiles {
        let mut files: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        files.sort();
        RepoFiles { files }
    }

    #[test]
    fn under_returns_only_the_directory_and_its_children() {
        let files = repo(&["a/x", "a-b/y", "a/b/z", "ab/w", "top"]);
        assert_eq!(files.under("a"), ["a/b/z", "a/x"]);
        assert_eq!(files.under("a/b"), ["a/b/z"]);
        assert_eq!(files.under("").len(), 5);
        assert!(files.under("missing").is_empty());
    }

    #[test]
    fn build_files_put_parents_before_children() {
        let files = repo(&["a/0/BUILD", "a/BUILD.remex", "a/BUILD", "BUILD", "a/x.py"]);
        let order: Vec<String> = files.build_files().into_iter().map(|b| b.path).collect();
        assert_eq!(order, ["BUILD", "a/BUILD", "a/BUILD.remex", "a/0/BUILD"]);
    }
}
