//! Dispatchers: how a host answers the I/O requests of a run.
//!
//! [`Run::resume`](spool_vm::Run::resume) returns `Step::Io(batch)` with
//! every request the tasks issued in one CPU phase. A [`Dispatcher`] starts
//! them and hands results back as they finish, in any order and in parts;
//! [`drive`](crate::drive) feeds those results to the run and resumes it.
//!
//! Two dispatchers come with the crate:
//!
//! - [`FnDispatcher`] answers each request at once, in order, on the
//!   caller's thread: for tests, and for hosts whose operations never block.
//! - [`PoolDispatcher`] runs requests concurrently on a bounded pool of
//!   worker threads, and serves timers (`sleep`) from one timer thread, so a
//!   script that sleeps in a thousand tasks costs one thread, not a thousand.
//!   A [`Router`] decides, before a request reaches a worker, whether it is a
//!   timer, can be answered at once, or needs a worker.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use spool_vm::{Data, IoId, IoRequest, IoResult};

/// One finished request.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The request's id.
    pub id: IoId,
    /// Its result, or the message of the `Io` error the call raises.
    pub result: IoResult,
}

/// Answers I/O requests.
pub trait Dispatcher {
    /// Starts every request of one batch. Results come from
    /// [`Dispatcher::wait`].
    fn submit(&mut self, batch: Vec<IoRequest>);

    /// Blocks until at least one submitted request has finished and returns
    /// every finished one not returned before. Returns an empty list only
    /// when no request is in flight.
    fn wait(&mut self) -> Vec<Completion>;

    /// Like [`Dispatcher::wait`], but gives up after `timeout`: `None` when
    /// the time ran out with requests still running. A host that must stay
    /// responsive while I/O runs (to Ctrl-C, to a lease) waits in slices.
    /// By default it waits without a limit.
    fn wait_timeout(&mut self, timeout: Duration) -> Option<Vec<Completion>> {
        let _ = timeout;
        Some(self.wait())
    }
}

/// A dispatcher that answers every request synchronously, in order, inside
/// [`Dispatcher::submit`], with a function; [`Dispatcher::wait`] hands the
/// answers back.
///
/// ```
/// use spool::dispatch::{Dispatcher, FnDispatcher};
/// use spool::{Data, IoId, IoRequest};
///
/// let mut dispatcher = FnDispatcher::new(|request: &IoRequest| Ok(Data::str(&*request.op)));
/// dispatcher.submit(vec![IoRequest::new(IoId(1), "now", vec![])]);
/// assert_eq!(dispatcher.wait()[0].result, Ok(Data::str("now")));
/// assert!(dispatcher.wait().is_empty());
/// ```
pub struct FnDispatcher<F: FnMut(&IoRequest) -> IoResult> {
    answer: F,
    done: Vec<Completion>,
}

impl<F: FnMut(&IoRequest) -> IoResult> FnDispatcher<F> {
    /// A dispatcher answering each request with `answer`.
    pub fn new(answer: F) -> Self {
        FnDispatcher {
            answer,
            done: Vec::new(),
        }
    }
}

impl<F: FnMut(&IoRequest) -> IoResult> Dispatcher for FnDispatcher<F> {
    fn submit(&mut self, batch: Vec<IoRequest>) {
        for request in batch {
            let result = (self.answer)(&request);
            self.done.push(Completion {
                id: request.id,
                result,
            });
        }
    }

    fn wait(&mut self) -> Vec<Completion> {
        std::mem::take(&mut self.done)
    }
}

/// The function a [`PoolDispatcher`]'s workers answer requests with. It
/// runs on worker threads, several at once.
pub type Handler = Arc<dyn Fn(&IoRequest) -> IoResult + Send + Sync>;

/// Decides, on the thread that submits, where a [`PoolDispatcher`] sends a
/// request. See [`sleep_route`] for the usual one.
pub type Router = Box<dyn Fn(&IoRequest) -> Route + Send>;

/// Where a [`PoolDispatcher`] sends one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    /// To a worker thread, which answers it with the handler.
    Worker,
    /// To the timer thread, which completes it with `nil` once the duration
    /// has passed. Timers do not count against the in-flight limit.
    Timer(Duration),
    /// Nowhere: this is already the answer (a cheap operation, or arguments
    /// that are wrong before anything starts).
    Done(IoResult),
}

/// The longest `sleep` accepted, in milliseconds: 365 days. Longer sleeps
/// are almost certainly a unit mistake and fail with an `Io` error.
pub const MAX_SLEEP_MS: i64 = 365 * 24 * 60 * 60 * 1000;

/// The duration of `sleep(ms)`, or the message of the error it raises when
/// `ms` is negative or longer than [`MAX_SLEEP_MS`].
pub fn sleep_duration(ms: i64) -> Result<Duration, String> {
    if ms < 0 {
        return Err(format!("sleep({ms}): the duration is negative"));
    }
    if ms > MAX_SLEEP_MS {
        return Err(format!(
            "sleep({ms}): the duration is longer than a year ({MAX_SLEEP_MS} ms)"
        ));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// The usual [`Router`]: `sleep(ms: int)` goes to the timer (or fails at
/// once when `ms` is out of range or the arguments are not one int), every
/// other operation to a worker.
pub fn sleep_route(request: &IoRequest) -> Route {
    if &*request.op != "sleep" {
        return Route::Worker;
    }
    match &request.args[..] {
        [Data::Int(ms)] => match sleep_duration(*ms) {
            Ok(duration) => Route::Timer(duration),
            Err(message) => Route::Done(Err(message)),
        },
        _ => Route::Done(Err("internal: bad arguments for sleep".to_string())),
    }
}

/// How many requests a [`PoolDispatcher`] runs at once unless told
/// otherwise.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 128;

/// A dispatcher that runs requests concurrently on a bounded pool of worker
/// threads.
///
/// At most `max_in_flight` requests run at once (one per worker); the rest
/// wait in submission order. Workers are started lazily, as requests need
/// them, up to that limit, and are reused. Requests the [`Router`] sends to
/// the timer are served by a single timer thread and do not count against
/// the limit. Results come back in the order requests finish.
///
/// Dropping the dispatcher never blocks: requests not yet started are
/// discarded, idle workers and the timer thread stop, and a worker busy
/// with a request stops once that request returns (its result is dropped).
///
/// A handler that panics completes its request with an error instead of
/// losing it.
///
/// ```
/// use std::sync::Arc;
/// use spool::dispatch::{Dispatcher, PoolDispatcher};
/// use spool::{Data, IoId, IoRequest};
///
/// let mut pool = PoolDispatcher::new(Arc::new(|_: &IoRequest| Ok(Data::Int(7))))
///     .with_max_in_flight(4)
///     .with_router(spool::dispatch::sleep_route);
/// pool.submit(vec![
///     IoRequest::new(IoId(1), "sleep", vec![Data::Int(10)]),
///     IoRequest::new(IoId(2), "work", vec![]),
/// ]);
/// let mut done = Vec::new();
/// while done.len() < 2 {
///     done.extend(pool.wait());
/// }
/// assert!(pool.wait().is_empty());
/// ```
pub struct PoolDispatcher {
    handler: Handler,
    router: Option<Router>,
    max_in_flight: usize,
    queue: Arc<JobQueue>,
    workers: usize,
    timer: Option<Sender<(Instant, IoId)>>,
    results_tx: Sender<Finished>,
    results: Receiver<Finished>,
    ready: Vec<Completion>,
    /// Requests handed to workers and not yet received back.
    at_workers: usize,
    /// Requests handed to the timer and not yet received back.
    at_timer: usize,
}

impl PoolDispatcher {
    /// A pool answering requests with `handler`, at most
    /// [`DEFAULT_MAX_IN_FLIGHT`] at once, every request to a worker.
    pub fn new(handler: Handler) -> Self {
        let (results_tx, results) = mpsc::channel();
        PoolDispatcher {
            handler,
            router: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            queue: Arc::new(JobQueue::default()),
            workers: 0,
            timer: None,
            results_tx,
            results,
            ready: Vec::new(),
            at_workers: 0,
            at_timer: 0,
        }
    }

    /// Runs at most `n` requests at once (`0` is taken as `1`).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Routes every submitted request with `router` (see [`Route`]).
    pub fn with_router(mut self, router: impl Fn(&IoRequest) -> Route + Send + 'static) -> Self {
        self.router = Some(Box::new(router));
        self
    }

    /// How many requests run at once at most.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// How many submitted requests have not been returned by
    /// [`Dispatcher::wait`] yet.
    pub fn in_flight(&self) -> usize {
        self.at_workers + self.at_timer + self.ready.len()
    }

    fn route(&self, request: &IoRequest) -> Route {
        match &self.router {
            Some(router) => router(request),
            None => Route::Worker,
        }
    }

    fn start(&mut self, request: IoRequest) {
        match self.route(&request) {
            Route::Worker => self.start_worker_job(request),
            Route::Timer(duration) => self.start_timer(request.id, duration),
            Route::Done(result) => self.ready.push(Completion {
                id: request.id,
                result,
            }),
        }
    }

    fn start_worker_job(&mut self, request: IoRequest) {
        self.queue.push(request);
        self.at_workers += 1;
        if self.workers < self.max_in_flight && self.workers < self.at_workers {
            self.spawn_worker();
        }
    }

    fn spawn_worker(&mut self) {
        let queue = Arc::clone(&self.queue);
        let handler = Arc::clone(&self.handler);
        let results = self.results_tx.clone();
        let spawned = thread::Builder::new()
            .name(format!("spool-io-{}", self.workers))
            .spawn(move || worker_loop(&queue, &handler, &results));
        match spawned {
            Ok(_) => self.workers += 1,
            Err(error) if self.workers == 0 => self.fail_queued(&error.to_string()),
            // The workers already running will get to the request.
            Err(_) => {}
        }
    }

    /// Fails every request still queued: no worker can run them.
    fn fail_queued(&mut self, why: &str) {
        for request in self.queue.drain() {
            self.at_workers -= 1;
            self.ready.push(Completion {
                id: request.id,
                result: Err(format!("internal: cannot start an I/O thread: {why}")),
            });
        }
    }

    fn start_timer(&mut self, id: IoId, duration: Duration) {
        let Some(deadline) = Instant::now().checked_add(duration) else {
            let result = Err(format!("sleep: {duration:?} is too long"));
            self.ready.push(Completion { id, result });
            return;
        };
        match self.timer_sender() {
            Ok(timer) if timer.send((deadline, id)).is_ok() => self.at_timer += 1,
            Ok(_) => self
                .ready
                .push(timer_failed(id, "the timer thread stopped")),
            Err(why) => self.ready.push(timer_failed(id, &why)),
        }
    }

    /// The channel to the timer thread, started on first use.
    fn timer_sender(&mut self) -> Result<&Sender<(Instant, IoId)>, String> {
        if self.timer.is_none() {
            let (tx, rx) = mpsc::channel();
            let results = self.results_tx.clone();
            thread::Builder::new()
                .name("spool-io-timer".to_string())
                .spawn(move || timer_loop(&rx, &results))
                .map_err(|error| error.to_string())?;
            self.timer = Some(tx);
        }
        Ok(self.timer.as_ref().expect("the timer was just started"))
    }

    /// Moves every completion already sent by a worker or the timer into
    /// `ready` without blocking.
    fn collect_finished(&mut self) {
        while let Ok(finished) = self.results.try_recv() {
            self.received(finished);
        }
    }

    fn received(&mut self, (completion, from): Finished) {
        match from {
            Source::Worker => self.at_workers -= 1,
            Source::Timer => self.at_timer -= 1,
        }
        self.ready.push(completion);
    }
}

/// A completion on its way back, with who produced it.
type Finished = (Completion, Source);

/// Who finished a request.
#[derive(Clone, Copy, Debug)]
enum Source {
    Worker,
    Timer,
}

fn timer_failed(id: IoId, why: &str) -> Completion {
    Completion {
        id,
        result: Err(format!("internal: cannot start the timer thread: {why}")),
    }
}

impl Dispatcher for PoolDispatcher {
    fn submit(&mut self, batch: Vec<IoRequest>) {
        for request in batch {
            self.start(request);
        }
    }

    fn wait(&mut self) -> Vec<Completion> {
        self.collect_finished();
        if self.ready.is_empty() && self.at_workers + self.at_timer > 0 {
            // The dispatcher holds a sender itself, so this cannot fail.
            if let Ok(finished) = self.results.recv() {
                self.received(finished);
            }
            self.collect_finished();
        }
        std::mem::take(&mut self.ready)
    }

    fn wait_timeout(&mut self, timeout: Duration) -> Option<Vec<Completion>> {
        self.collect_finished();
        if self.ready.is_empty() && self.at_workers + self.at_timer > 0 {
            match self.results.recv_timeout(timeout) {
                Ok(finished) => self.received(finished),
                Err(_) => return None,
            }
            self.collect_finished();
        }
        Some(std::mem::take(&mut self.ready))
    }
}

impl Drop for PoolDispatcher {
    fn drop(&mut self) {
        // Workers see the closed queue and stop; the timer thread sees its
        // channel disconnect when `self.timer` is dropped right after.
        self.queue.close();
    }
}

/// The requests waiting for a worker, shared by the workers.
#[derive(Default)]
struct JobQueue {
    state: Mutex<QueueState>,
    changed: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<IoRequest>,
    closed: bool,
}

impl JobQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, request: IoRequest) {
        self.lock().jobs.push_back(request);
        self.changed.notify_one();
    }

    fn drain(&self) -> Vec<IoRequest> {
        self.lock().jobs.drain(..).collect()
    }

    /// Discards the waiting requests and wakes every worker to stop.
    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.jobs.clear();
        drop(state);
        self.changed.notify_all();
    }

    /// The next request, blocking while there is none; `None` once closed.
    fn next(&self) -> Option<IoRequest> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return None;
            }
            if let Some(request) = state.jobs.pop_front() {
                return Some(request);
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

fn worker_loop(queue: &JobQueue, handler: &Handler, results: &Sender<Finished>) {
    while let Some(request) = queue.next() {
        let result = run_handler(handler, &request);
        let completion = Completion {
            id: request.id,
            result,
        };
        if results.send((completion, Source::Worker)).is_err() {
            return;
        }
    }
}

/// Runs the handler, turning a panic into an error result.
fn run_handler(handler: &Handler, request: &IoRequest) -> IoResult {
    panic::catch_unwind(AssertUnwindSafe(|| handler(request))).unwrap_or_else(|_| {
        Err(format!(
            "internal: the host failed while running {}",
            request.op
        ))
    })
}

/// The timer thread: completes each timer with `nil` at its deadline, until
/// the dispatcher drops its end of `timers`.
fn timer_loop(timers: &Receiver<(Instant, IoId)>, results: &Sender<Finished>) {
    let mut due: BinaryHeap<Reverse<(Instant, IoId)>> = BinaryHeap::new();
    loop {
        if fire_due(&mut due, results).is_err() {
            return;
        }
        let next = match due.peek() {
            Some(Reverse((deadline, _))) => {
                let left = deadline.saturating_duration_since(Instant::now());
                timers.recv_timeout(left)
            }
            None => timers.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(timer) => due.push(Reverse(timer)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Completes every timer whose deadline has passed. Fails when nobody
/// listens for results any more.
fn fire_due(
    due: &mut BinaryHeap<Reverse<(Instant, IoId)>>,
    results: &Sender<Finished>,
) -> Result<(), mpsc::SendError<Finished>> {
    let now = Instant::now();
    while let Some(&Reverse((deadline, id))) = due.peek() {
        if deadline > now {
            break;
        }
        due.pop();
        let completion = Completion {
            id,
            result: Ok(Data::Nil),
        };
        results.send((completion, Source::Timer))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn request(id: u64, op: &str, args: Vec<Data>) -> IoRequest {
        IoRequest::new(IoId(id), op, args)
    }

    /// Waits until `count` completions came back, in the order received.
    fn collect(dispatcher: &mut impl Dispatcher, count: usize) -> Vec<Completion> {
        let mut done = Vec::new();
        while done.len() < count {
            let part = dispatcher.wait();
            assert!(!part.is_empty(), "wait returned nothing with requests out");
            done.extend(part);
        }
        assert_eq!(done.len(), count);
        done
    }

    fn ids(done: &[Completion]) -> Vec<u64> {
        done.iter().map(|c| c.id.0).collect()
    }

    fn echo_id() -> Handler {
        Arc::new(|r: &IoRequest| Ok(Data::Int(r.id.0 as i64)))
    }

    #[test]
    fn fn_dispatcher_answers_in_order() {
        let mut seen = Vec::new();
        let mut dispatcher = FnDispatcher::new(|r: &IoRequest| {
            seen.push(r.id.0);
            Ok(Data::str(&*r.op))
        });
        assert!(dispatcher.wait().is_empty());
        dispatcher.submit(vec![request(3, "a", vec![]), request(1, "b", vec![])]);
        dispatcher.submit(vec![request(2, "c", vec![])]);
        let done = dispatcher.wait();
        assert_eq!(ids(&done), [3, 1, 2]);
        assert_eq!(done[1].result, Ok(Data::str("b")));
        assert!(dispatcher.wait().is_empty());
        drop(dispatcher);
        assert_eq!(seen, [3, 1, 2]);
    }

    #[test]
    fn pool_answers_every_request() {
        let mut pool = PoolDispatcher::new(echo_id()).with_max_in_flight(16);
        assert!(pool.wait().is_empty());
        pool.submit((1..=1000).map(|id| request(id, "x", vec![])).collect());
        assert_eq!(pool.in_flight(), 1000);
        let mut done = collect(&mut pool, 1000);
        done.sort_by_key(|c| c.id);
        for (n, completion) in (1..=1000).zip(&done) {
            assert_eq!(completion.id, IoId(n));
            assert_eq!(completion.result, Ok(Data::Int(n as i64)));
        }
        assert!(pool.wait().is_empty());
        assert_eq!(pool.in_flight(), 0);
        assert!(pool.workers <= 16);
    }

    #[test]
    fn pool_reuses_workers_across_batches() {
        let mut pool = PoolDispatcher::new(echo_id()).with_max_in_flight(4);
        for batch in 0..20 {
            pool.submit(
                (0..10)
                    .map(|n| request(batch * 10 + n, "x", vec![]))
                    .collect(),
            );
            collect(&mut pool, 10);
        }
        assert!(pool.workers <= 4, "{} workers", pool.workers);
    }

    #[test]
    fn pool_never_runs_more_than_the_limit() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (r, p) = (Arc::clone(&running), Arc::clone(&peak));
        let handler: Handler = Arc::new(move |_: &IoRequest| {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(2));
            r.fetch_sub(1, Ordering::SeqCst);
            Ok(Data::Nil)
        });
        let mut pool = PoolDispatcher::new(handler).with_max_in_flight(8);
        assert_eq!(pool.max_in_flight(), 8);
        pool.submit((1..=300).map(|id| request(id, "x", vec![])).collect());
        collect(&mut pool, 300);
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= 8, "{peak} ran at once");
        assert!(peak > 1, "requests did not run concurrently");
        assert!(pool.workers <= 8);
    }

    #[test]
    fn zero_in_flight_means_one() {
        let mut pool = PoolDispatcher::new(echo_id()).with_max_in_flight(0);
        assert_eq!(pool.max_in_flight(), 1);
        pool.submit((1..=5).map(|id| request(id, "x", vec![])).collect());
        // One worker takes them in submission order.
        assert_eq!(ids(&collect(&mut pool, 5)), [1, 2, 3, 4, 5]);
        assert_eq!(pool.workers, 1);
    }

    #[test]
    fn many_sleeps_share_one_timer_thread() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let handler: Handler = Arc::new(move |_: &IoRequest| {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(Data::Nil)
        });
        let mut pool = PoolDispatcher::new(handler)
            .with_max_in_flight(4)
            .with_router(sleep_route);
        let start = Instant::now();
        pool.submit(
            (1..=1000)
                .map(|id| request(id, "sleep", vec![Data::Int(50)]))
                .collect(),
        );
        let done = collect(&mut pool, 1000);
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(600), "{elapsed:?}");
        assert!(done.iter().all(|c| c.result == Ok(Data::Nil)));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "sleeps reached the handler"
        );
        assert_eq!(pool.workers, 0, "sleeps started workers");
        assert!(pool.timer.is_some());
        assert!(pool.wait().is_empty());
    }

    #[test]
    fn sleeps_do_not_count_against_the_limit() {
        let mut pool = PoolDispatcher::new(echo_id())
            .with_max_in_flight(1)
            .with_router(sleep_route);
        pool.submit(vec![
            request(1, "sleep", vec![Data::Int(10_000)]),
            request(2, "x", vec![]),
        ]);
        assert_eq!(ids(&pool.wait()), [2]);
        assert_eq!(pool.in_flight(), 1);
    }

    #[test]
    fn results_come_in_completion_order() {
        let handler: Handler = Arc::new(|r: &IoRequest| {
            let ms = r.args[0].as_int().unwrap_or(0) as u64;
            thread::sleep(Duration::from_millis(ms));
            Ok(Data::Nil)
        });
        let mut pool = PoolDispatcher::new(handler).with_router(sleep_route);
        pool.submit(vec![
            request(1, "work", vec![Data::Int(300)]),
            request(2, "work", vec![Data::Int(20)]),
            request(3, "work", vec![Data::Int(160)]),
            request(4, "sleep", vec![Data::Int(230)]),
            request(5, "sleep", vec![Data::Int(90)]),
        ]);
        assert_eq!(ids(&collect(&mut pool, 5)), [2, 5, 3, 4, 1]);
    }

    #[test]
    fn sleep_arguments_out_of_range_fail_at_once() {
        let mut pool = PoolDispatcher::new(echo_id()).with_router(sleep_route);
        pool.submit(vec![
            request(1, "sleep", vec![Data::Int(-1)]),
            request(2, "sleep", vec![Data::Int(MAX_SLEEP_MS + 1)]),
            request(3, "sleep", vec![Data::str("5")]),
            request(4, "sleep", vec![Data::Int(0)]),
        ]);
        let mut done = collect(&mut pool, 4);
        done.sort_by_key(|c| c.id);
        assert_eq!(
            done[0].result,
            Err("sleep(-1): the duration is negative".to_string())
        );
        let long = done[1].result.clone().unwrap_err();
        assert!(long.contains("longer than a year"), "{long}");
        assert_eq!(
            done[2].result,
            Err("internal: bad arguments for sleep".to_string())
        );
        assert_eq!(done[3].result, Ok(Data::Nil));
        assert!(sleep_duration(MAX_SLEEP_MS).is_ok());
    }

    #[test]
    fn a_panicking_handler_fails_its_request() {
        let handler: Handler = Arc::new(|r: &IoRequest| match &*r.op {
            "boom" => panic!("the handler broke"),
            _ => Ok(Data::Nil),
        });
        let mut pool = PoolDispatcher::new(handler).with_max_in_flight(1);
        pool.submit(vec![request(1, "boom", vec![]), request(2, "fine", vec![])]);
        let done = collect(&mut pool, 2);
        assert_eq!(
            done[0].result,
            Err("internal: the host failed while running boom".to_string())
        );
        assert_eq!(done[1].result, Ok(Data::Nil));
    }

    #[test]
    fn dropping_a_busy_pool_does_not_block() {
        let handler: Handler = Arc::new(|_: &IoRequest| {
            thread::sleep(Duration::from_millis(300));
            Ok(Data::Nil)
        });
        let mut pool = PoolDispatcher::new(handler)
            .with_max_in_flight(2)
            .with_router(sleep_route);
        pool.submit((1..=50).map(|id| request(id, "x", vec![])).collect());
        pool.submit(vec![request(99, "sleep", vec![Data::Int(3_600_000)])]);
        let start = Instant::now();
        drop(pool);
        assert!(start.elapsed() < Duration::from_millis(100));
    }
}
