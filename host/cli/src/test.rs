//! `remex test SPECS`: run the matched targets and report pass or fail for each.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use remex_buildfile::TargetSpec;
use remex_model::Target;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::backend::Backend;
use crate::workspace::Workspace;
use crate::{GlobalArgs, UsageError, report, runner};

#[derive(Args)]
pub struct TestArgs {
    /// Targets to run: `//dir:name`, `dir:name`, `dir`, `dir::` or `::`.
    #[arg(required = true, value_name = "SPECS")]
    specs: Vec<String>,
    /// How to print the results.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A line per target and a summary, for people.
    Text,
    /// One JSON document, for machines.
    Json,
}

/// The exit code of a run interrupted by Ctrl-C, as shells report SIGINT.
pub const INTERRUPTED: u8 = 130;

/// Catches Ctrl-C from now on, so that an interrupt while loading still ends the run with
/// [`INTERRUPTED`] once it starts.
pub fn catch_interrupt() -> anyhow::Result<Signal> {
    Ok(signal(SignalKind::interrupt())?)
}

/// Runs `roots` until done or interrupted; `None` when interrupted. Dropping the run on
/// Ctrl-C cancels every task, which kills the processes they started.
pub async fn run_or_interrupt(
    interrupt: &mut Signal,
    workspace: Arc<Workspace>,
    backend: Backend,
    roots: Vec<Target>,
) -> Option<Vec<Arc<runner::TargetOutcome>>> {
    tokio::select! {
        outcomes = runner::run_targets(workspace, backend, roots) => Some(outcomes),
        _ = interrupt.recv() => {
            eprintln!("interrupted: stopping running processes");
            None
        }
    }
}

pub async fn run(global: &GlobalArgs, args: TestArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut interrupt = catch_interrupt()?;
    let workspace = Workspace::load(global)?;
    crate::policy::install(&workspace)?;
    let selected = select(&workspace, &args.specs)?;

    let backend = workspace.backend().await?;
    let stats_backend = backend.clone();
    let Some(outcomes) =
        run_or_interrupt(&mut interrupt, Arc::new(workspace), backend, selected).await
    else {
        return Ok(ExitCode::from(INTERRUPTED));
    };
    let all_passed = outcomes.iter().all(|o| o.status.passed());
    match args.output {
        OutputFormat::Text => {
            report::print(
                &outcomes,
                stats_backend.remote_stats(),
                started.elapsed(),
                global.verbose,
            );
        }
        OutputFormat::Json => report::print_json(&outcomes, started.elapsed()),
    }
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The targets matched by `specs`, which must each match something.
pub fn select(workspace: &Workspace, specs: &[String]) -> anyhow::Result<Vec<Target>> {
    let specs = specs
        .iter()
        .map(|s| TargetSpec::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| UsageError(e.to_string()))?;
    let selected = remex_buildfile::select(&workspace.targets, &specs)
        .map_err(|e| UsageError(e.to_string()))?;
    Ok(selected.into_iter().cloned().collect())
}
