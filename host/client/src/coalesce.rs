//! Merging concurrent requests of the same kind into one call.
//!
//! Many actions in flight each ask the server which of their blobs it lacks. Asked one action
//! at a time, that is one `FindMissingBlobs` per action, each paying a round trip and tens of
//! microseconds of client CPU for a handful of digests. A [`Coalescer`] sends one call at a
//! time: requests that arrive while it is out wait and go together in the next one. An idle
//! client therefore adds no delay, and a busy one sends fewer, larger calls.
//!
//! The call runs on a task of its own, so a caller that gives up (its future dropped) does not
//! cancel the call the others are waiting for.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::error::ReapiError;

type Answer<Out> = Result<Arc<Out>, Arc<ReapiError>>;

/// Requests of type `Item` merged into calls answering with `Out`; every request of a call
/// gets the whole answer and takes its own part of it.
pub(crate) struct Coalescer<Item, Out> {
    state: Mutex<State<Item, Out>>,
}

struct State<Item, Out> {
    waiting: Vec<(Item, oneshot::Sender<Answer<Out>>)>,
    /// Whether a task is sending calls; it sends until no request is waiting.
    sending: bool,
}

impl<Item, Out> Default for Coalescer<Item, Out> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                waiting: Vec::new(),
                sending: false,
            }),
        }
    }
}

impl<Item, Out> Coalescer<Item, Out>
where
    Item: Send + 'static,
    Out: Send + Sync + 'static,
{
    /// Queues `item` and waits for the answer to the call it goes in. `call` makes one call
    /// from the items of every waiting request; it is used if this request starts the task
    /// that sends calls, so every request must pass an equivalent one.
    pub(crate) async fn submit<Call, Fut>(
        self: &Arc<Self>,
        item: Item,
        call: Call,
    ) -> Result<Arc<Out>, ReapiError>
    where
        Call: Fn(Vec<Item>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Out, ReapiError>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut state = self.lock();
            state.waiting.push((item, answer));
            !std::mem::replace(&mut state.sending, true)
        };
        if start {
            tokio::spawn(self.clone().send_calls(call));
        }
        match answered.await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(error)) => Err(ReapiError::Shared(error)),
            // The task was dropped with the runtime.
            Err(_) => Err(ReapiError::ShutDown),
        }
    }

    async fn send_calls<Call, Fut>(self: Arc<Self>, call: Call)
    where
        Call: Fn(Vec<Item>) -> Fut,
        Fut: Future<Output = Result<Out, ReapiError>>,
    {
        loop {
            let batch = {
                let mut state = self.lock();
                if state.waiting.is_empty() {
                    state.sending = false;
                    return;
                }
                std::mem::take(&mut state.waiting)
            };
            let (items, answers): (Vec<Item>, Vec<_>) = batch.into_iter().unzip();
            let answer: Answer<Out> = call(items).await.map(Arc::new).map_err(Arc::new);
            for waiter in answers {
                // A waiter that gave up has dropped its receiver; nothing to tell it.
                let _ = waiter.send(answer.clone());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<Item, Out>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_waiting_on_a_call_share_the_next_one() {
        let coalescer: Arc<Coalescer<u32, Vec<u32>>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let call = {
            let calls = calls.clone();
            move |items: Vec<u32>| {
                let calls = calls.clone();
                let mut released = released.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // Hold every call until the test lets it go.
                    let _ = released.wait_for(|go| *go).await;
                    Ok(items)
                }
            }
        };
        let first = tokio::spawn({
            let (coalescer, call) = (coalescer.clone(), call.clone());
            async move { coalescer.submit(0, call).await }
        });
        // The first call is out (and held) before the others queue behind it.
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let others: Vec<_> = (1..=20)
            .map(|item| {
                let (coalescer, call) = (coalescer.clone(), call.clone());
                tokio::spawn(async move { coalescer.submit(item, call).await })
            })
            .collect();
        while coalescer.lock().waiting.len() < 20 {
            tokio::task::yield_now().await;
        }
        release.send(true).expect("release");

        assert_eq!(*first.await.expect("task").expect("answer"), vec![0]);
        for (item, other) in (1..=20).zip(others) {
            let answer = other.await.expect("task").expect("answer");
            assert!(answer.contains(&item));
            assert_eq!(answer.len(), 20, "all twenty went in one call");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_call_fails_every_request_in_it() {
        let coalescer: Arc<Coalescer<u32, ()>> = Arc::default();
        let call = |_: Vec<u32>| async {
            Err(ReapiError::Protocol {
                rpc: "Test",
                detail: "refused".into(),
            })
        };
        let error = coalescer.submit(1, call).await.expect_err("fails");
        assert!(error.to_string().contains("refused"), "{error}");
        // The coalescer is usable again afterwards.
        let ok = coalescer.submit(2, |_: Vec<u32>| async { Ok(()) }).await;
        assert!(ok.is_ok());
    }
}
