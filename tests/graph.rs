//! Targets with dependencies: outputs flow to dependents by digest, failures skip dependents,
//! and `remex build` writes `dist/` only when everything succeeded.

use crate::support::{Repo, assert_exit};

const BUILD: &str = r#"
shell_command(
    name = "generate",
    command = "mkdir -p gen && echo generated-value > gen/value.txt",
    tools = ["mkdir"],
    outputs = ["gen/"],
)

shell_command(
    name = "consume",
    command = "grep -q generated-value ../gen/value.txt && cp ../gen/value.txt copy.txt",
    tools = ["grep", "cp"],
    outputs = ["copy.txt"],
    dependencies = [":generate"],
)
"#;

fn repo() -> Repo {
    // `consume` runs in `app/`, `generate` at the root.
    let app = BUILD
        .split("\n\n")
        .filter(|block| block.contains("\"consume\""))
        .collect::<String>()
        .replace(":generate", "//:generate");
    let root = BUILD
        .split("\n\n")
        .filter(|block| !block.contains("\"consume\""))
        .collect::<Vec<_>>()
        .join("\n\n");
    Repo::new(&[("BUILD", &root), ("app/BUILD", &app)])
}

#[test]
fn a_dependency_output_is_an_input_of_its_dependent() {
    let repo = repo();
    let outcome = repo.run(&["test", "//app:consume"]);
    assert_exit(&outcome, 0);
    assert!(
        outcome.line_for("//:generate").contains("passed"),
        "{}",
        outcome.all()
    );
    assert!(
        outcome.line_for("//app:consume").contains("passed"),
        "{}",
        outcome.all()
    );
}

#[test]
fn a_failed_dependency_skips_its_dependents() {
    let repo = repo();
    repo.write(
        "BUILD",
        "shell_command(name = \"generate\", command = \"exit 1\")\n",
    );
    let outcome = repo.run(&["test", "//app:consume"]);
    assert_exit(&outcome, 1);
    assert!(
        outcome.line_for("//app:consume").contains("skipped"),
        "{}",
        outcome.all()
    );
}

#[test]
fn build_writes_outputs_under_dist() {
    let repo = repo();
    let outcome = repo.run(&["build", "::"]);
    assert_exit(&outcome, 0);
    let copy = std::fs::read_to_string(repo.root().join("dist/app/copy.txt")).expect("copy");
    assert_eq!(copy, "generated-value\n");
    let value = repo.root().join("dist/gen/value.txt");
    assert!(value.is_file(), "{}", outcome.all());
    let leftovers: Vec<_> = std::fs::read_dir(repo.root())
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".remex-dist-"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn a_failed_build_leaves_dist_untouched() {
    let repo = repo();
    assert_exit(&repo.run(&["build", "::"]), 0);
    let before = std::fs::read_to_string(repo.root().join("dist/app/copy.txt")).expect("copy");

    let failing = BUILD.replace("echo generated-value", "echo changed-value");
    let root: String = failing
        .split("\n\n")
        .filter(|block| !block.contains("\"consume\""))
        .collect::<Vec<_>>()
        .join("\n\n");
    repo.write("BUILD", &root);
    let outcome = repo.run(&["build", "::"]);
    assert_exit(&outcome, 1);
    let after = std::fs::read_to_string(repo.root().join("dist/app/copy.txt")).expect("copy");
    assert_eq!(before, after);
    let value = std::fs::read_to_string(repo.root().join("dist/gen/value.txt")).expect("value");
    assert_eq!(
        value, "generated-value\n",
        "a failed build wrote into dist/"
    );
}

#[test]
fn local_processes_run_at_most_local_parallelism_at_once() {
    // Each process holds a lock directory outside its sandbox for a moment and fails if another
    // holds it: with one place they take turns, so every target passes. The `echo` makes the
    // actions distinct, or they would run once for all four.
    let lock_dir = tempfile::tempdir().expect("tempdir");
    let lock = lock_dir.path().join("lock");
    let build: String = (0..4)
        .map(|i| {
            format!(
                "shell_command(name = \"t{i}\", command = \"mkdir {lock} && sleep 0.2 && \
                 rmdir {lock} && echo {i}\", tools = [\"mkdir\", \"sleep\", \"rmdir\"])\n",
                lock = lock.display()
            )
        })
        .collect();
    let repo = Repo::new(&[("BUILD", &build)]);

    let outcome = repo.run(&["test", "::", "--process-execution-local-parallelism=1"]);
    assert_exit(&outcome, 0);
    assert!(!lock.exists(), "a process left its lock behind");
}

#[test]
fn an_edited_target_is_planned_again_by_the_next_run() {
    let repo = Repo::new(&[(
        "BUILD",
        "shell_command(name = \"t\", command = \"exit 0\")\n",
    )]);
    assert_exit(&repo.run(&["test", "::"]), 0);
    let memo_files = std::fs::read_dir(repo.store().join("plans")).map(Iterator::count);
    assert_eq!(memo_files.ok(), Some(1), "the run keeps its plans");

    repo.write(
        "BUILD",
        "shell_command(name = \"t\", command = \"exit 3\")\n",
    );
    let outcome = repo.run(&["test", "::"]);

    assert_exit(&outcome, 1);
    assert!(
        outcome.line_for("//:t").contains("exit code 3"),
        "{}",
        outcome.all()
    );
}
