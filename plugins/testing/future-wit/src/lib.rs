//! A toolchain plugin of `remex:plugin@9.0.0`: remex must refuse to install or load it, naming
//! both that version and its own.

#[allow(
    unsafe_code,
    reason = "wit-bindgen's canonical ABI glue and exports are unsafe by nature"
)]
mod plugin {
    wit_bindgen::generate!({
        path: "wit",
        world: "toolchain",
    });

    use remex::plugin::host;

    struct FutureWit;

    impl Guest for FutureWit {
        fn describe() -> Description {
            host::log("describing a plugin from the future");
            Description {
                name: "future-wit".to_owned(),
                version: "9.0.0".to_owned(),
            }
        }
    }

    export!(FutureWit);
}
