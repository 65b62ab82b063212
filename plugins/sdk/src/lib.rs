//! Write a remex toolchain plugin in plain Rust.
//!
//! A plugin implements [`Toolchain`] (describe the target kinds it provides; plan a target into
//! processes) and exports it with [`export_toolchain!`]; built for `wasm32-wasip2` it is a
//! component of the `remex:plugin/toolchain` world. While planning it may call the [`host`]
//! functions. Everything a plugin sees is data: the WIT records appear here as plain structs,
//! with helpers for reading a target's fields and an environment's options.
//!
//! ```ignore
//! use remex_plugin_sdk::{Description, Environment, PlanError, Process, Target, Toolchain};
//!
//! struct Hello;
//!
//! impl Toolchain for Hello {
//!     fn describe() -> Description {
//!         Description::new("hello", env!("CARGO_PKG_VERSION"), vec![])
//!     }
//!
//!     fn plan(target: Target, _environment: Environment) -> Result<Vec<Process>, PlanError> {
//!         Ok(vec![Process::new(format!("greet {}", target.address), ["/bin/echo", "hello"])])
//!     }
//! }
//!
//! remex_plugin_sdk::export_toolchain!(Hello);
//! ```

mod describe;
pub mod host;
mod plan;
mod target;
pub mod testing;

pub use bindings::remex::plugin::types::{
    Description, EnvVar, Environment, Field, FieldSpec, FieldType, FieldValue, KindSpec,
    OptionValue, PlanError, Process, Property, Target,
};

/// A toolchain plugin: the target kinds it provides and how it plans them.
///
/// Both functions are called in a fresh instance: nothing a call leaves in memory is seen by
/// the next one.
pub trait Toolchain {
    /// The plugin's name, version and target kinds. Called once when the host loads the plugin.
    fn describe() -> Description;

    /// The processes to run for `target` in `environment`, or why the target cannot be planned.
    ///
    /// Return a [`PlanError`] for mistakes the user can fix (a missing tool, a bad field value);
    /// a panic is reported as a bug in the plugin.
    fn plan(target: Target, environment: Environment) -> Result<Vec<Process>, PlanError>;
}

/// Exports a [`Toolchain`] implementation as the component's `describe` and `plan`. Use it once,
/// in the plugin crate's root.
#[macro_export]
macro_rules! export_toolchain {
    ($toolchain:ty) => {
        #[allow(
            unsafe_code,
            reason = "the component's exports are `extern \"C\"` functions"
        )]
        const _: () = {
            struct RemexToolchainExport;

            impl $crate::__private::Guest for RemexToolchainExport {
                fn describe() -> $crate::Description {
                    <$toolchain as $crate::Toolchain>::describe()
                }

                fn plan(
                    target: $crate::Target,
                    environment: $crate::Environment,
                ) -> ::core::result::Result<::std::vec::Vec<$crate::Process>, $crate::PlanError>
                {
                    <$toolchain as $crate::Toolchain>::plan(target, environment)
                }
            }

            $crate::__private::export_raw!(
                RemexToolchainExport with_types_in $crate::__private::bindings
            );
        };
    };
}

/// What [`export_toolchain!`] expands to needs; not for plugin authors.
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
    wit_bindgen::generate!({
        path: "../../wit",
        world: "toolchain",
        pub_export_macro: true,
        export_macro_name: "__export_raw",
        default_bindings_module: "remex_plugin_sdk::__private::bindings",
        additional_derives: [PartialEq, Clone],
    });
}
