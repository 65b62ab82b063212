//! `remex build SPECS`: run every process of the targets and write their declared outputs under
//! `dist/`, only when every target succeeded.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use crate::workspace::Workspace;
use crate::{GlobalArgs, dist, report, test};

#[derive(Args)]
pub struct BuildArgs {
    /// Targets to build: `//dir:name`, `dir:name`, `dir`, `dir::` or `::`.
    #[arg(required = true, value_name = "SPECS")]
    specs: Vec<String>,
}

pub async fn run(global: &GlobalArgs, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut interrupt = test::catch_interrupt()?;
    let workspace = Workspace::load(global)?;
    let roots = test::select(&workspace, &args.specs)?;
    let repo_root = workspace.repo_root().to_owned();
    let store = workspace.store.clone();

    let backend = workspace.backend().await?;
    let store_backend = backend.clone();
    let run = test::run_or_interrupt(&mut interrupt, Arc::new(workspace), backend, roots.clone());
    let Some(outcomes) = run.await else {
        return Ok(ExitCode::from(test::INTERRUPTED));
    };
    let all_passed = report::print(
        &outcomes,
        store_backend.remote_stats(),
        started.elapsed(),
        global.verbose,
    );
    if !all_passed {
        println!("dist/ left unchanged: not every target succeeded");
        return Ok(ExitCode::from(1));
    }

    let wanted: Vec<_> = roots.iter().map(|t| &t.address).collect();
    let mut outputs = BTreeMap::new();
    for outcome in outcomes.iter().filter(|o| wanted.contains(&&o.address)) {
        outputs.extend(outcome.outputs.iter().map(|(p, e)| (p.clone(), e.clone())));
    }
    // Outputs that only other actions needed may still be on the server only.
    let files: Vec<_> = outputs
        .values()
        .filter_map(|entry| match entry {
            remex_store::InputEntry::File { digest, .. } => Some(*digest),
            _ => None,
        })
        .collect();
    store_backend
        .ensure_local(&files, "dist")
        .await
        .map_err(anyhow::Error::msg)?;
    let written = dist::write(&repo_root, &store, &outputs)?;
    println!("wrote {written} outputs under dist/");
    Ok(ExitCode::SUCCESS)
}
