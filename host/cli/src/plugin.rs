//! `remex plugin`: install, list, describe and remove toolchain plugins kept in the local store,
//! and start a new one from a template.
//!
//! An installed plugin is `<store>/plugins/installed/NAME.wasm` beside `NAME.sha256`, the
//! SHA-256 of the component as installed; loading checks it, so a file changed since is refused
//! rather than run. Installing compiles the component into the same compile cache the runs
//! use, so the first run after it does not pay for compiling.

mod new;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use remex_plugin_host::{Plugin, PluginHost, PluginLimits, WIT_VERSION};
use sha2::{Digest, Sha256};

use crate::{GlobalArgs, UsageError};

#[derive(Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Check a plugin component, compile it, and install it for every run.
    Install {
        /// The component, a `.wasm` file built for `wasm32-wasip2`.
        file: PathBuf,
    },
    /// List the installed plugins.
    List,
    /// Show an installed plugin's version, hash and target kinds.
    Info {
        /// The plugin's name, as `list` shows it.
        name: String,
    },
    /// Uninstall a plugin.
    Remove {
        /// The plugin's name, as `list` shows it.
        name: String,
    },
    /// Write a new plugin crate, with one target kind and a unit test, ready to build.
    New(new::NewArgs),
}

pub fn run(global: &GlobalArgs, args: PluginArgs) -> anyhow::Result<ExitCode> {
    let store = store_dir(global);
    match args.command {
        PluginCommand::Install { file } => install(&store, &file),
        PluginCommand::List => list(&store),
        PluginCommand::Info { name } => info(&store, &name),
        PluginCommand::Remove { name } => remove(&store, &name),
        PluginCommand::New(args) => new::run(args),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// The local store: `--local-store-dir`, else `REMEX_LOCAL_STORE_DIR`, else the default.
///
/// `[GLOBAL].local_store_dir` in `remex.toml` is not read here: plugins are installed for the
/// user, not for one repository, and `remex digest` may run outside any repository.
pub(crate) fn store_dir(global: &GlobalArgs) -> PathBuf {
    let from_env = std::env::var_os("REMEX_LOCAL_STORE_DIR").map(PathBuf::from);
    global
        .local_store_dir
        .clone()
        .or(from_env)
        .unwrap_or_else(remex_options::default_store_dir)
}

fn installed_dir(store: &Path) -> PathBuf {
    store.join("plugins").join("installed")
}

fn host() -> anyhow::Result<PluginHost> {
    let compiled = remex_options::compiled_plugins_dir();
    Ok(PluginHost::new(PluginLimits::default(), Some(compiled))?)
}

fn install(store: &Path, file: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read `{}`", file.display()))
        .map_err(|e| UsageError(format!("{e:#}")))?;
    let plugin = host()?
        .load(&file.display().to_string(), &bytes)
        .map_err(|e| UsageError(e.to_string()))?;
    check_name(plugin.name())?;

    let dir = installed_dir(store);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let wasm = dir.join(format!("{}.wasm", plugin.name()));
    write_atomically(&wasm, &bytes)?;
    write_atomically(
        &dir.join(format!("{}.sha256", plugin.name())),
        sha256.as_bytes(),
    )?;

    println!(
        "installed `{}@{}` (sha256 {sha256}), providing {}",
        plugin.name(),
        plugin.version(),
        kind_names(&plugin)
    );
    Ok(())
}

/// A plugin's name becomes a file name, so it must be a plain one.
fn check_name(name: &str) -> anyhow::Result<()> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain && !name.is_empty() {
        return Ok(());
    }
    Err(UsageError(format!(
        "the plugin calls itself `{name}`; an installed plugin's name may hold only letters, \
         digits, `-` and `_`"
    ))
    .into())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("cannot write `{}`", path.display()))
}

fn list(store: &Path) -> anyhow::Result<()> {
    let installed = load_installed(store)?;
    if installed.is_empty() {
        println!("no plugins installed (remex:plugin@{WIT_VERSION})");
    }
    for plugin in installed {
        println!(
            "{}@{}  {}",
            plugin.name(),
            plugin.version(),
            kind_names(&plugin)
        );
    }
    Ok(())
}

fn info(store: &Path, name: &str) -> anyhow::Result<()> {
    let (path, bytes) = read_installed(store, name)?;
    let plugin = host()?
        .load(&path.display().to_string(), &bytes)
        .map_err(|e| UsageError(e.to_string()))?;
    println!("name: {}", plugin.name());
    println!("version: {}", plugin.version());
    println!("file: {}", path.display());
    println!("sha256: {}", hex::encode(Sha256::digest(&bytes)));
    for kind in plugin.kinds() {
        println!("kind `{}`: {}", kind.name, kind.help);
        for field in &kind.fields {
            let required = if field.required { ", required" } else { "" };
            println!("  {} ({}{required}): {}", field.name, field.ty, field.help);
        }
    }
    Ok(())
}

fn remove(store: &Path, name: &str) -> anyhow::Result<()> {
    let (path, _) = read_installed(store, name)?;
    std::fs::remove_file(&path).with_context(|| format!("cannot remove `{}`", path.display()))?;
    // The recorded hash means nothing without the component.
    let _ = std::fs::remove_file(path.with_extension("sha256"));
    println!("removed `{name}`");
    Ok(())
}

fn kind_names(plugin: &Plugin) -> String {
    let names: Vec<String> = plugin
        .kinds()
        .iter()
        .map(|k| format!("`{}`", k.name))
        .collect();
    names.join(", ")
}

/// The component of the installed plugin `name`, checked against its recorded hash.
fn read_installed(store: &Path, name: &str) -> anyhow::Result<(PathBuf, Vec<u8>)> {
    check_name(name)?;
    let path = installed_dir(store).join(format!("{name}.wasm"));
    if !path.is_file() {
        return Err(UsageError(format!(
            "no plugin `{name}` is installed; `remex plugin list` shows those that are"
        ))
        .into());
    }
    let bytes =
        std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let recorded = std::fs::read_to_string(path.with_extension("sha256")).unwrap_or_default();
    let actual = hex::encode(Sha256::digest(&bytes));
    if recorded.trim() != actual {
        return Err(UsageError(format!(
            "the installed plugin `{}` has changed since it was installed (sha256 {actual}, \
             recorded `{}`); install it again",
            path.display(),
            recorded.trim()
        ))
        .into());
    }
    Ok((path, bytes))
}

/// Every installed plugin's origin (its file) and component, hash-checked, by name.
pub fn installed_components(store: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let dir = installed_dir(store);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".wasm").map(str::to_owned))
        .collect();
    names.sort();
    names
        .iter()
        .map(|name| {
            let (path, bytes) = read_installed(store, name)?;
            Ok((path.display().to_string(), bytes))
        })
        .collect()
}

fn load_installed(store: &Path) -> anyhow::Result<Vec<Plugin>> {
    let host = host()?;
    installed_components(store)?
        .into_iter()
        .map(|(origin, bytes)| {
            host.load(&origin, &bytes)
                .map_err(|e| UsageError(e.to_string()).into())
        })
        .collect()
}
