//! `remex digest PATH`: the root digest of a directory taken as an input root.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct DigestArgs {
    /// The directory to digest.
    path: PathBuf,
}

pub fn run(args: DigestArgs) -> anyhow::Result<ExitCode> {
    let tree = remex_store::digest_directory_on_disk(&args.path)
        .with_context(|| format!("cannot digest `{}`", args.path.display()))?;
    println!("{}", tree.root_digest);
    Ok(ExitCode::SUCCESS)
}
