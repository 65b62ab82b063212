//! Timing helpers: repetitions after a warm-up, medians, CPU time and peak memory from /proc.

use std::time::{Duration, Instant};

use anyhow::Context;

/// Runs `once` one time as a warm-up, then `reps` times, and returns the timed durations.
pub fn repeat(
    reps: usize,
    mut once: impl FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<Vec<Duration>> {
    once().context("warm-up")?;
    (0..reps).map(|_| once()).collect()
}

/// Times one call of `work`.
pub fn timed(work: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    work()?;
    Ok(started.elapsed())
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

pub fn median_secs(durations: &[Duration]) -> f64 {
    median(
        &durations
            .iter()
            .map(Duration::as_secs_f64)
            .collect::<Vec<_>>(),
    )
}

/// User plus system CPU time of this whole process so far, from `/proc/self/stat`.
/// Linux reports it in clock ticks, 100 per second on every mainstream kernel.
pub fn process_cpu() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // The command name (field 2) may hold spaces; fields are counted after its closing paren.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| -> anyhow::Result<u64> {
        let text = fields.get(i).context("short /proc/self/stat")?;
        Ok(text.parse()?)
    };
    // utime and stime are fields 14 and 15; after the paren, field 3 is index 0.
    let ticks = tick(11)? + tick(12)?;
    Ok(Duration::from_millis(ticks * 10))
}

/// Peak resident memory (VmHWM) of this process, in bytes.
pub fn peak_memory() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM in /proc/self/status")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmHWM line")?
        .parse()?;
    Ok(kib * 1024)
}

/// Bytes per second as MB/s (10^6), the unit disks and networks are quoted in.
pub fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e6
}

/// The median MB/s of moving `bytes` in each of `durations`.
pub fn median_rate(bytes: u64, durations: &[Duration]) -> f64 {
    let rates: Vec<f64> = durations
        .iter()
        .map(|d| mb_per_s(bytes, d.as_secs_f64()))
        .collect();
    median(&rates)
}
