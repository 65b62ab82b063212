//! Policy plugins end to end: a denied action is never run and never looked up in the local
//! action cache; `warn` mode runs it anyway; `remex policy check` runs nothing.

use std::path::{Path, PathBuf};

use crate::support::{Outcome, Repo, assert_exit};

fn example_policy(name: &str) -> String {
    let path = Path::new(remex_bundled::POLICIES_DIR).join(format!("{name}.wasm"));
    path.display().to_string()
}

/// A repository whose `//:marks` appends a line to a file outside it each time it runs, and
/// sets no timeout (so `max-timeout` denies it); `//:bounded` sets one.
fn marking_repo() -> (Repo, PathBuf) {
    let repo = Repo::new(&[]);
    let marker = repo.root().with_file_name("runs.txt");
    let build = format!(
        "shell_command(name = \"marks\", command = \"echo ran >> {}\")\n\
         shell_command(name = \"bounded\", command = \"true\", timeout = 60)\n",
        marker.display()
    );
    repo.write("BUILD", &build);
    (repo, marker)
}

fn runs(marker: &Path) -> usize {
    std::fs::read_to_string(marker).map_or(0, |text| text.lines().count())
}

fn run_with_policies(repo: &Repo, policies: &[&str], mode: &str, args: &[&str]) -> Outcome {
    let plugins: Vec<String> = policies.iter().map(|name| example_policy(name)).collect();
    let output = repo
        .remex(args)
        .env("REMEX_POLICY_PLUGINS", plugins.join(","))
        .env("REMEX_POLICY_MODE", mode)
        .output()
        .expect("remex runs");
    Outcome::of(output)
}

/// Turns every action cache entry into a directory, so that any lookup fails loudly.
fn poison_action_cache(store: &Path) -> usize {
    let mut poisoned = 0;
    for shard in std::fs::read_dir(store.join("ac"))
        .expect("ac exists")
        .flatten()
    {
        for entry in std::fs::read_dir(shard.path()).expect("shard").flatten() {
            let path = entry.path();
            std::fs::remove_file(&path).expect("remove ac entry");
            std::fs::create_dir(&path).expect("replace ac entry");
            poisoned += 1;
        }
    }
    poisoned
}

#[test]
fn a_denied_action_is_never_run_nor_looked_up_in_the_cache() {
    let (repo, marker) = marking_repo();
    assert_exit(&repo.run(&["test", "//:marks"]), 0);
    assert_eq!(runs(&marker), 1);
    assert!(poison_action_cache(&repo.store()) > 0, "nothing was cached");

    let outcome = run_with_policies(&repo, &["max-timeout"], "enforce", &["test", "//:marks"]);
    assert_exit(&outcome, 1);
    let line = outcome.line_for("//:marks");
    assert!(
        line.contains("denied by policy `max-timeout@0.1.0`: the action sets no timeout"),
        "{}",
        outcome.all()
    );
    assert_eq!(runs(&marker), 1, "the denied action ran: {}", outcome.all());
    assert!(
        !outcome.all().contains("ac/"),
        "the action cache was read: {}",
        outcome.all()
    );
}

#[test]
fn an_allowed_action_runs() {
    let (repo, _) = marking_repo();
    let policies = [
        "max-timeout",
        "no-network",
        "no-secrets",
        "container-images",
    ];
    let outcome = run_with_policies(&repo, &policies, "enforce", &["test", "//:bounded"]);
    assert_exit(&outcome, 0);
    assert!(
        outcome.line_for("//:bounded").contains("passed"),
        "{}",
        outcome.all()
    );
}

#[test]
fn warn_mode_prints_the_denial_and_runs_the_action() {
    let (repo, marker) = marking_repo();
    let outcome = run_with_policies(&repo, &["max-timeout"], "warn", &["test", "//:marks"]);
    assert_exit(&outcome, 0);
    assert!(
        outcome
            .stderr
            .contains("warning: //:marks: denied by policy `max-timeout@0.1.0`"),
        "{}",
        outcome.all()
    );
    assert_eq!(runs(&marker), 1);
}

#[test]
fn policy_check_prints_every_decision_and_runs_nothing() {
    let (repo, marker) = marking_repo();
    let policies = ["no-network", "max-timeout"];
    let outcome = run_with_policies(&repo, &policies, "enforce", &["policy", "check", "::"]);
    assert_exit(&outcome, 1);
    let stdout = &outcome.stdout;
    assert!(
        stdout.contains("  allow  no-network@0.1.0"),
        "{}",
        outcome.all()
    );
    assert!(
        stdout.contains("  deny   max-timeout@0.1.0: the action sets no timeout"),
        "{}",
        outcome.all()
    );
    assert!(stdout.contains("1 denial(s)"), "{}", outcome.all());
    assert_eq!(runs(&marker), 0, "an action ran");
}

#[test]
fn a_policy_that_imports_wasi_is_a_usage_error() {
    let (repo, _) = marking_repo();
    let wasi = crate::support::test_plugin("remex_policy_testing_wasi");
    let output = repo
        .remex(&["test", "::"])
        .env("REMEX_POLICY_PLUGINS", wasi.display().to_string())
        .output()
        .expect("remex runs");
    let outcome = Outcome::of(output);
    assert_exit(&outcome, 2);
    assert!(
        outcome.stderr.contains("imports `wasi:"),
        "{}",
        outcome.all()
    );
}

#[test]
fn a_bad_policy_mode_is_a_usage_error() {
    let (repo, _) = marking_repo();
    let outcome = run_with_policies(&repo, &["max-timeout"], "sometimes", &["test", "::"]);
    assert_exit(&outcome, 2);
    assert!(outcome.stderr.contains("sometimes"), "{}", outcome.all());
}

/// Against a counting REAPI server: an action the policy denies reaches neither its action
/// cache nor its executor, while an allowed one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_action_never_reaches_the_remote_cache_or_executor() {
    use remex_client::fake::{FakeConfig, FakeServer, Rpc};

    let server = FakeServer::start(FakeConfig::default())
        .await
        .expect("fake starts");
    let address = server.address();
    let remote_run = |spec: &'static str| {
        let address = address.clone();
        tokio::task::spawn_blocking(move || {
            let (repo, _marker) = marking_repo();
            let args = [
                "test",
                spec,
                "--remote-execution",
                &format!("--remote-store-address={address}"),
                &format!("--remote-execution-address={address}"),
            ];
            run_with_policies(&repo, &["max-timeout"], "enforce", &args)
        })
    };

    let denied = remote_run("//:marks").await.expect("remex ran");
    assert_exit(&denied, 1);
    assert!(
        denied.line_for("//:marks").contains("max-timeout"),
        "{}",
        denied.all()
    );
    let state = server.state();
    assert_eq!(state.calls(Rpc::GetActionResult), 0, "the cache was asked");
    assert_eq!(state.calls(Rpc::Execute), 0, "the executor was asked");

    // The same server does see an action the policy allows.
    let _allowed = remote_run("//:bounded").await.expect("remex ran");
    assert!(
        state.calls(Rpc::GetActionResult) > 0,
        "an allowed action was not looked up"
    );
}
