//! remex against REAPI servers other people wrote, run as they are: Bazel's own test server
//! (Java, REAPI 2.0 only) and buildbox-casd with buildbox-run (C++, REAPI 2.1 and later), both
//! installed by `tests/servers/setup.sh`; and, through the same tests, `remex serve`.
//!
//! Each server gets a CLI run of a few `shell_command` targets, then a second run with a fresh
//! local store that must come from the remote cache; and, through the library, an input root of
//! 10,000 small files and one 300 MiB file, executed, fetched, checked, then found in the cache.
//!
//! Without the environment variables `setup.sh` exports, the third-party tests print a note and
//! pass, except when `CI` is set: there a server that cannot be installed or started fails.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use remex_action::PreparedAction;
use remex_client::{CallContext, ExecuteOptions, RemoteClient, RemoteOptions, ResultOrigin};
use remex_model::Process;
use remex_proto::reapi;
use remex_store::{Digest, LocalStore};
use sha2::{Digest as _, Sha256};

use crate::support::{Outcome, Repo};

const BAZEL_CLASSPATH: &str = "REMEX_TEST_BAZEL_WORKER_CLASSPATH";
const BUILDBOX_DIR: &str = "REMEX_TEST_BUILDBOX_DIR";

/// How long a server may take to accept connections: a JVM on two busy cores is slow to start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Attempts at starting a server: the free port picked may be taken before the server binds it.
const START_ATTEMPTS: u32 = 3;

/// The servers these tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    Bazel,
    Buildbox,
    Remex,
}

impl Flavor {
    /// Where the flavor's software is, `None` (after a note) when it is not installed here.
    /// Under CI a missing server is a failure.
    fn installed(self) -> Option<String> {
        let var = match self {
            Self::Bazel => BAZEL_CLASSPATH,
            Self::Buildbox => BUILDBOX_DIR,
            Self::Remex => return Some(env!("CARGO_BIN_EXE_remex").to_owned()),
        };
        match std::env::var(var) {
            Ok(value) if !value.is_empty() => Some(value),
            _ if std::env::var_os("CI").is_some() => {
                panic!("`{var}` is not set under CI: run `eval \"$(bash tests/servers/setup.sh)\"`")
            }
            _ => {
                eprintln!(
                    "note: skipping the {self:?} server test: `{var}` is not set; \
                     run `eval \"$(bash tests/servers/setup.sh)\"` first"
                );
                None
            }
        }
    }

    /// The instance name clients use. Bazel's server takes any, so it gets one with a `/` to
    /// exercise resource names with instance names; buildbox-casd serves only "".
    fn instance_name(self) -> &'static str {
        match self {
            Self::Bazel => "remex/ci",
            Self::Buildbox | Self::Remex => "",
        }
    }
}

/// A server process bound to 127.0.0.1, killed when dropped. Its output goes to a log file that
/// failing assertions print.
struct ServerProcess {
    flavor: Flavor,
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts a server of `flavor` and waits until it accepts connections; `None` when the
    /// server is not installed here (and this is not CI).
    fn start(flavor: Flavor) -> Option<Self> {
        let installed = flavor.installed()?;
        let started = Instant::now();
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("server tempdir");
            let port = free_port();
            let child = spawn(flavor, &installed, port, dir.path());
            let mut server = Self {
                flavor,
                port,
                child,
                dir,
            };
            match server.wait_until_ready() {
                Ok(()) => {
                    eprintln!("{flavor:?}: server started in {:?}", started.elapsed());
                    return Some(server);
                }
                Err(log) => last_log = log,
            }
        }
        panic!("the {flavor:?} server did not start:\n{last_log}");
    }

    /// Waits for the port to accept connections; the server's log if it exited first.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                panic!("no connection after {STARTUP_TIMEOUT:?}:\n{}", self.log());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn address(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }

    /// The end of the server's log, for assertion messages.
    fn log(&self) -> String {
        let text = fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(60)..];
        format!(
            "--- {:?} server log (end)\n{}",
            self.flavor,
            tail.join("\n")
        )
    }

    /// The client settings for this server, store and execution at one address.
    fn remote_options(&self) -> RemoteOptions {
        let mut options = RemoteOptions::new(self.address());
        options.execution_address = Some(self.address());
        options.instance_name = self.flavor.instance_name().to_owned();
        options
    }

    /// `remex.toml` running every target on this server.
    fn remex_toml(&self) -> String {
        let address = self.address();
        format!(
            "[GLOBAL]\nremote_execution = true\nremote_store_address = \"{address}\"\n\
             remote_execution_address = \"{address}\"\nremote_instance_name = \"{}\"\n",
            self.flavor.instance_name()
        )
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Starts the server's process, its output into `dir/server.log`.
fn spawn(flavor: Flavor, installed: &str, port: u16, dir: &Path) -> Child {
    let log = fs::File::create(dir.join("server.log")).expect("server log");
    let mut command = match flavor {
        Flavor::Bazel => bazel_command(installed, port, dir),
        Flavor::Buildbox => buildbox_command(Path::new(installed), port, dir),
        Flavor::Remex => remex_command(installed, port, dir),
    };
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the {flavor:?} server: {e}"))
}

/// Bazel's test server binds every interface; the tests only ever connect to 127.0.0.1.
fn bazel_command(classpath: &str, port: u16, dir: &Path) -> Command {
    let (work, cas) = (dir.join("work"), dir.join("cas"));
    fs::create_dir_all(&work).expect("work dir");
    fs::create_dir_all(&cas).expect("cas dir");
    let mut command = Command::new("java");
    command
        .arg("-cp")
        .arg(classpath)
        .arg("com.google.devtools.build.remote.worker.RemoteWorker")
        .arg(format!("--listen_port={port}"))
        .arg(format!("--work_path={}", work.display()))
        .arg(format!("--cas_path={}", cas.display()))
        .arg("--jobs=2");
    command
}

fn buildbox_command(buildbox: &Path, port: u16, dir: &Path) -> Command {
    let mut command = Command::new(buildbox.join("buildbox-casd"));
    command
        .arg(format!("--bind=127.0.0.1:{port}"))
        .arg(format!(
            "--buildbox-run={}",
            buildbox.join("buildbox-run").display()
        ))
        .arg("--jobs=2")
        .arg("--log-level=info");
    for mount in sandbox_mounts() {
        command.arg(format!("--runner-arg=--ro-bind-mount={mount}"));
    }
    command.arg(dir.join("cache"));
    command
}

/// What buildbox-run's bubblewrap sandbox must see of this machine for `/bin/sh` and the
/// usual tools to work: `/usr`, and `/bin`, `/lib` and `/lib64` as they are here, which on a
/// merged-`/usr` system are symbolic links into `/usr`.
fn sandbox_mounts() -> Vec<String> {
    let mut mounts = vec!["/usr:/usr".to_owned()];
    for top in ["/bin", "/sbin", "/lib", "/lib64"] {
        let Ok(metadata) = fs::symlink_metadata(top) else {
            continue;
        };
        let source = if metadata.is_symlink() {
            fs::canonicalize(top).unwrap_or_else(|e| panic!("`{top}` dangles: {e}"))
        } else {
            PathBuf::from(top)
        };
        mounts.push(format!("{}:{top}", source.display()));
    }
    mounts
}

fn remex_command(remex: &str, port: u16, dir: &Path) -> Command {
    let mut command = Command::new(remex);
    command
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--store")
        .arg(dir.join("store"))
        .arg("--workers=2");
    command
}

// --- The CLI: targets run remotely, then come from the remote cache. ---

const GREETING: &str = "hello from remex\n";

const ROOT_BUILD: &str = r#"
shell_command(name = "passes", command = "echo ok")

shell_command(
    name = "package",
    command = "mkdir -p out && cp greeting.txt out/ && wc -c < greeting.txt > out/size.txt",
    tools = ["cp", "mkdir", "wc"],
    sources = ["greeting.txt"],
    outputs = ["out/"],
)

shell_command(
    name = "reads",
    command = "grep -q remex greeting.txt",
    tools = ["grep"],
    sources = ["greeting.txt"],
)
"#;

const APP_BUILD: &str = r#"
shell_command(
    name = "consume",
    command = "grep -q remex ../out/greeting.txt && cp ../out/size.txt copy.txt",
    tools = ["grep", "cp"],
    outputs = ["copy.txt"],
    dependencies = ["//:package"],
)
"#;

const TARGETS: [&str; 4] = ["//:passes", "//:package", "//:reads", "//app:consume"];

/// Runs the targets on `server`, then builds them again with a fresh local store: every target
/// must come from the remote cache, and `dist/` must hold the outputs fetched from the server.
fn cli_runs_targets_then_hits_the_remote_cache(server: &ServerProcess) {
    let toml = server.remex_toml();
    let repo = Repo::new(&[
        ("remex.toml", &toml),
        ("BUILD", ROOT_BUILD),
        ("app/BUILD", APP_BUILD),
        ("greeting.txt", GREETING),
    ]);
    let first = repo.run(&["test", "::"]);
    check_run(server, &first, false);
    assert!(
        first.stdout.contains("4 remote"),
        "{}\n{}",
        first.all(),
        server.log()
    );

    let fresh = tempfile::tempdir().expect("fresh store");
    let mut build = repo.remex(&["build", "::"]);
    build.env("REMEX_LOCAL_STORE_DIR", fresh.path());
    let second = Outcome::of(build.output().expect("remex runs"));
    check_run(server, &second, true);
    assert!(
        second.stdout.contains("4 from the remote cache"),
        "{}\n{}",
        second.all(),
        server.log()
    );
    check_dist(&repo.root().join("dist"), &second);
}

/// Every target passed, cached or not as expected.
fn check_run(server: &ServerProcess, outcome: &Outcome, cached: bool) {
    let context = || format!("{}\n{}", outcome.all(), server.log());
    assert_eq!(outcome.code, 0, "{}", context());
    for target in TARGETS {
        let line = outcome.line_for(target);
        assert!(line.contains("passed"), "{target}: {}", context());
        assert_eq!(line.contains("(cached)"), cached, "{target}: {}", context());
    }
}

fn check_dist(dist: &Path, outcome: &Outcome) {
    let read = |path: &str| {
        fs::read_to_string(dist.join(path))
            .unwrap_or_else(|e| panic!("dist/{path}: {e}\n{}", outcome.all()))
    };
    assert_eq!(read("out/greeting.txt"), GREETING);
    assert_eq!(read("out/size.txt").trim(), GREETING.len().to_string());
    assert_eq!(read("app/copy.txt").trim(), GREETING.len().to_string());
}

#[test]
fn bazel_remote_worker_runs_targets_and_serves_the_remote_cache() {
    if let Some(server) = ServerProcess::start(Flavor::Bazel) {
        cli_runs_targets_then_hits_the_remote_cache(&server);
    }
}

#[test]
fn buildbox_casd_runs_targets_and_serves_the_remote_cache() {
    if let Some(server) = ServerProcess::start(Flavor::Buildbox) {
        cli_runs_targets_then_hits_the_remote_cache(&server);
    }
}

#[test]
fn remex_serve_runs_targets_and_serves_the_remote_cache() {
    if let Some(server) = ServerProcess::start(Flavor::Remex) {
        cli_runs_targets_then_hits_the_remote_cache(&server);
    }
}

/// buildbox-casd caches failed results too (`--cache-failures` is on by default). remex runs
/// a cached failure again, since it may be a flaky one: the second run executes the target
/// rather than reporting the old failure from the cache.
#[test]
fn buildbox_casd_cached_failures_run_again() {
    let Some(server) = ServerProcess::start(Flavor::Buildbox) else {
        return;
    };
    let build = "shell_command(name = \"fails\", command = \"echo broken >&2; exit 3\")\n";
    let repo = Repo::new(&[("remex.toml", &server.remex_toml()), ("BUILD", build)]);
    for run in ["first", "second"] {
        let fresh = tempfile::tempdir().expect("fresh store");
        let mut test = repo.remex(&["test", "::"]);
        test.env("REMEX_LOCAL_STORE_DIR", fresh.path());
        let outcome = Outcome::of(test.output().expect("remex runs"));
        let context = || format!("{run} run: {}\n{}", outcome.all(), server.log());
        assert_eq!(outcome.code, 1, "{}", context());
        let line = outcome.line_for("//:fails");
        assert!(line.contains("exit code 3"), "{}", context());
        assert!(!line.contains("(cached)"), "{}", context());
        assert!(outcome.stdout.contains("broken"), "{}", context());
        assert!(outcome.stdout.contains("1 remote"), "{}", context());
    }
}

// --- The library: a large input root, executed, fetched, checked, then cached. ---

const SMALL_FILES: usize = 10_000;
const BIG_FILE_BYTES: u64 = 300 * 1024 * 1024;
/// The head of the big file copied out: past the 4 MiB batch limit, so it is streamed back.
const HEAD_BYTES: u64 = 5 * 1024 * 1024;
const PICKED: usize = 4242;

const SCRIPT: &str = "ls many | wc -l > count.txt && wc -c < big.bin > size.txt \
    && sha256sum big.bin > sum.txt && mkdir out && cp many/f04242.txt out/ \
    && head -c 5242880 big.bin > out/head.bin";

fn small_name(index: usize) -> String {
    format!("many/f{index:05}.txt")
}

fn small_content(index: usize) -> String {
    format!("small file number {index}\n")
}

/// One 1 MiB block of the big file: a pattern that differs in every block, so that no two
/// blocks (and no shifted copy of the file) hash alike.
fn big_block(index: u64) -> Vec<u8> {
    let mut block = Vec::with_capacity(1 << 20);
    let mut state = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while block.len() < 1 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        block.extend_from_slice(&state.to_le_bytes());
    }
    block
}

/// The repository of the large action: `many/` with the small files and `big.bin`. Returns
/// the input paths and the big file's SHA-256 and first `HEAD_BYTES`.
fn write_large_repo(root: &Path) -> (Vec<String>, String, Vec<u8>) {
    fs::create_dir_all(root.join("many")).expect("mkdir many");
    let mut inputs = vec!["big.bin".to_owned()];
    for index in 0..SMALL_FILES {
        let name = small_name(index);
        fs::write(root.join(&name), small_content(index)).expect("small file");
        inputs.push(name);
    }
    let mut big = fs::File::create(root.join("big.bin")).expect("big file");
    let mut hash = Sha256::new();
    let mut head = Vec::new();
    for index in 0..BIG_FILE_BYTES >> 20 {
        let block = big_block(index);
        hash.update(&block);
        if (head.len() as u64) < HEAD_BYTES {
            head.extend_from_slice(&block);
        }
        big.write_all(&block).expect("write big file");
    }
    head.truncate(HEAD_BYTES as usize);
    (inputs, hex(&hash.finalize()), head)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn large_process(inputs: Vec<String>) -> Process {
    Process {
        description: "reads a large input root".into(),
        argv: vec!["/bin/sh".into(), "-c".into(), SCRIPT.into()],
        env: BTreeMap::from([("PATH".into(), "/usr/bin:/bin".into())]),
        input_files: inputs,
        output_files: vec!["count.txt".into(), "size.txt".into(), "sum.txt".into()],
        output_directories: vec!["out".into()],
        timeout: Some(Duration::from_secs(600)),
        ..Process::default()
    }
}

/// What the large action must have produced.
struct Expected {
    sha256: String,
    head: Vec<u8>,
}

/// Uploads and executes the large action on `server` through the library, fetches and checks
/// its outputs, then executes it again from a fresh local store: a cache hit.
async fn large_input_root_runs_then_hits_the_cache(server: &ServerProcess) {
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path().join("repo");
    let started = Instant::now();
    let (inputs, sha256, head) = write_large_repo(&root);
    let expected = Expected { sha256, head };
    eprintln!(
        "{:?}: input written in {:?}",
        server.flavor,
        started.elapsed()
    );

    let store = LocalStore::open(work.path().join("store")).expect("store");
    let client = connect(server, store.clone()).await;
    let process = large_process(inputs);
    let started = Instant::now();
    let prepared = prepare(&process, &root, &store, &client).await;
    assert_eq!(prepared.input_files, SMALL_FILES + 1);
    eprintln!(
        "{:?}: action built in {:?}",
        server.flavor,
        started.elapsed()
    );

    let started = Instant::now();
    let first = execute(server, &client, &prepared).await;
    eprintln!("{:?}: executed in {:?}", server.flavor, started.elapsed());
    assert_eq!(first.origin, ResultOrigin::Executed, "{:?}", first.origin);
    let started = Instant::now();
    check_large_outputs(server, &client, &store, &first.result, &expected).await;
    eprintln!(
        "{:?}: outputs fetched in {:?}",
        server.flavor,
        started.elapsed()
    );

    // Another machine: nothing in its store, the same action, a hit in the server's cache.
    let fresh = LocalStore::open(work.path().join("fresh-store")).expect("fresh store");
    let client = connect(server, fresh.clone()).await;
    let started = Instant::now();
    let second = execute(server, &client, &prepared).await;
    assert_eq!(
        second.origin,
        ResultOrigin::ActionCache,
        "{:?}",
        second.origin
    );
    check_large_outputs(server, &client, &fresh, &second.result, &expected).await;
    eprintln!(
        "{:?}: found in the cache in {:?}",
        server.flavor,
        started.elapsed()
    );
}

async fn connect(server: &ServerProcess, store: LocalStore) -> RemoteClient {
    let connected = RemoteClient::connect(server.remote_options(), store).await;
    connected.unwrap_or_else(|e| panic!("connect: {e}\n{}", server.log()))
}

/// Builds the action on the blocking pool: it hashes 300 MiB.
async fn prepare(
    process: &Process,
    root: &Path,
    store: &LocalStore,
    client: &RemoteClient,
) -> PreparedAction {
    let (process, root, store) = (process.clone(), root.to_owned(), store.clone());
    let fields = client.output_fields();
    let work = move || remex_action::prepare(&process, &root, &store, fields);
    let prepared = tokio::task::spawn_blocking(work)
        .await
        .expect("prepare task");
    prepared.expect("prepare the large action")
}

async fn execute(
    server: &ServerProcess,
    client: &RemoteClient,
    prepared: &PreparedAction,
) -> remex_client::ExecuteOutcome {
    let options = ExecuteOptions {
        target_id: "//third_party:large".into(),
        action_mnemonic: "large".into(),
        ..ExecuteOptions::default()
    };
    let outcome = client.execute(prepared, &options).await;
    outcome.unwrap_or_else(|e| panic!("execute: {e}\n{}", server.log()))
}

async fn check_large_outputs(
    server: &ServerProcess,
    client: &RemoteClient,
    store: &LocalStore,
    result: &reapi::ActionResult,
    expected: &Expected,
) {
    let cx = CallContext::default();
    let fetched = client.fetch_outputs(result, &cx).await;
    fetched.unwrap_or_else(|e| panic!("fetch outputs: {e}\n{}", server.log()));
    let stderr = output_text(store, result.stderr_digest.as_ref());
    assert_eq!(result.exit_code, 0, "stderr: {stderr}\n{}", server.log());

    let file = |path: &str| output_file(store, result, path);
    assert_eq!(file("count.txt").trim(), SMALL_FILES.to_string());
    assert_eq!(file("size.txt").trim(), BIG_FILE_BYTES.to_string());
    let sum = file("sum.txt");
    assert!(sum.starts_with(&expected.sha256), "sum.txt: {sum}");

    let out = output_directory(store, result, "out");
    let picked = small_name(PICKED);
    let picked = picked.trim_start_matches("many/");
    let picked_digest = Digest::of_bytes(small_content(PICKED).as_bytes());
    assert_eq!(out.get(picked), Some(&picked_digest), "out/: {out:?}");
    let head = Digest::of_bytes(&expected.head);
    assert_eq!(out.get("head.bin"), Some(&head), "out/: {out:?}");
    let fetched_head = store.read(&head).expect("head.bin fetched");
    assert!(fetched_head == expected.head, "head.bin differs");
}

/// A blob of the local store as text; empty when there is none.
fn output_text(store: &LocalStore, digest: Option<&reapi::Digest>) -> String {
    let Some(digest) = digest.and_then(|d| Digest::from_proto(d).ok()) else {
        return String::new();
    };
    let bytes = store.read(&digest).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn output_file(store: &LocalStore, result: &reapi::ActionResult, path: &str) -> String {
    let file = result.output_files.iter().find(|f| f.path == path);
    let file = file.unwrap_or_else(|| panic!("no output file `{path}` in {result:?}"));
    output_text(store, file.digest.as_ref())
}

/// The files directly in output directory `path`, by name, after checking that every file
/// of it was fetched.
fn output_directory(
    store: &LocalStore,
    result: &reapi::ActionResult,
    path: &str,
) -> BTreeMap<String, Digest> {
    let directory = result.output_directories.iter().find(|d| d.path == path);
    let directory = directory.unwrap_or_else(|| panic!("no output directory `{path}`"));
    let tree = Digest::from_proto_field(directory.tree_digest.as_ref()).expect("tree digest");
    let tree: reapi::Tree = store.read_message(&tree).expect("tree fetched");
    let root = tree.root.unwrap_or_default();
    let mut files = BTreeMap::new();
    for file in root.files {
        let digest = Digest::from_proto_field(file.digest.as_ref()).expect("file digest");
        assert!(store.contains(&digest), "`{}` was not fetched", file.name);
        files.insert(file.name, digest);
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bazel_remote_worker_executes_a_large_input_root() {
    if let Some(server) = ServerProcess::start(Flavor::Bazel) {
        large_input_root_runs_then_hits_the_cache(&server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buildbox_casd_executes_a_large_input_root() {
    if let Some(server) = ServerProcess::start(Flavor::Buildbox) {
        large_input_root_runs_then_hits_the_cache(&server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remex_serve_executes_a_large_input_root() {
    if let Some(server) = ServerProcess::start(Flavor::Remex) {
        large_input_root_runs_then_hits_the_cache(&server).await;
    }
}
