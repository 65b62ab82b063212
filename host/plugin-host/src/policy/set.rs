//! The policies of one run, with their decisions memoized.

use std::collections::HashMap;
use std::sync::Mutex;

use super::decision::{Decision, Denial};
use super::description::ActionDescription;
use super::engine::Policy;

/// What a decision is memoized under. A policy is a pure function of the description, and
/// within a run the description is determined by the action digest (which covers the command,
/// platform, timeout and input root) together with the target and environment names (which it
/// does not).
#[derive(Clone, PartialEq, Eq, Hash)]
struct MemoKey {
    policy_hash: [u8; 32],
    action_hash: String,
    action_size_bytes: u64,
    target: String,
    environment: String,
}

/// The policies of a run, in the order configured, and every decision they made in it.
pub struct PolicySet {
    policies: Vec<Policy>,
    decisions: Mutex<HashMap<MemoKey, Decision>>,
}

impl PolicySet {
    /// A set of `policies`, evaluated in this order.
    pub fn new(policies: Vec<Policy>) -> Self {
        Self {
            policies,
            decisions: Mutex::default(),
        }
    }

    /// The policies, in order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Whether there are no policies, so that every action is allowed.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Every policy's decision on `action`, in order.
    pub fn decisions(&self, action: &ActionDescription) -> Vec<(&Policy, Decision)> {
        self.policies
            .iter()
            .map(|policy| (policy, self.decide(policy, action)))
            .collect()
    }

    /// The first denial of `action`, evaluating no policy after it; `None` when every policy
    /// allows it.
    pub fn first_denial(&self, action: &ActionDescription) -> Option<Denial> {
        self.policies
            .iter()
            .find_map(|policy| match self.decide(policy, action) {
                Decision::Allow => None,
                Decision::Deny(denial) => Some(denial),
            })
    }

    /// The decision memoized for `policy` and `action`, evaluating it the first time.
    fn decide(&self, policy: &Policy, action: &ActionDescription) -> Decision {
        let key = MemoKey {
            policy_hash: *policy.hash(),
            action_hash: action.action_hash.clone(),
            action_size_bytes: action.action_size_bytes,
            target: action.target.clone(),
            environment: action.environment.name.clone(),
        };
        if let Some(decision) = self.memo().get(&key) {
            return decision.clone();
        }
        // Evaluated without the lock: two threads asking at once both evaluate, and being
        // deterministic they store the same decision.
        let decision = policy.evaluate(action);
        self.memo().insert(key, decision.clone());
        decision
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, HashMap<MemoKey, Decision>> {
        // A panic while holding the lock cannot leave the map half-updated.
        self.decisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
