//! The limits every call into a plugin runs under.

use std::time::Duration;

/// What one call into a plugin (`describe` at load, or one `plan`) may use. Going past any of
/// them fails that call with an error naming the plugin; the plugin stays usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginLimits {
    /// Wall-clock time for instantiating the plugin and running the call. Default: 5 s.
    pub deadline: Duration,
    /// Total linear memory of the plugin's instances. Default: 256 MiB.
    pub memory_bytes: usize,
    /// Size of the processes one `plan` returns: their text plus a small overhead per string.
    /// Default: 16 MiB. It is checked once the result is copied out of the plugin, a copy
    /// that the memory cap bounds.
    pub max_result_bytes: usize,
    /// Calls to the `remex:plugin/host` interface during one call. Default: 100 000.
    pub max_host_calls: u64,
    /// Size of one source file read with `read-source`. Default: 16 MiB.
    pub max_source_bytes: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(5),
            memory_bytes: 256 << 20,
            max_result_bytes: 16 << 20,
            max_host_calls: 100_000,
            max_source_bytes: 16 << 20,
        }
    }
}
