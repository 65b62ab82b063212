//! Writing an input root from the CAS into a sandbox directory.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use remex_proto::reapi;
use remex_store::{Digest, LocalStore};

use crate::run::ExecError;

/// Writes the tree rooted at `root` into `dir`, which must exist and be empty.
pub(crate) fn materialize(store: &LocalStore, root: &Digest, dir: &Path) -> Result<(), ExecError> {
    let directory: reapi::Directory = store.read_message(root)?;
    for file in &directory.files {
        check_name(&file.name)?;
        let digest = Digest::from_proto_field(file.digest.as_ref())?;
        let target = dir.join(&file.name);
        write_file(store, &digest, &target, file.is_executable)?;
    }
    for link in &directory.symlinks {
        check_name(&link.name)?;
        let target = dir.join(&link.name);
        symlink(&link.target, &target).map_err(ExecError::io("create symlink", &target))?;
    }
    for child in &directory.directories {
        check_name(&child.name)?;
        let digest = Digest::from_proto_field(child.digest.as_ref())?;
        let target = dir.join(&child.name);
        fs::create_dir(&target).map_err(ExecError::io("create", &target))?;
        materialize(store, &digest, &target)?;
    }
    Ok(())
}

fn write_file(
    store: &LocalStore,
    digest: &Digest,
    target: &Path,
    is_executable: bool,
) -> Result<(), ExecError> {
    if digest.is_empty_blob() {
        fs::write(target, b"").map_err(ExecError::io("create", target))?;
    } else {
        if !store.contains(digest) {
            return Err(ExecError::MissingInput(*digest));
        }
        // A copy, not a hard link: the action may change its inputs, and must never be able to
        // change the store through them.
        fs::copy(store.blob_path(digest), target).map_err(ExecError::io("copy", target))?;
    }
    let mode = if is_executable { 0o755 } else { 0o644 };
    fs::set_permissions(target, fs::Permissions::from_mode(mode))
        .map_err(ExecError::io("chmod", target))
}

/// A name inside a `Directory` must be one path segment.
pub(crate) fn check_name(name: &str) -> Result<(), ExecError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(ExecError::BadAction(format!(
            "input root entry name `{name}` is not a single path segment"
        )));
    }
    Ok(())
}
