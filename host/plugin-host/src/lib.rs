//! The sandboxed host for toolchain plugins: WebAssembly components of the
//! `remex:plugin/toolchain` world (see `wit/`), run on wasmtime.
//!
//! A [`PluginHost`] compiles a component once (caching the compiled artifact on disk), links
//! it, and asks it to `describe` itself, giving a [`Plugin`]. [`Plugin::plan`] then turns a
//! target in an environment into processes. Every call runs in a fresh instance with:
//!
//! - no WASI grants: no files, environment variables, arguments, stdin or network; stdout is
//!   discarded and the end of stderr kept for error messages;
//! - fake clocks that start at [`FAKE_WALL_CLOCK_START`] and advance only when the plugin
//!   sleeps (which returns at once), and fixed randomness, so plans are reproducible;
//! - the [`PluginLimits`]: a deadline, a memory cap, a cap on the size of the result and on
//!   the number of host calls.
//!
//! The host interface gives a plugin `log`, `find-binary` and `run-probe` (answered by
//! [`HostServices`]; [`LocalHostServices`] runs probes here for local environments and through
//! a [`ProbeRunner`] for remote ones, caching every answer for the run) and `read-source`
//! (only the target's own source files, read by this crate).
//!
//! Every failure is a [`PluginError`] naming the plugin and target; a plugin's own refusal to
//! plan a target ([`PluginError::Plan`]) is kept apart from it failing.
//!
//! Policy plugins, of the `remex:plugin/policy` world, run on an engine of their own that
//! meters fuel: a [`PolicyEngine`] loads a [`Policy`], which allows or denies each action
//! from its [`ActionDescription`] alone and fails closed. See the `policy` module's overview.

mod cache;
mod clocks;
mod convert;
mod error;
mod limits;
mod memo;
mod plugin;
mod plugin_host;
mod policy;
mod probe;
mod sandbox;
mod services;
mod stderr;

pub use clocks::FAKE_WALL_CLOCK_START;
pub use error::{BoxError, CallSite, PluginError};
pub use limits::PluginLimits;
pub use memo::PlanMemo;
pub use plugin::Plugin;
pub use plugin_host::{PluginHost, WIT_VERSION};
pub use policy::{
    ActionDescription, ActionEnvironment, Decision, Denial, DenialCause, Policy, PolicyEngine,
    PolicyError, PolicyLimits, PolicySet,
};
pub use probe::{
    DEFAULT_PROBE_OUTPUT_BYTES, DEFAULT_PROBE_TIMEOUT, LocalProbeRunner, Probe, ProbeError,
    ProbeResult, ProbeRunner,
};
pub use services::{HostServices, LocalHostServices, PATH_ENTRY};

#[cfg(test)]
mod tests;
