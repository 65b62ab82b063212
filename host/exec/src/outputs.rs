//! Collecting an action's declared outputs from its sandbox into the CAS.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use remex_proto::reapi;
use remex_store::{LocalStore, tree_of_directory};

use crate::command::{self, OutputField, OutputPath};
use crate::run::ExecError;

/// Stores each declared output that exists and records it in `result`. Paths are relative to
/// `workdir`; what does not exist is left out, as REAPI specifies. An output whose parent the
/// action replaced by a symlink out of `sandbox` is refused rather than read.
pub(crate) fn collect(
    store: &LocalStore,
    sandbox: &Path,
    workdir: &Path,
    outputs: &[OutputPath],
    result: &mut reapi::ActionResult,
) -> Result<(), ExecError> {
    let real_sandbox = sandbox
        .canonicalize()
        .map_err(ExecError::io("resolve", sandbox))?;
    for output in outputs {
        let path = &output.path;
        let full = workdir.join(path);
        match command::parent_is_inside(&full, &real_sandbox) {
            Some(true) => {}
            Some(false) => {
                let problem = "the action made it lead out of the sandbox through a symlink";
                return Err(command::invalid("output path", path, problem));
            }
            None => continue,
        }
        let metadata = match fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ExecError::io("inspect output", &full)(e)),
        };
        if metadata.is_symlink() {
            let target = fs::read_link(&full).map_err(ExecError::io("read symlink", &full))?;
            push_symlink(result, output, target.to_string_lossy().into_owned());
        } else if metadata.is_dir() {
            result
                .output_directories
                .push(collect_directory(store, &full, path)?);
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

/// Symlinks go in `output_symlinks`, and also in the older field matching where the output was
/// declared, for clients that read only that one.
fn push_symlink(result: &mut reapi::ActionResult, output: &OutputPath, target: String) {
    let symlink = reapi::OutputSymlink {
        path: output.path.clone(),
        target,
        node_properties: None,
    };
    match output.field {
        OutputField::Paths => {}
        OutputField::Files => result.output_file_symlinks.push(symlink.clone()),
        OutputField::Directories => result.output_directory_symlinks.push(symlink.clone()),
    }
    result.output_symlinks.push(symlink);
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
