//! What a policy decided about an action.

use std::fmt;

/// A policy's decision on one action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The action may be looked up in the caches and run.
    Allow,
    /// The action must not run.
    Deny(Denial),
}

impl Decision {
    /// The denial, if the action was denied.
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Self::Allow => None,
            Self::Deny(denial) => Some(denial),
        }
    }
}

/// Which policy denied an action, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The policy's `name@version`.
    pub policy: String,
    pub cause: DenialCause,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            DenialCause::Denied(reason) => {
                write!(f, "denied by policy `{}`: {reason}", self.policy)
            }
            failure => write!(
                f,
                "denied because policy `{}` failed: {failure}",
                self.policy
            ),
        }
    }
}

impl std::error::Error for Denial {}

/// Why an action was denied: the policy's own reason, or how the policy failed. A policy that
/// fails denies the action (fail closed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DenialCause {
    /// The policy denied the action with this reason, control characters escaped.
    #[error("{0}")]
    Denied(String),

    /// The policy trapped: it panicked or hit a WebAssembly trap.
    #[error("it trapped: {0}")]
    Trap(String),

    /// The policy used all its fuel, as an endless loop does.
    #[error("it ran out of fuel after {fuel} units")]
    OutOfFuel { fuel: u64 },

    /// The policy tried to grow its memory past the cap.
    #[error("it tried to use more than {limit_bytes} bytes of memory")]
    MemoryLimit { limit_bytes: usize },

    /// The policy returned something that is not a decision: text that is not UTF-8, a
    /// denial with no reason, or a reason past the cap.
    #[error("it returned an invalid decision: {0}")]
    InvalidResult(String),
}
