//! Policy plugins in a run: loading `[policy] plugins`, checking every prepared action before
//! any cache lookup or execution ([`check`]), and `remex policy check SPECS`, which plans and
//! prepares actions and prints every policy's decision without running anything.
//!
//! The policies come from the `[policy]` options (`plugins`, `mode`). They are kept for the
//! process's lifetime in one place, loaded by [`install`] when a command starts (or by the
//! first [`check`] otherwise), rather than on [`Workspace`], which another change is
//! reworking.

pub mod template;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use remex_action::{OutputFields, PreparedAction};
use remex_model::{Address, Environment, Target};
use remex_options::{PolicyMode, PolicyOptions};
use remex_plugin_host::{
    ActionDescription, ActionEnvironment, Decision, Denial, DenialCause, HostServices,
    LocalHostServices, PolicyEngine, PolicyLimits, PolicySet,
};

use crate::workspace::Workspace;
use crate::{GlobalArgs, UsageError, test};

/// The policies of a run and the mode they run in.
pub struct PolicyGate {
    set: PolicySet,
    mode: PolicyMode,
}

impl PolicyGate {
    /// Loads every policy in `options`, relative to `repo_root`, caching compiled components
    /// under `compile_cache_dir`.
    pub fn load(
        options: &PolicyOptions,
        repo_root: &Path,
        compile_cache_dir: PathBuf,
    ) -> anyhow::Result<Self> {
        let engine = PolicyEngine::new(PolicyLimits::default(), Some(compile_cache_dir))?;
        let mut policies = Vec::new();
        for path in &options.plugins {
            let full = repo_root.join(path);
            let bytes = std::fs::read(&full)
                .with_context(|| format!("cannot read policy `{}`", full.display()))
                .map_err(|e| UsageError(format!("{e:#} (listed in `[policy] plugins`)")))?;
            let policy = engine
                .load(&full.display().to_string(), &bytes)
                .map_err(|e| UsageError(e.to_string()))?;
            policies.push(policy);
        }
        Ok(Self {
            set: PolicySet::new(policies),
            mode: options.mode,
        })
    }

    /// Approves or denies `prepared`, an action of the target `address` in `environment`. In
    /// `enforce`
    /// mode the first denial is returned; in `warn` mode every denial is printed and the
    /// action allowed.
    pub fn check(
        &self,
        prepared: &PreparedAction,
        address: &Address,
        environment: &Environment,
    ) -> Result<(), Denial> {
        if self.set.is_empty() {
            return Ok(());
        }
        let action = describe(prepared, address, environment);
        match self.mode {
            PolicyMode::Enforce => self.set.first_denial(&action).map_or(Ok(()), Err),
            PolicyMode::Warn => {
                for (_, decision) in self.set.decisions(&action) {
                    if let Decision::Deny(denial) = decision {
                        eprintln!(
                            "warning: {}: {denial} (running it anyway: `[policy] mode` is \
                             `warn`)",
                            address
                        );
                    }
                }
                Ok(())
            }
        }
    }
}

/// The policies of this process's run, or why they could not be loaded.
static GATE: OnceLock<Result<PolicyGate, String>> = OnceLock::new();

/// Loads the configured policies for this run, so that a policy that cannot be loaded is a
/// usage error before any target starts. Call it right after loading the workspace.
pub fn install(workspace: &Workspace) -> anyhow::Result<()> {
    match gate(workspace) {
        Ok(_) => Ok(()),
        Err(message) => Err(UsageError(message.clone()).into()),
    }
}

/// Approves or denies `prepared` with the run's policies; called by the runner for every
/// action before any cache lookup or execution. Policies that could not be loaded deny
/// every action (fail closed).
pub fn check(
    workspace: &Workspace,
    prepared: &PreparedAction,
    address: &Address,
    environment: &Environment,
) -> Result<(), Denial> {
    match gate(workspace) {
        Ok(gate) => gate.check(prepared, address, environment),
        Err(message) => Err(Denial {
            policy: "[policy] plugins".to_owned(),
            cause: DenialCause::Denied(format!("the policies could not be loaded: {message}")),
        }),
    }
}

fn gate(workspace: &Workspace) -> &'static Result<PolicyGate, String> {
    GATE.get_or_init(|| load_gate(workspace).map_err(|e| format!("{e:#}")))
}

fn load_gate(workspace: &Workspace) -> anyhow::Result<PolicyGate> {
    let cache_dir = remex_options::compiled_plugins_dir();
    PolicyGate::load(&workspace.options.policy, workspace.repo_root(), cache_dir)
}

/// What a policy is told about `prepared`: the fields of its `Action` and `Command`, with the
/// target and environment they belong to.
pub fn describe(
    prepared: &PreparedAction,
    address: &Address,
    environment: &Environment,
) -> ActionDescription {
    let command = &prepared.command;
    let mut output_paths: Vec<String> = command
        .output_paths
        .iter()
        .chain(&command.output_files)
        .chain(&command.output_directories)
        .cloned()
        .collect();
    output_paths.sort();
    output_paths.dedup();
    let platform = prepared.action.platform.iter().flat_map(|p| &p.properties);
    ActionDescription {
        target: address.to_string(),
        environment: ActionEnvironment {
            name: environment.name.clone(),
            remote: environment.remote,
            platform: environment.platform.clone(),
        },
        argv: command.arguments.clone(),
        env: command
            .environment_variables
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect(),
        platform: platform
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect(),
        working_directory: command.working_directory.clone(),
        input_files: prepared.input_files as u64,
        input_bytes: prepared.input_bytes,
        output_paths,
        timeout: prepared.action.timeout.and_then(timeout),
        action_hash: prepared.digest.0.hex(),
        action_size_bytes: prepared.digest.0.size_bytes,
    }
}

fn timeout(duration: prost_types::Duration) -> Option<Duration> {
    let seconds = u64::try_from(duration.seconds).ok()?;
    let nanos = u32::try_from(duration.nanos).ok()?;
    Some(Duration::new(seconds, nanos))
}

/// `remex policy`: work with policy plugins.
#[derive(Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Plan the targets matched by SPECS and print every policy's decision on each of their
    /// actions, running nothing. Exits 1 if any action is denied.
    Check(CheckArgs),
}

#[derive(Args)]
struct CheckArgs {
    /// Targets to check: `//dir:name`, `dir:name`, `dir`, `dir::` or `::`.
    #[arg(required = true, value_name = "SPECS")]
    specs: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: PolicyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PolicyCommand::Check(args) => run_check(global, &args),
    }
}

fn run_check(global: &GlobalArgs, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let workspace = Workspace::load(global)?;
    let selected = test::select(&workspace, &args.specs)?;
    let gate = match gate(&workspace) {
        Ok(gate) => gate,
        Err(message) => return Err(UsageError(message.clone()).into()),
    };
    if gate.set.is_empty() {
        println!("no policies configured (`[policy] plugins`); every action is allowed");
        return Ok(ExitCode::SUCCESS);
    }

    let mut denied = 0;
    for target in &selected {
        denied += check_target(&workspace, gate, target);
    }
    println!("{denied} denial(s)");
    Ok(if denied == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Plans and prepares `target`'s actions and prints each policy's decision on them; returns
/// the number of denials. An action whose inputs are outputs of a dependency cannot be
/// prepared without running the dependency, and is reported as such.
fn check_target(workspace: &Workspace, gate: &PolicyGate, target: &Target) -> usize {
    let environment = workspace.environment(target);
    let processes = match plan(workspace, target, &environment) {
        Ok(processes) => processes,
        Err(message) => {
            println!("{}: cannot plan: {message}", target.address);
            return 0;
        }
    };
    let mut denied = 0;
    for process in processes {
        let prepared = remex_action::prepare(
            &process,
            workspace.repo_root(),
            &workspace.store,
            OutputFields::Paths,
        );
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                println!(
                    "{}: {}: cannot prepare: {e}",
                    target.address, process.description
                );
                continue;
            }
        };
        println!(
            "{}: {} ({})",
            target.address, process.description, prepared.digest
        );
        let action = describe(&prepared, &target.address, &environment);
        for (policy, decision) in gate.set.decisions(&action) {
            match decision {
                Decision::Allow => println!("  allow  {}", policy.id()),
                Decision::Deny(denial) => {
                    denied += 1;
                    println!("  deny   {}: {}", policy.id(), denial.cause);
                }
            }
        }
    }
    denied
}

fn plan(
    workspace: &Workspace,
    target: &Target,
    environment: &Environment,
) -> Result<Vec<remex_model::Process>, String> {
    let plugin = workspace
        .plugins
        .for_kind(&target.kind)
        .ok_or_else(|| format!("no plugin provides target kind `{}`", target.kind))?;
    let services: Arc<dyn HostServices> = Arc::new(LocalHostServices::new());
    plugin
        .plan(target, environment, workspace.repo_root(), &services)
        .map_err(|e| e.to_string())
}
