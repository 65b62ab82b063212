//! Plugins that misbehave are stopped with an error naming them, and remex carries on with the
//! other targets.

use crate::support::{Repo, assert_exit, test_plugin};

fn repo_with_hostile_plugin(build: &str) -> Repo {
    let plugin = test_plugin("remex_plugin_testing_hostile");
    assert!(
        plugin.is_file(),
        "test plugin not built: {}",
        plugin.display()
    );
    let config = format!(
        "[plugins]\npaths = [\"{}\"]\ndeadline_ms = 1000\nmemory_limit_mib = 64\n",
        plugin.display()
    );
    let repo = Repo::new(&[("BUILD", build)]);
    repo.write("remex.toml", &config);
    repo
}

#[test]
fn endless_loop_and_unbounded_allocation_are_stopped_and_others_run() {
    let build = r#"
hostile(name = "spins", behavior = "loop")
hostile(name = "hoards", behavior = "alloc")
shell_command(name = "fine", command = "echo fine")
"#;
    let repo = repo_with_hostile_plugin(build);
    let outcome = repo.run(&["test", "::"]);
    assert_exit(&outcome, 1);

    let spins = outcome.line_for("//:spins");
    assert!(spins.contains("hostile"), "plugin not named: {spins}");
    assert!(spins.contains("deadline"), "{spins}");
    let hoards = outcome.line_for("//:hoards");
    assert!(hoards.contains("hostile"), "plugin not named: {hoards}");
    assert!(hoards.contains("memory"), "{hoards}");
    assert!(
        outcome.line_for("//:fine").contains("passed"),
        "{}",
        outcome.all()
    );
}

#[test]
fn a_trapping_plugin_fails_only_its_target() {
    let build = r#"
hostile(name = "panics", behavior = "trap")
hostile(name = "behaves", behavior = "ok")
"#;
    let repo = repo_with_hostile_plugin(build);
    let outcome = repo.run(&["test", "::"]);
    assert_exit(&outcome, 1);
    let panics = outcome.line_for("//:panics");
    assert!(
        panics.contains("hostile") && panics.contains("//:panics"),
        "{panics}"
    );
    assert!(
        outcome.line_for("//:behaves").contains("passed"),
        "{}",
        outcome.all()
    );
}
