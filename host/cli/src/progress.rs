//! The live view of a run on a terminal: actions queued, running and done, and bytes moved.
//! Nothing is drawn when standard error is not a terminal or `NO_COLOR` is set, so logs and CI
//! output get plain lines only.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::backend::Backend;

/// Counters the backend updates as actions move along.
#[derive(Debug, Default)]
pub struct Counters {
    queued: AtomicU64,
    running: AtomicU64,
    done: AtomicU64,
    cached: AtomicU64,
}

impl Counters {
    pub fn start(&self) {
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    /// A running action waits for a place on this machine.
    pub fn queue(&self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// A queued action got its place.
    pub fn dequeue(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finish(&self, cached: bool) {
        self.running.fetch_sub(1, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
        if cached {
            self.cached.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn line(&self, backend: &Backend) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut line = format!(
            "{} running, {} queued, {} done ({} cached)",
            load(&self.running),
            load(&self.queued),
            load(&self.done),
            load(&self.cached)
        );
        if let Some(stats) = backend.remote_stats() {
            let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
            line.push_str(&format!(
                "; {:.1} MiB up, {:.1} MiB down",
                mib(stats.bytes_uploaded),
                mib(stats.bytes_downloaded)
            ));
        }
        line
    }
}

/// A live status line, redrawn ten times a second until dropped.
pub struct LiveView {
    bar: Option<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LiveView {
    /// Starts drawing when standard error is a terminal and `NO_COLOR` is unset.
    pub fn start(backend: Backend) -> Self {
        let wanted = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        if !wanted {
            return Self {
                bar: None,
                task: None,
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let drawn = bar.clone();
        let task = tokio::spawn(async move {
            loop {
                drawn.set_message(backend.counters().line(&backend));
                drawn.tick();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self {
            bar: Some(bar),
            task: Some(task),
        }
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
