//! Retries: one decision over gRPC codes, exponential backoff with jitter, the server's
//! `RetryInfo` honoured, and a count of every retry for the run's summary.

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;
use tracing::{error, warn};

use crate::error::{ReapiError, code_name};
use crate::options::Clock;
use crate::stats::Stats;

/// The first backoff delay; each further retry doubles it.
const INITIAL_DELAY: Duration = Duration::from_millis(100);
/// The longest backoff delay we choose ourselves.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// The longest delay a server's `RetryInfo` may impose, so a confused server cannot park us.
const MAX_SERVER_DELAY: Duration = Duration::from_secs(60);

/// Whether a call that failed may succeed when made again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    Retry,
    Fail,
}

/// The retry decision, the only place that weighs gRPC codes.
pub fn retry_decision(code: Code) -> RetryDecision {
    use RetryDecision::{Fail, Retry};
    match code {
        // The server or a proxy is down, restarting or overloaded: what waiting fixes.
        Code::Unavailable | Code::ResourceExhausted => Retry,
        // A per-call timeout, ours or the server's; the overall deadline bounds the repeats.
        Code::DeadlineExceeded => Retry,
        // A concurrent writer of the same entry won a race; asking again sees its result.
        Code::Aborted => Retry,
        // Our own cancellations never come back as a status (we drop the call), so this one
        // is a server or proxy shutting down mid-call: retry.
        Code::Cancelled => Retry,
        // Reset HTTP/2 streams and proxy faults surface as INTERNAL: retry, within the budget.
        Code::Internal => Retry,
        // Load balancers turn unexpected HTTP failures into UNKNOWN: retry, within the budget.
        Code::Unknown => Retry,
        // The server says its copy is corrupt; asking again returns the same bad bytes.
        Code::DataLoss => Fail,
        // Wrong requests, refused credentials and missing things stay so however often asked.
        Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Unimplemented => Fail,
        // Not a failure; nothing calls the decision with it.
        Code::Ok => Fail,
    }
}

/// Retry settings and the counters retries report to; one per client.
pub(crate) struct Retrier {
    pub max_attempts: u32,
    pub clock: Arc<dyn Clock>,
    pub stats: Arc<Stats>,
}

impl Retrier {
    /// A fresh budget for one logical call.
    pub fn attempts(&self, rpc: &'static str) -> Attempts<'_> {
        Attempts {
            retrier: self,
            rpc,
            failures: 0,
        }
    }

    /// Makes `call` until it succeeds, fails for good, or runs out of attempts.
    pub async fn run<T, F, Fut>(&self, rpc: &'static str, mut call: F) -> Result<T, ReapiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ReapiError>>,
    {
        let mut attempts = self.attempts(rpc);
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) => attempts.wait(error).await?,
            }
        }
    }

    /// Exponential backoff with equal jitter: half the delay fixed, half random, so that
    /// clients failing together do not retry together. A server's `RetryInfo` wins.
    fn delay(&self, failures: u32, server_delay: Option<Duration>) -> Duration {
        if let Some(delay) = server_delay {
            return delay.min(MAX_SERVER_DELAY);
        }
        let doublings = failures.saturating_sub(1).min(16);
        let backoff = INITIAL_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY);
        let jitter = self.clock.jitter().clamp(0.0, 1.0);
        backoff.mul_f64(0.5 + jitter / 2.0)
    }
}

/// The failures of one logical call so far.
pub(crate) struct Attempts<'a> {
    retrier: &'a Retrier,
    rpc: &'static str,
    failures: u32,
}

impl Attempts<'_> {
    /// After a failure: how long to wait before the next attempt, or the error to return.
    pub fn after_failure(&mut self, error: ReapiError) -> Result<Duration, ReapiError> {
        let Some(code) = retryable_code(&error) else {
            return Err(error);
        };
        if retry_decision(code) == RetryDecision::Fail {
            return Err(error);
        }
        self.failures += 1;
        let max_attempts = self.retrier.max_attempts;
        if self.failures >= max_attempts {
            error!(
                rpc = self.rpc,
                attempts = self.failures,
                code = code_name(code),
                "giving up"
            );
            self.retrier.stats.count_give_up();
            return Err(ReapiError::RetriesExhausted {
                rpc: self.rpc,
                attempts: self.failures,
                last: Box::new(error),
            });
        }
        let server_delay = error.details().and_then(|d| d.retry_delay);
        let delay = self.retrier.delay(self.failures, server_delay);
        let attempt = self.failures;
        warn!(
            rpc = self.rpc,
            attempt,
            max_attempts,
            ?delay,
            code = code_name(code),
            "retrying"
        );
        self.retrier.stats.count_retry();
        Ok(delay)
    }

    /// [`after_failure`](Self::after_failure), then the sleep.
    pub async fn wait(&mut self, error: ReapiError) -> Result<(), ReapiError> {
        let delay = self.after_failure(error)?;
        self.retrier.clock.sleep(delay).await;
        Ok(())
    }

    /// A long call made progress: its budget counts consecutive failures only.
    pub fn progressed(&mut self) {
        self.failures = 0;
    }
}

/// Only failures still carrying their own wire code are weighed; an error that already went
/// through a retry loop (exhausted, or shared from another caller) is final.
fn retryable_code(error: &ReapiError) -> Option<Code> {
    match error {
        ReapiError::Status { code, .. } => Some(*code),
        ReapiError::Connection { .. } => Some(Code::Unavailable),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::InstantClock;

    fn retrier(max_attempts: u32) -> (Retrier, Arc<InstantClock>) {
        let clock = Arc::new(InstantClock::with_jitter(1.0));
        let retrier = Retrier {
            max_attempts,
            clock: clock.clone(),
            stats: Arc::default(),
        };
        (retrier, clock)
    }

    #[tokio::test]
    async fn retries_unavailable_with_growing_delays() {
        let (retrier, clock) = retrier(4);
        let error = retrier
            .run("FindMissingBlobs", || async {
                Err::<(), _>(ReapiError::status(
                    "FindMissingBlobs",
                    Code::Unavailable,
                    "down",
                ))
            })
            .await
            .expect_err("gives up");
        assert!(
            matches!(error, ReapiError::RetriesExhausted { attempts: 4, .. }),
            "{error}"
        );
        let sleeps = clock.sleeps();
        assert_eq!(
            sleeps,
            [100, 200, 400].map(Duration::from_millis),
            "{sleeps:?}"
        );
        assert_eq!(retrier.stats.snapshot().retries, 3);
    }

    #[tokio::test]
    async fn does_not_retry_refused_credentials() {
        let (retrier, clock) = retrier(4);
        let mut calls = 0;
        let error = retrier
            .run("GetActionResult", || {
                calls += 1;
                async { Err::<(), _>(ReapiError::status("x", Code::Unauthenticated, "no")) }
            })
            .await
            .expect_err("fails");
        assert_eq!(error.code(), Some(Code::Unauthenticated));
        assert_eq!(calls, 1);
        assert!(clock.sleeps().is_empty());
    }

    #[test]
    fn server_retry_info_sets_the_delay() {
        let (retrier, _) = retrier(4);
        let delay = retrier.delay(1, Some(Duration::from_secs(2)));
        assert_eq!(delay, Duration::from_secs(2));
        let capped = retrier.delay(1, Some(Duration::from_secs(3600)));
        assert_eq!(capped, MAX_SERVER_DELAY);
    }

    #[test]
    fn jitter_keeps_at_least_half_the_backoff() {
        let clock = Arc::new(InstantClock::with_jitter(0.0));
        let retrier = Retrier {
            max_attempts: 4,
            clock,
            stats: Arc::default(),
        };
        assert_eq!(retrier.delay(1, None), Duration::from_millis(50));
        assert_eq!(retrier.delay(30, None), MAX_DELAY / 2);
    }
}
