//! Plugin failures, each naming the plugin and, while planning, the target.

use std::fmt;
use std::time::Duration;

/// A boxed source error, for wasmtime's errors (which do not implement `std::error::Error`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Which plugin failed, and which target it was planning: the subject of every
/// [`PluginError`] message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSite {
    /// `name@version`, or where the plugin came from (a path, `bundled:shell`) when it failed
    /// before saying its name.
    pub plugin: String,
    /// The address of the target being planned, if any.
    pub target: Option<String>,
}

impl fmt::Display for CallSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin `{}`", self.plugin)?;
        if let Some(target) = &self.target {
            write!(f, " planning `{target}`")?;
        }
        Ok(())
    }
}

/// Why loading a plugin or calling it failed.
///
/// The plugin's own verdict on a target ([`PluginError::Plan`]) is kept apart from the plugin
/// failing ([`PluginError::Trap`] and the limits): the first is the user's to fix, the others
/// the plugin author's.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The wasmtime engine could not be configured.
    #[error("cannot start the plugin engine")]
    Engine {
        #[source]
        source: BoxError,
    },

    /// The bytes are not a valid WebAssembly component, or could not be compiled.
    #[error("cannot compile plugin `{origin}`")]
    Compile {
        origin: String,
        #[source]
        source: BoxError,
    },

    /// The component does not fit the `remex:plugin/toolchain` world: it imports something the
    /// host does not offer, or lacks an export.
    #[error("plugin `{origin}` is not a `remex:plugin/toolchain@0.1.0` component")]
    IncompatibleWorld {
        origin: String,
        #[source]
        source: BoxError,
    },

    /// The component was built for a version of the `remex:plugin` WIT package that this host
    /// does not implement.
    #[error(
        "plugin `{origin}` was built for `remex:plugin@{found}`, but this remex supports \
         `remex:plugin@{supported}`; rebuild it against that version"
    )]
    IncompatibleVersion {
        origin: String,
        found: String,
        supported: String,
    },

    /// The plugin returned something malformed: an unusable description, or processes that
    /// contradict themselves.
    #[error("{site} returned an invalid result: {why}")]
    InvalidResult { site: CallSite, why: String },

    /// The target's kind is not one the plugin described.
    #[error("{site}: the plugin does not provide the target kind `{kind}`")]
    UnknownKind { site: CallSite, kind: String },

    /// The plugin trapped: it panicked, exited, or hit a WebAssembly trap.
    #[error("{site} trapped: {reason}{}", stderr_suffix(stderr))]
    Trap {
        site: CallSite,
        reason: String,
        /// The end of what the plugin wrote to stderr, such as a panic message.
        stderr: String,
        /// Where in the plugin it trapped, when wasmtime recorded it; for plugin authors, so
        /// not part of the message.
        backtrace: Option<String>,
    },

    /// The plugin ran past its deadline.
    #[error("{site} ran past its deadline of {deadline:?}")]
    DeadlineExceeded { site: CallSite, deadline: Duration },

    /// The plugin tried to grow its memory past the cap.
    #[error("{site} tried to use more than {limit_bytes} bytes of memory")]
    MemoryLimit { site: CallSite, limit_bytes: usize },

    /// The plugin returned more than the cap on the size of its result.
    #[error("{site} returned {size_bytes} bytes of processes, more than the cap of {limit_bytes}")]
    ResultTooLarge {
        site: CallSite,
        size_bytes: usize,
        limit_bytes: usize,
    },

    /// The plugin called the host more often than allowed in one call.
    #[error("{site} made more than {limit} calls to the host")]
    TooManyHostCalls { site: CallSite, limit: u64 },

    /// The plugin declined to plan the target, with its reason (`plan-error` in WIT).
    #[error("{site}: {message}")]
    Plan { site: CallSite, message: String },
}

impl PluginError {
    /// The plugin and target the error is about, when the plugin got as far as being called.
    pub fn site(&self) -> Option<&CallSite> {
        match self {
            Self::Engine { .. }
            | Self::Compile { .. }
            | Self::IncompatibleWorld { .. }
            | Self::IncompatibleVersion { .. } => None,
            Self::InvalidResult { site, .. }
            | Self::UnknownKind { site, .. }
            | Self::Trap { site, .. }
            | Self::DeadlineExceeded { site, .. }
            | Self::MemoryLimit { site, .. }
            | Self::ResultTooLarge { site, .. }
            | Self::TooManyHostCalls { site, .. }
            | Self::Plan { site, .. } => Some(site),
        }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; its stderr ends with:\n{stderr}")
    }
}

/// Boxes a wasmtime error as a source, keeping its chain.
pub(crate) fn boxed(error: wasmtime::Error) -> BoxError {
    error.into_boxed_dyn_error()
}
