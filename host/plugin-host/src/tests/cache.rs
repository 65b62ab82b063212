//! The compile cache: a second load of the same component skips compiling.

use std::time::Instant;

use remex_model::Environment;

use super::{FakeServices, load, services, target, text};
use crate::cache::Compiled;
use crate::{PluginHost, PluginLimits};

#[test]
fn a_second_load_comes_from_the_cache() {
    let cache_dir = tempfile::tempdir().expect("temp dir");
    let dir = cache_dir.path().join("compiled");

    let first_host =
        PluginHost::new(PluginLimits::default(), Some(dir.clone())).expect("host starts");
    let start = Instant::now();
    let first = load(&first_host, "bundled:shell", remex_bundled::SHELL);
    let compile_time = start.elapsed();

    // A new host, as a later run of remex would have.
    let second_host =
        PluginHost::new(PluginLimits::default(), Some(dir.clone())).expect("host starts");
    let start = Instant::now();
    let second = load(&second_host, "bundled:shell", remex_bundled::SHELL);
    let cached_time = start.elapsed();

    assert_eq!(first.compiled, Compiled::Stored);
    assert_eq!(second.compiled, Compiled::Cached);
    assert!(second.from_compile_cache());
    let artifacts = std::fs::read_dir(&dir).expect("cache dir exists").count();
    assert_eq!(artifacts, 1, "one artifact, no temporary files left");
    println!(
        "shell plugin: compile and describe {compile_time:?}, \
         load from cache and describe {cached_time:?}"
    );

    let target = target("//:t", "shell_command", &[("command", text("true"))]);
    let fake = FakeServices::with(&[]);
    let planned = second.plan(
        &target,
        &Environment::local(),
        std::path::Path::new("."),
        &services(&fake),
    );
    assert!(planned.is_ok(), "{planned:?}");
}

#[test]
fn a_corrupt_cache_entry_is_recompiled() {
    let cache_dir = tempfile::tempdir().expect("temp dir");
    let dir = cache_dir.path().to_owned();
    let host = PluginHost::new(PluginLimits::default(), Some(dir.clone())).expect("host starts");
    load(&host, "bundled:shell", remex_bundled::SHELL);

    for entry in std::fs::read_dir(&dir).expect("cache dir exists") {
        let path = entry.expect("entry").path();
        std::fs::write(&path, b"not a compiled component").expect("overwrite");
    }
    let reloaded = load(&host, "bundled:shell", remex_bundled::SHELL);

    assert_eq!(reloaded.compiled, Compiled::Stored);
}

#[test]
fn loads_without_a_cache() {
    let host = PluginHost::new(PluginLimits::default(), None).expect("host starts");
    let plugin = load(&host, "bundled:shell", remex_bundled::SHELL);
    assert_eq!(plugin.compiled, Compiled::Fresh);
}
