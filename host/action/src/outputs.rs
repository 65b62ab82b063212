//! An action's outputs seen as inputs of the actions that depend on them.

use std::collections::BTreeMap;

use remex_proto::reapi;
use remex_store::{Digest, InputEntry, LocalStore};

use crate::ActionError;

/// The outputs recorded in `result`, as input-root entries keyed by their path from the input
/// root (`working_directory` joined with each output path). Output directories are expanded
/// from their `Tree` message, which must be in `store`; file contents need not be, they are
/// passed on by digest.
pub fn output_entries(
    result: &reapi::ActionResult,
    working_directory: &str,
    store: &LocalStore,
) -> Result<BTreeMap<String, InputEntry>, ActionError> {
    let at = |path: &str| join(working_directory, path);
    let mut entries = BTreeMap::new();
    for file in &result.output_files {
        let digest = Digest::from_proto_field(file.digest.as_ref())
            .map_err(|e| ActionError::BadResult(e.to_string()))?;
        let entry = InputEntry::File {
            digest,
            is_executable: file.is_executable,
        };
        entries.insert(at(&file.path), entry);
    }
    for link in result
        .output_symlinks
        .iter()
        .chain(&result.output_file_symlinks)
    {
        let entry = InputEntry::Symlink {
            target: link.target.clone(),
        };
        entries.insert(at(&link.path), entry);
    }
    for directory in &result.output_directories {
        let digest = Digest::from_proto_field(directory.tree_digest.as_ref())
            .map_err(|e| ActionError::BadResult(e.to_string()))?;
        let tree: reapi::Tree = store.read_message(&digest)?;
        expand_tree(&tree, &at(&directory.path), &mut entries)?;
    }
    Ok(entries)
}

fn join(dir: &str, path: &str) -> String {
    if dir.is_empty() {
        path.to_owned()
    } else {
        format!("{dir}/{path}")
    }
}

fn expand_tree(
    tree: &reapi::Tree,
    prefix: &str,
    entries: &mut BTreeMap<String, InputEntry>,
) -> Result<(), ActionError> {
    let children: BTreeMap<Digest, &reapi::Directory> = tree
        .children
        .iter()
        .map(|child| (Digest::of_message(child).0, child))
        .collect();
    let root = tree.root.clone().unwrap_or_default();
    expand_directory(&root, prefix, &children, entries)
}

fn expand_directory(
    directory: &reapi::Directory,
    prefix: &str,
    children: &BTreeMap<Digest, &reapi::Directory>,
    entries: &mut BTreeMap<String, InputEntry>,
) -> Result<(), ActionError> {
    let bad = |what: String| ActionError::BadResult(what);
    if directory.files.is_empty()
        && directory.directories.is_empty()
        && directory.symlinks.is_empty()
    {
        entries.insert(prefix.to_owned(), InputEntry::EmptyDirectory);
    }
    for file in &directory.files {
        let digest =
            Digest::from_proto_field(file.digest.as_ref()).map_err(|e| bad(e.to_string()))?;
        let entry = InputEntry::File {
            digest,
            is_executable: file.is_executable,
        };
        entries.insert(join(prefix, &file.name), entry);
    }
    for link in &directory.symlinks {
        let entry = InputEntry::Symlink {
            target: link.target.clone(),
        };
        entries.insert(join(prefix, &link.name), entry);
    }
    for child in &directory.directories {
        let digest =
            Digest::from_proto_field(child.digest.as_ref()).map_err(|e| bad(e.to_string()))?;
        let message = children
            .get(&digest)
            .ok_or_else(|| bad(format!("output tree lacks directory {digest}")))?;
        expand_directory(message, &join(prefix, &child.name), children, entries)?;
    }
    Ok(())
}
