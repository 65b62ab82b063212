//! Names this build of the plugin host for the plan memo: a hash of every source that decides
//! what a plugin sees and what its plans turn into (this crate, the model types, the WIT files)
//! and of `Cargo.lock` (wasmtime and wasmtime-wasi make the sandbox). A memo written by another
//! build is then never read, whatever the crate's version says.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::Hasher;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let crate_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or("no manifest")?);
    let workspace = crate_dir.join("../..");
    let inputs = [
        crate_dir.join("src"),
        crate_dir.join("Cargo.toml"),
        workspace.join("host/model/src"),
        workspace.join("wit"),
        workspace.join("Cargo.lock"),
    ];
    let mut files = Vec::new();
    for input in &inputs {
        println!("cargo:rerun-if-changed={}", input.display());
        collect(input, &mut files)?;
    }
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in &files {
        let relative = file.strip_prefix(&workspace).unwrap_or(file);
        hasher.write(relative.as_os_str().as_encoded_bytes());
        hasher.write(&fs::read(file)?);
    }
    println!(
        "cargo:rustc-env=REMEX_PLUGIN_HOST_BUILD={:016x}",
        hasher.finish()
    );
    Ok(())
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        for entry in fs::read_dir(path)? {
            collect(&entry?.path(), files)?;
        }
    } else if path.is_file() {
        files.push(path.to_owned());
    }
    Ok(())
}
