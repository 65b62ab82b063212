//! The threads that plan targets and build their actions: one per core, all taking jobs from one
//! queue. Plugins are synchronous and CPU-bound, so they run off the async workers. With every
//! target that is ready to plan in one queue, a planner goes from one job to the next without
//! sleeping; a blocking task per target, held to one per core by a semaphore, would wake a
//! thread and then the waiting task for every target (three or four context switches each).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of planning threads. Dropping it lets each thread finish its job and end.
pub struct Planners {
    jobs: Sender<Job>,
}

impl Planners {
    /// Starts `threads` planners (at least one). Should none start, every job fails with an
    /// error saying so.
    pub fn start(threads: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            let started = std::thread::Builder::new()
                .name(format!("remex-planner-{index}"))
                .spawn(move || take_jobs(&queue));
            if let Err(error) = started {
                tracing::warn!(%error, "cannot start a planning thread");
            }
        }
        Self { jobs }
    }

    /// Runs `work` on a planner and waits for its answer; a panic in it is an error that says
    /// what it was.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(catch_unwind(AssertUnwindSafe(work)));
        });
        self.jobs
            .send(job)
            .map_err(|_| "the planning threads have stopped".to_owned())?;
        match answered.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => Err(format!("planning panicked: {}", panic_message(&panic))),
            Err(_) => Err("planning stopped before it answered".to_owned()),
        }
    }
}

fn take_jobs(queue: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match next {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        return (*text).to_owned();
    }
    panic
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_else(|| "no message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_and_answer_in_any_number() {
        let planners = Planners::start(2);
        let answers =
            futures::future::join_all((0..100).map(|i| planners.run(move || i * 2))).await;
        let answers: Vec<i32> = answers.into_iter().map(|a| a.expect("answer")).collect();
        assert_eq!(answers, (0..100).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_planners_go_on() {
        let planners = Planners::start(1);
        let failed = planners
            .run(|| -> u8 { panic!("the plugin host broke") })
            .await;
        let message = failed.expect_err("a panic is an error");
        assert!(message.contains("the plugin host broke"), "{message}");
        assert_eq!(planners.run(|| 7).await, Ok(7));
    }
}
