//! Transfers in flight, so that one blob wanted by many callers at once moves once: the first
//! caller claims it, the others wait for its outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use futures::channel::oneshot;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::FuturesUnordered;
use remex_store::Digest;

use crate::error::ReapiError;

/// The outcome of one transfer, shared by everyone who waited for it.
pub(crate) type Outcome = Result<(), Arc<ReapiError>>;

type Waiter = Shared<oneshot::Receiver<Outcome>>;

/// The blobs being transferred in one direction.
#[derive(Default)]
pub(crate) struct InFlight {
    transfers: Mutex<HashMap<Digest, Waiter>>,
}

/// A blob this caller must transfer. Dropping it unfinished (a cancelled caller) releases the
/// waiters, who then transfer the blob themselves.
pub(crate) struct Claim {
    pub digest: Digest,
    sender: Option<oneshot::Sender<Outcome>>,
    owner: Arc<InFlight>,
}

/// Blobs another caller is transferring, and how to learn how it went.
pub(crate) struct Waiting(Vec<(Digest, Waiter)>);

impl InFlight {
    /// Splits `digests` into the ones this caller claims and the ones already claimed.
    pub fn claim(self: &Arc<Self>, digests: &[Digest]) -> (Vec<Claim>, Waiting) {
        let mut transfers = self
            .transfers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut claims = Vec::new();
        let mut waiting = Vec::new();
        for digest in digests {
            if let Some(waiter) = transfers.get(digest) {
                waiting.push((*digest, waiter.clone()));
                continue;
            }
            let (sender, receiver) = oneshot::channel();
            transfers.insert(*digest, receiver.shared());
            claims.push(Claim {
                digest: *digest,
                sender: Some(sender),
                owner: self.clone(),
            });
        }
        (claims, Waiting(waiting))
    }

    fn release(&self, digest: &Digest) {
        let mut transfers = self
            .transfers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        transfers.remove(digest);
    }
}

impl Claim {
    /// Tells the waiters how the transfer went.
    pub fn finish(mut self, outcome: &Outcome) {
        self.owner.release(&self.digest);
        if let Some(sender) = self.sender.take() {
            // Nobody waiting is fine.
            let _ = sender.send(outcome.clone());
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.sender.is_some() {
            self.owner.release(&self.digest);
        }
    }
}

impl Waiting {
    /// Waits for every transfer; returns the blobs whose transferring caller went away, which
    /// are now this caller's to transfer.
    pub async fn wait(self) -> Result<Vec<Digest>, ReapiError> {
        let mut abandoned = Vec::new();
        for (digest, waiter) in self.0 {
            match waiter.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(ReapiError::Shared(error)),
                Err(oneshot::Canceled) => abandoned.push(digest),
            }
        }
        Ok(abandoned)
    }
}

/// A transfer of some claimed blobs: the blobs it moves and how it went.
pub(crate) type Job<'a> = BoxFuture<'a, (Vec<Digest>, Result<(), ReapiError>)>;

/// Runs `jobs` together, telling each claim's waiters how its job went. Returns at the first
/// failure, dropping the other jobs: their waiters then make those transfers themselves.
pub(crate) async fn run_jobs(claims: Vec<Claim>, jobs: Vec<Job<'_>>) -> Result<(), ReapiError> {
    let mut claims: HashMap<Digest, Claim> = claims.into_iter().map(|c| (c.digest, c)).collect();
    let mut jobs: FuturesUnordered<_> = jobs.into_iter().collect();
    while let Some((digests, result)) = jobs.next().await {
        let outcome = result.map_err(Arc::new);
        for digest in &digests {
            if let Some(claim) = claims.remove(digest) {
                claim.finish(&outcome);
            }
        }
        outcome.map_err(unshare)?;
    }
    Ok(())
}

/// The error for the caller that made the transfer: its own when no one else holds it.
pub(crate) fn unshare(error: Arc<ReapiError>) -> ReapiError {
    Arc::try_unwrap(error).unwrap_or_else(ReapiError::Shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_claimant_waits_for_the_first() {
        let inflight = Arc::new(InFlight::default());
        let digest = Digest::of_bytes(b"x");
        let (mut first, _) = inflight.claim(&[digest]);
        let (second, waiting) = inflight.claim(&[digest]);
        assert_eq!(first.len(), 1);
        assert!(second.is_empty());

        first.remove(0).finish(&Ok(()));
        assert_eq!(waiting.wait().await.expect("ok"), Vec::<Digest>::new());
        let (again, _) = inflight.claim(&[digest]);
        assert_eq!(again.len(), 1, "a finished transfer is released");
    }

    #[tokio::test]
    async fn a_dropped_claim_hands_the_blob_to_the_waiters() {
        let inflight = Arc::new(InFlight::default());
        let digest = Digest::of_bytes(b"x");
        let (first, _) = inflight.claim(&[digest]);
        let (_, waiting) = inflight.claim(&[digest]);
        drop(first);
        assert_eq!(waiting.wait().await.expect("ok"), vec![digest]);
    }
}
