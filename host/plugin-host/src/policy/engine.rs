//! The engine policies run on, loading a component into a [`Policy`], and evaluating it.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store, Trap};

use super::bindings::{self, PolicyPre};
use super::decision::{Decision, Denial, DenialCause};
use super::description::ActionDescription;
use super::error::PolicyError;
use super::identity::identity;
use super::limits::PolicyLimits;
use crate::cache::CompileCache;
use crate::error::{PluginError, boxed};
use crate::limits::MemoryLimiter;

/// The most elements a policy's tables may hold; Rust guests need a handful.
const MAX_TABLE_ELEMENTS: usize = 10_000;

/// Loads policies and evaluates them under [`PolicyLimits`].
///
/// It owns a wasmtime engine of its own, apart from the toolchain plugins' one, configured to
/// meter fuel: a policy's running time is counted in instructions, not wall-clock time, so a
/// policy that runs out does so on every machine and every run alike. The API is synchronous
/// and runs WebAssembly on the calling thread; from async code, call it from a blocking thread.
pub struct PolicyEngine {
    engine: Engine,
    linker: Linker<PolicyState>,
    cache: CompileCache,
    limits: PolicyLimits,
}

impl PolicyEngine {
    /// An engine enforcing `limits`, caching compiled policies in `compile_cache_dir` (created
    /// when first needed) or compiling them on every load when it is `None`.
    pub fn new(
        limits: PolicyLimits,
        compile_cache_dir: Option<PathBuf>,
    ) -> Result<Self, PolicyError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine =
            Engine::new(&config).map_err(|err| PolicyError::Engine { source: boxed(err) })?;
        Ok(Self {
            cache: CompileCache::new(&engine, compile_cache_dir),
            // Empty: a policy imports nothing, so there is nothing to link.
            linker: Linker::new(&engine),
            engine,
            limits,
        })
    }

    /// Loads a policy: reads its identity, compiles the component (or loads it from the
    /// compile cache), refuses it if it imports anything, and links it. `origin` (a file path)
    /// names where it came from in errors.
    pub fn load(&self, origin: &str, component_bytes: &[u8]) -> Result<Policy, PolicyError> {
        let hash: [u8; 32] = Sha256::digest(component_bytes).into();
        let id = identity(component_bytes, origin, &hash);
        let component = self.compile(&id, origin, component_bytes)?;
        self.check_imports(&id, origin, &component)?;

        let incompatible = |err| PolicyError::IncompatibleWorld {
            policy: id.clone(),
            origin: origin.to_owned(),
            source: boxed(err),
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(incompatible)?;
        let pre = PolicyPre::new(instance_pre).map_err(incompatible)?;
        Ok(Policy {
            id,
            origin: origin.to_owned(),
            hash,
            pre,
            limits: self.limits.clone(),
        })
    }

    /// The limits policies run under.
    pub fn limits(&self) -> &PolicyLimits {
        &self.limits
    }

    fn compile(&self, id: &str, origin: &str, bytes: &[u8]) -> Result<Component, PolicyError> {
        match self.cache.component(&self.engine, origin, bytes) {
            Ok((component, _, _)) => Ok(component),
            Err(PluginError::Compile { source, .. }) => Err(PolicyError::Compile {
                policy: id.to_owned(),
                origin: origin.to_owned(),
                source,
            }),
            Err(other) => Err(PolicyError::Compile {
                policy: id.to_owned(),
                origin: origin.to_owned(),
                source: Box::new(other),
            }),
        }
    }

    /// Refuses a component with any import, naming them all: a policy that could reach a
    /// clock, randomness, files or the network could answer differently for the same action.
    fn check_imports(
        &self,
        id: &str,
        origin: &str,
        component: &Component,
    ) -> Result<(), PolicyError> {
        let component_type = component.component_type();
        let imports: Vec<String> = component_type
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        if imports.is_empty() {
            return Ok(());
        }
        Err(PolicyError::Imports {
            policy: id.to_owned(),
            origin: origin.to_owned(),
            imports,
        })
    }
}

/// A policy, compiled and linked, ready to evaluate actions.
///
/// Each evaluation runs in a fresh instance, so evaluations are independent: nothing one
/// leaves in memory is seen by the next, and several threads evaluate in parallel. Share it
/// with an `Arc`.
pub struct Policy {
    id: String,
    origin: String,
    hash: [u8; 32],
    pre: PolicyPre<PolicyState>,
    limits: PolicyLimits,
}

impl Policy {
    /// The policy's `name@version`, such as `no-network@0.1.0`, as written into the component
    /// by `remex-policy-sdk`; for a component without it, the file name at the first 12 hex
    /// digits of the component's SHA-256, such as `mine@sha256:3f2a9c1b0e4d`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the policy was loaded from, as given to [`PolicyEngine::load`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The SHA-256 of the component: two policies with the same hash decide alike.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// Evaluates `action` in a fresh instance. A policy that fails denies the action.
    pub fn evaluate(&self, action: &ActionDescription) -> Decision {
        self.evaluate_metered(action).0
    }

    /// Evaluates `action` as [`Policy::evaluate`] does, and returns the fuel it used: for
    /// benchmarks, and for choosing [`PolicyLimits::fuel`].
    pub fn evaluate_metered(&self, action: &ActionDescription) -> (Decision, u64) {
        let mut store = self.new_store();
        let description = bindings::action_description(action);
        let outcome = self
            .pre
            .instantiate(&mut store)
            .and_then(|policy| policy.call_evaluate(&mut store, &description));
        let fuel_used = self
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));

        let decision = match outcome {
            Ok(bindings::Decision::Allow) => return (Decision::Allow, fuel_used),
            Ok(bindings::Decision::Deny(reason)) => self.check_reason(reason),
            Err(err) => self.failure(&store, &err),
        };
        tracing::debug!(policy = %self.id, target = %action.target, %decision, "policy denied");
        let denial = Denial {
            policy: self.id.clone(),
            cause: decision,
        };
        (Decision::Deny(denial), fuel_used)
    }

    fn new_store(&self) -> Store<PolicyState> {
        let state = PolicyState {
            limiter: MemoryLimiter::new(self.limits.memory_bytes, MAX_TABLE_ELEMENTS),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limiter);
        if let Err(err) = store.set_fuel(self.limits.fuel) {
            // Only possible on an engine without fuel; the instance then gets none and the
            // first instruction fails, which denies the action.
            tracing::debug!(policy = %self.id, %err, "cannot set policy fuel");
        }
        store
    }

    /// The policy's reason, checked: present, within the cap, control characters escaped so
    /// that a reason cannot rewrite the terminal it is printed to.
    fn check_reason(&self, reason: String) -> DenialCause {
        if reason.len() > self.limits.max_reason_bytes {
            return DenialCause::InvalidResult(format!(
                "a reason of {} bytes, more than the cap of {}",
                reason.len(),
                self.limits.max_reason_bytes
            ));
        }
        if reason.trim().is_empty() {
            return DenialCause::InvalidResult("a denial without a reason".to_owned());
        }
        DenialCause::Denied(escape_controls(&reason))
    }

    /// Classifies a failed evaluation: a limit the store recorded as hit, fuel, a trap, or a
    /// result the host could not read as a decision.
    fn failure(&self, store: &Store<PolicyState>, err: &wasmtime::Error) -> DenialCause {
        if store.data().limiter.exceeded {
            return DenialCause::MemoryLimit {
                limit_bytes: self.limits.memory_bytes,
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => DenialCause::OutOfFuel {
                fuel: self.limits.fuel,
            },
            Some(trap) => DenialCause::Trap(trap.to_string()),
            None => DenialCause::InvalidResult(err.root_cause().to_string()),
        }
    }
}

fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// The state of one evaluation's store.
pub(crate) struct PolicyState {
    limiter: MemoryLimiter,
}
