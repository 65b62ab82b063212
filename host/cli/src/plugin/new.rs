//! `remex plugin new NAME`: a plugin crate with one target kind and a unit test, which builds
//! with one `cargo build --target wasm32-wasip2 --release` and installs with one
//! `remex plugin install`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::UsageError;

/// The SDK of the checkout this binary was built from; `--sdk` overrides it.
const DEFAULT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins/sdk");

const CARGO_TOML: &str = include_str!("template/Cargo.toml.in");
const LIB_RS: &str = include_str!("template/lib.rs.in");

#[derive(Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits and `-`, such as `hello`.
    name: String,
    /// Where to write the crate [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The SDK crate to depend on [default: the one remex was built with:
    /// `remex-plugin-sdk`, or `remex-policy-sdk` with `--policy`].
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
    /// Write a policy plugin, which approves or denies actions, instead of a toolchain.
    #[arg(long)]
    policy: bool,
}

const DEFAULT_POLICY_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins/policy-sdk");

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        return Err(UsageError(format!("`{}` already exists", dir.display())).into());
    }
    let default_sdk = if args.policy {
        DEFAULT_POLICY_SDK
    } else {
        DEFAULT_SDK
    };
    let sdk = args.sdk.unwrap_or_else(|| PathBuf::from(default_sdk));
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("cannot find the plugin SDK at `{}`", sdk.display()))
        .map_err(|e| UsageError(format!("{e:#}; pass `--sdk`")))?;
    if args.policy {
        return write_policy(&args.name, &dir, &sdk);
    }

    let snake = args.name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("{{", "\u{0}")
            .replace("}}", "\u{1}")
            .replace("{name}", &args.name)
            .replace("{kind}", &format!("{snake}_message"))
            .replace("{crate_file}", &format!("remex_plugin_{snake}"))
            .replace("{sdk}", &sdk.display().to_string())
            .replace('\u{0}', "{")
            .replace('\u{1}', "}")
    };
    write(&dir.join("Cargo.toml"), &fill(CARGO_TOML))?;
    write(&dir.join("src/lib.rs"), &fill(LIB_RS))?;
    write(&dir.join(".gitignore"), "/target\n")?;

    println!(
        "wrote the plugin `{}` in `{}`; next:",
        args.name,
        dir.display()
    );
    println!(
        "  cd {} && cargo build --target wasm32-wasip2 --release",
        dir.display()
    );
    println!("  remex plugin install target/wasm32-wasip2/release/remex_plugin_{snake}.wasm");
    Ok(())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let first_is_letter = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if first_is_letter && rest_ok && !name.ends_with('-') {
        return Ok(());
    }
    Err(UsageError(format!(
        "`{name}` cannot name a plugin; use lowercase letters, digits and `-`, starting with a \
         letter"
    ))
    .into())
}

fn write(path: &Path, content: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
    }
    std::fs::write(path, content).with_context(|| format!("cannot write `{}`", path.display()))
}

/// Writes a policy crate from the policy template.
fn write_policy(name: &str, dir: &Path, sdk: &Path) -> anyhow::Result<()> {
    let dependency = format!("{{ path = \"{}\" }}", sdk.display());
    for (path, content) in crate::policy::template::files(name, &dependency) {
        write(&dir.join(path), &content)?;
    }
    write(&dir.join(".gitignore"), "/target\n")?;
    let snake = name.replace('-', "_");
    println!("wrote the policy `{name}` in `{}`; next:", dir.display());
    println!("  cd {} && cargo build --release", dir.display());
    println!(
        "  then list `{}/target/wasm32-wasip2/release/{snake}.wasm` in `[policy] \
         plugins`",
        dir.display()
    );
    Ok(())
}
