//! `plan`: runs `host/plugin-host/examples/plan_python` (built by `bench/run.sh`), which plans
//! python targets with the bundled plugin beside an empty plugin call, and takes its medians.

use std::process::Command;

use anyhow::Context;

use crate::Settings;
use crate::machine::Limits;
use crate::measure::median;
use crate::report::{Row, Verdict};

pub fn run(settings: &Settings, _: &Limits) -> anyhow::Result<Vec<Row>> {
    let count = settings.sizes.plan_targets;
    let mut empty = Vec::new();
    let mut tests = Vec::new();
    let mut remembered = Vec::new();
    for rep in 0..=settings.reps {
        let (e, t, r) = plan_once(settings, count)?;
        eprintln!("plan rep {rep}: empty {e:.1} µs, python_tests {t:.1} µs, remembered {r:.1} µs");
        if rep > 0 {
            empty.push(e);
            tests.push(t);
            remembered.push(r);
        }
    }
    let (empty, tests, remembered) = (median(&empty), median(&tests), median(&remembered));
    let workload = format!("{count} `python_tests` targets, bundled python plugin");
    Ok(vec![
        Row::new("plan", "plan per target", &workload)
            .value(format!("{tests:.1} µs"))
            .ratio(tests / empty, "of an empty plugin call")
            .target("< 50 µs", Verdict::of(tests < 50.0)),
        Row::new("plan", "empty plugin call (baseline)", &workload)
            .value(format!("{empty:.1} µs"))
            .target("(context)", Verdict::Info),
        Row::new("plan", "remembered plan (plan memo, next run)", &workload)
            .value(format!("{remembered:.1} µs"))
            .ratio(remembered / tests, "of a plan")
            .target("(context)", Verdict::Info),
    ])
}

/// Microseconds per empty call, per `python_tests` plan and per plan given back by the plan
/// memo, from one run of the example.
fn plan_once(settings: &Settings, count: usize) -> anyhow::Result<(f64, f64, f64)> {
    let example = &settings.plan_example;
    let output = Command::new(example)
        .arg(count.to_string())
        .output()
        .with_context(|| format!("cannot run `{}`", example.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "plan example failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let micros = |prefix: &str| -> anyhow::Result<f64> {
        let line = stdout.lines().find(|l| l.starts_with(prefix));
        let line = line.with_context(|| format!("no `{prefix}` line in:\n{stdout}"))?;
        let number = line[prefix.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default();
        Ok(number.parse()?)
    };
    Ok((
        micros("empty plugin call:")?,
        micros("python_tests plan:")?,
        micros("remembered plan:")?,
    ))
}
