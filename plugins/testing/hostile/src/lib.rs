//! A plugin that misbehaves on request, for the plugin host's tests. The target kind `hostile`
//! has a `behavior` field naming what to do when planned.
//!
//! Probes of the sandbox (`wasi-*`, `read-outside`, `sleep`) never trap: they report what they
//! observed in a plan error starting with the behaviour's name, so a test can assert that the
//! sandbox held. Had it not held, they return a process carrying what leaked.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use remex_plugin_sdk::host::{self, LogLevel};
use remex_plugin_sdk::{
    Description, Environment, FieldSpec, FieldType, KindSpec, PlanError, Process, Target, Toolchain,
};

struct Hostile;

impl Toolchain for Hostile {
    fn describe() -> Description {
        let kind = KindSpec::new(
            "hostile",
            "Misbehaves as `behavior` says, to test the plugin host.",
            vec![
                FieldSpec::required("behavior", FieldType::Text, "What to do when planned."),
                FieldSpec::optional("sources", FieldType::Sources, "Files `read-sources` reads."),
            ],
        );
        Description::new("hostile", env!("CARGO_PKG_VERSION"), vec![kind])
    }

    fn plan(target: Target, _environment: Environment) -> Result<Vec<Process>, PlanError> {
        match target.required_text("behavior")? {
            "ok" => Ok(vec![Process::new("ok", ["/bin/true"])]),
            "loop" => endless_loop(),
            "alloc" => allocate_without_bound(),
            "trap" => panic!("hostile plugin panics on purpose"),
            "exit" => std::process::exit(3),
            "huge-result" => Ok(huge_result()),
            "host-call-flood" => host_call_flood(),
            "wasi-file" => read_host_file(),
            "wasi-env" => environment_probe(),
            "wasi-clock" => clock_probe(),
            "wasi-socket" => socket_probe(),
            "sleep" => sleep_probe(),
            "read-outside" => read_outside(),
            "read-sources" => read_sources(&target),
            other => Err(PlanError::new(format!("unknown behavior `{other}`"))),
        }
    }
}

remex_plugin_sdk::export_toolchain!(Hostile);

fn endless_loop() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn allocate_without_bound() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(black_box(vec![1u8; 1 << 20]));
    }
}

/// 32 MiB of arguments, over the host's default 16 MiB cap on results but well within its
/// memory cap.
fn huge_result() -> Vec<Process> {
    let argument = "x".repeat(512 * 1024);
    (0..64)
        .map(|i| Process::new(format!("huge {i}"), [argument.as_str()]))
        .collect()
}

fn host_call_flood() -> ! {
    loop {
        host::log(LogLevel::Trace, "flood");
    }
}

fn leaked(what: &str, value: String) -> Result<Vec<Process>, PlanError> {
    Ok(vec![Process::new(format!("leaked {what}"), [value])])
}

fn read_host_file() -> Result<Vec<Process>, PlanError> {
    match std::fs::read_to_string("/etc/passwd") {
        Ok(content) => leaked("/etc/passwd", content),
        Err(err) => Err(PlanError::new(format!("wasi-file: read failed: {err}"))),
    }
}

fn environment_probe() -> Result<Vec<Process>, PlanError> {
    let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let args: Vec<String> = std::env::args().collect();
    let cwd = std::env::current_dir().map(|d| d.display().to_string());
    Err(PlanError::new(format!(
        "wasi-env: vars={vars:?} args={args:?} cwd={cwd:?}"
    )))
}

fn clock_probe() -> Result<Vec<Process>, PlanError> {
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos());
    let start = Instant::now();
    let elapsed = black_box(start).elapsed().as_nanos();
    Err(PlanError::new(format!(
        "wasi-clock: wall_ns={wall:?} monotonic_elapsed_ns={elapsed}"
    )))
}

fn socket_probe() -> Result<Vec<Process>, PlanError> {
    match std::net::TcpStream::connect("127.0.0.1:1") {
        Ok(stream) => leaked("a socket", format!("{stream:?}")),
        Err(err) => Err(PlanError::new(format!(
            "wasi-socket: connect failed: {err}"
        ))),
    }
}

/// Sleeps an hour; the host's clocks are fake, so this must return at once with the fake
/// monotonic clock an hour later.
fn sleep_probe() -> Result<Vec<Process>, PlanError> {
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(3600));
    let slept = start.elapsed().as_secs();
    Err(PlanError::new(format!("sleep: slept_s={slept}")))
}

fn read_outside() -> Result<Vec<Process>, PlanError> {
    let mut refusals = Vec::new();
    for path in ["/etc/passwd", "../outside.txt", "BUILD", ""] {
        match host::read_source(path) {
            Ok(content) => return leaked(path, String::from_utf8_lossy(&content).into_owned()),
            Err(err) => refusals.push(err),
        }
    }
    Err(PlanError::new(format!(
        "read-outside: refused={}",
        refusals.len()
    )))
}

/// Reads each of its sources and reports their sizes as arguments of one process.
fn read_sources(target: &Target) -> Result<Vec<Process>, PlanError> {
    let mut argv = vec!["sizes".to_owned()];
    for path in target.text_list("sources") {
        let content = host::read_source(path)
            .map_err(|err| PlanError::new(format!("read-sources: `{path}`: {err}")))?;
        argv.push(format!("{path}={}", content.len()));
    }
    Ok(vec![Process::new("read sources", argv)])
}
