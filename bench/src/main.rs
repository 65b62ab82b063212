//! The remex benchmark harness. One command measures this machine's own limits (SHA-256,
//! BLAKE3, loopback TCP, process spawn) and every remex case in the same run, then rewrites
//! `docs/performance.md` with medians and ratios against those limits, so that a noisy, shared
//! machine still gives comparable figures.
//!
//! `bench/run.sh [--full] [--no-bazel]`; see `--help`.

mod actions;
mod bazel;
mod digest;
mod machine;
mod measure;
mod noop;
mod plan;
mod report;
mod server;
mod upload;
mod workload;

use std::path::PathBuf;

use anyhow::Context;

use crate::report::{Report, Row};

/// What one run measures, and how big.
#[derive(Clone, Debug)]
pub struct Settings {
    pub full: bool,
    pub remex: PathBuf,
    pub plan_example: PathBuf,
    pub bazel: Option<PathBuf>,
    pub output: PathBuf,
    pub only: Vec<String>,
    pub sizes: Sizes,
    /// Timed repetitions after one warm-up.
    pub reps: usize,
}

/// Workload sizes; `--full` gives the targets' own sizes, the default scales them down.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub small_files: usize,
    pub large_files: usize,
    pub large_file_bytes: u64,
    pub upload_blob_bytes: u64,
    pub upload_blobs: usize,
    pub upload_big_file: u64,
    pub cached_actions: usize,
    pub execute_actions: usize,
    pub plan_targets: usize,
    pub noop_targets: usize,
}

const MIB: u64 = 1024 * 1024;

impl Sizes {
    fn full() -> Self {
        Self {
            small_files: 100_000,
            large_files: 10,
            large_file_bytes: 100_000_000,
            upload_blob_bytes: MIB,
            upload_blobs: 1024,
            upload_big_file: 4096 * MIB,
            cached_actions: 10_000,
            execute_actions: 2_000,
            plan_targets: 10_000,
            noop_targets: 1_000,
        }
    }

    fn quick() -> Self {
        Self {
            small_files: 10_000,
            large_files: 2,
            large_file_bytes: 100_000_000,
            upload_blob_bytes: MIB,
            upload_blobs: 256,
            upload_big_file: 1024 * MIB,
            cached_actions: 2_000,
            execute_actions: 500,
            plan_targets: 10_000,
            noop_targets: 1_000,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(upload::CHILD_COMMAND) {
        return upload::child_main(&args[1..]);
    }
    let settings = parse_args(&args)?;
    run(&settings)
}

fn run(settings: &Settings) -> anyhow::Result<()> {
    let mut report = Report::new(settings);
    let wanted = |case: &str| settings.only.is_empty() || settings.only.iter().any(|c| c == case);

    eprintln!("== machine limits");
    let limits = machine::measure(settings)?;
    report.set_limits(limits.clone());
    type Case = fn(&Settings, &machine::Limits) -> anyhow::Result<Vec<Row>>;
    let cases: [(&str, Case); 7] = [
        ("digest", digest::run),
        ("upload", upload::run),
        ("cached", actions::run_cached),
        ("cached", noop::run_cached),
        ("execute", actions::run_execute),
        ("plan", plan::run),
        ("no-op", noop::run),
    ];
    for (name, case) in cases {
        if !wanted(name) {
            continue;
        }
        eprintln!("== {name}");
        match case(settings, &limits) {
            Ok(rows) => report.add(rows),
            Err(e) => report.failed(name, &format!("{e:#}")),
        }
    }
    let text = report.render();
    std::fs::write(&settings.output, &text)
        .with_context(|| format!("cannot write `{}`", settings.output.display()))?;
    println!("{text}");
    Ok(())
}

const DEFAULT_BAZEL: &str = "/usr/bin/bazel";

const USAGE: &str = "usage: remex-bench --remex BIN --plan-example BIN [--full] [--reps N] \
[--bazel BIN | --no-bazel] [--only CASE]... [--output FILE]";

fn parse_args(args: &[String]) -> anyhow::Result<Settings> {
    let mut settings = Settings {
        full: false,
        remex: PathBuf::new(),
        plan_example: PathBuf::new(),
        // Debian's `bazel-bootstrap`, which `tests/servers/setup.sh` installs; without it the
        // comparisons are left out rather than failing their cases.
        bazel: Some(PathBuf::from(DEFAULT_BAZEL)).filter(|bazel| bazel.exists()),
        output: PathBuf::from("docs/performance.md"),
        only: Vec::new(),
        sizes: Sizes::quick(),
        reps: 0,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("`{arg}` needs a value"))
        };
        match arg.as_str() {
            "--full" => settings.full = true,
            "--quick" => settings.full = false,
            "--remex" => settings.remex = value()?.into(),
            "--plan-example" => settings.plan_example = value()?.into(),
            "--bazel" => settings.bazel = Some(value()?.into()),
            "--no-bazel" => settings.bazel = None,
            "--output" => settings.output = value()?.into(),
            "--only" => settings.only.push(value()?.clone()),
            "--reps" => settings.reps = value()?.parse().context("`--reps` takes a number")?,
            "--help" | "-h" => anyhow::bail!("{USAGE}"),
            other => anyhow::bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if settings.remex.as_os_str().is_empty() || settings.plan_example.as_os_str().is_empty() {
        anyhow::bail!("`--remex` and `--plan-example` are required\n{USAGE}");
    }
    settings.sizes = if settings.full {
        Sizes::full()
    } else {
        Sizes::quick()
    };
    if settings.reps == 0 {
        settings.reps = if settings.full { 5 } else { 3 };
    }
    Ok(settings)
}
