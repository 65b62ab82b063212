//! The three concurrency limits hold under load: 2,000 actions at once against a fake that
//! counts the calls of each kind in flight.

use std::time::{Duration, Instant};

use crate::ExecuteOptions;
use crate::client_tests::harness_with;
use crate::fake::{FakeConfig, prepared_action};

const ACTIONS: usize = 2_000;
const STORE_LIMIT: usize = 4;
const CACHE_LIMIT: usize = 3;
const EXECUTION_LIMIT: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_cache_and_execution_limits_hold_for_two_thousand_actions() {
    // A short delay in every call, so that calls pile up against the limits.
    let config = FakeConfig {
        call_delay: Duration::from_millis(1),
        ..FakeConfig::default()
    };
    let h = harness_with(config, |options| {
        options.store_rpc_concurrency = STORE_LIMIT;
        options.cache_rpc_concurrency = CACHE_LIMIT;
        options.execution_parallelism = EXECUTION_LIMIT;
    })
    .await;
    let preparing = Instant::now();
    let actions: Vec<_> = (0..ACTIONS)
        .map(|i| {
            let id = i.to_string();
            let arguments = ["exit", "0", id.as_str()];
            prepared_action(&h.store, &arguments, &[("shared/input", b"same")], &[])
                .expect("action")
        })
        .collect();

    println!("{ACTIONS} actions prepared in {:?}", preparing.elapsed());
    let started = Instant::now();
    let options = ExecuteOptions::default();
    let runs = actions
        .iter()
        .map(|action| h.client.execute(action, &options));
    let outcomes = futures::future::join_all(runs).await;
    let elapsed = started.elapsed();

    let failures: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} failed, first: {:?}",
        failures.len(),
        failures[0]
    );
    let peaks = h.server.state().peaks();
    println!("{ACTIONS} actions in {elapsed:?}, peaks in flight: {peaks:?}");
    assert!(peaks.store <= STORE_LIMIT, "{peaks:?}");
    assert!(peaks.cache <= CACHE_LIMIT, "{peaks:?}");
    assert!(peaks.execution <= EXECUTION_LIMIT, "{peaks:?}");
    // Several calls of each kind were in flight at once, so the test did press against the
    // limits; on a loaded machine a limit is not always reached exactly.
    assert!(
        peaks.store > 1 && peaks.cache > 1 && peaks.execution > 1,
        "{peaks:?}"
    );
    assert_eq!(h.client.stats().executions, ACTIONS as u64);
}
