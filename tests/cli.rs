//! `remex test` end to end with the bundled shell plugin and the local executor.

use crate::support::{Repo, assert_exit};

const BUILD: &str = r#"
shell_command(name = "passes", command = "echo ok")

shell_command(
    name = "writes",
    command = "mkdir -p out && echo made > out/file.txt",
    tools = ["mkdir"],
    outputs = ["out/"],
)

shell_command(
    name = "reads",
    command = "grep -q needle data.txt",
    tools = ["grep"],
    sources = ["data.txt"],
)
"#;

#[test]
fn runs_targets_then_serves_them_from_the_cache() {
    let repo = Repo::new(&[("BUILD", BUILD), ("data.txt", "hay needle hay\n")]);
    let first = repo.run(&["test", "::"]);
    assert_exit(&first, 0);
    for name in ["passes", "writes", "reads"] {
        let line = first.line_for(&format!("//:{name}"));
        assert!(
            line.contains("passed") && !line.contains("cached"),
            "{line}"
        );
    }

    let second = repo.run(&["test", "::"]);
    assert_exit(&second, 0);
    for name in ["passes", "writes", "reads"] {
        let line = second.line_for(&format!("//:{name}"));
        assert!(line.contains("(cached)"), "{}", second.all());
    }
}

#[test]
fn changing_a_source_reruns_the_target_that_reads_it() {
    let repo = Repo::new(&[("BUILD", BUILD), ("data.txt", "hay needle hay\n")]);
    assert_exit(&repo.run(&["test", "::"]), 0);
    repo.write("data.txt", "only hay\n");
    let outcome = repo.run(&["test", "//:reads"]);
    assert_exit(&outcome, 1);
    assert!(
        outcome.line_for("//:reads").contains("exit code 1"),
        "{}",
        outcome.all()
    );
}

#[test]
fn a_failing_command_exits_1_and_shows_its_stderr() {
    let build = r#"
shell_command(name = "fails", command = "echo broken pipe dream >&2; exit 3")
shell_command(name = "fine", command = "true")
"#;
    let repo = Repo::new(&[("BUILD", build)]);
    let outcome = repo.run(&["test", "::"]);
    assert_exit(&outcome, 1);
    assert!(
        outcome.line_for("//:fails").contains("exit code 3"),
        "{}",
        outcome.all()
    );
    assert!(
        outcome.stdout.contains("broken pipe dream"),
        "{}",
        outcome.all()
    );
    assert!(
        outcome.line_for("//:fine").contains("passed"),
        "{}",
        outcome.all()
    );
}

#[test]
fn an_unknown_field_exits_2_naming_file_and_line() {
    let build = "\nshell_command(\n    name = \"x\",\n    comand = \"true\",\n)\n";
    let repo = Repo::new(&[("sub/BUILD", build)]);
    let outcome = repo.run(&["test", "::"]);
    assert_exit(&outcome, 2);
    assert!(outcome.stderr.contains("sub/BUILD:2"), "{}", outcome.all());
    assert!(outcome.stderr.contains("comand"), "{}", outcome.all());
}

#[test]
fn a_spec_that_matches_nothing_exits_2() {
    let repo = Repo::new(&[("BUILD", BUILD), ("data.txt", "needle")]);
    let outcome = repo.run(&["test", "//nowhere:x"]);
    assert_exit(&outcome, 2);
    assert!(outcome.stderr.contains("//nowhere:x"), "{}", outcome.all());
}

/// The digests printed by `-v` for every action of a run.
fn action_digests(repo: &Repo, path: &str, home: &str, user: &str) -> Vec<String> {
    let output = repo
        .remex(&["test", "::", "-v"])
        .env("PATH", path)
        .env("HOME", home)
        .env("USER", user)
        .env("TMPDIR", home)
        .output()
        .expect("remex runs");
    let outcome = crate::support::Outcome::of(output);
    assert_exit(&outcome, 0);
    let mut digests: Vec<String> = outcome
        .stdout
        .lines()
        .filter_map(|l| l.trim().split_once(' ').map(|(d, _)| d.to_owned()))
        .filter(|d| d.len() > 64 && d.as_bytes()[64] == b'/')
        .collect();
    digests.sort();
    digests
}

#[test]
fn host_environment_never_reaches_an_action() {
    let build = r#"
shell_command(name = "env", command = "env", tools = ["env"])
shell_command(name = "where", command = "pwd; echo $HOME $USER $TMPDIR")
"#;
    let repo = Repo::new(&[("BUILD", build)]);
    let scratch = tempfile::tempdir().expect("tempdir");
    let home = scratch.path().to_str().expect("utf-8");
    let first = action_digests(&repo, "/usr/bin:/bin", "/home/alice", "alice");
    let second = action_digests(&repo, "/bin:/usr/local/bin:/usr/bin", home, "bob");
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first, second);
}

#[test]
fn the_command_sees_only_its_declared_environment() {
    let build = r#"shell_command(name = "env", command = "env > seen.txt; cat seen.txt", tools = ["env", "cat"], outputs = ["seen.txt"])"#;
    let repo = Repo::new(&[("BUILD", build)]);
    let outcome = repo
        .remex(&["test", "::"])
        .env("SECRET_TOKEN", "leaked")
        .output()
        .expect("runs");
    let outcome = crate::support::Outcome::of(outcome);
    assert_exit(&outcome, 0);
    let store_text = walk_text(&repo.store().join("cas"));
    assert!(
        !store_text.contains("leaked"),
        "host variable reached an action"
    );
    assert!(
        store_text.contains("PATH=/usr/bin"),
        "the env output was not stored"
    );
}

/// The text of every small file under `dir`, concatenated.
fn walk_text(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            text.push_str(&walk_text(&path));
        } else if let Ok(content) = std::fs::read_to_string(&path) {
            text.push_str(&content);
        }
    }
    text
}
