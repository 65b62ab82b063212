//! What a policy is told about an action.

use std::time::Duration;

/// Everything a policy knows about one action: the target it belongs to, its environment,
/// and the fields of its REAPI `Action` and `Command`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionDescription {
    /// The address of the target the action belongs to, such as `//src/app:tests`.
    pub target: String,
    pub environment: ActionEnvironment,
    /// `Command.arguments`.
    pub argv: Vec<String>,
    /// `Command.environment_variables`, as (name, value), sorted by name.
    pub env: Vec<(String, String)>,
    /// `Action.platform`, as (name, value), sorted by name then value.
    pub platform: Vec<(String, String)>,
    /// `Command.working_directory`.
    pub working_directory: String,
    /// How many files the input root holds, and their total size in bytes.
    pub input_files: u64,
    pub input_bytes: u64,
    /// The declared output paths, relative to the working directory, sorted.
    pub output_paths: Vec<String>,
    /// `Action.timeout`, if set.
    pub timeout: Option<Duration>,
    /// The hash of the action's digest, in lowercase hex.
    pub action_hash: String,
    /// The size of the serialized `Action`.
    pub action_size_bytes: u64,
}

/// The environment an action's target runs in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionEnvironment {
    /// The environment's name, such as `__local__`.
    pub name: String,
    /// Whether it runs processes on a remote executor.
    pub remote: bool,
    /// Its own platform properties, as (name, value).
    pub platform: Vec<(String, String)>,
}
