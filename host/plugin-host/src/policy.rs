//! Policy plugins: WebAssembly components of the `remex:plugin/policy` world (see
//! `wit/policy.wit`) that allow or deny every action before it is looked up in a cache or run.
//!
//! A [`PolicyEngine`] loads a component into a [`Policy`], refusing any component that imports
//! anything: a policy sees the [`ActionDescription`] and nothing else, so the same description
//! always gets the same [`Decision`]. Each evaluation runs in a fresh instance on an engine of
//! its own that meters fuel rather than wall-clock time, under the [`PolicyLimits`]: a policy
//! that loops stops after the same number of instructions on every machine.
//!
//! Policies fail closed: a policy that traps, runs out of fuel, goes past its memory cap or
//! returns a malformed decision denies the action, and the [`Denial`] says why. A
//! [`PolicySet`] holds the policies of a run and memoizes their decisions.

mod bindings;
mod decision;
mod description;
mod engine;
mod error;
mod identity;
mod limits;
mod set;

pub use decision::{Decision, Denial, DenialCause};
pub use description::{ActionDescription, ActionEnvironment};
pub use engine::{Policy, PolicyEngine};
pub use error::PolicyError;
pub use limits::PolicyLimits;
pub use set::PolicySet;

#[cfg(test)]
mod tests;
