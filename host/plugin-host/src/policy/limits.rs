//! The limits every policy evaluation runs under.

/// What one evaluation of a policy may use. Going past a limit denies the action, with the
/// limit named; the policy stays usable for the next action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLimits {
    /// Fuel for instantiating the policy and running `evaluate`; WebAssembly instructions cost
    /// about one unit each. Default: 50 000 000, several hundred times what the example
    /// policies need for an action with a hundred arguments and variables.
    pub fuel: u64,
    /// Linear memory of the policy's instance. Default: 64 MiB.
    pub memory_bytes: usize,
    /// Size of the reason a denial gives. Default: 4 KiB.
    pub max_reason_bytes: usize,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        Self {
            fuel: 50_000_000,
            memory_bytes: 64 << 20,
            max_reason_bytes: 4 << 10,
        }
    }
}
