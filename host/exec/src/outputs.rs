//! Collecting an action's declared outputs from its sandbox into the CAS.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use remex_proto::reapi;
use remex_store::{LocalStore, tree_of_directory};

use crate::run::ExecError;

/// Stores each declared output path that exists and records it in `result`. Paths are relative to
/// `workdir`; what does not exist is left out, as REAPI specifies.
pub(crate) fn collect(
    store: &LocalStore,
    workdir: &Path,
    paths: &[String],
    result: &mut reapi::ActionResult,
) -> Result<(), ExecError> {
    for path in paths {
        let full = workdir.join(path);
        let metadata = match fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ExecError::io("inspect output", &full)(e)),
        };
        if metadata.is_symlink() {
            let target = fs::read_link(&full).map_err(ExecError::io("read symlink", &full))?;
            result.output_symlinks.push(reapi::OutputSymlink {
                path: path.clone(),
                target: target.to_string_lossy().into_owned(),
                node_properties: None,
            });
        } else if metadata.is_dir() {
            result.output_directories.push(collect_directory(store, &full, path)?);
        } else {
            let digest = store.put_file(&full)?;
            result.output_files.push(reapi::OutputFile {
                path: path.clone(),
                digest: Some(digest.to_proto()),
                is_executable: metadata.permissions().mode() & 0o111 != 0,
                contents: Default::default(),
                node_properties: None,
            });
        }
    }
    Ok(())
}

fn collect_directory(
    store: &LocalStore,
    full: &Path,
    path: &str,
) -> Result<reapi::OutputDirectory, ExecError> {
    let tree = tree_of_directory(full, &mut |file| {
        store
            .put_file(file)
            .map_err(|e| io::Error::other(e.to_string()))
    })
    .map_err(ExecError::io("collect output directory", full))?;
    for (_, bytes) in &tree.directories {
        store.put_bytes(bytes)?;
    }
    let tree_digest = store.put_message(&tree.to_tree_message())?;
    Ok(reapi::OutputDirectory {
        path: path.to_owned(),
        tree_digest: Some(tree_digest.to_proto()),
        is_topologically_sorted: false,
        root_directory_digest: Some(tree.root_digest.to_proto()),
    })
}
