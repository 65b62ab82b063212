//! A loaded plugin, and the calls into it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use remex_model::{Environment, FieldType, FieldValue, KindSpec, Process, Target};
use sha2::{Digest, Sha256};
use wasmtime::{Store, Trap, WasmBacktrace};

use crate::cache::Compiled;
use crate::convert::{self, ToolchainPre, remex::plugin::types as wit};
use crate::error::{CallSite, PluginError};
use crate::limits::PluginLimits;
use crate::memo::{self, Encoder, HostCall, PlanMemo};
use crate::plugin_host::deadline_ticks;
use crate::sandbox::{self, PlanCall, StoreLimits, StoreState};
use crate::services::HostServices;

/// A plugin, compiled, linked and described, ready to plan targets.
///
/// Each call runs in a fresh instance, so calls are independent: a call that traps or runs out
/// of time leaves nothing behind, and calls from several threads run in parallel. Share it with
/// an `Arc`.
pub struct Plugin {
    origin: String,
    /// `name@version`, the plugin's name in messages.
    id: String,
    name: String,
    version: String,
    kinds: Vec<KindSpec>,
    pre: ToolchainPre<StoreState>,
    limits: PluginLimits,
    pub(crate) compiled: Compiled,
    /// A SHA-256 of the component's bytes and of the engine's configuration.
    identity: [u8; 32],
}

impl Plugin {
    /// Calls `describe` on a freshly linked component.
    pub(crate) fn describe(
        origin: &str,
        pre: ToolchainPre<StoreState>,
        limits: PluginLimits,
        compiled: Compiled,
        identity: [u8; 32],
    ) -> Result<Self, PluginError> {
        let site = CallSite {
            plugin: origin.to_owned(),
            target: None,
        };
        let mut store = new_store(&pre, &limits, origin, None);
        let described = pre
            .instantiate(&mut store)
            .and_then(|toolchain| toolchain.call_describe(&mut store))
            .map_err(|err| failure(&store, &limits, &site, err))?;
        let described = convert::description(described)
            .map_err(|why| PluginError::InvalidResult { site, why })?;

        Ok(Self {
            origin: origin.to_owned(),
            id: format!("{}@{}", described.name, described.version),
            name: described.name,
            version: described.version,
            kinds: described.kinds,
            pre,
            limits,
            compiled,
            identity,
        })
    }

    /// The plugin's name, such as `shell`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's version, such as `0.1.0`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Where the plugin was loaded from, as given to [`crate::PluginHost::load`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether the compiled plugin came from the compile cache rather than being compiled
    /// by this load.
    pub fn from_compile_cache(&self) -> bool {
        self.compiled == Compiled::Cached
    }

    /// The target kinds the plugin provides.
    pub fn kinds(&self) -> &[KindSpec] {
        &self.kinds
    }

    /// Plans `target` in `environment`: the processes to run, or why not.
    ///
    /// The plugin may read the files of the target's `Sources` fields, relative to
    /// `repo_root`, and look for binaries through `services`.
    pub fn plan(
        &self,
        target: &Target,
        environment: &Environment,
        repo_root: &Path,
        services: &Arc<dyn HostServices>,
    ) -> Result<Vec<Process>, PluginError> {
        let call = self.plan_call(target, environment, repo_root, services)?;
        self.call_plan(target, environment, call, false)
            .map(|(processes, _)| processes)
    }

    /// Like [`Plugin::plan`], but gives back what `memo` remembers of the same plan when every
    /// host call it made answers the same now, and otherwise remembers the new plan there.
    pub fn plan_with_memo(
        &self,
        target: &Target,
        environment: &Environment,
        repo_root: &Path,
        services: &Arc<dyn HostServices>,
        memo: &PlanMemo,
    ) -> Result<Vec<Process>, PluginError> {
        let call = self.plan_call(target, environment, repo_root, services)?;
        let slot = convert::memo_slot(target, environment);
        let key = self.memo_key(target, environment);
        if let Some(processes) = memo.recall(&slot, &key, |host_call| call.answers_again(host_call))
        {
            return Ok(processes);
        }
        let (processes, recorded) = self.call_plan(target, environment, call, true)?;
        if let Some(recorded) = recorded {
            memo.remember(slot, key, &recorded, &processes);
        }
        Ok(processes)
    }

    /// What a plan's result depends on besides its host calls' answers: this build of the
    /// host, the component and the engine, the limits it runs under, and its arguments. The
    /// deadline is left out: a plugin cannot see time, so a plan that finished in time is the
    /// same plan under any deadline.
    fn memo_key(&self, target: &Target, environment: &Environment) -> memo::Hash {
        let mut key = Encoder::default();
        key.str(env!("REMEX_PLUGIN_HOST_BUILD"));
        key.str(crate::WIT_VERSION);
        key.raw(&self.identity);
        for limit in [
            self.limits.memory_bytes as u64,
            self.limits.max_result_bytes as u64,
            self.limits.max_host_calls,
            self.limits.max_source_bytes,
        ] {
            key.u64(limit);
        }
        convert::encode_plan_input(&mut key, target, environment);
        Sha256::digest(&key.0).into()
    }

    fn plan_call(
        &self,
        target: &Target,
        environment: &Environment,
        repo_root: &Path,
        services: &Arc<dyn HostServices>,
    ) -> Result<PlanCall, PluginError> {
        let kind = self.kind(&self.site(target), &target.kind)?;
        Ok(PlanCall {
            target: target.address.to_string(),
            environment: environment.clone(),
            sources: sources(kind, target),
            repo_root: repo_root.to_owned(),
            services: Arc::clone(services),
            max_source_bytes: self.limits.max_source_bytes,
        })
    }

    fn site(&self, target: &Target) -> CallSite {
        CallSite {
            plugin: self.id.clone(),
            target: Some(target.address.to_string()),
        }
    }

    /// Runs `plan` in a fresh instance: the processes, and when `record` the host calls that
    /// shaped them (`None` when not recording, or when there were too many to keep).
    fn call_plan(
        &self,
        target: &Target,
        environment: &Environment,
        call: PlanCall,
        record: bool,
    ) -> Result<(Vec<Process>, Option<Vec<HostCall>>), PluginError> {
        let site = self.site(target);
        let mut store = new_store(&self.pre, &self.limits, &self.id, Some(call));
        if !record {
            store.data_mut().recorded = None;
        }
        let (wit_target, wit_environment) =
            (convert::target(target), convert::environment(environment));
        let outcome = self
            .pre
            .instantiate(&mut store)
            .and_then(|toolchain| toolchain.call_plan(&mut store, &wit_target, &wit_environment))
            .map_err(|err| failure(&store, &self.limits, &site, err))?;

        let processes = outcome.map_err(|err| PluginError::Plan {
            site: site.clone(),
            message: err.message,
        })?;
        self.check_size(&site, &processes)?;
        let processes = processes
            .into_iter()
            .map(convert::process)
            .collect::<Result<_, _>>()
            .map_err(|why| PluginError::InvalidResult { site, why })?;
        Ok((processes, store.into_data().recorded))
    }

    fn kind(&self, site: &CallSite, kind: &str) -> Result<&KindSpec, PluginError> {
        self.kinds
            .iter()
            .find(|k| k.name == kind)
            .ok_or_else(|| PluginError::UnknownKind {
                site: site.clone(),
                kind: kind.to_owned(),
            })
    }

    fn check_size(&self, site: &CallSite, processes: &[wit::Process]) -> Result<(), PluginError> {
        let size_bytes = convert::result_size(processes);
        if size_bytes > self.limits.max_result_bytes {
            return Err(PluginError::ResultTooLarge {
                site: site.clone(),
                size_bytes,
                limit_bytes: self.limits.max_result_bytes,
            });
        }
        Ok(())
    }
}

fn new_store(
    pre: &ToolchainPre<StoreState>,
    limits: &PluginLimits,
    plugin: &str,
    call: Option<PlanCall>,
) -> Store<StoreState> {
    let store_limits = StoreLimits {
        memory_bytes: limits.memory_bytes,
        max_host_calls: limits.max_host_calls,
        deadline_ticks: deadline_ticks(limits.deadline),
    };
    sandbox::new_store(pre.engine(), &store_limits, plugin, call)
}

/// The files `read-source` may read: every value of the target's `Sources` fields.
fn sources(kind: &KindSpec, target: &Target) -> BTreeSet<String> {
    let source_fields = kind.fields.iter().filter(|f| f.ty == FieldType::Sources);
    source_fields
        .filter_map(|field| match target.fields.get(&field.name) {
            Some(FieldValue::TextList(paths)) => Some(paths.iter().cloned()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Classifies a call that failed: a limit the store recorded as hit, the deadline, or a trap.
fn failure(
    store: &Store<StoreState>,
    limits: &PluginLimits,
    site: &CallSite,
    err: wasmtime::Error,
) -> PluginError {
    let state = store.data();
    let site = site.clone();
    if state.host_calls_exceeded {
        PluginError::TooManyHostCalls {
            site,
            limit: limits.max_host_calls,
        }
    } else if state.limiter.exceeded {
        PluginError::MemoryLimit {
            site,
            limit_bytes: limits.memory_bytes,
        }
    } else if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        PluginError::DeadlineExceeded {
            site,
            deadline: limits.deadline,
        }
    } else {
        PluginError::Trap {
            site,
            reason: trap_reason(&err),
            stderr: state.stderr.contents(),
            backtrace: err.downcast_ref::<WasmBacktrace>().map(ToString::to_string),
        }
    }
}

/// The cause of a trap without wasmtime's backtrace context, which is kept apart.
fn trap_reason(err: &wasmtime::Error) -> String {
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return format!("it exited with status {}", exit.0);
    }
    err.root_cause().to_string()
}
