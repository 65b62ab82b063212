//! Plans given back by the memo: only while everything the plan saw is unchanged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use remex_model::{Environment, Process, Target};

use super::{FakeServices, hostile_component, list, load, quick_limits, services, target, text};
use crate::{PlanMemo, Plugin, PluginHost, PluginLimits};

static SHELL: LazyLock<Plugin> = LazyLock::new(|| {
    let host = PluginHost::new(PluginLimits::default(), None).expect("host starts");
    load(&host, "bundled:shell", remex_bundled::SHELL)
});

static HOSTILE: LazyLock<Plugin> = LazyLock::new(|| {
    let host = PluginHost::new(quick_limits(), None).expect("host starts");
    load(&host, "hostile.wasm", &hostile_component())
});

/// A memo file in a fresh directory, and the directory, kept alive by the caller.
fn memo_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("plans/repo");
    (dir, file)
}

fn open(dir: &tempfile::TempDir, file: &Path) -> PlanMemo {
    PlanMemo::open(file.to_owned(), dir.path().join("tmp"))
}

fn zip_target(command: &str) -> Target {
    target(
        "//:t",
        "shell_command",
        &[("command", text(command)), ("tools", list(&["zip"]))],
    )
}

fn plan_shell(memo: &PlanMemo, target: &Target, fake: &Arc<FakeServices>) -> Vec<Process> {
    SHELL
        .plan_with_memo(
            target,
            &Environment::local(),
            Path::new("/nonexistent-repo"),
            &services(fake),
            memo,
        )
        .expect("plans")
}

#[test]
fn a_saved_plan_is_given_back_by_the_next_run_while_its_answers_hold() {
    let (dir, file) = memo_dir();
    let fake = FakeServices::with(&[("zip", "/usr/bin/zip")]);
    let first = {
        let memo = open(&dir, &file);
        let processes = plan_shell(&memo, &zip_target("zip -r out.zip ."), &fake);
        assert_eq!(memo.recalled(), 0);
        memo.save().expect("saves");
        processes
    };

    let memo = open(&dir, &file);
    assert_eq!(memo.len(), 1);
    let again = plan_shell(&memo, &zip_target("zip -r out.zip ."), &fake);
    assert_eq!(again, first);
    assert_eq!(memo.recalled(), 1);
    // The plan's `find-binary` call was asked again to check the entry.
    assert_eq!(fake.asked().len(), 2);
}

#[test]
fn a_changed_target_is_planned_again_and_replaces_its_entry() {
    let (dir, file) = memo_dir();
    let fake = FakeServices::with(&[("zip", "/usr/bin/zip")]);
    let memo = open(&dir, &file);
    plan_shell(&memo, &zip_target("zip -r a.zip ."), &fake);

    let changed = plan_shell(&memo, &zip_target("zip -r b.zip ."), &fake);

    assert_eq!(memo.recalled(), 0);
    assert!(
        changed[0].argv.iter().any(|a| a.contains("b.zip")),
        "{changed:?}"
    );
    assert_eq!(memo.len(), 1, "one entry per target and environment");
}

#[test]
fn a_binary_found_elsewhere_is_planned_again() {
    let (dir, file) = memo_dir();
    let memo = open(&dir, &file);
    let target = zip_target("zip -r out.zip .");
    let before = plan_shell(
        &memo,
        &target,
        &FakeServices::with(&[("zip", "/usr/bin/zip")]),
    );

    let moved = FakeServices::with(&[("zip", "/opt/zip/bin/zip")]);
    let after = plan_shell(&memo, &target, &moved);

    assert_eq!(memo.recalled(), 0);
    assert_ne!(after, before);
    let path = after[0].env.get("PATH").cloned().unwrap_or_default();
    assert!(path.contains("/opt/zip/bin"), "{path}");
    // And the new plan is the one remembered now.
    plan_shell(&memo, &target, &moved);
    assert_eq!(memo.recalled(), 1);
}

fn plan_sources(memo: &PlanMemo, repo: &Path) -> Vec<Process> {
    let target = target(
        "//t:hostile",
        "hostile",
        &[
            ("behavior", text("read-sources")),
            ("sources", list(&["t/a.txt"])),
        ],
    );
    HOSTILE
        .plan_with_memo(
            &target,
            &Environment::local(),
            repo,
            &services(&FakeServices::with(&[])),
            memo,
        )
        .expect("plans")
}

#[test]
fn a_changed_source_file_is_planned_again() {
    let (dir, file) = memo_dir();
    let repo = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(repo.path().join("t")).expect("mkdir");
    std::fs::write(repo.path().join("t/a.txt"), "hello").expect("write");
    let memo = open(&dir, &file);
    assert_eq!(
        plan_sources(&memo, repo.path())[0].argv,
        ["sizes", "t/a.txt=5"]
    );
    plan_sources(&memo, repo.path());
    assert_eq!(memo.recalled(), 1);

    std::fs::write(repo.path().join("t/a.txt"), "hello, world").expect("write");

    assert_eq!(
        plan_sources(&memo, repo.path())[0].argv,
        ["sizes", "t/a.txt=12"]
    );
    assert_eq!(memo.recalled(), 1);
}

#[test]
fn a_failed_plan_is_not_remembered() {
    let (dir, file) = memo_dir();
    let memo = open(&dir, &file);
    let target = target("//t:hostile", "hostile", &[("behavior", text("trap"))]);
    let fake = FakeServices::with(&[]);
    for _ in 0..2 {
        let result = HOSTILE.plan_with_memo(
            &target,
            &Environment::local(),
            Path::new("/nonexistent-repo"),
            &services(&fake),
            &memo,
        );
        assert!(result.is_err());
    }
    assert!(memo.is_empty());
    memo.save().expect("saves");
    assert!(!file.exists(), "nothing to save, nothing written");
}

#[test]
fn a_damaged_memo_reads_as_empty_and_is_written_anew() {
    let (dir, file) = memo_dir();
    let fake = FakeServices::with(&[("zip", "/usr/bin/zip")]);
    {
        let memo = open(&dir, &file);
        plan_shell(&memo, &zip_target("zip -r out.zip ."), &fake);
        memo.save().expect("saves");
    }
    let mut bytes = std::fs::read(&file).expect("memo written");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).expect("damage");

    let memo = open(&dir, &file);
    assert!(memo.is_empty());
    plan_shell(&memo, &zip_target("zip -r out.zip ."), &fake);
    memo.save().expect("saves");
    assert_eq!(open(&dir, &file).len(), 1);

    std::fs::write(&file, b"remexPM\n").expect("truncate");
    assert!(open(&dir, &file).is_empty());
}

#[test]
fn a_probe_answering_differently_is_planned_again() {
    static PYTHON: LazyLock<Plugin> = LazyLock::new(|| {
        let host = PluginHost::new(PluginLimits::default(), None).expect("host starts");
        load(&host, "bundled:python", remex_bundled::PYTHON)
    });
    const VERSION_SCRIPT: &str = "import sys; print('%d.%d.%d' % sys.version_info[:3])";
    let python = |version: &str| {
        FakeServices::with_probes(
            &[("python3", "/usr/bin/python3")],
            &[(&["/usr/bin/python3", "-c", VERSION_SCRIPT], 0, version)],
        )
    };
    let target = target(
        "//app:tests",
        "python_tests",
        &[("sources", list(&["app/test_a.py"]))],
    );
    let (dir, file) = memo_dir();
    let memo = open(&dir, &file);
    let plan = |fake: &Arc<FakeServices>| {
        PYTHON
            .plan_with_memo(
                &target,
                &Environment::local(),
                Path::new("/"),
                &services(fake),
                &memo,
            )
            .expect("plans")
    };

    let same = python("3.11.2\n");
    plan(&same);
    plan(&same);
    assert_eq!(memo.recalled(), 1);
    assert_eq!(
        same.probes().len(),
        2,
        "the probe is asked again to check the entry"
    );

    plan(&python("3.12.1\n"));
    assert_eq!(memo.recalled(), 1);
}

/// A timeout past 2^64 ns (about 584 years) comes back whole, so that a remembered plan and a
/// fresh one make the same action digest.
#[test]
fn a_long_timeout_comes_back_from_the_memo_unchanged() {
    let (dir, file) = memo_dir();
    let fake = FakeServices::with(&[("zip", "/usr/bin/zip")]);
    let memo = open(&dir, &file);
    let mut long = zip_target("zip -r out.zip .");
    long.fields.insert(
        "timeout".to_owned(),
        remex_model::FieldValue::Integer(20_000_000_000),
    );
    let fresh = plan_shell(&memo, &long, &fake);
    let recalled = plan_shell(&memo, &long, &fake);
    assert_eq!(memo.recalled(), 1);
    assert_eq!(recalled[0].timeout, fresh[0].timeout);
}

/// The cap on what a plan's recorded host calls hold charges every call, so that 100,000 calls
/// with empty strings (the default cap on host calls) are not kept as if they were nothing.
#[test]
fn recorded_calls_are_charged_for_what_they_hold() {
    use crate::memo::HostCall;

    let empty = HostCall::FindBinary {
        name: String::new(),
        search_path: Vec::new(),
        found: None,
    };
    let calls = vec![empty; 100_000];
    let charged: usize = calls.iter().map(HostCall::size_bytes).sum();
    let (dir, file) = memo_dir();
    let memo = open(&dir, &file);
    memo.remember(b"slot".to_vec(), [0; 32], &calls, &[]);
    memo.save().expect("saves");
    let saved = std::fs::metadata(&file).expect("saved").len();
    assert!(
        charged as u64 >= saved / 2,
        "charged {charged} bytes for calls that take {saved} bytes on disk"
    );
}

#[test]
fn an_entry_no_run_uses_is_dropped_after_a_number_of_saves() {
    let (dir, file) = memo_dir();
    let memo = open(&dir, &file);
    memo.remember(b"old".to_vec(), [1; 32], &[], &[]);
    memo.save().expect("saves");
    for save in 0..40u8 {
        let memo = open(&dir, &file);
        memo.remember(b"new".to_vec(), [save; 32], &[], &[]);
        memo.save().expect("saves");
    }
    let memo = open(&dir, &file);
    assert_eq!(memo.len(), 1, "only the entry the saves kept using is left");
}
