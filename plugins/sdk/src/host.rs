//! What the host does for a plugin while it plans. Each call counts against the plugin's budget
//! of host calls; a plugin that loops on them is stopped.
//!
//! Built for anything but WebAssembly (as `cargo test` on the author's machine builds a
//! plugin's unit tests), these functions answer from the [`crate::testing::FakeHost`] installed
//! on the calling thread instead, so a plugin's `plan` can be tested without remex.

pub use crate::bindings::remex::plugin::host::{LogLevel, ProbeResult};

#[cfg(target_family = "wasm")]
use crate::bindings::remex::plugin::host as raw;
#[cfg(not(target_family = "wasm"))]
use crate::testing::fake as raw;

use crate::EnvVar;

/// Logs `message` under the plugin's name and the target being planned.
pub fn log(level: LogLevel, message: &str) {
    raw::log(level, message);
}

/// The absolute path of the first executable named `name` in the directories of `search_path`,
/// looked up in the environment of the target being planned. The entry `<PATH>` stands for that
/// environment's `PATH`.
pub fn find_binary(name: &str, search_path: &[String]) -> Option<String> {
    raw::find_binary(name, search_path)
}

/// Runs a probe process in the environment of the target being planned: `argv` starts with an
/// absolute path (from [`find_binary`]), and the process sees only the variables in `env`.
/// Results are cached for the run per environment, `argv` and `env`. An `Err` means the probe
/// could not run at all; a probe that ran and failed has a non-zero `exit_code`.
pub fn run_probe(argv: &[String], env: &[EnvVar]) -> Result<ProbeResult, String> {
    raw::run_probe(argv, env)
}

/// The contents of one of the target's own source files, named by its path relative to the
/// repository root as it appears in a sources field. Any other path is an error.
pub fn read_source(path: &str) -> Result<Vec<u8>, String> {
    raw::read_source(path)
}
