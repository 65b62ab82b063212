//! Caps action timeouts: an action must set a timeout, of at most 15 minutes, so that no
//! action can hold an executor indefinitely.

#![no_std]

extern crate alloc;

use alloc::format;

use remex_policy_sdk::{ActionDescription, Decision, Policy};

/// The longest timeout allowed, in milliseconds.
const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;

struct MaxTimeout;

impl Policy for MaxTimeout {
    fn evaluate(action: ActionDescription) -> Decision {
        match action.timeout_ms {
            None => Decision::Deny(format!(
                "the action sets no timeout; set one of at most {} minutes",
                MAX_TIMEOUT_MS / 60_000
            )),
            Some(ms) if ms > MAX_TIMEOUT_MS => Decision::Deny(format!(
                "the action's timeout of {} s is longer than the {} minutes allowed",
                ms / 1000,
                MAX_TIMEOUT_MS / 60_000
            )),
            Some(_) => Decision::Allow,
        }
    }
}

remex_policy_sdk::export_policy!(MaxTimeout, "max-timeout");
