//! A policy built the ordinary way, with `std` and `wit-bindgen`'s runtime: reading an
//! environment variable makes the component import WASI, and the policy host must refuse it
//! at load.

#[allow(
    unsafe_code,
    reason = "wit-bindgen's canonical ABI glue is unsafe by nature"
)]
mod bindings {
    wit_bindgen::generate!({ path: "../../../wit", world: "policy" });
}

use bindings::{ActionDescription, Decision, Guest};

struct ReadsEnvironment;

impl Guest for ReadsEnvironment {
    fn evaluate(_action: ActionDescription) -> Decision {
        match std::env::var("REMEX_POLICY_OVERRIDE") {
            Ok(_) => Decision::Allow,
            Err(_) => Decision::Deny("no override".to_owned()),
        }
    }
}

#[allow(
    unsafe_code,
    reason = "the component's export is an `extern \"C\"` function"
)]
const _: () = {
    bindings::export!(ReadsEnvironment with_types_in bindings);
};
