//! `docs/performance.md`, rewritten whole by every run.

use std::fmt::Write as _;

use crate::Settings;
use crate::machine::Limits;

/// Whether a row meets its target; `Info` rows give context and have none.
#[derive(Clone, Copy, Debug)]
pub enum Verdict {
    Met,
    Missed,
    Info,
}

impl Verdict {
    pub fn of(met: bool) -> Self {
        if met { Self::Met } else { Self::Missed }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Missed => "**missed**",
            Self::Info => "",
        }
    }
}

/// One line of the results table.
#[derive(Clone, Debug)]
pub struct Row {
    case: String,
    measure: String,
    workload: String,
    value: String,
    ratio: String,
    target: String,
    verdict: Verdict,
}

impl Row {
    pub fn new(case: &str, measure: &str, workload: &str) -> Self {
        Self {
            case: case.to_owned(),
            measure: measure.to_owned(),
            workload: workload.to_owned(),
            value: String::new(),
            ratio: String::new(),
            target: String::new(),
            verdict: Verdict::Info,
        }
    }

    pub fn value(mut self, value: String) -> Self {
        self.value = value;
        self
    }

    pub fn ratio(mut self, ratio: f64, of: &str) -> Self {
        self.ratio = format!("{ratio:.2} {of}");
        self
    }

    pub fn target(mut self, target: &str, verdict: Verdict) -> Self {
        self.target = target.to_owned();
        self.verdict = verdict;
        self
    }
}

pub struct Report {
    settings: Settings,
    limits: Limits,
    rows: Vec<Row>,
    failures: Vec<(String, String)>,
}

impl Report {
    pub fn new(settings: &Settings) -> Self {
        Self {
            settings: settings.clone(),
            limits: Limits::default(),
            rows: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn add(&mut self, rows: Vec<Row>) {
        self.rows.extend(rows);
    }

    pub fn failed(&mut self, case: &str, error: &str) {
        eprintln!("case `{case}` failed: {error}");
        self.failures.push((case.to_owned(), error.to_owned()));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(HEADER);
        self.render_run(&mut out);
        self.render_limits(&mut out);
        self.render_rows(&mut out);
        for (case, error) in &self.failures {
            let _ = writeln!(out, "\nCase `{case}` could not run: `{error}`");
        }
        out.push_str(crate::report::FINDINGS);
        out
    }

    fn render_run(&self, out: &mut String) {
        let s = &self.settings;
        let mode = if s.full {
            "full (`--full`)"
        } else {
            "quick (the default)"
        };
        let bazel = s
            .bazel
            .as_ref()
            .map_or("not run (`--no-bazel`, or not installed)".to_owned(), |b| {
                format!("`{}` ({})", b.display(), bazel_version(b))
            });
        let _ = writeln!(out, "## This run\n");
        let _ = writeln!(
            out,
            "- mode: {mode}; one warm-up, then {} timed repetitions",
            s.reps
        );
        let _ = writeln!(
            out,
            "- CPU: {}, {} cores",
            self.limits.cpu_model, self.limits.cores
        );
        let _ = writeln!(out, "- kernel: {}", self.limits.kernel);
        let _ = writeln!(out, "- Bazel: {bazel}");
        let _ = writeln!(out, "- `/tmp` filesystem: {}", tmp_filesystem());
    }

    fn render_limits(&self, out: &mut String) {
        let l = &self.limits;
        let _ = writeln!(out, "\n## The machine's own limits (same run)\n");
        out.push_str("| limit | median |\n|---|---|\n");
        let lines = [
            (
                "SHA-256 (`sha2`), 1 thread",
                format!("{:.0} MB/s", l.sha256_one),
            ),
            (
                "SHA-256 (`sha2`), 2 threads",
                format!("{:.0} MB/s", l.sha256_two),
            ),
            (
                "BLAKE3 (`blake3`), 1 thread",
                format!("{:.0} MB/s", l.blake3_one),
            ),
            (
                "BLAKE3 (`blake3`), 2 threads",
                format!("{:.0} MB/s", l.blake3_two),
            ),
            (
                "loopback TCP, one std `TcpStream` pair",
                format!("{:.0} MB/s", l.loopback),
            ),
            (
                "spawn and wait `/bin/true`",
                format!("{:.0} µs", l.spawn_us),
            ),
            (
                "`LocalStore::put_bytes`, 4 KiB, with `sync_data`",
                format!("{:.0} µs", l.store_put_us),
            ),
            (
                "same write + rename without `sync_data`",
                format!("{:.0} µs", l.unsynced_put_us),
            ),
            (
                "disk: 2 GiB written, then `sync_data`",
                format!("{:.0} MB/s", l.disk_synced),
            ),
        ];
        for (name, value) in lines {
            let _ = writeln!(out, "| {name} | {value} |");
        }
    }

    fn render_rows(&self, out: &mut String) {
        let _ = writeln!(out, "\n## Results\n");
        out.push_str("| case | measure | workload | median | ratio | target | |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.case,
                r.measure,
                r.workload,
                r.value,
                r.ratio,
                r.target,
                r.verdict.text()
            );
        }
    }
}

fn bazel_version(binary: &std::path::Path) -> String {
    let output = std::process::Command::new(binary).arg("--version").output();
    let text = output.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let text = text.unwrap_or_else(|e| format!("not runnable: {e}"));
    // Debian's bootstrap build reports `no_version`; its package knows.
    let package = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "bazel-bootstrap"])
        .output();
    match package {
        Ok(o) if o.status.success() => {
            format!(
                "{text}; package bazel-bootstrap {}",
                String::from_utf8_lossy(&o.stdout)
            )
        }
        _ => text,
    }
}

fn tmp_filesystem() -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let root = mounts.lines().map(|l| l.split(' ').collect::<Vec<_>>());
    let best = root
        .filter(|f| f.len() > 2 && "/tmp".starts_with(f[1]))
        .max_by_key(|f| f[1].len());
    best.map_or("unknown".to_owned(), |f| format!("{} on `{}`", f[2], f[1]))
}

const HEADER: &str = include_str!("../performance-header.md");
const FINDINGS: &str = include_str!("../performance-findings.md");
