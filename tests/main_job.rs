//! The main job end to end on the example repository: locally by default, remotely on
//! `remex serve`, with a remote cache only; and what crosses the wire.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Outcome, Repo, assert_exit};

/// Debian's interpreter (with `python3-protobuf`) rather than a version manager's shim.
const SYSTEM_PATH: &str = "/usr/bin:/bin";

/// A copy of `examples/` with its protoc archive made, and a store of its own.
fn example() -> Repo {
    let repo = Repo::new(&[]);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    copy_tree(&source, &repo.root());
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/protobuf/make-protoc-archive.sh");
    let archive = repo.root().join("build-support/protoc.zip");
    std::fs::create_dir_all(archive.parent().expect("parent")).expect("mkdir");
    let made = Command::new("/bin/sh")
        .arg(script)
        .arg(&archive)
        .output()
        .expect("archive script runs");
    assert!(made.status.success(), "{made:?}");
    repo
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read examples").flatten() {
        let name = entry.file_name();
        if name == "build-support" || name == "dist" {
            continue;
        }
        let target = to.join(&name);
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn run(repo: &Repo, store: &Path, args: &[&str]) -> Outcome {
    let output = repo
        .remex(args)
        .env("PATH", SYSTEM_PATH)
        .env("REMEX_LOCAL_STORE_DIR", store)
        .output()
        .expect("remex runs");
    Outcome::of(output)
}

#[test]
fn example_passes_then_is_cached_and_a_change_reruns_only_what_depends_on_it() {
    let repo = example();
    let store = repo.store();
    let first = run(&repo, &store, &["test", "::"]);
    assert_exit(&first, 0);
    for address in ["//src/greeter:tests", "//src/proto:greeting", "//:package"] {
        assert!(
            first.line_for(address).contains("passed"),
            "{}",
            first.all()
        );
    }

    let started = Instant::now();
    let second = run(&repo, &store, &["test", "::"]);
    let elapsed = started.elapsed();
    assert_exit(&second, 0);
    assert!(
        second.stdout.contains("0 local, 0 remote"),
        "{}",
        second.all()
    );
    println!("second run of the example: {elapsed:?}");

    let greet = repo.root().join("src/greeter/greet.py");
    let text = std::fs::read_to_string(&greet).expect("read");
    repo.write(
        "src/greeter/greet.py",
        &text.replace("\"\"\"The greeting", "\"\"\"Greeting"),
    );
    let third = run(&repo, &store, &["test", "::"]);
    assert_exit(&third, 0);
    assert!(
        third.line_for("//src/proto:greeting").contains("(cached)"),
        "{}",
        third.all()
    );
    assert!(
        !third.line_for("//src/greeter:tests").contains("(cached)"),
        "{}",
        third.all()
    );
}

/// `remex serve` on a free loopback port, killed when dropped.
struct Serve {
    child: Child,
    address: String,
    _store: tempfile::TempDir,
}

impl Serve {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self::start_on(port, tempfile::tempdir().expect("tempdir"))
    }

    /// Kills the server at once, as a crash would, and starts it again on the same port and
    /// store.
    fn restart(mut self) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.address.rsplit(':').next().and_then(|p| p.parse().ok());
        let store = std::mem::replace(&mut self._store, tempfile::tempdir().expect("tempdir"));
        Self::start_on(port.expect("port"), store)
    }

    fn start_on(port: u16, store: tempfile::TempDir) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_remex"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--store"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("remex serve starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "remex serve did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            address: format!("grpc://127.0.0.1:{port}"),
            _store: store,
        }
    }

    fn flags(&self) -> [String; 2] {
        [
            format!("--remote-store-address={}", self.address),
            format!("--remote-execution-address={}", self.address),
        ]
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn with_flags<'a>(args: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    args.iter()
        .copied()
        .chain(flags.iter().map(String::as_str))
        .collect()
}

#[test]
fn example_runs_remotely_on_remex_serve_and_hits_the_cache_on_the_second_run() {
    let server = Serve::start();
    let repo = example();
    let flags = server.flags();
    let args = with_flags(&["test", "::", "--remote-execution"], &flags);

    let first = run(&repo, &repo.store(), &args);
    assert_exit(&first, 0);
    assert!(first.stdout.contains("2 remote"), "{}", first.all());

    let fresh: PathBuf = repo.store().with_extension("fresh");
    let second = run(&repo, &fresh, &args);
    assert_exit(&second, 0);
    let tests = second.line_for("//src/greeter:tests");
    assert!(tests.contains("(cached)"), "{}", second.all());
    assert!(second.stdout.contains("0 remote"), "{}", second.all());
}

#[test]
fn a_remote_cache_alone_fills_a_fresh_local_store() {
    let server = Serve::start();
    let repo = example();
    let flags = server.flags();
    let args = with_flags(
        &["test", "::", "--remote-cache-read", "--remote-cache-write"],
        &flags,
    );

    let first = run(&repo, &repo.store(), &args);
    assert_exit(&first, 0);
    assert!(first.stdout.contains("3 local"), "{}", first.all());

    let fresh: PathBuf = repo.store().with_extension("fresh");
    let second = run(&repo, &fresh, &args);
    assert_exit(&second, 0);
    assert!(second.stdout.contains("0 local"), "{}", second.all());
    assert!(
        second.stdout.contains("3 from the remote cache"),
        "{}",
        second.all()
    );
}

#[test]
fn outputs_only_other_actions_read_are_never_downloaded() {
    let server = Serve::start();
    let build = r#"
shell_command(
    name = "big",
    command = "head -c 3000000 /dev/zero | tr '\\0' x > blob.bin",
    tools = ["head", "tr"],
    outputs = ["blob.bin"],
)
shell_command(
    name = "reader",
    command = "test $(wc -c < blob.bin) -eq 3000000",
    tools = ["wc"],
    dependencies = [":big"],
)
"#;
    let repo = Repo::new(&[("BUILD", build)]);
    let flags = server.flags();
    let args = with_flags(&["test", "::", "--remote-execution"], &flags);
    let outcome = run(&repo, &repo.store(), &args);
    assert_exit(&outcome, 0);

    let blob = remex_store::Digest::of_bytes(&vec![b'x'; 3_000_000]);
    let local = remex_store::LocalStore::open(repo.store()).expect("store");
    assert!(
        !local.contains(&blob),
        "the intermediate output was downloaded"
    );
    assert!(outcome.stdout.contains("2 remote"), "{}", outcome.all());
}

#[test]
fn an_interrupted_run_exits_130_and_leaves_the_store_consistent() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let started_marker = scratch.path().join("started");
    let build = r#"
shell_command(name = "slow", command = "echo > STARTED; sleep 60")
shell_command(
    name = "writes",
    command = "head -c 2000000 /dev/urandom > data.bin",
    tools = ["head"],
    outputs = ["data.bin"],
)
"#;
    let build = build.replace("STARTED", &started_marker.display().to_string());
    let repo = Repo::new(&[("BUILD", &build)]);
    let mut child = repo
        .remex(&["test", "::"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("remex starts");
    // Interrupt once the slow action runs.
    wait_for(&started_marker);
    let pid = nix_pid(&child);
    let interrupted = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(interrupted.success());

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "remex did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    assert_store_consistent(&repo.store());
}

fn nix_pid(child: &Child) -> String {
    child.id().to_string()
}

/// Every blob under `cas/` has the SHA-256 its name says.
fn assert_store_consistent(store: &Path) {
    let mut checked = 0;
    for shard in std::fs::read_dir(store.join("cas")).expect("cas").flatten() {
        for blob in std::fs::read_dir(shard.path()).expect("shard").flatten() {
            let name = blob.file_name().to_string_lossy().into_owned();
            let digest = remex_store::hash_file(&blob.path()).expect("hash");
            assert_eq!(digest.hex(), name, "blob does not match its name");
            checked += 1;
        }
    }
    assert!(checked > 0, "nothing was stored");
}

#[test]
fn a_server_restarted_mid_run_still_gives_a_correct_result() {
    let server = Serve::start();
    let scratch = tempfile::tempdir().expect("tempdir");
    let started_marker = scratch.path().join("started");
    let build = format!(
        "shell_command(name = \"slow\", command = \"echo > {}; sleep 3; echo done > out.txt\", \
         outputs = [\"out.txt\"])\n",
        started_marker.display()
    );
    let repo = Repo::new(&[("BUILD", &build)]);
    let flags = server.flags();
    let args = with_flags(&["test", "::", "--remote-execution"], &flags);
    let child = repo
        .remex(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("remex starts");

    wait_for(&started_marker);
    let _server = server.restart();

    let outcome = Outcome::of(child.wait_with_output().expect("remex finishes"));
    assert_exit(&outcome, 0);
    assert!(
        outcome.line_for("//:slow").contains("passed"),
        "{}",
        outcome.all()
    );
}

/// Waits until the action that writes `marker` has started.
fn wait_for(marker: &Path) {
    let waiting = Instant::now();
    while !marker.exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "the action never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
