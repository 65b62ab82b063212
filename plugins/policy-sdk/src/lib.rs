//! Write a remex policy plugin in plain Rust.
//!
//! A policy implements [`Policy`] (one function from an [`ActionDescription`] to a
//! [`Decision`]) and exports it with [`export_policy!`]; built for `wasm32-wasip2` it is a
//! component of the `remex:plugin/policy` world that imports nothing at all.
//!
//! Importing nothing means no `std`: a policy crate is `#![no_std]` and uses `alloc`
//! (`String`, `Vec`, `format!`). This crate supplies what `std` would have: a global allocator
//! (a bump allocator, since an instance lives for one evaluation), the `cabi_realloc` the host
//! calls to pass the description in, and a panic handler that traps, which the host reports as
//! a denial.
//!
//! ```ignore
//! #![no_std]
//!
//! use remex_policy_sdk::{ActionDescription, Decision, Policy};
//!
//! struct NoEmptyCommands;
//!
//! impl Policy for NoEmptyCommands {
//!     fn evaluate(action: ActionDescription) -> Decision {
//!         if action.argv.is_empty() {
//!             return Decision::Deny("the action has no command".into());
//!         }
//!         Decision::Allow
//!     }
//! }
//!
//! remex_policy_sdk::export_policy!(NoEmptyCommands, "no-empty-commands");
//! ```

#![no_std]

extern crate alloc;

mod identity;
mod runtime;

pub use bindings::{
    ActionDescription, ActionEnvironment, Decision, Digest, EnvironmentVariable, PlatformProperty,
};
#[doc(hidden)]
pub use identity::identity_section;

/// The name of the custom section holding a policy's `name@version`, which the host shows in
/// every message about the policy.
pub const IDENTITY_SECTION: &str = "remex-policy-identity";

/// A policy plugin: one decision per action.
pub trait Policy {
    /// Allows or denies `action`. Called in a fresh instance for every action, so nothing one
    /// call leaves in memory is seen by the next. A panic denies the action.
    fn evaluate(action: ActionDescription) -> Decision;
}

impl ActionDescription {
    /// The value of the action's platform property `name`, if it has one; the first when it has
    /// several.
    pub fn platform_property(&self, name: &str) -> Option<&str> {
        self.platform
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.as_str())
    }

    /// The value of the command's environment variable `name`, if set.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.value.as_str())
    }
}

/// Exports a [`Policy`] implementation as the component's `evaluate`, under `name` and the
/// crate's version. Use it once, in the policy crate's root.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty, $name:expr) => {
        #[allow(
            unsafe_code,
            reason = "the component's export is an `extern \"C\"` function, and the identity a \
                      custom section"
        )]
        const _: () = {
            struct RemexPolicyExport;

            impl $crate::__private::Guest for RemexPolicyExport {
                fn evaluate(action: $crate::ActionDescription) -> $crate::Decision {
                    <$policy as $crate::Policy>::evaluate(action)
                }
            }

            $crate::__private::export_raw!(
                RemexPolicyExport with_types_in $crate::__private::bindings
            );

            const IDENTITY: &str = ::core::concat!($name, "@", ::core::env!("CARGO_PKG_VERSION"));

            #[used]
            #[unsafe(link_section = "remex-policy-identity")]
            static IDENTITY_SECTION: [u8; IDENTITY.len()] = $crate::identity_section(IDENTITY);
        };
    };
}

/// What [`export_policy!`] expands to needs; not for policy authors.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::__export_raw as export_raw;
    pub use crate::bindings::Guest;

    pub mod bindings {
        pub use crate::bindings::*;
    }
}

#[allow(
    unsafe_code,
    reason = "wit-bindgen's canonical ABI glue is unsafe by nature"
)]
mod bindings {
    wit_bindgen_rust_macro::generate!({
        path: "../../wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_raw",
        default_bindings_module: "remex_policy_sdk::__private::bindings",
        runtime_path: "crate::runtime::wit_bindgen",
        additional_derives: [PartialEq, Eq, Clone],
    });
}
