//! `remex digest PATH`: the root digest of a directory taken as an input root.
//!
//! The digests of the files read are remembered in the local store (`file-digests`), so that a
//! later run on an unchanged tree reads no file again, only their metadata.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use remex_store::FileDigests;

use crate::GlobalArgs;

#[derive(Args)]
pub struct DigestArgs {
    /// The directory to digest.
    path: PathBuf,
}

pub fn run(global: &GlobalArgs, args: DigestArgs) -> anyhow::Result<ExitCode> {
    let cache = FileDigests::open(&crate::plugin::store_dir(global));
    let tree = remex_store::digest_directory_cached(&args.path, &cache)
        .with_context(|| format!("cannot digest `{}`", args.path.display()))?;
    println!("{}", tree.root_digest);
    // The digest is right either way; an unsaved cache only makes the next run slower.
    if let Err(error) = cache.save() {
        tracing::warn!(%error, "file digests not saved");
    }
    Ok(ExitCode::SUCCESS)
}
