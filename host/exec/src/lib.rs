//! The local executor: runs a REAPI `Action` on this machine.
//!
//! Each run gets a fresh sandbox directory under the store's temporary directory, with the input
//! root materialized from the local CAS, exactly the `Command`'s environment variables (nothing
//! inherited from the host), its own process group (so a timeout kills everything it started),
//! and its declared outputs collected back into the CAS as an `ActionResult`.

mod command;
mod input_root;
mod materialize;
mod outputs;
mod run;

pub use run::{ExecError, ExecutionOutcome, LocalExecutor, PreparedAction};
