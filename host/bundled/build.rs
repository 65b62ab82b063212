//! Builds the `plugins/` workspace for `wasm32-wasip2` with a nested `cargo build --release` and
//! copies the components into `OUT_DIR`, so a plain `cargo build` of the host also builds the
//! plugins it embeds and the test plugins its tests load.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

/// Components copied next to the generated code: (file built by cargo, name in `OUT_DIR`).
const BUNDLED: &[(&str, &str)] = &[
    ("remex_plugin_shell.wasm", "shell.wasm"),
    ("remex_plugin_python.wasm", "python.wasm"),
    ("remex_plugin_protobuf.wasm", "protobuf.wasm"),
];

/// Test components, built but never embedded; copied to `OUT_DIR/test-plugins`.
const TEST_PLUGINS: &[&str] = &[
    "remex_plugin_testing_hostile.wasm",
    "remex_plugin_testing_future_wit.wasm",
    "remex_policy_testing_hostile.wasm",
    "remex_policy_testing_wasi.wasm",
];

/// The example policies, copied to `OUT_DIR/policies`: (file built by cargo, name there).
const POLICIES: &[(&str, &str)] = &[
    ("remex_policy_no_network.wasm", "no-network.wasm"),
    (
        "remex_policy_container_images.wasm",
        "container-images.wasm",
    ),
    ("remex_policy_max_timeout.wasm", "max-timeout.wasm"),
    ("remex_policy_no_secrets.wasm", "no-secrets.wasm"),
];

/// Variables the outer cargo sets, or a user sets for the host build, that would change or
/// break the nested build: host rustflags, a shared target directory (whose lock the outer
/// build holds), the outer jobserver, wrappers, and per-package metadata.
const SCRUBBED_VARS: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
    "RUSTC_LINKER",
];

/// Prefixes of variables scrubbed for the same reasons: host `cfg`s and features, package
/// metadata, and profile overrides meant for the host build.
const SCRUBBED_PREFIXES: &[&str] = &[
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "CARGO_PROFILE_",
];

fn main() {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env_var("OUT_DIR"));
    let plugins_dir = manifest_dir.join("../../plugins");
    let wit_dir = manifest_dir.join("../../wit");

    rerun_if_changed(&plugins_dir, &wit_dir);
    check_wasm_target();

    let target_dir = nested_target_dir(&out_dir);
    build_plugins(&plugins_dir, &target_dir);

    let built = target_dir.join(WASM_TARGET).join("release");
    for (file, name) in BUNDLED {
        copy(&built.join(file), &out_dir.join(name));
    }
    let test_dir = out_dir.join("test-plugins");
    create_dir(&test_dir);
    for file in TEST_PLUGINS {
        copy(&built.join(file), &test_dir.join(file));
    }
    let policies_dir = out_dir.join("policies");
    create_dir(&policies_dir);
    for (file, name) in POLICIES {
        copy(&built.join(file), &policies_dir.join(name));
    }
}

fn env_var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("cargo did not set `{name}` for the build script"))
}

/// Watches what the components are built from: every entry of `plugins/` except its own
/// `target/` (which a plugin author's builds keep changing), and the WIT package.
fn rerun_if_changed(plugins_dir: &Path, wit_dir: &Path) {
    let entries = fs::read_dir(plugins_dir)
        .unwrap_or_else(|err| panic!("cannot list `{}`: {err}", plugins_dir.display()));
    for entry in entries.flatten() {
        if entry.file_name() != "target" {
            println!("cargo::rerun-if-changed={}", entry.path().display());
        }
    }
    println!("cargo::rerun-if-changed={}", wit_dir.display());
}

/// Fails early, with the command that fixes it, when the toolchain has no `wasm32-wasip2`
/// standard library; the nested build's own error would bury this under a page of output.
fn check_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .unwrap_or_else(|err| panic!("cannot run `{}`: {err}", rustc.to_string_lossy()));
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let target_lib = Path::new(&sysroot).join("lib/rustlib").join(WASM_TARGET);
    if !target_lib.is_dir() {
        panic!(
            "the `{WASM_TARGET}` target is not installed for the toolchain at `{sysroot}`, and \
             remex's bundled plugins are built for it; run `rustup target add {WASM_TARGET}`"
        );
    }
}

/// A target directory of its own beside the host's profile directories (such as
/// `target/plugins-wasm`), so the nested cargo never waits for the lock the outer build holds,
/// and debug and release host builds share one plugin build.
fn nested_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is `<profile dir>/build/<package>-<hash>/out`.
    let build_dir = out_dir.ancestors().find(|dir| dir.ends_with("build"));
    match build_dir.and_then(Path::parent).and_then(Path::parent) {
        Some(root) => root.join("plugins-wasm"),
        None => out_dir.join("plugins-wasm"),
    }
}

fn build_plugins(plugins_dir: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command
        .current_dir(plugins_dir)
        .args(["build", "--release", "--workspace", "--target", WASM_TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    if let Ok(jobs) = env::var("NUM_JOBS") {
        command.args(["--jobs", &jobs]);
    }
    scrub_env(&mut command);

    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run cargo to build `plugins/`: {err}"));
    if !output.status.success() {
        panic!(
            "building `plugins/` for `{WASM_TARGET}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn scrub_env(command: &mut Command) {
    for name in SCRUBBED_VARS {
        command.env_remove(name);
    }
    for (name, _) in env::vars_os() {
        let name_text = name.to_string_lossy();
        if SCRUBBED_PREFIXES.iter().any(|p| name_text.starts_with(p)) {
            command.env_remove(&name);
        }
    }
}

fn create_dir(dir: &Path) {
    fs::create_dir_all(dir)
        .unwrap_or_else(|err| panic!("cannot create `{}`: {err}", dir.display()));
}

fn copy(from: &Path, to: &Path) {
    fs::copy(from, to).unwrap_or_else(|err| {
        panic!(
            "cannot copy `{}` to `{}`: {err}",
            from.display(),
            to.display()
        )
    });
}
