//! `upload`: new blobs into a fresh `remex serve` over loopback, by a client in a child process
//! so that its peak memory (VmHWM) is its own. The child first stores the files in its local
//! store (hashing them, as remex does before any upload), then uploads what the server lacks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use remex_client::{CallContext, RemoteClient, RemoteOptions};
use remex_store::LocalStore;

use crate::machine::Limits;
use crate::measure::{mb_per_s, median, peak_memory};
use crate::report::{Row, Verdict};
use crate::server::Server;
use crate::{Settings, workload};

pub const CHILD_COMMAND: &str = "upload-client";

/// What one child reported.
#[derive(Clone, Copy, Debug, Default)]
struct ChildRun {
    bytes: u64,
    ingest_s: f64,
    upload_s: f64,
    /// Writing and syncing as many bytes to a file right after the upload: the disk's rate
    /// at that moment, which on a virtual machine drifts by several times within minutes.
    disk_s: f64,
    peak: u64,
}

pub fn run(settings: &Settings, limits: &Limits) -> anyhow::Result<Vec<Row>> {
    let sizes = settings.sizes;
    let dir = tempfile::tempdir()?;
    let blobs = dir.path().join("blobs");
    let big = dir.path().join("big");
    std::fs::create_dir_all(&blobs)?;
    std::fs::create_dir_all(&big)?;
    let noise = workload::noise(3);
    for i in 0..sizes.upload_blobs {
        let path = blobs.join(format!("blob{i}"));
        workload::write_file(&path, sizes.upload_blob_bytes, 1000 + i as u64, &noise)?;
    }
    workload::write_file(&big.join("big.bin"), sizes.upload_big_file, 7, &noise)?;

    let bound = limits.sha256_one.min(limits.loopback);
    let mut rows = Vec::new();
    let blob_label = format!(
        "{} × {} MiB",
        sizes.upload_blobs,
        sizes.upload_blob_bytes >> 20
    );
    let big_label = format!("1 file of {} MiB", sizes.upload_big_file >> 20);
    for (label, source) in [(blob_label, &blobs), (big_label, &big)] {
        let runs = repeat_child(settings, source)?;
        rows.extend(rows_for(&label, &runs, bound, limits));
    }
    Ok(rows)
}

fn repeat_child(settings: &Settings, source: &Path) -> anyhow::Result<Vec<ChildRun>> {
    let mut runs = Vec::new();
    for rep in 0..=settings.reps {
        let server = Server::start(&settings.remex)?;
        let store = tempfile::tempdir()?;
        let run = run_child(&server.address, store.path(), source)?;
        eprintln!("upload {}: {run:?}", source.display());
        if rep > 0 {
            runs.push(run);
        }
    }
    Ok(runs)
}

fn rows_for(label: &str, runs: &[ChildRun], bound: f64, limits: &Limits) -> Vec<Row> {
    let bytes = runs.first().map_or(0, |r| r.bytes);
    let upload = median(
        &runs
            .iter()
            .map(|r| mb_per_s(bytes, r.upload_s))
            .collect::<Vec<_>>(),
    );
    let ingest = median(
        &runs
            .iter()
            .map(|r| mb_per_s(bytes, r.ingest_s))
            .collect::<Vec<_>>(),
    );
    let peak = median(&runs.iter().map(|r| r.peak as f64).collect::<Vec<_>>()) / 1048576.0;
    let against_disk = median(
        &runs
            .iter()
            .map(|r| r.disk_s / r.upload_s)
            .collect::<Vec<_>>(),
    );
    vec![
        Row::new("upload", "`upload_blobs` to `remex serve`", label)
            .value(format!("{upload:.0} MB/s"))
            .ratio(upload / bound, "of min(SHA-256 1 thread, loopback)")
            .target("≥ 0.70", Verdict::of(upload / bound >= 0.7)),
        Row::new(
            "upload",
            "`upload_blobs` against the synced disk rate",
            label,
        )
        .value(format!("{upload:.0} MB/s"))
        .ratio(upload / limits.disk_synced, "of disk write + `sync_data`")
        .target("(context)", Verdict::Info),
        Row::new(
            "upload",
            "`upload_blobs` against the disk right after it",
            label,
        )
        .value(format!("{upload:.0} MB/s"))
        .ratio(against_disk, "of the same bytes written + `sync_data`")
        .target("(context)", Verdict::Info),
        Row::new("upload", "local ingest: `put_file` (hash + copy)", label)
            .value(format!("{ingest:.0} MB/s"))
            .ratio(ingest / limits.sha256_one, "of SHA-256 1 thread")
            .target("(context)", Verdict::Info),
        Row::new("upload", "client peak memory (VmHWM)", label)
            .value(format!("{peak:.1} MiB"))
            .target("< 64 MiB", Verdict::of(peak < 64.0)),
    ]
}

fn run_child(address: &str, store: &Path, source: &Path) -> anyhow::Result<ChildRun> {
    let exe = std::env::current_exe()?;
    let output = Command::new(exe)
        .args([CHILD_COMMAND, address])
        .arg(store)
        .arg(source)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "upload client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |name: &str| -> anyhow::Result<f64> {
        let prefix = format!("{name}=");
        let line = stdout.lines().find_map(|l| l.strip_prefix(&prefix));
        Ok(line
            .with_context(|| format!("no `{name}` from the upload client"))?
            .parse()?)
    };
    Ok(ChildRun {
        bytes: field("bytes")? as u64,
        ingest_s: field("ingest_s")?,
        upload_s: field("upload_s")?,
        disk_s: field("disk_s")?,
        peak: field("peak")? as u64,
    })
}

/// The child: `upload-client ADDRESS STORE_DIR SOURCE_DIR`.
pub fn child_main(args: &[String]) -> anyhow::Result<()> {
    let [address, store, source] = args else {
        anyhow::bail!("usage: remex-bench {CHILD_COMMAND} ADDRESS STORE_DIR SOURCE_DIR");
    };
    let store = LocalStore::open(store)?;
    let files = list_files(Path::new(source))?;

    let started = Instant::now();
    let mut digests = Vec::with_capacity(files.len());
    for file in &files {
        digests.push(store.put_file(file)?);
    }
    let ingest_s = started.elapsed().as_secs_f64();
    let bytes: u64 = digests.iter().map(|d| d.size_bytes).sum();
    // The workload and the ingest leave gigabytes in the page cache for the kernel to write
    // back; flushed now, they do not slow the durable server's writes in the timed upload.
    rustix::fs::sync();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let upload_s = runtime.block_on(upload(address, store.clone(), digests))?;
    let disk_s = crate::machine::write_and_sync(&store.temp_dir(), bytes)?.as_secs_f64();
    println!("bytes={bytes}\ningest_s={ingest_s}\nupload_s={upload_s}\ndisk_s={disk_s}");
    println!("peak={}", peak_memory()?);
    Ok(())
}

async fn upload(
    address: &str,
    store: LocalStore,
    digests: Vec<remex_store::Digest>,
) -> anyhow::Result<f64> {
    let client = RemoteClient::connect(RemoteOptions::new(address), store).await?;
    let started = Instant::now();
    let summary = client
        .upload_blobs(digests, &CallContext::default())
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(summary.missing > 0, "the server already held every blob");
    Ok(seconds)
}

fn list_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("cannot list `{}`", dir.display()))?
    {
        files.push(entry?.path());
    }
    files.sort();
    Ok(files)
}
