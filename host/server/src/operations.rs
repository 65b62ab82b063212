//! The operation registry: every execution is an operation with a name, whose updates
//! (`QUEUED`, `EXECUTING`, `COMPLETED`) are kept in order so that any number of streams can
//! follow it: the `Execute` call that started it, `Execute` calls for the same action that
//! joined it, and `WaitExecution` calls that re-attach after a dropped stream. Finished
//! operations stay findable for a while, then are forgotten.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::Stream;
use prost::Message;
use remex_proto::longrunning::{Operation, operation};
use remex_proto::reapi;
use remex_proto::reapi::execution_stage::Value as Stage;
use remex_store::ActionDigest;
use tokio::sync::watch;
use tonic::Status;

pub(crate) const METADATA_TYPE: &str =
    "type.googleapis.com/build.bazel.remote.execution.v2.ExecuteOperationMetadata";
pub(crate) const RESPONSE_TYPE: &str =
    "type.googleapis.com/build.bazel.remote.execution.v2.ExecuteResponse";

/// With no news for this long, a stream repeats the operation's current state, so that idle
/// connections are not cut under a long action.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// Finished operations kept at most, whatever their age.
const MAX_FINISHED: usize = 10_000;

/// A stream of updates of one operation, ending with the one that is `done`.
pub(crate) type OperationStream = Pin<Box<dyn Stream<Item = Result<Operation, Status>> + Send>>;

/// Every operation this server knows about.
pub(crate) struct Operations {
    inner: Mutex<Inner>,
    retention: Duration,
}

#[derive(Default)]
struct Inner {
    by_name: HashMap<String, Arc<OperationEntry>>,
    /// Unfinished operations other `Execute` calls for the same action may join.
    joinable: HashMap<ActionDigest, Arc<OperationEntry>>,
    finished: VecDeque<(Instant, String)>,
}

impl Operations {
    pub(crate) fn new(retention: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            retention,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The maps stay consistent between statements, so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a new operation for `action`, queued; or, when `joinable` and one for the same
    /// action is already under way, returns that one instead. The flag says which.
    pub(crate) fn start_or_join(
        &self,
        action: ActionDigest,
        joinable: bool,
    ) -> (Arc<OperationEntry>, bool) {
        let mut inner = self.lock();
        if joinable && let Some(entry) = inner.joinable.get(&action) {
            return (entry.clone(), false);
        }
        let entry = Arc::new(OperationEntry::new(action));
        inner.by_name.insert(entry.name.clone(), entry.clone());
        if joinable {
            inner.joinable.insert(action, entry.clone());
        }
        (entry, true)
    }

    /// An unfinished operation for `action` that may be joined.
    pub(crate) fn joinable(&self, action: &ActionDigest) -> Option<Arc<OperationEntry>> {
        self.lock().joinable.get(action).cloned()
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<OperationEntry>> {
        self.lock().by_name.get(name).cloned()
    }

    /// Records that `entry` is done: no longer joinable, and forgotten after the retention
    /// period.
    pub(crate) fn finish(&self, entry: &OperationEntry) {
        let mut inner = self.lock();
        let now = Instant::now();
        if inner
            .joinable
            .get(&entry.action)
            .is_some_and(|joined| joined.name == entry.name)
        {
            inner.joinable.remove(&entry.action);
        }
        inner.finished.push_back((now, entry.name.clone()));
        while let Some((at, name)) = inner.finished.front().cloned() {
            let expired = now.duration_since(at) > self.retention;
            if !expired && inner.finished.len() <= MAX_FINISHED {
                break;
            }
            inner.finished.pop_front();
            inner.by_name.remove(&name);
        }
    }
}

/// One operation and the updates published for it so far.
pub(crate) struct OperationEntry {
    name: String,
    action: ActionDigest,
    updates: watch::Sender<Vec<Operation>>,
}

impl OperationEntry {
    fn new(action: ActionDigest) -> Self {
        Self {
            name: format!("operations/{}", uuid::Uuid::new_v4()),
            action,
            updates: watch::Sender::new(Vec::new()),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Publishes that the operation reached `stage`.
    pub(crate) fn publish(&self, stage: Stage) {
        let operation = self.operation(stage, None);
        self.updates.send_modify(|updates| updates.push(operation));
    }

    /// Publishes the final update, carrying `response`.
    pub(crate) fn complete(&self, response: &reapi::ExecuteResponse) {
        let operation = self.operation(Stage::Completed, Some(response));
        self.updates.send_modify(|updates| updates.push(operation));
    }

    fn operation(&self, stage: Stage, response: Option<&reapi::ExecuteResponse>) -> Operation {
        let metadata = reapi::ExecuteOperationMetadata {
            stage: stage as i32,
            action_digest: Some(self.action.0.to_proto()),
            digest_function: reapi::digest_function::Value::Sha256 as i32,
            ..Default::default()
        };
        Operation {
            name: self.name.clone(),
            metadata: Some(any(METADATA_TYPE, &metadata)),
            done: response.is_some(),
            result: response.map(|r| operation::Result::Response(any(RESPONSE_TYPE, r))),
        }
    }

    /// Follows the operation: every update from the first when `from_start` (an `Execute`
    /// call), else from the current one (`WaitExecution`), until it is done.
    pub(crate) fn follow(&self, from_start: bool) -> OperationStream {
        let receiver = self.updates.subscribe();
        let next = if from_start {
            0
        } else {
            receiver.borrow().len().saturating_sub(1)
        };
        let follower = Follower {
            receiver,
            next,
            finished: false,
        };
        Box::pin(futures::stream::unfold(follower, Follower::step))
    }
}

fn any(type_url: &str, message: &impl Message) -> prost_types::Any {
    prost_types::Any {
        type_url: type_url.to_owned(),
        value: message.encode_to_vec(),
    }
}

struct Follower {
    receiver: watch::Receiver<Vec<Operation>>,
    next: usize,
    finished: bool,
}

impl Follower {
    async fn step(mut self) -> Option<(Result<Operation, Status>, Self)> {
        if self.finished {
            return None;
        }
        loop {
            let ready = self.receiver.borrow_and_update().get(self.next).cloned();
            if let Some(operation) = ready {
                self.next += 1;
                self.finished = operation.done;
                return Some((Ok(operation), self));
            }
            match tokio::time::timeout(KEEPALIVE, self.receiver.changed()).await {
                Ok(Ok(())) => {}
                // The operation was dropped unfinished; the client will ask again.
                Ok(Err(_)) => return None,
                Err(_) => {
                    let latest = self.receiver.borrow().last().cloned();
                    if let Some(operation) = latest {
                        return Some((Ok(operation), self));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use remex_store::Digest;

    use super::*;

    fn stage_of(operation: &Operation) -> i32 {
        let metadata = operation.metadata.as_ref().expect("metadata");
        assert_eq!(metadata.type_url, METADATA_TYPE);
        reapi::ExecuteOperationMetadata::decode(metadata.value.as_slice())
            .expect("decode")
            .stage
    }

    #[tokio::test]
    async fn followers_see_every_stage_and_late_ones_the_current() {
        let operations = Operations::new(Duration::from_secs(60));
        let action = ActionDigest(Digest::of_bytes(b"action"));
        let (entry, new) = operations.start_or_join(action, true);
        assert!(new);
        entry.publish(Stage::Queued);
        let early = entry.follow(true);
        entry.publish(Stage::Executing);
        let late = entry.follow(false);
        entry.complete(&reapi::ExecuteResponse::default());
        operations.finish(&entry);

        let stages: Vec<_> = early.map(|op| stage_of(&op.expect("op"))).collect().await;
        let expected = [Stage::Queued, Stage::Executing, Stage::Completed].map(|s| s as i32);
        assert_eq!(stages, expected);
        let stages: Vec<_> = late.map(|op| stage_of(&op.expect("op"))).collect().await;
        assert_eq!(stages, [Stage::Executing as i32, Stage::Completed as i32]);
    }

    #[tokio::test]
    async fn the_same_action_joins_until_finished() {
        let operations = Operations::new(Duration::from_secs(60));
        let action = ActionDigest(Digest::of_bytes(b"action"));
        let (first, _) = operations.start_or_join(action, true);
        let (second, new) = operations.start_or_join(action, true);
        assert!(!new);
        assert_eq!(first.name(), second.name());
        operations.finish(&first);
        let (third, new) = operations.start_or_join(action, true);
        assert!(new);
        assert_ne!(first.name(), third.name());
        assert!(
            operations.get(first.name()).is_some(),
            "kept for WaitExecution"
        );
    }

    #[test]
    fn finished_operations_are_forgotten_after_retention() {
        let operations = Operations::new(Duration::ZERO);
        let (entry, _) = operations.start_or_join(ActionDigest(Digest::EMPTY), false);
        operations.finish(&entry);
        std::thread::sleep(Duration::from_millis(5));
        let (other, _) = operations.start_or_join(ActionDigest(Digest::EMPTY), false);
        operations.finish(&other);
        assert!(operations.get(entry.name()).is_none());
    }
}
