//! Options, environments and help through the `remex` command: bad settings stop a run before
//! any work with exit code 2, naming where to fix them, and help describes what the code reads.

use crate::support::{Outcome, Repo, assert_exit};

const BUILD: &str = "shell_command(name = \"hello\", command = \"echo hello\")\n";

#[test]
fn a_bad_option_exits_2_naming_file_and_line() {
    let repo = Repo::new(&[
        ("remex.toml", "[GLOBAL]\nremote_cache_read = true\n"),
        ("BUILD", BUILD),
    ]);
    let outcome = repo.run(&["test", "::"]);
    assert_exit(&outcome, 2);
    for part in [
        "remex.toml:2",
        "`[GLOBAL].remote_cache_read`",
        "remote_store_address",
    ] {
        assert!(outcome.stderr.contains(part), "{part}: {}", outcome.all());
    }
    assert!(
        !outcome.stdout.contains("//:hello"),
        "work started: {}",
        outcome.all()
    );
}

#[test]
fn a_variable_overrides_remex_toml_and_is_named_when_wrong() {
    let repo = Repo::new(&[
        ("remex.toml", "[GLOBAL]\nremote_execution = false\n"),
        ("BUILD", BUILD),
    ]);
    let mut command = repo.remex(&["test", "::"]);
    command.env("REMEX_REMOTE_EXECUTION", "true");
    let outcome = Outcome::of(command.output().expect("remex runs"));
    assert_exit(&outcome, 2);
    assert!(
        outcome
            .stderr
            .contains("environment variable `REMEX_REMOTE_EXECUTION`"),
        "{}",
        outcome.all()
    );
}

#[test]
fn an_unknown_key_suggests_the_right_one() {
    let repo = Repo::new(&[
        ("remex.toml", "[GLOBAL]\n\nremote_instance = \"main\"\n"),
        ("BUILD", BUILD),
    ]);
    let outcome = repo.run(&["test", "::"]);
    assert_exit(&outcome, 2);
    assert!(outcome.stderr.contains("remex.toml:3"), "{}", outcome.all());
    assert!(
        outcome.stderr.contains("`remote_instance_name`"),
        "{}",
        outcome.all()
    );
}

#[test]
fn an_unknown_environment_exits_2_naming_the_build_file_line() {
    let build = "\nshell_command(name = \"x\", command = \"true\", environment = \"linux\")\n";
    let repo = Repo::new(&[("BUILD", build)]);
    let outcome = repo.run(&["test", "::"]);
    assert_exit(&outcome, 2);
    assert!(outcome.stderr.contains("BUILD:2"), "{}", outcome.all());
    assert!(
        outcome.stderr.contains("`environment = \"linux\"`"),
        "{}",
        outcome.all()
    );
}

#[test]
fn environment_targets_are_not_run_as_work() {
    let toml = "[GLOBAL]\n[environments-preview.names]\nlocal = \"//envs:local\"\n";
    let envs = "local_environment(name = \"local\")\n";
    let build = "shell_command(name = \"x\", command = \"true\", environment = \"local\")\n";
    let repo = Repo::new(&[("remex.toml", toml), ("envs/BUILD", envs), ("BUILD", build)]);
    let outcome = repo.run(&["test", "::"]);
    assert_exit(&outcome, 0);
    assert!(
        outcome.line_for("//:x").contains("passed"),
        "{}",
        outcome.all()
    );
    assert!(
        !outcome.stdout.contains("//envs:local"),
        "{}",
        outcome.all()
    );
}

#[test]
fn help_advanced_global_lists_every_remote_option_with_its_current_source() {
    let repo = Repo::new(&[("remex.toml", "[GLOBAL]\nremote_instance_name = \"main\"\n")]);
    let outcome = repo.run(&["help-advanced", "global"]);
    assert_exit(&outcome, 0);
    for option in [
        "remote_execution\n    type: bool, default: false",
        "process_execution_remote_parallelism\n    type: int, default: 128",
        "remote_store_address\n    type: address, default: none",
        "current: \"main\" (remex.toml:2)",
        "flag: --remote-execution, variable: REMEX_REMOTE_EXECUTION",
    ] {
        assert!(
            outcome.stdout.contains(option),
            "{option}: {}",
            outcome.all()
        );
    }
}

#[test]
fn help_advanced_remote_environment_shows_the_environment_aware_fields() {
    let repo = Repo::new(&[(
        "remex.toml",
        "[python-bootstrap]\nnames = [\"python3.12\"]\n",
    )]);
    let outcome = repo.run(&["help-advanced", "remote_environment"]);
    assert_exit(&outcome, 0);
    for field in [
        "extra_platform_properties\n    type: list[str]",
        "python_bootstrap_search_path\n    type: list[str], default: none",
        "when unset: `[python-bootstrap].names` = [\"python3.12\"] (remex.toml:2)",
        "system_binaries_system_binary_paths",
    ] {
        assert!(outcome.stdout.contains(field), "{field}: {}", outcome.all());
    }
}

#[test]
fn help_describes_a_plugins_target_kind_and_rejects_unknown_ones() {
    let repo = Repo::new(&[]);
    let outcome = repo.run(&["help", "shell_command"]);
    assert_exit(&outcome, 0);
    assert!(
        outcome.stdout.contains("command\n    type: str, required"),
        "{}",
        outcome.all()
    );

    let unknown = repo.run(&["help-advanced", "pythn-bootstrap"]);
    assert_exit(&unknown, 2);
    assert!(
        unknown.stderr.contains("python-bootstrap"),
        "{}",
        unknown.all()
    );
}
