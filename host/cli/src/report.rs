//! What the user sees: one line per target, the output of failures, and a summary.

use std::sync::Arc;
use std::time::Duration;

use crate::runner::{TargetOutcome, TargetStatus};

/// Prints each outcome and the summary; returns whether every target passed.
pub fn print(outcomes: &[Arc<TargetOutcome>], elapsed: Duration, verbose: bool) -> bool {
    for outcome in outcomes {
        print_target(outcome, verbose);
    }
    let passed = outcomes
        .iter()
        .filter(|o| o.status.passed())
        .count();
    let failed = outcomes.len() - passed;
    let actions: usize = outcomes.iter().map(|o| o.actions.len()).sum();
    let cached = outcomes
        .iter()
        .flat_map(|o| &o.actions)
        .filter(|a| a.cached)
        .count();
    println!();
    println!(
        "{} targets: {passed} passed, {failed} failed; {actions} actions: {} ran, {cached} cached; {:.2}s",
        outcomes.len(),
        actions - cached,
        elapsed.as_secs_f64()
    );
    failed == 0
}

fn print_target(outcome: &TargetOutcome, verbose: bool) {
    let all_cached = !outcome.actions.is_empty() && outcome.actions.iter().all(|a| a.cached);
    let cached = if all_cached { " (cached)" } else { "" };
    match &outcome.status {
        TargetStatus::Passed => println!("✓ {} passed{cached}", outcome.address),
        TargetStatus::Error(message) => println!("✗ {} error: {message}", outcome.address),
        TargetStatus::Skipped { dependency } => {
            println!("- {} skipped: dependency {dependency} did not pass", outcome.address)
        }
        TargetStatus::Failed {
            reason,
            stdout,
            stderr,
        } => {
            println!("✗ {} failed: {reason}{cached}", outcome.address);
            print_stream("stdout", stdout);
            print_stream("stderr", stderr);
        }
    }
    if verbose {
        for action in &outcome.actions {
            let place = if action.cached { "cache" } else { "local" };
            println!("    {} {} [{place}]", action.digest, action.description);
        }
    }
}

fn print_stream(name: &str, text: &str) {
    if text.is_empty() {
        return;
    }
    println!("  {name}:");
    for line in text.lines() {
        println!("    {line}");
    }
}
