//! Why a policy could not be loaded. Failures while evaluating are not errors: they deny the
//! action (see [`crate::DenialCause`]).

use crate::error::BoxError;

/// Why loading a policy failed. `policy` is the policy's `name@version`, read from the
/// component before it is compiled (see [`crate::Policy::id`]), and `origin` the file it came
/// from.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The wasmtime engine for policies could not be configured.
    #[error("cannot start the policy engine")]
    Engine {
        #[source]
        source: BoxError,
    },

    /// The bytes are not a valid WebAssembly component, or could not be compiled.
    #[error("cannot compile policy `{policy}` from `{origin}`")]
    Compile {
        policy: String,
        origin: String,
        #[source]
        source: BoxError,
    },

    /// The component imports something. A policy may import nothing, not even WASI.
    #[error(
        "policy `{policy}` from `{origin}` imports {}; a policy may import nothing, not even \
         WASI, so that its decisions depend on the action alone (build it `no_std` with \
         `remex-policy-sdk`)",
        quoted(imports)
    )]
    Imports {
        policy: String,
        origin: String,
        /// The names of everything it imports, such as `wasi:cli/environment@0.2.6`.
        imports: Vec<String>,
    },

    /// The component does not export `evaluate` with the `remex:plugin/policy` signature.
    #[error("policy `{policy}` from `{origin}` is not a `remex:plugin/policy@0.1.0` component")]
    IncompatibleWorld {
        policy: String,
        origin: String,
        #[source]
        source: BoxError,
    },
}

fn quoted(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}
