//! The engine plugins run on, and loading a component into a [`Plugin`].

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::CompileCache;
use crate::convert::ToolchainPre;
use crate::error::{PluginError, boxed};
use crate::limits::PluginLimits;
use crate::plugin::Plugin;
use crate::sandbox::{self, StoreState};

/// How often the epoch advances; deadlines are enforced to about this precision.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Loads plugins and runs them under [`PluginLimits`].
///
/// It owns one wasmtime engine, with epoch interruption on and a thread that advances the
/// epoch every 10 ms for as long as the engine is alive (that is, while this host or any
/// [`Plugin`] it loaded is). Its API is synchronous and calls run WebAssembly on the calling
/// thread: from async code, call it from a blocking thread (`tokio::task::spawn_blocking`),
/// never from an async task directly.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<StoreState>,
    cache: CompileCache,
    limits: PluginLimits,
}

impl PluginHost {
    /// A host enforcing `limits`, caching compiled plugins in `compile_cache_dir` (created when
    /// first needed) or compiling them on every load when it is `None`.
    pub fn new(
        limits: PluginLimits,
        compile_cache_dir: Option<PathBuf>,
    ) -> Result<Self, PluginError> {
        let engine_error = |err| PluginError::Engine { source: boxed(err) };
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(instance_pool(&limits)));
        config.memory_init_cow(false);
        let engine = Engine::new(&config).map_err(engine_error)?;
        let linker = sandbox::linker(&engine).map_err(engine_error)?;
        start_epoch_ticker(&engine)?;

        Ok(Self {
            cache: CompileCache::new(&engine, compile_cache_dir),
            engine,
            linker,
            limits,
        })
    }

    /// Loads a plugin: compiles the component (or loads it from the compile cache), links it
    /// against the host, and calls its `describe`. `origin` (a file path, or `bundled:shell`)
    /// names the plugin in errors until it has said its own name.
    pub fn load(&self, origin: &str, component_bytes: &[u8]) -> Result<Plugin, PluginError> {
        let (component, compiled, digest) =
            self.cache
                .component(&self.engine, origin, component_bytes)?;
        let pre = self.link(origin, &component)?;
        // What a plan depends on besides its arguments: the component, and the engine that
        // runs it (a new wasmtime or other machine features may compute differently).
        let identity = Sha256::new()
            .chain_update(self.cache.engine_key())
            .chain_update(digest)
            .finalize()
            .into();
        Plugin::describe(origin, pre, self.limits.clone(), compiled, identity)
    }

    /// The limits plugins run under.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    fn link(
        &self,
        origin: &str,
        component: &Component,
    ) -> Result<ToolchainPre<StoreState>, PluginError> {
        check_wit_version(&self.engine, origin, component)?;
        let incompatible = |err| PluginError::IncompatibleWorld {
            origin: origin.to_owned(),
            source: boxed(err),
        };
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(incompatible)?;
        ToolchainPre::new(instance_pre).map_err(incompatible)
    }
}

/// The version of the `remex:plugin` WIT package this host implements.
pub const WIT_VERSION: &str = "0.1.0";

/// The package's interfaces are named `remex:plugin/NAME@VERSION` in a component's imports.
const WIT_PACKAGE_PREFIX: &str = "remex:plugin/";

/// Refuses a component built for another version of the `remex:plugin` package, naming both
/// versions, before linking would fail with a less helpful message. Versions the component
/// model treats as compatible (same major, or same minor below 1.0) are accepted.
fn check_wit_version(
    engine: &Engine,
    origin: &str,
    component: &Component,
) -> Result<(), PluginError> {
    let component_type = component.component_type();
    let versions = component_type
        .imports(engine)
        .filter_map(|(name, _)| name.strip_prefix(WIT_PACKAGE_PREFIX))
        .filter_map(|rest| rest.split_once('@').map(|(_, version)| version.to_owned()));
    for version in versions {
        if !compatible(&version, WIT_VERSION) {
            return Err(PluginError::IncompatibleVersion {
                origin: origin.to_owned(),
                found: version,
                supported: WIT_VERSION.to_owned(),
            });
        }
    }
    Ok(())
}

/// Whether `found` may stand for `supported` under semver: the same major version, and below
/// 1.0 the same minor too.
pub(crate) fn compatible(found: &str, supported: &str) -> bool {
    let parts = |v: &str| -> Vec<String> { v.split('.').take(2).map(str::to_owned).collect() };
    let (found, supported) = (parts(found), parts(supported));
    match supported.first().map(String::as_str) {
        Some("0") => found == supported,
        _ => found.first() == supported.first(),
    }
}

/// The number of epoch ticks that covers `deadline`, plus one for the tick in progress.
pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
    let ticks = deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
    u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
}

/// Every call gets a fresh instance, so instantiation is on the path of every plan. A pool of
/// instance slots, memories and tables, reserved once, makes it cheap: a slot is reused after
/// a call, its first pages reset to zero by `memset` rather than unmapped and faulted in again
/// (which, with many threads, also costs a TLB shootdown on every core). A fresh instance still
/// sees nothing of the previous one.
fn instance_pool(limits: &PluginLimits) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(MAX_LIVE_INSTANCES)
        .total_core_instances(MAX_LIVE_INSTANCES * 8)
        .total_memories(MAX_LIVE_INSTANCES * 2)
        .total_tables(MAX_LIVE_INSTANCES * 4)
        .max_memory_size(limits.memory_bytes.min(MAX_MEMORY_RESERVATION))
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        // Calls run synchronously on the caller's stack, so there are no fiber stacks to pool;
        // the default reserves 1,000 and protects a guard page of each when the engine is
        // made, then unmaps as many pieces when it goes.
        .total_stacks(0);
    pool
}

/// The address space wasmtime reserves for each memory by default; no memory grows past it.
const MAX_MEMORY_RESERVATION: usize = 4 << 30;

/// How many plugin calls may be in progress at once, across all threads. Callers bound their
/// own parallelism (the runner plans one target per core), so this is far above what is used.
const MAX_LIVE_INSTANCES: u32 = 256;

/// How much of each memory and table is reset by `memset` instead of being unmapped: about what
/// one `plan` call of the bundled toolchains touches.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

fn start_epoch_ticker(engine: &Engine) -> Result<(), PluginError> {
    let engine = engine.weak();
    let tick = move || {
        // Holding only a weak reference lets the thread end once the engine is dropped.
        while let Some(engine) = engine.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    };
    std::thread::Builder::new()
        .name("remex-plugin-epoch".to_owned())
        .spawn(tick)
        .map(drop)
        .map_err(|err| PluginError::Engine {
            source: Box::new(err),
        })
}
