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
//! The host interface gives a plugin `log`, `find-binary` (answered by [`HostServices`]) and
//! `read-source` (only the target's own source files, read by this crate).
//!
//! Every failure is a [`PluginError`] naming the plugin and target; a plugin's own refusal to
//! plan a target ([`PluginError::Plan`]) is kept apart from it failing.

mod cache;
mod clocks;
mod convert;
mod error;
mod limits;
mod plugin;
mod plugin_host;
mod sandbox;
mod services;
mod stderr;

pub use clocks::FAKE_WALL_CLOCK_START;
pub use error::{BoxError, CallSite, PluginError};
pub use limits::PluginLimits;
pub use plugin::Plugin;
pub use plugin_host::PluginHost;
pub use services::{HostServices, LocalHostServices, PATH_ENTRY};

#[cfg(test)]
mod tests;
