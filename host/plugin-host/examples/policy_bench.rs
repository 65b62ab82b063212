//! The cost of evaluating a policy on one action, next to the cost of the emptiest call into a
//! policy, measured in the same run: `cargo run --release -p remex-plugin-host --example
//! policy_bench`.
//!
//! Every evaluation instantiates the policy afresh, copies the description in and calls
//! `evaluate`; the empty call is the hostile test policy asked nothing (no arguments), so it
//! returns `allow` at once and its cost is the floor: instantiation and the call itself. A
//! memoized decision, as a run sees for a repeated action, is measured too.

use std::path::Path;
use std::time::{Duration, Instant};

use remex_plugin_host::{
    ActionDescription, ActionEnvironment, PolicyEngine, PolicyLimits, PolicySet,
};

const ITERATIONS: u32 = 2_000;

fn main() {
    let engine = PolicyEngine::new(PolicyLimits::default(), None).expect("engine starts");
    let load = |dir: &str, file: &str| {
        let path = Path::new(dir).join(file);
        let bytes = std::fs::read(&path).expect("policy is built");
        engine
            .load(&path.display().to_string(), &bytes)
            .expect("policy loads")
    };

    let empty = load(
        remex_bundled::TEST_PLUGINS_DIR,
        "remex_policy_testing_hostile.wasm",
    );
    let typical = typical_action();
    println!("{ITERATIONS} evaluations each, fresh instance per evaluation");
    report("empty call", &ActionDescription::default(), |a| {
        empty.evaluate_metered(a)
    });

    for name in [
        "no-network",
        "container-images",
        "max-timeout",
        "no-secrets",
    ] {
        let policy = load(remex_bundled::POLICIES_DIR, &format!("{name}.wasm"));
        report(name, &typical, |a| policy.evaluate_metered(a));
    }

    let set = PolicySet::new(vec![load(remex_bundled::POLICIES_DIR, "no-secrets.wasm")]);
    set.first_denial(&typical);
    report("memoized", &typical, |a| (set.first_denial(a), 0));
}

/// Times `evaluate` on `action`, printing the mean and the fuel one evaluation used.
fn report<D>(
    label: &str,
    action: &ActionDescription,
    evaluate: impl Fn(&ActionDescription) -> (D, u64),
) {
    let (_, fuel) = evaluate(action);
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        std::hint::black_box(evaluate(std::hint::black_box(action)));
    }
    let mean = start.elapsed() / ITERATIONS;
    println!("{label:>18}: {:>8.1} µs  {fuel:>8} fuel", micros(mean));
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// An action of a size seen in practice: 100 arguments, 40 environment variables, a few
/// platform properties and outputs.
fn typical_action() -> ActionDescription {
    let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    let argv = (0..100).map(|i| format!("src/pkg/module_{i}.py")).collect();
    let env = (0..40)
        .map(|i| (format!("VAR_{i:02}"), format!("value-{i}")))
        .collect();
    ActionDescription {
        target: "//src/app:tests".to_owned(),
        environment: ActionEnvironment {
            name: "linux_ci".to_owned(),
            remote: true,
            platform: vec![pair("OSFamily", "linux")],
        },
        argv,
        env,
        platform: vec![
            pair("OSFamily", "linux"),
            pair("container-image", "docker://ubuntu:24.04"),
            pair("dockerNetwork", "off"),
        ],
        working_directory: "src/app".to_owned(),
        input_files: 120,
        input_bytes: 2_400_000,
        output_paths: vec!["report.xml".to_owned(), "coverage/".to_owned()],
        timeout: Some(Duration::from_secs(300)),
        action_hash: "ab".repeat(32),
        action_size_bytes: 142,
    }
}
