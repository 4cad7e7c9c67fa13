//! Driving a run from async code (the `tokio` feature): [`drive_async`]
//! runs each CPU phase on tokio's blocking pool — the [`Run`] moves to a
//! blocking thread and back, which it can because it is plain data — and
//! answers I/O with an [`AsyncDispatcher`]: each batch of requests a CPU
//! phase issued is handed over at once, as a whole (one future for the
//! batch) or request by request (a future each), and results are delivered
//! as they arrive, so tasks whose I/O finished run while the rest waits.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut engine = spool::Engine::new();
//! engine.register_io("fn lookup(key: str) -> int").unwrap();
//! let source = "let a = spawn lookup(\"a\")\nlet b = spawn lookup(\"bb\")\nprint(await a + await b)";
//! let program = engine.compile("main.spl", source).unwrap();
//!
//! // One future per batch: both lookups arrive together.
//! let mut dispatcher = spool::AsyncDispatcher::per_batch(|batch: Vec<spool::IoRequest>| async move {
//!     assert_eq!(batch.len(), 2);
//!     batch
//!         .into_iter()
//!         .map(|request| {
//!             let key: String = request.arg(0).unwrap();
//!             spool::Completion { id: request.id, result: Ok(spool::Data::Int(key.len() as i64)) }
//!         })
//!         .collect()
//! });
//! let driven = spool::drive_async(program.start(vec![]), spool::CaptureOutput::default(), &mut dispatcher).await;
//! assert!(driven.result.is_ok());
//! assert_eq!(driven.output.lines, ["3"]);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;

use spool_vm::{IoRequest, IoResult, Output, Run, RunError, Step, Value};
use tokio::task::JoinSet;

use crate::dispatch::Completion;
use crate::driver::DROPPED;

/// A future answering a batch.
type BatchFuture = Pin<Box<dyn Future<Output = Vec<Completion>> + Send>>;

/// How the dispatcher hands requests over.
enum Handler {
    /// One call per batch.
    Batch(Box<dyn FnMut(Vec<IoRequest>) -> BatchFuture + Send>),
    /// One call per request.
    Request(Box<dyn FnMut(IoRequest) -> BatchFuture + Send>),
}

/// Answers a run's I/O asynchronously: each batch goes to a handler that
/// runs as a tokio task; finished results come back as they arrive.
pub struct AsyncDispatcher {
    handler: Handler,
    running: JoinSet<Vec<Completion>>,
    /// The requests each running task answers.
    requests: std::collections::HashMap<tokio::task::Id, Vec<spool_vm::IoId>>,
}

impl AsyncDispatcher {
    /// A dispatcher calling `handler` once per batch with all its
    /// requests (one SQL query for a batch of lookups, say); the future's
    /// completions answer them. A request it leaves unanswered fails with
    /// an `Io` error.
    pub fn per_batch<F, Fut>(mut handler: F) -> AsyncDispatcher
    where
        F: FnMut(Vec<IoRequest>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Completion>> + Send + 'static,
    {
        AsyncDispatcher {
            handler: Handler::Batch(Box::new(move |batch| Box::pin(handler(batch)))),
            running: JoinSet::new(),
            requests: std::collections::HashMap::new(),
        }
    }

    /// A dispatcher calling `handler` once per request, each in a task of
    /// its own, so a slow request does not hold back the others' results.
    pub fn per_request<F, Fut>(mut handler: F) -> AsyncDispatcher
    where
        F: FnMut(IoRequest) -> Fut + Send + 'static,
        Fut: Future<Output = IoResult> + Send + 'static,
    {
        AsyncDispatcher {
            handler: Handler::Request(Box::new(move |request| {
                let id = request.id;
                let answer = handler(request);
                Box::pin(async move {
                    vec![Completion {
                        id,
                        result: answer.await,
                    }]
                })
            })),
            running: JoinSet::new(),
            requests: std::collections::HashMap::new(),
        }
    }

    /// Starts a batch.
    fn submit(&mut self, batch: Vec<IoRequest>) {
        match &mut self.handler {
            Handler::Batch(handler) => {
                let ids: Vec<_> = batch.iter().map(|request| request.id).collect();
                let future = handler(batch);
                let task = self.running.spawn(answer_all(future, ids.clone()));
                self.requests.insert(task.id(), ids);
            }
            Handler::Request(handler) => {
                for request in batch {
                    let ids = vec![request.id];
                    let future = handler(request);
                    let task = self.running.spawn(answer_all(future, ids.clone()));
                    self.requests.insert(task.id(), ids);
                }
            }
        }
    }

    /// Waits for at least one batch to finish and returns its results with
    /// any others already finished; empty when nothing is running. A
    /// handler that panicked fails its own requests only.
    async fn next(&mut self) -> Vec<Completion> {
        let mut finished = Vec::new();
        match self.running.join_next_with_id().await {
            None => return finished,
            Some(joined) => finished.extend(self.joined(joined)),
        }
        while let Some(joined) = self.running.try_join_next_with_id() {
            finished.extend(self.joined(joined));
        }
        finished
    }

    /// A finished task's completions: its results, or a failure of each of
    /// its requests when it panicked.
    fn joined(
        &mut self,
        joined: Result<(tokio::task::Id, Vec<Completion>), tokio::task::JoinError>,
    ) -> Vec<Completion> {
        let (id, completions) = match joined {
            Ok((id, completions)) => (id, completions),
            Err(error) => {
                let ids = self.requests.remove(&error.id()).unwrap_or_default();
                return ids
                    .into_iter()
                    .map(|id| Completion {
                        id,
                        result: Err(format!("the host's handler failed: {error}")),
                    })
                    .collect();
            }
        };
        self.requests.remove(&id);
        completions
    }
}

/// The completions `future` gives, with a failure for each of `ids` it
/// left unanswered, so nothing hangs.
async fn answer_all(future: BatchFuture, ids: Vec<spool_vm::IoId>) -> Vec<Completion> {
    let mut completions = future.await;
    for id in ids {
        if !completions.iter().any(|c| c.id == id) {
            completions.push(Completion {
                id,
                result: Err(DROPPED.to_string()),
            });
        }
    }
    completions
}

/// How [`drive_async`] ended: the run and the output handed back, and the
/// main program's result or the run's error.
#[derive(Debug)]
pub struct AsyncDriven<O> {
    /// The run, finished, failed, or stopped at a top-level `yield`.
    pub run: Run,
    /// The output the run printed to.
    pub output: O,
    /// The main program's result (nil when it stopped at a `yield`), or
    /// the error that ended it.
    pub result: Result<Value, RunError>,
    /// Whether the run stopped at a top-level `yield`, waiting for an
    /// answer ([`Run::send`]) before it is driven again.
    pub at_yield: bool,
}

/// Runs `run` to its end (or its next top-level `yield`) from async code:
/// CPU phases on tokio's blocking pool, I/O through `dispatcher`. Requests
/// a restored run was waiting for are issued again first, with their ids.
pub async fn drive_async<O: Output + Send + 'static>(
    mut run: Run,
    mut output: O,
    dispatcher: &mut AsyncDispatcher,
) -> AsyncDriven<O> {
    let pending = run.pending_io();
    if !pending.is_empty() {
        dispatcher.submit(pending);
    }
    loop {
        let (back, printed, step) = match tokio::task::spawn_blocking(move || {
            let step = run.resume(&mut output);
            (run, output, step)
        })
        .await
        {
            Ok(phase) => phase,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        run = back;
        output = printed;
        let done = |run, output, result, at_yield| AsyncDriven {
            run,
            output,
            result,
            at_yield,
        };
        match step {
            Err(error) => return done(run, output, Err(error), false),
            Ok(Step::Done(value)) => return done(run, output, Ok(value), false),
            Ok(Step::Yield(_)) => return done(run, output, Ok(Value::Nil), true),
            Ok(Step::Paused) => tokio::task::yield_now().await,
            Ok(Step::Io(batch)) => {
                if !batch.is_empty() {
                    dispatcher.submit(batch);
                }
                deliver(&mut run, dispatcher.next().await);
            }
        }
    }
}

/// Hands finished results to the run; with none and nothing running,
/// fails what is outstanding rather than hang.
fn deliver(run: &mut Run, finished: Vec<Completion>) {
    if finished.is_empty() {
        for request in run.pending_io() {
            run.complete(request.id, Err(DROPPED.to_string()));
        }
    }
    for completion in finished {
        run.complete(completion.id, completion.result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_fails_only_its_own_request() {
        let mut engine = crate::Engine::new();
        engine.register_io("fn fetch(key: str) -> str").unwrap();
        let source = "fn get(k: str) -> str {\n  try { return fetch(k) } catch e { return \"failed\" }\n}\nlet tasks = [\"a\", \"boom\", \"c\"].map(fn(k: str) => spawn get(k))\nfor t in tasks { print(await t) }";
        let program = engine.compile("panic.spl", source).unwrap();
        let mut dispatcher = AsyncDispatcher::per_request(|request: IoRequest| async move {
            let key: String = request.arg(0).unwrap();
            if key == "boom" {
                panic!("the handler broke");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            Ok(spool_vm::Data::Str(format!("got {key}")))
        });
        let driven = drive_async(
            program.start(vec![]),
            spool_vm::CaptureOutput::default(),
            &mut dispatcher,
        )
        .await;
        assert!(driven.result.is_ok());
        assert_eq!(driven.output.lines, ["got a", "failed", "got c"]);
    }
}
