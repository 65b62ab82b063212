//! The `hostile` test plugin: every misbehaviour ends in the right error, quickly, and the
//! plugin keeps working afterwards.

use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use remex_model::{Environment, Process};

use super::{FakeServices, hostile_component, list, load, quick_limits, services, target, text};
use crate::{FAKE_WALL_CLOCK_START, Plugin, PluginError, PluginHost};

static HOSTILE: LazyLock<Plugin> = LazyLock::new(|| {
    let host = PluginHost::new(quick_limits(), None).expect("host starts");
    let start = Instant::now();
    let plugin = load(&host, "hostile.wasm", &hostile_component());
    println!("hostile plugin: compile and describe {:?}", start.elapsed());
    plugin
});

/// Plans a `hostile` target with `behavior` in `repo_root`, and how long it took.
fn plan_in(
    behavior: &str,
    repo_root: &Path,
    sources: &[&str],
) -> (Result<Vec<Process>, PluginError>, Duration) {
    let target = target(
        "//t:hostile",
        "hostile",
        &[("behavior", text(behavior)), ("sources", list(sources))],
    );
    let fake = FakeServices::with(&[]);
    let start = Instant::now();
    let result = HOSTILE.plan(&target, &Environment::local(), repo_root, &services(&fake));
    (result, start.elapsed())
}

fn plan(behavior: &str) -> Result<Vec<Process>, PluginError> {
    let (result, elapsed) = plan_in(behavior, Path::new("/nonexistent-repo"), &[]);
    // Generous against a loaded machine, still far below anything that would hang a build.
    assert!(
        elapsed < Duration::from_secs(10),
        "`{behavior}` took {elapsed:?}"
    );
    result
}

/// After any misbehaviour, the same plugin plans a well-behaved target.
fn assert_still_works() {
    let processes = plan("ok").expect("`ok` plans after a failure");
    assert_eq!(processes[0].argv, ["/bin/true"]);
}

/// The plan-error message of a sandbox probe.
fn probe(behavior: &str) -> String {
    let result = plan(behavior);
    assert_still_works();
    match result {
        Err(PluginError::Plan { message, .. }) => message,
        other => panic!("`{behavior}` should report a plan error, got {other:?}"),
    }
}

#[test]
fn an_endless_loop_hits_the_deadline() {
    let (result, elapsed) = plan_in("loop", Path::new("/"), &[]);
    assert!(
        matches!(result, Err(PluginError::DeadlineExceeded { .. })),
        "{result:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "the 500 ms deadline took {elapsed:?}"
    );
    assert_still_works();
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let result = plan("alloc");
    assert!(
        matches!(
            result,
            Err(PluginError::MemoryLimit { limit_bytes, .. }) if limit_bytes == 128 << 20
        ),
        "{result:?}"
    );
    assert_still_works();
}

#[test]
fn a_panic_is_a_trap_with_the_panic_message() {
    let result = plan("trap");
    let Err(PluginError::Trap {
        stderr, backtrace, ..
    }) = &result
    else {
        panic!("expected a trap, got {result:?}");
    };
    assert!(
        stderr.contains("hostile plugin panics on purpose"),
        "{stderr}"
    );
    assert!(
        backtrace.as_deref().is_some_and(|b| b.contains("plan")),
        "{backtrace:?}"
    );
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.starts_with("plugin `hostile@0.1.0` planning `//t:hostile` trapped: "),
        "{message}"
    );
    assert_still_works();
}

#[test]
fn exiting_is_a_trap_with_the_status() {
    let result = plan("exit");
    // WASI 0.2 carries only success or failure, so `exit(3)` arrives as status 1.
    assert!(
        matches!(
            &result,
            Err(PluginError::Trap { reason, .. }) if reason == "it exited with status 1"
        ),
        "{result:?}"
    );
    assert_still_works();
}

#[test]
fn a_huge_result_is_refused() {
    let result = plan("huge-result");
    assert!(
        matches!(
            result,
            Err(PluginError::ResultTooLarge { size_bytes, .. }) if size_bytes > 32 << 20
        ),
        "{result:?}"
    );
    assert_still_works();
}

#[test]
fn a_host_call_flood_is_stopped() {
    let result = plan("host-call-flood");
    assert!(
        matches!(
            result,
            Err(PluginError::TooManyHostCalls { limit: 10_000, .. })
        ),
        "{result:?}"
    );
    assert_still_works();
}

#[test]
fn the_sandbox_has_no_files() {
    let message = probe("wasi-file");
    assert!(message.starts_with("wasi-file: read failed"), "{message}");
}

#[test]
fn the_sandbox_has_no_environment_arguments_or_directory() {
    let message = probe("wasi-env");
    // With no initial directory granted, wasi-libc reports `/`, which leads nowhere.
    assert_eq!(message, r#"wasi-env: vars=[] args=[] cwd=Ok("/")"#);
}

#[test]
fn the_sandbox_clocks_are_fake() {
    let wall_ns = FAKE_WALL_CLOCK_START.as_nanos();
    let message = probe("wasi-clock");
    assert_eq!(
        message,
        format!("wasi-clock: wall_ns=Ok({wall_ns}) monotonic_elapsed_ns=0")
    );
}

#[test]
fn sleeping_advances_fake_time_without_waiting() {
    let message = probe("sleep");
    assert_eq!(message, "sleep: slept_s=3600");
}

#[test]
fn the_sandbox_has_no_network() {
    let message = probe("wasi-socket");
    assert!(
        message.starts_with("wasi-socket: connect failed"),
        "{message}"
    );
}

#[test]
fn read_source_refuses_paths_that_are_not_the_targets_sources() {
    let message = probe("read-outside");
    assert_eq!(message, "read-outside: refused=4");
}

#[test]
fn read_source_reads_the_targets_sources() {
    let repo = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(repo.path().join("t")).expect("mkdir");
    std::fs::write(repo.path().join("t/a.txt"), "hello").expect("write");

    let (result, _) = plan_in("read-sources", repo.path(), &["t/a.txt"]);

    let processes = result.expect("plans");
    assert_eq!(processes[0].argv, ["sizes", "t/a.txt=5"]);
}

#[test]
fn plan_errors_and_traps_name_the_plugin_and_target() {
    let result = plan("no-such-behavior");
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        message,
        "plugin `hostile@0.1.0` planning `//t:hostile`: unknown behavior `no-such-behavior`"
    );
}

/// Many threads planning with one plugin at once, including misbehaving calls.
#[test]
fn calls_from_many_threads_are_independent() {
    let handles: Vec<_> = ["ok", "trap", "ok", "wasi-env", "ok", "alloc"]
        .into_iter()
        .map(|behavior| std::thread::spawn(move || (behavior, plan(behavior).is_ok())))
        .collect();
    for handle in handles {
        let (behavior, ok) = handle.join().expect("thread completes");
        assert_eq!(ok, behavior == "ok", "{behavior}");
    }
}
