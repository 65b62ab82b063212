//! Constructors for what a plugin returns from `plan`.

use crate::{EnvVar, PlanError, Process};

impl Process {
    /// A process running `argv` in the input root, with no environment variables, inputs or
    /// outputs; set the public fields for the rest.
    pub fn new<I, S>(description: impl Into<String>, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            description: description.into(),
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            inputs: Vec::new(),
            output_files: Vec::new(),
            output_directories: Vec::new(),
            working_directory: String::new(),
            timeout_ms: None,
            platform: Vec::new(),
        }
    }
}

impl EnvVar {
    /// The environment variable `name=value`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl PlanError {
    /// A plan error with `message`: lowercase, names in backticks, and what to change.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl From<String> for PlanError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}
