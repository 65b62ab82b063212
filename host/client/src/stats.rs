//! Counters for the run's summary: retries, cache hits, executions and bytes each way.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what one client did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Transient failures that were retried.
    pub retries: u64,
    /// Calls given up after the retry budget.
    pub gave_up: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// `Execute` calls made, first attempts and retries alike.
    pub executions: u64,
    /// Dropped operation streams picked up again with `WaitExecution`.
    pub execution_resumes: u64,
    /// Rounds of uploading what a `FAILED_PRECONDITION` named as missing.
    pub missing_input_rounds: u64,
    pub blobs_uploaded: u64,
    pub bytes_uploaded: u64,
    pub blobs_downloaded: u64,
    pub bytes_downloaded: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    retries: AtomicU64,
    gave_up: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    executions: AtomicU64,
    execution_resumes: AtomicU64,
    missing_input_rounds: AtomicU64,
    blobs_uploaded: AtomicU64,
    bytes_uploaded: AtomicU64,
    blobs_downloaded: AtomicU64,
    bytes_downloaded: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    pub fn count_retry(&self) {
        add(&self.retries, 1);
    }

    pub fn count_give_up(&self) {
        add(&self.gave_up, 1);
    }

    pub fn count_cache_lookup(&self, hit: bool) {
        add(
            if hit {
                &self.cache_hits
            } else {
                &self.cache_misses
            },
            1,
        );
    }

    pub fn count_execution(&self) {
        add(&self.executions, 1);
    }

    pub fn count_execution_resume(&self) {
        add(&self.execution_resumes, 1);
    }

    pub fn count_missing_input_round(&self) {
        add(&self.missing_input_rounds, 1);
    }

    pub fn count_upload(&self, bytes: u64) {
        add(&self.blobs_uploaded, 1);
        add(&self.bytes_uploaded, bytes);
    }

    pub fn count_download(&self, bytes: u64) {
        add(&self.blobs_downloaded, 1);
        add(&self.bytes_downloaded, bytes);
    }

    pub fn snapshot(&self) -> ClientStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClientStats {
            retries: get(&self.retries),
            gave_up: get(&self.gave_up),
            cache_hits: get(&self.cache_hits),
            cache_misses: get(&self.cache_misses),
            executions: get(&self.executions),
            execution_resumes: get(&self.execution_resumes),
            missing_input_rounds: get(&self.missing_input_rounds),
            blobs_uploaded: get(&self.blobs_uploaded),
            bytes_uploaded: get(&self.bytes_uploaded),
            blobs_downloaded: get(&self.blobs_downloaded),
            bytes_downloaded: get(&self.bytes_downloaded),
        }
    }
}
