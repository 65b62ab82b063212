//! Plans 10,000 `python_tests` targets with the bundled `python` plugin and reports the cost per
//! target next to the cost of an empty plugin call (a `python_sources` target, which plans
//! nothing), measured in the same run. Probes run for real on this machine, once each, and
//! are then answered from the run's cache, as in `remex test`.
//!
//! `cargo run --release -p remex-plugin-host --example plan_python [-- COUNT]`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use remex_model::{Address, Environment, FieldValue, Location, Target};
use remex_plugin_host::{
    HostServices, LocalHostServices, PlanMemo, Plugin, PluginHost, PluginLimits,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args().nth(1).map_or(Ok(10_000), |n| n.parse())?;
    let host = PluginHost::new(PluginLimits::default(), None)?;
    let plugin = host.load("bundled:python", remex_bundled::PYTHON)?;
    let services: Arc<dyn HostServices> = Arc::new(LocalHostServices::with_path("/usr/bin:/bin"));
    let environment = Environment::local();

    let empty = |i| target(i, "python_sources", "lib.py");
    let tests = |i| target(i, "python_tests", "test_lib.py");
    // One of each first, so the probes' single real run is not part of either figure.
    plan_all(&plugin, &services, &environment, 1, empty, None)?;
    plan_all(&plugin, &services, &environment, 1, tests, None)?;

    let empty_cost = plan_all(&plugin, &services, &environment, count, empty, None)?;
    let tests_cost = plan_all(&plugin, &services, &environment, count, tests, None)?;
    let remembered_cost = remembered(&plugin, &services, &environment, count, tests)?;
    println!("targets: {count}");
    println!(
        "empty plugin call:  {:>8.1} µs per call",
        micros(empty_cost, count)
    );
    println!(
        "python_tests plan:  {:>8.1} µs per target",
        micros(tests_cost, count)
    );
    println!(
        "remembered plan:    {:>8.1} µs per target",
        micros(remembered_cost, count)
    );
    println!("total python_tests: {tests_cost:.2?}");
    Ok(())
}

/// Plans every target once into a plan memo, saves it, and times planning them all again
/// through the memo read back, as the next `remex test` would.
fn remembered(
    plugin: &Plugin,
    services: &Arc<dyn HostServices>,
    environment: &Environment,
    count: usize,
    make: impl Fn(usize) -> Target,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let open = || PlanMemo::open(dir.path().join("plans"), dir.path().join("tmp"));
    let memo = open();
    plan_all(plugin, services, environment, count, &make, Some(&memo))?;
    memo.save()?;
    let memo = open();
    let elapsed = plan_all(plugin, services, environment, count, &make, Some(&memo))?;
    if memo.recalled() != count {
        return Err(format!("{} of {count} plans were remembered", memo.recalled()).into());
    }
    Ok(elapsed)
}

fn plan_all(
    plugin: &Plugin,
    services: &Arc<dyn HostServices>,
    environment: &Environment,
    count: usize,
    make: impl Fn(usize) -> Target,
    memo: Option<&PlanMemo>,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let repo_root = Path::new("/");
    let started = Instant::now();
    for i in 0..count {
        let target = make(i);
        match memo {
            Some(memo) => plugin.plan_with_memo(&target, environment, repo_root, services, memo)?,
            None => plugin.plan(&target, environment, repo_root, services)?,
        };
    }
    Ok(started.elapsed())
}

fn micros(elapsed: Duration, count: usize) -> f64 {
    elapsed.as_secs_f64() * 1e6 / count as f64
}

fn target(i: usize, kind: &str, file: &str) -> Target {
    let dir = format!("pkg{i}");
    let sources = FieldValue::TextList(vec![format!("{dir}/{file}")]);
    Target {
        address: Address::new(dir.clone(), "t"),
        kind: kind.to_owned(),
        fields: BTreeMap::from([("sources".to_owned(), sources)]),
        dependencies: Vec::new(),
        environment: remex_model::LOCAL_ENVIRONMENT.to_owned(),
        location: Location {
            file: PathBuf::from(format!("{dir}/BUILD")),
            line: 1,
        },
        dependency_inputs: vec![format!("lib{i}/util.py")],
    }
}
