//! The bundled `python` and `protobuf` plugins, run by `remex test` on this machine: the
//! interpreter and `unzip` are found in the environment and asked about with probes.
//!
//! The tests run remex with `PATH=/usr/bin:/bin`, so that `<PATH>` finds Debian's `python3`
//! (with `python3-protobuf`, installed by `tests/servers/setup.sh`) rather than a version
//! manager's shim, which needs more of this machine's environment than a test process gets.

use std::path::Path;

use crate::support::{Outcome, Repo, assert_exit};

const SYSTEM_PATH: &str = "/usr/bin:/bin";

fn run(repo: &Repo, args: &[&str]) -> Outcome {
    let output = repo
        .remex(args)
        .env("PATH", SYSTEM_PATH)
        .output()
        .expect("remex runs");
    Outcome::of(output)
}

const GREET_TEST: &str = "\
import unittest

class GreetTest(unittest.TestCase):
    def test_adds(self):
        self.assertEqual(1 + 1, 2)
";

#[test]
fn python_tests_run_with_the_interpreter_found_by_probes() {
    let repo = Repo::new(&[
        ("app/BUILD", "python_tests(name = \"tests\")\n"),
        ("app/test_greet.py", GREET_TEST),
    ]);
    let outcome = run(&repo, &["test", "::"]);
    assert_exit(&outcome, 0);
    assert!(
        outcome.line_for("//app:tests").contains("pass"),
        "{}",
        outcome.all()
    );
}

#[test]
fn a_missing_pytest_is_a_plan_error() {
    let repo = Repo::new(&[
        (
            "app/BUILD",
            "python_tests(name = \"tests\", runner = \"pytest\")\n",
        ),
        ("app/test_greet.py", GREET_TEST),
    ]);
    if has_pytest() {
        return;
    }
    let outcome = run(&repo, &["test", "::"]);
    assert_exit(&outcome, 1);
    assert!(
        outcome.all().contains("`pytest` is not installed"),
        "{}",
        outcome.all()
    );
}

fn has_pytest() -> bool {
    std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import pytest"])
        .status()
        .is_ok_and(|s| s.success())
}

const PROTO: &str = "\
syntax = \"proto3\";
package greeting;
message Greeting { string text = 1; }
";

const PROTO_TEST: &str = "\
import unittest
from proto import greeting_pb2

class GeneratedTest(unittest.TestCase):
    def test_round_trip(self):
        data = greeting_pb2.Greeting(text='hi').SerializeToString()
        self.assertEqual(greeting_pb2.Greeting.FromString(data).text, 'hi')
";

/// A repository whose python test imports code generated from a `.proto` file, with protoc
/// from an archive made by `plugins/protobuf/make-protoc-archive.sh`.
fn protobuf_repo(system_binary_paths: &str) -> Repo {
    let repo = Repo::new(&[
        (
            "src/proto/BUILD",
            "protobuf_sources(name = \"greeting\", source_root = \"src\")\n",
        ),
        ("src/proto/greeting.proto", PROTO),
        (
            "src/app/BUILD",
            "python_tests(name = \"tests\", source_root = \"src\", \
             dependencies = [\"//src/proto:greeting\"])\n",
        ),
        ("src/app/test_generated.py", PROTO_TEST),
    ]);
    let sha256 = make_protoc_archive(&repo.root().join("3rdparty/protoc.zip"));
    repo.write(
        "remex.toml",
        &format!(
            "[GLOBAL]\n\n[protoc]\narchive = \"3rdparty/protoc.zip\"\nsha256 = \"{sha256}\"\n\n\
             [system-binaries]\nsystem_binary_paths = [{system_binary_paths}]\n"
        ),
    );
    repo
}

fn make_protoc_archive(out: &Path) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../plugins/protobuf/make-protoc-archive.sh"
    );
    std::fs::create_dir_all(out.parent().expect("archive has a parent")).expect("mkdir");
    let output = std::process::Command::new("/bin/sh")
        .arg(script)
        .arg(out)
        .output()
        .expect("the archive script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.trim().to_owned()
}

#[test]
fn python_tests_import_code_generated_by_protobuf_sources() {
    let repo = protobuf_repo("\"/usr/bin\", \"/bin\"");
    let outcome = run(&repo, &["test", "::"]);
    assert_exit(&outcome, 0);
    assert!(
        outcome.line_for("//src/app:tests").contains("pass"),
        "{}",
        outcome.all()
    );
}

#[test]
fn a_missing_unzip_fails_before_any_action_naming_the_environment() {
    let repo = protobuf_repo("\"/nonexistent\"");
    let outcome = run(&repo, &["test", "::"]);
    assert_exit(&outcome, 1);
    let all = outcome.all();
    assert!(
        all.contains("cannot find `unzip` in environment `__local__`"),
        "{all}"
    );
    assert!(
        all.contains("`[system-binaries].system_binary_paths`"),
        "{all}"
    );
    // The python test depends on the protobuf target, so nothing ran at all.
    assert!(!all.contains("exit code"), "{all}");
}
