//! `cached` and `execute` at the client library level: `remex_action::prepare` then
//! `RemoteClient::execute` against a `remex serve` child, this process's CPU time measured
//! around each phase. The CLI-level `cached` figure, beside Bazel, is in `noop.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use remex_action::{OutputFields, PreparedAction};
use remex_client::{ExecuteOptions, RemoteClient, RemoteOptions, ResultOrigin};
use remex_model::Process;
use remex_store::LocalStore;

use crate::Settings;
use crate::machine::Limits;
use crate::measure::{median, process_cpu};
use crate::report::{Row, Verdict};
use crate::server::Server;

/// How many `execute` calls are in flight at once, as `remote_execution_parallelism` would.
const IN_FLIGHT: usize = 64;

/// One pass over a set of actions: wall time and CPU time of each phase.
#[derive(Clone, Copy, Debug)]
struct Pass {
    prepare_wall: Duration,
    prepare_cpu: Duration,
    execute_wall: Duration,
    execute_cpu: Duration,
    hits: usize,
}

pub fn run_execute(settings: &Settings, _: &Limits) -> anyhow::Result<Vec<Row>> {
    let count = settings.sizes.execute_actions;
    let server = Server::start(&settings.remex)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut passes = Vec::new();
    // Round 0 is the warm-up; every round's actions are new to the server.
    for round in 0..=settings.reps {
        let pass = runtime.block_on(pass(&server.address, round, count))?;
        eprintln!("execute round {round}: {pass:?}");
        anyhow::ensure!(
            pass.hits == 0,
            "{} of {count} actions were cache hits",
            pass.hits
        );
        if round > 0 {
            passes.push(pass);
        }
    }
    let per = |f: fn(&Pass) -> Duration| per_action(&passes, count, f);
    let cpu = per(|p| p.prepare_cpu + p.execute_cpu);
    let workload = format!("{count} distinct `sh -c 'echo N > out.txt'` actions");
    Ok(vec![
        Row::new(
            "execute",
            "client CPU per action (prepare + execute)",
            &workload,
        )
        .value(format!("{cpu:.0} µs"))
        .target("< 300 µs", Verdict::of(cpu < 300.0)),
        Row::new("execute", "of which `prepare`", &workload)
            .value(format!(
                "{:.0} µs CPU, {:.0} µs wall",
                per(|p| p.prepare_cpu),
                per(|p| p.prepare_wall)
            ))
            .target("(context)", Verdict::Info),
        Row::new("execute", "wall per action, 64 in flight", &workload)
            .value(format!("{:.0} µs", per(|p| p.execute_wall)))
            .target("(context)", Verdict::Info),
    ])
}

pub fn run_cached(settings: &Settings, _: &Limits) -> anyhow::Result<Vec<Row>> {
    let count = settings.sizes.cached_actions;
    let server = Server::start(&settings.remex)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let fill = runtime.block_on(pass(&server.address, 0, count))?;
    eprintln!("cached fill: {fill:?}");
    let mut passes = Vec::new();
    for rep in 0..=settings.reps {
        let pass = runtime.block_on(pass(&server.address, 0, count))?;
        eprintln!("cached rep {rep}: {pass:?}");
        anyhow::ensure!(pass.hits == count, "only {} of {count} hits", pass.hits);
        if rep > 0 {
            passes.push(pass);
        }
    }
    let walls: Vec<f64> = passes
        .iter()
        .map(|p| (p.prepare_wall + p.execute_wall).as_secs_f64())
        .collect();
    let wall = median(&walls);
    let cpu = per_action(&passes, count, |p| p.prepare_cpu + p.execute_cpu);
    let workload = format!("{count} actions, all action-cache hits, fresh local store");
    Ok(vec![
        Row::new(
            "cached",
            "client library: prepare + `execute` (hit)",
            &workload,
        )
        .value(format!(
            "{wall:.2} s, {:.0} µs per action, {cpu:.0} µs CPU",
            wall * 1e6 / count as f64
        ))
        .target(
            "< 2 s (at 10,000)",
            Verdict::of(wall * 10_000.0 / (count as f64) < 2.0),
        ),
    ])
}

fn per_action(passes: &[Pass], count: usize, f: fn(&Pass) -> Duration) -> f64 {
    let values: Vec<f64> = passes
        .iter()
        .map(|p| f(p).as_secs_f64() * 1e6 / count as f64)
        .collect();
    median(&values)
}

/// Prepares `count` actions of `round` in a fresh local store, then executes them all.
async fn pass(address: &str, round: usize, count: usize) -> anyhow::Result<Pass> {
    let dir = tempfile::tempdir()?;
    let store = LocalStore::open(dir.path())?;
    let (prepared, prepare_wall, prepare_cpu) = prepare_all(&store, dir.path(), round, count)?;

    let cpu_before = process_cpu()?;
    let started = Instant::now();
    let mut options = RemoteOptions::new(address);
    options.execution_address = Some(address.to_owned());
    let client = RemoteClient::connect(options, store).await?;
    let execute = ExecuteOptions::default();
    let outcomes: Vec<_> = futures::stream::iter(&prepared)
        .map(|action| client.execute(action, &execute))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let execute_wall = started.elapsed();
    let execute_cpu = process_cpu()?.saturating_sub(cpu_before);
    let mut hits = 0;
    for outcome in outcomes {
        let outcome = outcome?;
        anyhow::ensure!(
            outcome.result.exit_code == 0,
            "an action failed: {}",
            outcome.message
        );
        hits += usize::from(outcome.origin != ResultOrigin::Executed);
    }
    Ok(Pass {
        prepare_wall,
        prepare_cpu,
        execute_wall,
        execute_cpu,
        hits,
    })
}

fn prepare_all(
    store: &LocalStore,
    root: &Path,
    round: usize,
    count: usize,
) -> anyhow::Result<(Vec<PreparedAction>, Duration, Duration)> {
    let cpu_before = process_cpu()?;
    let started = Instant::now();
    let mut prepared = Vec::with_capacity(count);
    for i in 0..count {
        let process = action_process(round, i);
        // As `remex test` does: input files stored, the action's own messages kept in memory
        // until a remote execution needs them uploaded.
        let no_inputs = BTreeMap::new();
        let fields = OutputFields::Paths;
        let action = remex_action::prepare_in_memory(&process, root, store, fields, &no_inputs)?;
        prepared.push(action);
    }
    Ok((
        prepared,
        started.elapsed(),
        process_cpu()?.saturating_sub(cpu_before),
    ))
}

fn action_process(round: usize, i: usize) -> Process {
    Process {
        description: format!("bench action {round}/{i}"),
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("echo {round}-{i} > out.txt"),
        ],
        output_files: vec!["out.txt".into()],
        timeout: Some(Duration::from_secs(60)),
        ..Process::default()
    }
}
