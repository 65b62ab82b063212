//! The limits every call into a plugin runs under.

use std::time::Duration;

use wasmtime::ResourceLimiter;

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

/// Caps the total memory of one store's instances and notes when the cap was hit, so that the
/// trap that follows is reported as the memory limit; also caps table sizes.
pub(crate) struct MemoryLimiter {
    limit_bytes: usize,
    in_use_bytes: usize,
    max_table_elements: usize,
    pub(crate) exceeded: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limit_bytes: usize, max_table_elements: usize) -> Self {
        Self {
            limit_bytes,
            in_use_bytes: 0,
            max_table_elements,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .in_use_bytes
            .saturating_add(desired.saturating_sub(current));
        if total > self.limit_bytes {
            // Trapping at once, rather than failing the grow, gives one clear error instead
            // of whatever the guest's allocator does when memory runs out.
            self.exceeded = true;
            wasmtime::bail!("memory cap of {} bytes reached", self.limit_bytes);
        }
        self.in_use_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}
