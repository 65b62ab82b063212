//! Running targets as a graph: each target waits for its dependencies, is planned by its
//! plugin, and runs its processes as actions whose input roots hold the target's files and its
//! dependencies' outputs, passed by digest. Identical actions in flight run once. Every
//! target's actions are looked up and started as soon as it is planned: the backend bounds
//! local processes (`process_execution_local_parallelism`) and the REAPI client its calls.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use remex_action::PreparedAction;
use remex_model::{Address, Environment, FieldType, Process, Target};
use remex_plugin_host::{HostServices, LocalHostServices, PlanMemo};
use remex_store::{ActionDigest, Digest, InputEntry, LocalStore};
use tokio::sync::OnceCell;
use tracing::{Instrument, debug, info_span, warn};

use crate::backend::{ActionRun, Backend, Place};
use crate::planners::Planners;
use crate::policy;
use crate::probes::RemoteProbeRunner;
use crate::progress::LiveView;
use crate::workspace::Workspace;

/// What happened to one target.
#[derive(Debug)]
pub struct TargetOutcome {
    pub address: Address,
    pub status: TargetStatus,
    pub actions: Vec<ActionRecord>,
    /// Every output of the target's own actions, keyed by path from the input root.
    pub outputs: BTreeMap<String, InputEntry>,
    /// The outputs of the target and of everything it depends on: what its dependents get.
    pub transitive_outputs: BTreeMap<String, InputEntry>,
    /// The source files of the target and of everything it depends on.
    pub transitive_sources: BTreeSet<String>,
}

#[derive(Debug)]
pub enum TargetStatus {
    Passed,
    /// The plugin could not plan it, or an action could not be built or run.
    Error(String),
    /// An action ran and failed.
    Failed {
        reason: String,
        stdout: String,
        stderr: String,
    },
    /// A dependency did not pass, so the target was not run.
    Skipped {
        dependency: Address,
    },
}

impl TargetStatus {
    pub fn passed(&self) -> bool {
        matches!(self, Self::Passed)
    }
}

/// One action run for a target.
#[derive(Debug, Clone)]
pub struct ActionRecord {
    pub description: String,
    pub digest: ActionDigest,
    pub place: Place,
}

type OutcomeFuture = Shared<BoxFuture<'static, Arc<TargetOutcome>>>;
type ActionResultCell = Arc<OnceCell<Result<ActionRun, String>>>;

/// Shared state of one run.
struct Run {
    workspace: Arc<Workspace>,
    backend: Backend,
    /// What plugins call back into; one per run, so probe results are shared by all targets.
    services: Arc<dyn HostServices>,
    /// Where the CPU-bound work (planning, preparing actions) runs: one thread per core, since
    /// more threads than cores only add thread start-up and memory-map contention.
    planners: Planners,
    targets: HashMap<Address, Target>,
    /// Plans of earlier runs, given back while the plugin's host calls answer the same.
    plans: Arc<PlanMemo>,
    /// Actions in flight or done, so that identical actions run once.
    actions: Mutex<HashMap<ActionDigest, ActionResultCell>>,
}

/// Runs `roots` and every target they depend on; returns the outcome of each target run, roots
/// and dependencies, in address order.
pub async fn run_targets(
    workspace: Arc<Workspace>,
    backend: Backend,
    roots: Vec<Target>,
) -> Vec<Arc<TargetOutcome>> {
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
    let targets = workspace
        .targets
        .iter()
        .map(|t| (t.address.clone(), t.clone()))
        .collect();
    let probes = RemoteProbeRunner::new(backend.clone(), tokio::runtime::Handle::current());
    let services = LocalHostServices::new().with_remote_probes(Arc::new(probes));
    let _view = LiveView::start(backend.clone());
    let plans = Arc::new(plan_memo(&workspace));
    let run = Arc::new(Run {
        plans,
        services: Arc::new(services),
        backend,
        workspace,
        planners: Planners::start(parallelism),
        targets,
        actions: Mutex::new(HashMap::new()),
    });

    let mut futures: BTreeMap<Address, OutcomeFuture> = BTreeMap::new();
    for root in &roots {
        let _scheduled = schedule(&run, &root.address, &mut futures);
    }
    let mut outcomes = Vec::new();
    for future in futures.into_values() {
        outcomes.push(future.await);
    }
    // What was learned of unchanged input files, so the next run does not read them again.
    if let Err(e) = run.workspace.store.save_file_digests() {
        warn!(error = %e, "cannot save the digests of input files; the next run hashes them again");
    }
    if let Err(e) = run.plans.save() {
        warn!(error = %e, "cannot save this run's plans; the next run plans its targets again");
    }
    outcomes
}

/// The plan memo of the workspace's repository, in the local store: one file per repository,
/// named by a digest of its root, so that repositories sharing a store load only their own.
fn plan_memo(workspace: &Workspace) -> PlanMemo {
    let store = &workspace.store;
    let root = workspace.repo_root().as_os_str().as_encoded_bytes();
    let name = Digest::of_bytes(root).hex();
    let file = store.root().join("plans").join(&name[..32]);
    PlanMemo::open(file, store.temp_dir())
}

/// The future of `address`'s outcome, creating it (and its dependencies') on first use. The
/// BUILD files were checked for cycles, so the recursion ends.
fn schedule(
    run: &Arc<Run>,
    address: &Address,
    futures: &mut BTreeMap<Address, OutcomeFuture>,
) -> OutcomeFuture {
    if let Some(future) = futures.get(address) {
        return future.clone();
    }
    let target = run.targets[address].clone();
    let dependencies: Vec<OutcomeFuture> = target
        .dependencies
        .iter()
        .map(|dep| schedule(run, dep, futures))
        .collect();

    // Spawned now, so every target starts as soon as its dependencies are done.
    let run = run.clone();
    let span = info_span!("target", address = %target.address);
    let address_for_error = target.address.clone();
    let task = tokio::spawn(
        async move {
            let mut finished = Vec::new();
            for dependency in dependencies {
                finished.push(dependency.await);
            }
            run_target(&run, target, &finished).await
        }
        .instrument(span),
    );
    let future = async move {
        Arc::new(task.await.unwrap_or_else(|e| TargetOutcome {
            address: address_for_error,
            status: TargetStatus::Error(format!("stopped unexpectedly: {e}")),
            actions: Vec::new(),
            outputs: BTreeMap::new(),
            transitive_outputs: BTreeMap::new(),
            transitive_sources: BTreeSet::new(),
        }))
    }
    .boxed()
    .shared();
    futures.insert(address.clone(), future.clone());
    future
}

async fn run_target(
    run: &Arc<Run>,
    target: Target,
    dependencies: &[Arc<TargetOutcome>],
) -> TargetOutcome {
    let mut outcome = TargetOutcome {
        address: target.address.clone(),
        status: TargetStatus::Passed,
        actions: Vec::new(),
        outputs: BTreeMap::new(),
        transitive_outputs: BTreeMap::new(),
        transitive_sources: BTreeSet::new(),
    };
    if let Some(failed) = dependencies.iter().find(|d| !d.status.passed()) {
        outcome.status = TargetStatus::Skipped {
            dependency: failed.address.clone(),
        };
        return outcome;
    }
    // Outputs of every dependency, direct or not, so that a test sees the code generated two
    // levels down.
    let mut inputs = BTreeMap::new();
    for dependency in dependencies {
        let outputs = dependency.transitive_outputs.iter();
        inputs.extend(outputs.map(|(p, e)| (p.clone(), e.clone())));
        let sources = dependency.transitive_sources.iter().cloned();
        outcome.transitive_sources.extend(sources);
    }
    // What the plugin may list as inputs besides the target's own sources.
    let mut target = target;
    let dependency_files = outcome.transitive_sources.iter().chain(inputs.keys());
    target.dependency_inputs = dependency_files
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    outcome
        .transitive_sources
        .extend(own_sources(&run.workspace, &target));

    let environment = run.workspace.environment(&target);
    outcome.status = match plan_and_prepare(run, target, &environment, &inputs).await {
        Err(message) => TargetStatus::Error(message),
        Ok(actions) => run_processes(run, actions, &environment, &mut outcome).await,
    };
    outcome.transitive_outputs = inputs;
    let own = outcome.outputs.iter().map(|(p, e)| (p.clone(), e.clone()));
    outcome.transitive_outputs.extend(own);
    outcome
}

/// The files of the target's `sources`-typed fields.
fn own_sources(workspace: &Workspace, target: &Target) -> Vec<String> {
    let Some(plugin) = workspace.plugins.for_kind(&target.kind) else {
        return Vec::new();
    };
    let Some(kind) = plugin.kinds().iter().find(|k| k.name == target.kind) else {
        return Vec::new();
    };
    kind.fields
        .iter()
        .filter(|f| f.ty == FieldType::Sources)
        .filter_map(|f| target.fields.get(&f.name)?.as_text_list())
        .flatten()
        .cloned()
        .collect()
}

/// A planned process and its action, or why the action could not be built.
type PlannedAction = (Process, Result<PreparedAction, String>);

/// Plans the target with its plugin and builds the action of every process it returns, on a
/// planning thread: plugins are synchronous and CPU-bound, and building actions reads files.
/// `inputs` are the outputs of the target's dependencies, by path.
async fn plan_and_prepare(
    run: &Arc<Run>,
    target: Target,
    environment: &Environment,
    inputs: &BTreeMap<String, InputEntry>,
) -> Result<Vec<PlannedAction>, String> {
    let workspace = run.workspace.clone();
    let plugin = workspace
        .plugins
        .for_kind(&target.kind)
        .ok_or_else(|| format!("no plugin provides target kind `{}`", target.kind))?;
    let services = run.services.clone();
    let plans = run.plans.clone();
    let fields = run.backend.output_fields(environment.remote);
    let (environment, inputs) = (environment.clone(), inputs.clone());
    let planned = run
        .planners
        .run(move || {
            let repo_root = workspace.repo_root();
            let processes = plugin
                .plan_with_memo(&target, &environment, repo_root, &services, &plans)
                .map_err(|e| e.to_string())?;
            let prepare = |process: &Process| {
                remex_action::prepare_in_memory(
                    process,
                    repo_root,
                    &workspace.store,
                    fields,
                    &inputs,
                )
                .map_err(|e| format!("{}: {e}", process.description))
            };
            Ok(processes
                .into_iter()
                .map(|process| {
                    let prepared = prepare(&process);
                    (process, prepared)
                })
                .collect())
        })
        .await;
    planned.unwrap_or_else(Err)
}

async fn run_processes(
    run: &Arc<Run>,
    actions: Vec<PlannedAction>,
    environment: &Environment,
    outcome: &mut TargetOutcome,
) -> TargetStatus {
    let target = outcome.address.to_string();
    for (process, prepared) in actions {
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(message) => return TargetStatus::Error(message),
        };
        // Policy: approved before any cache lookup or execution; a denial stops the target.
        let address = &outcome.address;
        if let Err(denial) = policy::check(&run.workspace, &prepared, address, environment) {
            return TargetStatus::Error(format!("{}: {denial}", process.description));
        }
        let started = Instant::now();
        // Boxed, as is `failed` below: the gRPC calls behind them make a future of about 11 KiB
        // that would otherwise sit inside every target's task from the moment it is spawned,
        // 150 MB for 10,000 targets.
        let execution = Box::pin(execute_once(run, &prepared, &target, environment.remote));
        let executed = match execution.await {
            Ok(executed) => executed,
            Err(e) => return TargetStatus::Error(format!("{}: {e}", process.description)),
        };
        debug!(
            digest = %prepared.digest,
            place = executed.place.name(),
            elapsed = ?started.elapsed(),
            "action finished"
        );
        outcome.actions.push(ActionRecord {
            description: process.description.clone(),
            digest: prepared.digest,
            place: executed.place,
        });
        if let Some(reason) = failure_reason(&executed, &process) {
            return Box::pin(failed(run, &executed, reason, &target)).await;
        }
        let store = run.backend.store();
        match remex_action::output_entries(&executed.result, &process.working_directory, store) {
            Ok(entries) => outcome.outputs.extend(entries),
            Err(e) => return TargetStatus::Error(format!("{}: {e}", process.description)),
        }
    }
    TargetStatus::Passed
}

/// A failed target, with the output of its failed action fetched for the user.
async fn failed(
    run: &Arc<Run>,
    executed: &ActionRun,
    reason: String,
    target: &str,
) -> TargetStatus {
    let streams: Vec<Digest> = [
        &executed.result.stdout_digest,
        &executed.result.stderr_digest,
    ]
    .into_iter()
    .filter_map(|d| Digest::from_proto_field(d.as_ref()).ok())
    .collect();
    let _ = run.backend.ensure_local(&streams, target).await;
    let store = run.backend.store();
    let mut stderr = read_stream(store, executed.result.stderr_digest.as_ref());
    if !executed.message.is_empty() {
        stderr.push_str(&format!("\nserver: {}", executed.message));
    }
    TargetStatus::Failed {
        reason,
        stdout: read_stream(store, executed.result.stdout_digest.as_ref()),
        stderr,
    }
}

/// Runs an action, or waits for the identical one already in flight.
async fn execute_once(
    run: &Arc<Run>,
    prepared: &PreparedAction,
    target: &str,
    remote: bool,
) -> Result<ActionRun, String> {
    let cell = {
        let mut actions = run.actions.lock().unwrap_or_else(|e| e.into_inner());
        actions.entry(prepared.digest).or_default().clone()
    };
    let result = cell
        .get_or_init(|| async { run.backend.run(prepared, target, remote).await })
        .await;
    result.clone()
}

fn failure_reason(outcome: &ActionRun, process: &Process) -> Option<String> {
    if outcome.timed_out {
        let limit = process
            .timeout
            .map(|t| format!(" after {t:?}"))
            .unwrap_or_default();
        return Some(format!("timed out{limit}"));
    }
    match outcome.result.exit_code {
        0 => None,
        code => Some(format!("exit code {code}")),
    }
}

fn read_stream(store: &LocalStore, digest: Option<&remex_proto::reapi::Digest>) -> String {
    let bytes = Digest::from_proto_field(digest)
        .ok()
        .and_then(|d| store.read(&d).ok())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}
