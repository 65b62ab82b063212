//! Writing the outputs of a successful build under `dist/`, all or nothing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use anyhow::Context;
use remex_store::{InputEntry, LocalStore};

/// Writes `outputs` (paths relative to the repository root) under `dist/`. Everything is first
/// written to a staging directory beside it and only then renamed into place, so an error
/// half-way leaves `dist/` as it was. Returns how many files were written.
pub fn write(
    repo_root: &Path,
    store: &LocalStore,
    outputs: &BTreeMap<String, InputEntry>,
) -> anyhow::Result<usize> {
    let staging = tempfile::Builder::new()
        .prefix(".remex-dist-")
        .tempdir_in(repo_root)
        .context("cannot create a staging directory for `dist/`")?;
    for (path, entry) in outputs {
        stage(store, &staging.path().join(path), entry)
            .with_context(|| format!("cannot write output `{path}`"))?;
    }

    let dist = repo_root.join("dist");
    for path in outputs.keys() {
        let target = dist.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        if target.is_dir() && !target.is_symlink() {
            fs::remove_dir_all(&target)?;
        }
        fs::rename(staging.path().join(path), &target)
            .with_context(|| format!("cannot move `{path}` into `dist/`"))?;
    }
    Ok(outputs.len())
}

fn stage(store: &LocalStore, path: &Path, entry: &InputEntry) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    match entry {
        InputEntry::File {
            digest,
            is_executable,
        } => {
            fs::write(path, store.read(digest)?)?;
            let mode = if *is_executable { 0o755 } else { 0o644 };
            fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
        }
        InputEntry::Symlink { target } => symlink(target, path)?,
        InputEntry::EmptyDirectory => fs::create_dir_all(path)?,
    }
    Ok(())
}
