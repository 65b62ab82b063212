//! `digest`: the Merkle tree of a large input root, first in this process and then again, as
//! a new `remex digest` process would see an unchanged tree.
//!
//! The tree is written, then flushed (`sync`), so that the kernel writing a gigabyte back to
//! disk does not compete for the cores while the digests are timed; its pages stay cached.
//! "Cold" is `digest_directory_on_disk`, which remembers nothing. The `remex digest` processes
//! share a fresh local store of their own (`REMEX_LOCAL_STORE_DIR`), where the first one
//! records the file digests. It runs once the tree is older than the cache's racy window (a
//! file changed less than a second before it is read is not recorded), as a tree checked out
//! a moment before would be; it is timed on its own, then "unchanged" is timed after one more
//! untimed run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::machine::Limits;
use crate::measure::{mb_per_s, median_secs, repeat, timed};
use crate::report::{Row, Verdict};
use crate::{Settings, workload};

pub fn run(settings: &Settings, limits: &Limits) -> anyhow::Result<Vec<Row>> {
    let sizes = settings.sizes;
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    eprintln!(
        "writing {} small and {} large files",
        sizes.small_files, sizes.large_files
    );
    workload::write_small_files(&root.join("small"), sizes.small_files, 1)?;
    let noise = workload::noise(2);
    std::fs::create_dir_all(root.join("large"))?;
    for i in 0..sizes.large_files {
        let path = root.join("large").join(format!("big{i}.bin"));
        workload::write_file(&path, sizes.large_file_bytes, 100 + i as u64, &noise)?;
    }
    let written = Instant::now();
    flush_to_disk()?;
    let total = sizes.small_files as u64 * 1024 + sizes.large_files as u64 * sizes.large_file_bytes;

    let in_process = repeat(settings.reps, || timed(|| digest(root)))?;
    let small_only = repeat(settings.reps, || timed(|| digest(&root.join("small"))))?;

    let store = tempfile::tempdir()?;
    let racy_window = remex_store::RACY_WINDOW + Duration::from_millis(100);
    std::thread::sleep(racy_window.saturating_sub(written.elapsed()));
    let first_cli = timed(|| remex_digest(&settings.remex, root, store.path()))?;
    let cli = repeat(settings.reps, || {
        timed(|| remex_digest(&settings.remex, root, store.path()))
    })?;

    let cold = median_secs(&in_process);
    let rate = mb_per_s(total, cold);
    let unchanged = median_secs(&cli);
    let workload = format!(
        "{} × 1 KiB + {} × {} MB ({:.0} MB)",
        sizes.small_files,
        sizes.large_files,
        sizes.large_file_bytes / 1_000_000,
        total as f64 / 1e6
    );
    Ok(vec![
        Row::new("digest", "cold: `digest_directory_on_disk`", &workload)
            .value(format!("{:.2} s, {rate:.0} MB/s", cold))
            .ratio(rate / limits.sha256_two, "of 2-thread SHA-256")
            .target("≥ 0.80", Verdict::of(rate / limits.sha256_two >= 0.8)),
        Row::new("digest", "cold vs 1-thread SHA-256", &workload)
            .value(format!("{rate:.0} MB/s"))
            .ratio(rate / limits.sha256_one, "of 1-thread SHA-256")
            .target("(context)", Verdict::Info),
        Row::new(
            "digest",
            "small files only",
            &format!("{} × 1 KiB", sizes.small_files),
        )
        .value(per_file(median_secs(&small_only), sizes.small_files))
        .target("(context)", Verdict::Info),
        Row::new(
            "digest",
            "first `remex digest` process (records the digests)",
            &workload,
        )
        .value(format!("{:.0} ms", first_cli.as_secs_f64() * 1e3))
        .ratio(first_cli.as_secs_f64() / cold, "of cold")
        .target("(context)", Verdict::Info),
        Row::new("digest", "unchanged: `remex digest` process", &workload)
            .value(format!("{:.0} ms", unchanged * 1e3))
            .ratio(unchanged / cold, "of cold")
            .target("< 150 ms", Verdict::of(unchanged < 0.150)),
    ])
}

fn digest(root: &Path) -> anyhow::Result<()> {
    std::hint::black_box(remex_store::digest_directory_on_disk(root)?);
    Ok(())
}

fn flush_to_disk() -> anyhow::Result<()> {
    let status = Command::new("sync").status().context("cannot run `sync`")?;
    anyhow::ensure!(status.success(), "`sync` failed: {status}");
    Ok(())
}

fn per_file(seconds: f64, files: usize) -> String {
    format!(
        "{:.2} s, {:.1} µs per file",
        seconds,
        seconds * 1e6 / files as f64
    )
}

fn remex_digest(remex: &Path, root: &Path, store: &Path) -> anyhow::Result<()> {
    let output = Command::new(remex)
        .arg("digest")
        .arg(root)
        .env("REMEX_LOCAL_STORE_DIR", store)
        .env_remove("RUST_LOG")
        .output();
    let output = output.with_context(|| format!("cannot run `{}`", remex.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "`remex digest` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
