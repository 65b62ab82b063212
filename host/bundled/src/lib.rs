//! The plugins that ship inside remex, built from `plugins/` for `wasm32-wasip2` by this
//! crate's build script as part of the normal `cargo build`, and the path of the test plugins
//! built beside them.

/// The `shell` plugin (target kind `shell_command`), as a WebAssembly component.
pub const SHELL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shell.wasm"));

/// The `python` plugin (target kinds `python_sources` and `python_tests`).
pub const PYTHON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/python.wasm"));

/// The `protobuf` plugin (target kind `protobuf_sources`).
pub const PROTOBUF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/protobuf.wasm"));

/// The absolute directory holding the test plugins' components, such as
/// `remex_plugin_testing_hostile.wasm`. They are built with the bundled plugins but never
/// embedded in the binary.
pub const TEST_PLUGINS_DIR: &str = concat!(env!("OUT_DIR"), "/test-plugins");

/// The absolute directory holding the example policy components, built from
/// `plugins/policies/`: `no-network.wasm`, `container-images.wasm`, `max-timeout.wasm` and
/// `no-secrets.wasm`. They are examples to copy and adapt, so they are never embedded.
pub const POLICIES_DIR: &str = concat!(env!("OUT_DIR"), "/policies");

/// Every bundled plugin: a name for messages (such as `bundled:shell`) and its component.
pub fn all() -> &'static [(&'static str, &'static [u8])] {
    &[
        ("bundled:shell", SHELL),
        ("bundled:python", PYTHON),
        ("bundled:protobuf", PROTOBUF),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every component starts with the WebAssembly magic and the component-model layer.
    #[test]
    fn bundled_plugins_are_components() {
        for (name, bytes) in all() {
            assert_eq!(&bytes[..4], b"\0asm", "`{name}` is not WebAssembly");
            assert_eq!(
                &bytes[6..8],
                &[1, 0],
                "`{name}` is a core module, not a component"
            );
        }
    }

    #[test]
    fn example_policies_are_built() {
        for name in [
            "no-network",
            "container-images",
            "max-timeout",
            "no-secrets",
        ] {
            let path = std::path::Path::new(POLICIES_DIR).join(format!("{name}.wasm"));
            assert!(path.is_file(), "missing {}", path.display());
        }
    }

    #[test]
    fn test_plugins_are_built() {
        let hostile =
            std::path::Path::new(TEST_PLUGINS_DIR).join("remex_plugin_testing_hostile.wasm");
        assert!(hostile.is_file(), "missing {}", hostile.display());
    }
}
