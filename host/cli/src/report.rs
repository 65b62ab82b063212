//! What the user sees: one line per target, the output of failures, and a summary.

use std::sync::Arc;
use std::time::Duration;

use remex_client::ClientStats;

use crate::backend::Place;
use crate::runner::{TargetOutcome, TargetStatus};

/// Prints each outcome and the summary; returns whether every target passed.
pub fn print(
    outcomes: &[Arc<TargetOutcome>],
    remote: Option<ClientStats>,
    elapsed: Duration,
    verbose: bool,
) -> bool {
    for outcome in outcomes {
        print_target(outcome, verbose);
    }
    let passed = outcomes.iter().filter(|o| o.status.passed()).count();
    let failed = outcomes.len() - passed;
    let places = outcomes.iter().flat_map(|o| &o.actions).map(|a| a.place);
    let count = |place: Place| places.clone().filter(|p| *p == place).count();

    println!();
    println!(
        "{} targets: {passed} passed, {failed} failed",
        outcomes.len()
    );
    println!(
        "actions: {} local, {} remote, {} from the local cache, {} from the remote cache",
        count(Place::Local),
        count(Place::Remote),
        count(Place::LocalCache),
        count(Place::RemoteCache),
    );
    if let Some(stats) = remote {
        println!(
            "remote: {} uploaded, {} downloaded, {} retries",
            bytes(stats.bytes_uploaded),
            bytes(stats.bytes_downloaded),
            stats.retries
        );
    }
    println!("time: {:.2}s", elapsed.as_secs_f64());
    failed == 0
}

/// A byte count for people: `512 B`, `3.4 MiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn print_target(outcome: &TargetOutcome, verbose: bool) {
    let all_cached =
        !outcome.actions.is_empty() && outcome.actions.iter().all(|a| a.place.cached());
    let cached = match (outcome.actions.is_empty(), all_cached) {
        (true, _) => " (nothing to run)",
        (false, true) => " (cached)",
        (false, false) => "",
    };
    match &outcome.status {
        TargetStatus::Passed => println!("✓ {} passed{cached}", outcome.address),
        TargetStatus::Error(message) => println!("✗ {} error: {message}", outcome.address),
        TargetStatus::Skipped { dependency } => {
            println!(
                "- {} skipped: dependency {dependency} did not pass",
                outcome.address
            )
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
            let place = action.place.name();
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

/// The outcomes as one JSON document, for machines.
pub fn print_json(outcomes: &[Arc<TargetOutcome>], elapsed: Duration) {
    let targets: Vec<_> = outcomes.iter().map(|o| target_json(o)).collect();
    let document = serde_json::json!({
        "targets": targets,
        "passed": outcomes.iter().all(|o| o.status.passed()),
        "elapsed_seconds": elapsed.as_secs_f64(),
    });
    println!("{document:#}");
}

fn target_json(outcome: &TargetOutcome) -> serde_json::Value {
    let (status, detail) = match &outcome.status {
        TargetStatus::Passed => ("passed", serde_json::Value::Null),
        TargetStatus::Error(message) => ("error", serde_json::json!({ "message": message })),
        TargetStatus::Failed {
            reason,
            stdout,
            stderr,
        } => (
            "failed",
            serde_json::json!({ "reason": reason, "stdout": stdout, "stderr": stderr }),
        ),
        TargetStatus::Skipped { dependency } => (
            "skipped",
            serde_json::json!({ "dependency": dependency.to_string() }),
        ),
    };
    let actions: Vec<_> = outcome
        .actions
        .iter()
        .map(|a| {
            serde_json::json!({
                "description": a.description,
                "digest": a.digest.to_string(),
                "cached": a.place.cached(),
                "place": a.place.name(),
            })
        })
        .collect();
    serde_json::json!({
        "address": outcome.address.to_string(),
        "status": status,
        "detail": detail,
        "actions": actions,
    })
}
