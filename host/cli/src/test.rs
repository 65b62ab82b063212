//! `remex test SPECS`: run the matched targets and report pass or fail for each.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use remex_buildfile::TargetSpec;
use remex_model::Target;

use crate::workspace::Workspace;
use crate::{GlobalArgs, UsageError, report, runner};

#[derive(Args)]
pub struct TestArgs {
    /// Targets to run: `//dir:name`, `dir:name`, `dir`, `dir::` or `::`.
    #[arg(required = true, value_name = "SPECS")]
    specs: Vec<String>,
}

pub async fn run(global: &GlobalArgs, args: TestArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let workspace = Workspace::load(global)?;
    let selected = select(&workspace, &args.specs)?;

    let outcomes = runner::run_targets(Arc::new(workspace), selected).await;
    let all_passed = report::print(&outcomes, started.elapsed(), global.verbose);
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
