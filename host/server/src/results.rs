//! The blobs an `ActionResult` refers to, for checking that a cached result is usable and that
//! an uploaded one is complete: output files, output directories' `Tree`s and every file in
//! them, and the stdout and stderr streams.

use prost::Message;
use remex_proto::reapi;
use remex_store::{Digest, LocalStore};
use tonic::Status;

use crate::status;

/// The referenced blobs that are not in the store. Digests that do not parse and `Tree`s that
/// do not decode are `INVALID_ARGUMENT`, naming the output.
pub(crate) fn missing_blobs(
    store: &LocalStore,
    result: &reapi::ActionResult,
) -> Result<Vec<Digest>, Status> {
    let mut missing = Vec::new();
    let mut note = |digest: Digest| {
        if !store.contains(&digest) && !missing.contains(&digest) {
            missing.push(digest);
        }
    };
    for file in &result.output_files {
        note(parse(&file.path, file.digest.as_ref())?);
    }
    let streams = [
        ("stdout_digest", &result.stdout_digest),
        ("stderr_digest", &result.stderr_digest),
    ];
    for (field, digest) in streams {
        if let Some(digest) = digest {
            note(Digest::from_proto(digest).map_err(|e| status::bad_digest(field, e))?);
        }
    }
    for directory in &result.output_directories {
        let tree_digest = parse(&directory.path, directory.tree_digest.as_ref())?;
        if !store.contains(&tree_digest) {
            note(tree_digest);
            continue;
        }
        for digest in files_of_tree(store, &directory.path, &tree_digest)? {
            note(digest);
        }
    }
    Ok(missing)
}

fn files_of_tree(store: &LocalStore, path: &str, digest: &Digest) -> Result<Vec<Digest>, Status> {
    let bytes = store.read(digest).map_err(status::from_store)?;
    let tree = reapi::Tree::decode(bytes.as_slice()).map_err(|e| {
        Status::invalid_argument(format!("output directory `{path}`: tree {digest}: {e}"))
    })?;
    let mut digests = Vec::new();
    for directory in tree.root.iter().chain(&tree.children) {
        for file in &directory.files {
            digests.push(parse(path, file.digest.as_ref())?);
        }
    }
    Ok(digests)
}

fn parse(path: &str, digest: Option<&reapi::Digest>) -> Result<Digest, Status> {
    Digest::from_proto_field(digest)
        .map_err(|e| Status::invalid_argument(format!("output `{path}`: invalid digest: {e}")))
}
