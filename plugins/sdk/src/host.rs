//! What the host does for a plugin while it plans. Each call counts against the plugin's budget
//! of host calls; a plugin that loops on them is stopped.

pub use crate::bindings::remex::plugin::host::LogLevel;

use crate::bindings::remex::plugin::host as raw;

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

/// The contents of one of the target's own source files, named by its path relative to the
/// repository root as it appears in a sources field. Any other path is an error.
pub fn read_source(path: &str) -> Result<Vec<u8>, String> {
    raw::read_source(path)
}
