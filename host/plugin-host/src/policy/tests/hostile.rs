//! Hostile policies: each misbehaviour is refused at load or contained, and fails closed.

use std::time::{Duration, Instant};

use super::{ENGINE, action, load_with, read, test_policy_path};
use crate::policy::{
    ActionDescription, Decision, DenialCause, Policy, PolicyEngine, PolicyError, PolicyLimits,
    PolicySet,
};

fn hostile() -> Policy {
    load_with(&ENGINE, &test_policy_path("remex_policy_testing_hostile"))
}

/// An action asking the hostile policy for `behavior`.
fn asking(behavior: &str) -> ActionDescription {
    let mut action = action();
    action.argv = vec![behavior.to_owned()];
    action
}

/// How the hostile policy failed on `behavior`, and how long it took.
fn failure(policy: &Policy, behavior: &str) -> (DenialCause, Duration) {
    let start = Instant::now();
    let decision = policy.evaluate(&asking(behavior));
    let elapsed = start.elapsed();
    match decision {
        Decision::Deny(denial) => {
            assert_eq!(denial.policy, "hostile@0.1.0");
            (denial.cause, elapsed)
        }
        Decision::Allow => panic!("`{behavior}` was allowed"),
    }
}

/// After any misbehaviour the same policy still decides a well-behaved action.
fn assert_still_works(policy: &Policy) {
    assert_eq!(policy.evaluate(&asking("allow")), Decision::Allow);
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let policy = hostile();
    let (cause, elapsed) = failure(&policy, "loop");
    assert_eq!(cause, DenialCause::OutOfFuel { fuel: 50_000_000 });
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_still_works(&policy);
}

#[test]
fn running_out_of_fuel_is_deterministic() {
    let engine = PolicyEngine::new(
        PolicyLimits {
            fuel: 1_000_000,
            ..PolicyLimits::default()
        },
        None,
    )
    .expect("engine");
    let policy = load_with(&engine, &test_policy_path("remex_policy_testing_hostile"));
    let fuel_used: Vec<u64> = (0..3)
        .map(|_| policy.evaluate_metered(&asking("loop")).1)
        .collect();
    assert_eq!(fuel_used, [1_000_000; 3]);
    let (_, allow_fuel) = policy.evaluate_metered(&asking("allow"));
    assert_eq!(policy.evaluate_metered(&asking("allow")).1, allow_fuel);
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let policy = hostile();
    let (cause, _) = failure(&policy, "alloc");
    assert_eq!(
        cause,
        DenialCause::MemoryLimit {
            limit_bytes: 64 << 20
        }
    );
    assert_still_works(&policy);
}

#[test]
fn a_trap_denies() {
    let policy = hostile();
    let (cause, _) = failure(&policy, "trap");
    assert!(
        matches!(&cause, DenialCause::Trap(reason) if reason.contains("unreachable")),
        "{cause:?}"
    );
    assert_still_works(&policy);
}

#[test]
fn text_that_is_not_utf8_denies() {
    let policy = hostile();
    let (cause, _) = failure(&policy, "invalid-utf8");
    assert!(
        matches!(&cause, DenialCause::InvalidResult(why) if why.contains("utf-8")),
        "{cause:?}"
    );
    assert_still_works(&policy);
}

#[test]
fn a_reason_past_the_cap_denies_as_invalid() {
    let (cause, _) = failure(&hostile(), "long-reason");
    assert_eq!(
        cause,
        DenialCause::InvalidResult(
            "a reason of 1048576 bytes, more than the cap of 4096".to_owned()
        )
    );
}

#[test]
fn control_characters_in_a_reason_are_escaped() {
    let (cause, _) = failure(&hostile(), "escape");
    assert_eq!(
        cause,
        DenialCause::Denied("red \\u{1b}[31malert\\u{1b}[0m\\nsecond line".to_owned())
    );
}

#[test]
fn a_policy_never_sees_a_second_call() {
    let policy = hostile();
    for _ in 0..3 {
        let (cause, _) = failure(&policy, "flip");
        assert_eq!(cause, DenialCause::Denied("first call".to_owned()));
    }
    // Nor through a set, whose memo would hide a second evaluation: use distinct actions.
    let set = PolicySet::new(vec![hostile()]);
    for n in 0..3 {
        let mut action = asking("flip");
        action.action_hash = format!("{n:064}");
        assert!(
            set.first_denial(&action).is_some(),
            "evaluation {n} allowed"
        );
    }
}

#[test]
fn a_policy_importing_wasi_is_refused_at_load() {
    let path = test_policy_path("remex_policy_testing_wasi");
    let err = ENGINE.load("policy-wasi.wasm", &read(&path)).err();
    let Some(PolicyError::Imports {
        policy, imports, ..
    }) = &err
    else {
        panic!("expected an import error, got {err:?}");
    };
    assert!(policy.starts_with("policy-wasi@sha256:"), "{policy}");
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:cli/environment@")),
        "{imports:?}"
    );
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("imports `wasi:"), "{message}");
}

#[test]
fn decisions_are_memoized_per_policy_and_action() {
    let set = PolicySet::new(vec![hostile()]);
    let action = asking("loop");
    let start = Instant::now();
    let first = set.first_denial(&action);
    let first_took = start.elapsed();
    let start = Instant::now();
    let second = set.first_denial(&action);
    let second_took = start.elapsed();
    assert_eq!(first, second);
    assert!(
        second_took * 10 < first_took,
        "memoized {second_took:?}, evaluated {first_took:?}"
    );
}
