//! ByteStream uploads in progress, kept between `Write` calls so an interrupted upload resumes
//! where it stopped: `QueryWriteStatus` tells the client how far it got, and the next `Write`
//! continues from that offset. Each upload is keyed by its full resource name (which holds
//! the client's upload id) and held by at most one stream at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use remex_store::BlobWriter;
use tonic::Status;

use crate::compression::Sink;

/// An upload nobody has touched for this long is dropped with its partial file.
const IDLE_LIMIT: Duration = Duration::from_secs(3600);

/// The registry of uploads in progress.
#[derive(Clone, Default)]
pub(crate) struct Uploads {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    last_sweep: Option<Instant>,
}

struct Session {
    /// The partial blob; `None` while a stream holds it, or before the first byte.
    writer: Option<BlobWriter>,
    /// Uncompressed bytes written so far.
    committed: u64,
    busy: bool,
    touched: Instant,
}

impl Uploads {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind, still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the upload `key` for one stream, creating it if new. `ABORTED` if another stream
    /// is writing it right now.
    pub(crate) fn claim(&self, key: &str) -> Result<Claim, Status> {
        let mut inner = self.lock();
        inner.sweep();
        let now = Instant::now();
        let session = inner
            .sessions
            .entry(key.to_owned())
            .or_insert_with(|| Session {
                writer: None,
                committed: 0,
                busy: false,
                touched: now,
            });
        if session.busy {
            return Err(Status::aborted(format!(
                "another stream is writing `{key}` right now"
            )));
        }
        session.busy = true;
        session.touched = now;
        Ok(Claim {
            uploads: self.clone(),
            key: key.to_owned(),
            writer: session.writer.take(),
            sink: None,
            done: false,
        })
    }

    /// Uncompressed bytes committed to the upload `key`, if it is in progress.
    pub(crate) fn committed(&self, key: &str) -> Option<u64> {
        self.lock().sessions.get(key).map(|s| s.committed)
    }

    fn progress(&self, key: &str, committed: u64) {
        if let Some(session) = self.lock().sessions.get_mut(key) {
            session.committed = committed;
            session.touched = Instant::now();
        }
    }

    fn release(&self, key: &str, writer: Option<BlobWriter>, done: bool) {
        let mut inner = self.lock();
        if done || writer.is_none() {
            inner.sessions.remove(key);
            return;
        }
        if let Some(session) = inner.sessions.get_mut(key) {
            session.committed = writer.as_ref().map_or(0, BlobWriter::written);
            session.writer = writer;
            session.busy = false;
            session.touched = Instant::now();
        }
    }
}

impl Inner {
    /// Drops idle uploads, at most once a minute.
    fn sweep(&mut self) {
        let now = Instant::now();
        if self
            .last_sweep
            .is_some_and(|last| now - last < Duration::from_secs(60))
        {
            return;
        }
        self.last_sweep = Some(now);
        self.sessions
            .retain(|_, s| s.busy || now - s.touched < IDLE_LIMIT);
    }
}

/// One stream's hold on an upload. Dropped unfinished (the client went away, the stream
/// failed), it puts the partial blob back for a later `Write` to resume.
pub(crate) struct Claim {
    uploads: Uploads,
    key: String,
    writer: Option<BlobWriter>,
    sink: Option<Sink>,
    done: bool,
}

impl Claim {
    /// The partial blob left by an earlier stream, if any.
    pub(crate) fn take_writer(&mut self) -> Option<BlobWriter> {
        self.writer.take()
    }

    pub(crate) fn set_sink(&mut self, sink: Sink) {
        self.sink = Some(sink);
    }

    pub(crate) fn sink(&mut self) -> Option<&mut Sink> {
        self.sink.as_mut()
    }

    pub(crate) fn take_sink(&mut self) -> Option<Sink> {
        self.sink.take()
    }

    /// Publishes progress for `QueryWriteStatus`.
    pub(crate) fn report_progress(&self) {
        if let Some(sink) = &self.sink {
            self.uploads.progress(&self.key, sink.written());
        }
    }

    /// The upload is over (committed, refused, or made moot): forget it.
    pub(crate) fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let writer = match self.sink.take() {
            Some(sink) if !self.done => sink.finish().ok(),
            _ => self.writer.take(),
        };
        self.uploads.release(&self.key, writer, self.done);
    }
}

#[cfg(test)]
mod tests {
    use remex_store::{Digest, LocalStore};

    use super::*;

    #[test]
    fn an_upload_is_held_by_one_stream_at_a_time_and_resumes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let digest = Digest::of_bytes(b"0123456789");
        let uploads = Uploads::default();

        let mut claim = uploads.claim("k").expect("first claim");
        let status = uploads.claim("k").err().expect("second claim refused");
        assert_eq!(status.code(), tonic::Code::Aborted);

        let mut writer = store.blob_writer(&digest).expect("writer");
        writer.write(b"01234").expect("write");
        claim.set_sink(Sink::new(writer, false).expect("sink"));
        claim.report_progress();
        assert_eq!(uploads.committed("k"), Some(5));
        drop(claim);

        let mut claim = uploads.claim("k").expect("resumed");
        let writer = claim.take_writer().expect("partial blob kept");
        assert_eq!(writer.written(), 5);
        claim.finish();
        assert_eq!(uploads.committed("k"), None);
    }
}
