//! What one call into a plugin runs inside: a fresh store holding an empty WASI context (no
//! files, environment, arguments or network; fake clocks; deterministic randomness; stderr kept
//! in memory), a memory cap, a count of host calls, and the host interface itself.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use remex_model::Environment;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::{Deterministic, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::clocks::{FakeMonotonicClock, FakeMonotonicClockView, FakeTime};
use crate::convert::Toolchain;
use crate::convert::remex::plugin::host::{self, LogLevel};
use crate::convert::remex::plugin::types;
use crate::limits::MemoryLimiter;
use crate::memo::{self, HostCall};
use crate::probe::{Probe, ProbeResult};
use crate::services::HostServices;
use crate::stderr::StderrTail;

/// The most elements a plugin's tables may hold; Rust guests need a few hundred.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// How much a plan's recorded host calls may hold before the plan is no longer worth
/// remembering (a plan making that many calls is planned again in every run).
const MAX_RECORDED_BYTES: usize = 1 << 20;

/// How much of one log message is kept.
const MAX_LOG_MESSAGE_BYTES: usize = 4 * 1024;

/// The linker every plugin is instantiated with: WASI with the fake monotonic clock in place of
/// the real one, and the `remex:plugin/host` interface.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<StoreState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;

    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<StoreState, FakeMonotonicClock>(&mut linker, |state| {
        FakeMonotonicClockView {
            time: &state.time,
            table: &mut state.table,
        }
    })?;
    linker.allow_shadowing(false);

    Toolchain::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// The target a `plan` call is about, for the host calls made during it.
pub(crate) struct PlanCall {
    pub(crate) target: String,
    pub(crate) environment: Environment,
    /// The paths `read-source` may read: the values of the target's `Sources` fields.
    pub(crate) sources: BTreeSet<String>,
    pub(crate) repo_root: PathBuf,
    pub(crate) services: Arc<dyn HostServices>,
    pub(crate) max_source_bytes: u64,
}

/// The state of one store, that is of one call.
pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    time: FakeTime,
    pub(crate) stderr: StderrTail,
    pub(crate) limiter: MemoryLimiter,
    host_calls: u64,
    max_host_calls: u64,
    pub(crate) host_calls_exceeded: bool,
    /// `name@version` (or the origin while describing), for log events.
    plugin: String,
    call: Option<PlanCall>,
    /// The host calls of a plan that change what it returns, in order, with their answers;
    /// `None` once they went past [`MAX_RECORDED_BYTES`], and the plan is not remembered.
    pub(crate) recorded: Option<Vec<HostCall>>,
    recorded_bytes: usize,
}

/// The limits one store enforces.
pub(crate) struct StoreLimits {
    pub(crate) memory_bytes: usize,
    pub(crate) max_host_calls: u64,
    pub(crate) deadline_ticks: u64,
}

/// A fresh store for one call: `call` is `None` for `describe`.
pub(crate) fn new_store(
    engine: &Engine,
    limits: &StoreLimits,
    plugin: &str,
    call: Option<PlanCall>,
) -> Store<StoreState> {
    let time = FakeTime::default();
    let stderr = StderrTail::default();
    let state = StoreState {
        wasi: wasi_ctx(&time, &stderr),
        table: ResourceTable::new(),
        time,
        stderr,
        limiter: MemoryLimiter::new(limits.memory_bytes, MAX_TABLE_ELEMENTS),
        host_calls: 0,
        max_host_calls: limits.max_host_calls,
        host_calls_exceeded: false,
        plugin: plugin.to_owned(),
        call,
        recorded: Some(Vec::new()),
        recorded_bytes: 0,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(limits.deadline_ticks);
    store
}

/// An empty WASI context. The builder's defaults already grant no files, environment,
/// arguments or stdin, and discard stdout; the rest is set here, network denial included, so
/// that a change of defaults cannot widen the sandbox.
fn wasi_ctx(time: &FakeTime, stderr: &StderrTail) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stderr(stderr.clone())
        .wall_clock(time.clone())
        .monotonic_clock(time.clone())
        // Randomness is fixed so that a plan cannot vary between runs, such as through the
        // iteration order of a randomly seeded hash map.
        .secure_random(Deterministic::new(vec![0x5e, 0xed, 0x42, 0x17]))
        .insecure_random(Deterministic::new(vec![0x0d, 0xdb, 0xa1, 0x1c]))
        .insecure_random_seed(0)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    builder.build()
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl StoreState {
    /// Counts one host call; past the cap it traps the plugin.
    fn count_host_call(&mut self) -> wasmtime::Result<()> {
        self.host_calls += 1;
        if self.host_calls > self.max_host_calls {
            self.host_calls_exceeded = true;
            wasmtime::bail!("more than {} host calls", self.max_host_calls);
        }
        Ok(())
    }
}

impl StoreState {
    /// Records the call `describe` gives, made only when the plan is being recorded.
    fn record(&mut self, describe: impl FnOnce() -> HostCall) {
        if self.recorded.is_none() {
            return;
        }
        let call = describe();
        self.recorded_bytes = self.recorded_bytes.saturating_add(call.size_bytes());
        if self.recorded_bytes > MAX_RECORDED_BYTES {
            self.recorded = None;
        }
        if let Some(recorded) = &mut self.recorded {
            recorded.push(call);
        }
    }
}

impl types::Host for StoreState {}

impl host::Host for StoreState {
    fn log(&mut self, level: LogLevel, mut message: String) -> wasmtime::Result<()> {
        self.count_host_call()?;
        truncate(&mut message, MAX_LOG_MESSAGE_BYTES);
        let target = self.call.as_ref().map(|c| c.target.as_str());
        // Libraries stay quiet: a plugin's errors and warnings are debug events of the host.
        match level {
            LogLevel::Error | LogLevel::Warn | LogLevel::Info => {
                tracing::debug!(plugin = %self.plugin, target, ?level, message, "plugin log");
            }
            LogLevel::Debug | LogLevel::Trace => {
                tracing::trace!(plugin = %self.plugin, target, ?level, message, "plugin log");
            }
        }
        Ok(())
    }

    fn find_binary(
        &mut self,
        name: String,
        search_path: Vec<String>,
    ) -> wasmtime::Result<Option<String>> {
        self.count_host_call()?;
        let Some(call) = &self.call else {
            return Ok(None);
        };
        let found = call.find_binary(&name, &search_path);
        self.record(|| HostCall::FindBinary {
            name,
            search_path,
            found: found.clone(),
        });
        Ok(found)
    }

    fn run_probe(
        &mut self,
        argv: Vec<String>,
        env: Vec<types::EnvVar>,
    ) -> wasmtime::Result<Result<host::ProbeResult, String>> {
        self.count_host_call()?;
        let Some(call) = &self.call else {
            return Ok(Err(
                "no target is being planned, so there is no environment to probe".to_owned(),
            ));
        };
        let probe = Probe {
            argv,
            env: env.into_iter().map(|var| (var.name, var.value)).collect(),
        };
        let result = call.run_probe(&probe);
        tracing::trace!(plugin = %self.plugin, target = call.target, ?probe, "plugin probe");
        self.record(|| HostCall::RunProbe {
            answer: memo::probe_answer(&result),
            argv: probe.argv,
            env: probe.env,
        });
        Ok(result.map(|done| host::ProbeResult {
            exit_code: done.exit_code,
            stdout: done.stdout,
            stderr: done.stderr,
        }))
    }

    fn read_source(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, String>> {
        self.count_host_call()?;
        let Some(call) = &self.call else {
            return Ok(Err(
                "no target is being planned, so there are no sources to read".to_owned(),
            ));
        };
        let content = call.read_source(&path);
        self.record(|| HostCall::ReadSource {
            answer: memo::source_answer(&content),
            path,
        });
        Ok(content)
    }
}

impl PlanCall {
    /// Whether `call` gets the answer it was recorded with, asked again now.
    pub(crate) fn answers_again(&self, call: &HostCall) -> bool {
        match call {
            HostCall::FindBinary {
                name,
                search_path,
                found,
            } => self.find_binary(name, search_path) == *found,
            HostCall::RunProbe { argv, env, answer } => {
                let probe = Probe {
                    argv: argv.clone(),
                    env: env.clone(),
                };
                memo::probe_answer(&self.run_probe(&probe)) == *answer
            }
            HostCall::ReadSource { path, answer } => {
                memo::source_answer(&self.read_source(path)) == *answer
            }
        }
    }

    fn find_binary(&self, name: &str, search_path: &[String]) -> Option<String> {
        if !is_file_name(name) {
            return None;
        }
        self.services
            .find_binary(&self.environment, name, search_path)
    }

    fn run_probe(&self, probe: &Probe) -> Result<ProbeResult, String> {
        self.services
            .run_probe(&self.environment, probe)
            .map_err(|err| err.to_string())
    }

    fn read_source(&self, path: &str) -> Result<Vec<u8>, String> {
        // The set comes from the host's own glob resolution; the path check guards against a
        // BUILD-level mistake ever turning into a read outside the repository.
        if !self.sources.contains(path) || !is_repo_relative(path) {
            return Err(format!(
                "`{path}` is not a source of `{}`; a plugin may read only the files in its \
                 target's sources fields",
                self.target
            ));
        }
        let file = std::fs::File::open(self.repo_root.join(path))
            .map_err(|err| format!("cannot read `{path}`: {err}"))?;
        let mut content = Vec::new();
        file.take(self.max_source_bytes.saturating_add(1))
            .read_to_end(&mut content)
            .map_err(|err| format!("cannot read `{path}`: {err}"))?;
        if content.len() as u64 > self.max_source_bytes {
            return Err(format!(
                "`{path}` is larger than the {}-byte cap on a source a plugin reads",
                self.max_source_bytes
            ));
        }
        Ok(content)
    }
}

/// A name with no directory part, so that `find-binary` looks only where it is told to.
fn is_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

fn is_repo_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn truncate(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}
