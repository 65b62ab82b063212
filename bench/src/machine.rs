//! This machine's own limits, measured in the same run as the cases they are ratios against.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use sha2::{Digest as _, Sha256};

use crate::Settings;
use crate::measure::{median, median_rate, repeat, timed};

/// Rates in MB/s, costs in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub sha256_one: f64,
    pub sha256_two: f64,
    pub blake3_one: f64,
    pub blake3_two: f64,
    pub loopback: f64,
    pub spawn_us: f64,
    pub store_put_us: f64,
    pub unsynced_put_us: f64,
    /// MB/s of a large file written and then `sync_data`'d, where the server's store lives.
    pub disk_synced: f64,
}

const CHUNK: usize = 256 * 1024;
const HASH_BYTES: u64 = 512 * 1024 * 1024;
const TCP_BYTES: u64 = 2 * 1024 * 1024 * 1024;

pub fn measure(settings: &Settings) -> anyhow::Result<Limits> {
    let reps = settings.reps;
    let limits = Limits {
        cpu_model: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: first_line("/proc/sys/kernel/osrelease"),
        sha256_one: hash_rate(reps, 1, sha256_stream)?,
        sha256_two: hash_rate(reps, 2, sha256_stream)?,
        blake3_one: hash_rate(reps, 1, blake3_stream)?,
        blake3_two: hash_rate(reps, 2, blake3_stream)?,
        loopback: loopback_rate(reps)?,
        spawn_us: spawn_cost(reps)?,
        store_put_us: store_put_cost(reps, true)?,
        unsynced_put_us: store_put_cost(reps, false)?,
        disk_synced: disk_synced_rate(reps)?,
    };
    eprintln!("{limits:?}");
    Ok(limits)
}

fn sha256_stream(buffer: &[u8], bytes: u64) {
    let mut hasher = Sha256::new();
    for _ in 0..bytes / buffer.len() as u64 {
        hasher.update(buffer);
    }
    std::hint::black_box(hasher.finalize());
}

fn blake3_stream(buffer: &[u8], bytes: u64) {
    let mut hasher = blake3::Hasher::new();
    for _ in 0..bytes / buffer.len() as u64 {
        hasher.update(buffer);
    }
    std::hint::black_box(hasher.finalize());
}

/// Aggregate MB/s of `threads` threads each hashing `HASH_BYTES` in `CHUNK` updates.
fn hash_rate(reps: usize, threads: usize, hash: fn(&[u8], u64)) -> anyhow::Result<f64> {
    let buffer: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    let durations = repeat(reps, || {
        timed(|| {
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| hash(&buffer, HASH_BYTES));
                }
            });
            Ok(())
        })
    })?;
    Ok(median_rate(HASH_BYTES * threads as u64, &durations))
}

/// MB/s through one std `TcpStream` pair on 127.0.0.1, 1 MiB writes.
fn loopback_rate(reps: usize) -> anyhow::Result<f64> {
    let durations = repeat(reps, || {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let reader = std::thread::spawn(move || -> std::io::Result<u64> {
            let (mut stream, _) = listener.accept()?;
            let mut buffer = vec![0u8; 1024 * 1024];
            let mut total = 0;
            loop {
                match stream.read(&mut buffer)? {
                    0 => return Ok(total),
                    n => total += n as u64,
                }
            }
        });
        let started = Instant::now();
        let mut stream = TcpStream::connect(address)?;
        let buffer = vec![7u8; 1024 * 1024];
        for _ in 0..TCP_BYTES / buffer.len() as u64 {
            stream.write_all(&buffer)?;
        }
        drop(stream);
        let received = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))??;
        anyhow::ensure!(
            received == TCP_BYTES,
            "received {received} of {TCP_BYTES} bytes"
        );
        Ok(started.elapsed())
    })?;
    Ok(median_rate(TCP_BYTES, &durations))
}

/// Microseconds to spawn and wait for `/bin/true`.
fn spawn_cost(reps: usize) -> anyhow::Result<f64> {
    const COUNT: u32 = 200;
    let durations = repeat(reps, || {
        timed(|| {
            for _ in 0..COUNT {
                let status = Command::new("/bin/true").status()?;
                anyhow::ensure!(status.success(), "/bin/true failed");
            }
            Ok(())
        })
    })?;
    let per_spawn: Vec<f64> = durations
        .iter()
        .map(|d| d.as_secs_f64() * 1e6 / f64::from(COUNT))
        .collect();
    Ok(median(&per_spawn))
}

/// Microseconds per distinct 4 KiB blob put into a durable `LocalStore` (whose commit calls
/// `sync_data`, as `remex serve`'s does), or, with `synced` false, written and renamed the same
/// way without it.
fn store_put_cost(reps: usize, synced: bool) -> anyhow::Result<f64> {
    const COUNT: usize = 300;
    let mut round = 0u64;
    let durations = repeat(reps, || {
        round += 1;
        let dir = tempfile::tempdir()?;
        let store = remex_store::LocalStore::open(dir.path())?.durable(true);
        let blobs: Vec<Vec<u8>> = (0..COUNT).map(|i| blob(round, i)).collect();
        timed(|| {
            for (i, bytes) in blobs.iter().enumerate() {
                if synced {
                    store.put_bytes(bytes)?;
                } else {
                    let temp = dir.path().join(format!("t{i}"));
                    std::fs::write(&temp, bytes)?;
                    std::fs::rename(&temp, dir.path().join(format!("b{i}")))?;
                }
            }
            Ok(())
        })
    })?;
    let per_put: Vec<f64> = durations
        .iter()
        .map(|d: &Duration| d.as_secs_f64() * 1e6 / COUNT as f64)
        .collect();
    Ok(median(&per_put))
}

/// MB/s of writing `DISK_BYTES` in 1 MiB writes to a new file in the temporary directory (where
/// the harness puts `remex serve`'s store) and `sync_data` at the end, as the server does for
/// each blob it stores: what a durable server's disk can take. Gigabytes, not a few hundred
/// megabytes: a virtual machine's disk may take a short burst into its host's cache several
/// times faster than it can keep up.
fn disk_synced_rate(reps: usize) -> anyhow::Result<f64> {
    const DISK_BYTES: u64 = 2 * 1024 * 1024 * 1024;
    let durations = repeat(reps, || {
        let dir = tempfile::tempdir()?;
        write_and_sync(dir.path(), DISK_BYTES)
    })?;
    Ok(median_rate(DISK_BYTES, &durations))
}

/// The time to write `bytes` in 1 MiB writes to a new file in `dir` and `sync_data` it.
pub fn write_and_sync(dir: &Path, bytes: u64) -> anyhow::Result<Duration> {
    let buffer: Vec<u8> = (0..1024 * 1024).map(|i| (i * 17 % 253) as u8).collect();
    let path = dir.join("disk");
    let mut file = std::fs::File::create(&path)?;
    let took = timed(|| {
        for _ in 0..bytes.div_ceil(buffer.len() as u64) {
            file.write_all(&buffer)?;
        }
        Ok(file.sync_data()?)
    });
    std::fs::remove_file(&path)?;
    took
}

fn blob(round: u64, i: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; 4096];
    bytes[..8].copy_from_slice(&round.to_le_bytes());
    bytes[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    bytes
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info.lines().find(|l| l.starts_with("model name"));
    let name = model.and_then(|l| l.split_once(':')).map(|(_, v)| v.trim());
    name.unwrap_or("unknown").to_owned()
}

fn first_line(path: &str) -> String {
    let text = std::fs::read_to_string(path).context(path.to_owned());
    text.map(|t| t.trim().to_owned()).unwrap_or_default()
}
