//! The worker loop: claims due runs from a [`Store`], advances each until
//! it waits on something slow (a person's answer, a long timer) or ends,
//! and writes it back, every write fenced by its lease.
//!
//! How one claimed run is advanced:
//!
//! 1. Its program is compiled once per process (by the [`WorkerHost`]) and
//!    checked against the stored fingerprint; its state is restored; the
//!    host prepares it under the policy it was submitted with and gives a
//!    dispatcher for its I/O.
//! 2. Requests it was waiting for when its last holder stopped are answered
//!    from the recorded results where there are some, and issued again
//!    (same ids; a `sleep` for what is left of it) where there are none.
//! 3. It runs. Before a batch of I/O goes to the dispatcher, the state and
//!    the lines printed so far are committed (write-ahead), so a crash
//!    never repeats script code that had effects; each result is recorded
//!    as it arrives, before the run hears of it, so a completed request is
//!    never performed again.
//! 4. When every request in flight is a `sleep` ending at least
//!    [`WorkerConfig::hold_timers_below`] from now, the run is written back
//!    `sleeping`, due at its earliest deadline, and the worker moves on (a
//!    durable timer). At a top-level `yield`, an answer sent before is
//!    delivered at once; without one, the run is written back `waiting`.
//! 5. A heartbeat thread extends the leases of the runs the process holds
//!    every third of a lease; a lost lease (the process froze, another
//!    worker took the run) interrupts the run and the worker drops it
//!    without writing anything. A cancel request (looked for every
//!    `CANCEL_POLL`, 250 ms) interrupts it too, and the run's tasks get
//!    `Cancelled`, the one it was running where it stopped.
//!
//! A transient database error (the server restarted, the file was busy)
//! does not end the worker: the thread that met it drops what it holds in
//! memory (the leases expire; every write is fenced, so nothing is lost)
//! and connects again, waiting 50 ms, doubled after each failure in a row,
//! up to 5 s. Errors that will not go away end it.
//!
//! Writes to disk are what a store spends its time on (a commit waits for
//! `fsync`), so a thread claims several due runs with one statement (up to
//! [`WorkerConfig::claim_batch`], growing while runs are quick) and advances
//! them one after another. The write-back of a run that parks or ends
//! follows only CPU work since its last commit, so it may wait: it goes
//! with the next claim, or with the next commit that cannot wait, in one
//! transaction. Before a run waits for I/O, and after one ran for long,
//! the thread commits what it deferred and gives back the claims it has
//! not started (due again at once, for other threads), and claims one run
//! at a time until its runs are quick again. A timer already due when its
//! run is claimed is answered at once; a batch of I/O made only of timers
//! too far away to wait for is not committed first (nothing goes out): the
//! run is written back `sleeping` with its deadlines.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spool::{
    Completion, Data, Dispatcher, Interrupt, IoId, IoRequest, IoResult, Output, Program, Run,
    RunError, Step, Value,
};

use crate::{now_ms, Claim, Commit, Lease, Result, RunId, RunStatus, Store, StoreError};

/// The I/O operation whose requests are durable timers: its one argument
/// is a number of milliseconds.
pub const SLEEP_OP: &str = "sleep";

/// The host note holding the id of the last signal a run received.
const SIGNAL_NOTE: &str = "spool.store.signal";

/// How long a worker waits for I/O before looking at its run's lease and
/// cancel flag again.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// A run advanced for longer than this makes its thread give back the runs
/// claimed with it (they would wait behind the next slow one) and claim one
/// run at a time again.
const SLOW_RUN: Duration = Duration::from_millis(100);

/// The most instructions a cancelled run may run in one CPU phase (its
/// defers, a handler that catches `Cancelled` and goes on) before the
/// worker ends it.
const CANCEL_BUDGET: u64 = 10_000_000;

/// The first wait before reaching the store again after a transient error;
/// it doubles with each failure in a row, up to [`RETRY_MAX`], and starts
/// over after a success.
const RETRY_FIRST: Duration = Duration::from_millis(50);

/// The longest wait between two attempts to reach the store.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// How often the heartbeat thread asks whether a run it holds was asked to
/// cancel (one read), between heartbeats.
const CANCEL_POLL: Duration = Duration::from_millis(250);

/// What a worker needs from the program it runs in.
pub trait WorkerHost: Send + Sync {
    /// Compiles a stored program (file `name`, its `source`) with the
    /// engine the runs were submitted with.
    fn compile(&self, name: &str, source: &str) -> std::result::Result<Program, String>;

    /// Compiles a stored program of several files: the main file `name`
    /// with its `source`, and the files it imports as `(path, source)`,
    /// paths relative to the main file's folder (give them to
    /// `Engine::compile_with` through a loader that looks them up). The
    /// default compiles a program of one file with [`WorkerHost::compile`]
    /// and refuses one that imports files.
    fn compile_program(
        &self,
        name: &str,
        source: &str,
        imports: &[(String, String)],
    ) -> std::result::Result<Program, String> {
        if imports.is_empty() {
            return self.compile(name, source);
        }
        Err(format!(
            "`{name}` imports {} file(s), and this worker's host compiles programs of one file only",
            imports.len()
        ))
    }

    /// Gets a claimed run ready under `policy`, what it was submitted
    /// with (set its limits; refuse what the host does not allow), and
    /// gives the dispatcher that performs its I/O. An error fails the run
    /// with the message.
    fn prepare(
        &self,
        run: &mut Run,
        policy: &str,
    ) -> std::result::Result<Box<dyn Dispatcher>, String>;
}

/// How a worker behaves.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Runs advanced at once (threads, each with its own connection).
    pub concurrency: usize,
    /// How long a claim holds a run without a heartbeat.
    pub lease: Duration,
    /// How long an idle thread waits before looking for due runs again.
    pub poll: Duration,
    /// The worker's name, stored with the runs it holds.
    pub name: String,
    /// A run whose tasks all sleep is written back when its earliest
    /// timer is at least this far away; nearer ones are waited for here.
    pub hold_timers_below: Duration,
    /// Stop once no run is left to advance: every run has ended or waits
    /// for an answer (for tests and batch jobs).
    pub exit_when_idle: bool,
    /// The most runs a thread claims with one statement. It starts at one
    /// and doubles up to this while the runs claimed are quick (none
    /// waited for I/O or ran long); 1 claims one run at a time.
    pub claim_batch: usize,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            concurrency: 1,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(25),
            name: format!("worker-{}", std::process::id()),
            hold_timers_below: Duration::from_secs(1),
            exit_when_idle: false,
            claim_batch: 16,
        }
    }
}

/// What a worker did, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Runs claimed.
    pub claimed: u64,
    /// Runs that ended (done, failed or cancelled).
    pub finished: u64,
    /// Runs written back to wait (a `yield`, a timer) or released.
    pub parked: u64,
    /// Runs dropped because their lease was lost, or because the store
    /// failed before their write-back was made (their lease expires and
    /// they are claimed again).
    pub lost: u64,
}

/// A run this process holds, as the heartbeat sees it: claimed, being
/// advanced, or written back in a transaction still to come.
struct Held {
    lease: Lease,
    /// Interrupts the run, once it is being advanced.
    interrupt: Option<Interrupt>,
    lost: Arc<AtomicBool>,
    cancel: Arc<AtomicBool>,
}

/// The runs a process holds, by run and lease token.
type HeldRuns = HashMap<(RunId, i64), Held>;

/// The state shared by a worker's threads.
struct Shared {
    held: Mutex<HeldRuns>,
    stop: Arc<AtomicBool>,
    /// Threads busy with a run.
    busy: AtomicU64,
    stats: Mutex<WorkerStats>,
}

/// A worker: claims and advances the runs of one store.
pub struct Worker {
    url: String,
    key: Option<Vec<u8>>,
    host: Arc<dyn WorkerHost>,
    config: WorkerConfig,
    shared: Arc<Shared>,
}

impl Worker {
    /// A worker for the store at `url`, running programs with `host`.
    pub fn new(url: &str, host: Arc<dyn WorkerHost>, config: WorkerConfig) -> Worker {
        Worker {
            url: url.to_string(),
            key: None,
            host,
            config,
            shared: Arc::new(Shared {
                held: Mutex::new(HashMap::new()),
                stop: Arc::new(AtomicBool::new(false)),
                busy: AtomicU64::new(0),
                stats: Mutex::new(WorkerStats::default()),
            }),
        }
    }

    /// Signs saved runs with `key` and refuses those that are not.
    pub fn set_state_key(&mut self, key: &[u8]) {
        self.key = Some(key.to_vec());
    }

    /// A handle that stops the worker from another thread (a signal
    /// handler): see [`StopHandle::stop`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(Arc::clone(&self.shared))
    }

    /// Opens a connection to the store.
    fn connect(&self) -> Result<Store> {
        let mut store = Store::open(&self.url)?;
        if let Some(key) = &self.key {
            store.set_state_key(key);
        }
        Ok(store)
    }

    /// Claims and advances runs until stopped (or, with
    /// [`WorkerConfig::exit_when_idle`], until nothing is left to do).
    /// Each of [`WorkerConfig::concurrency`] threads holds one run at a
    /// time; a heartbeat thread keeps their leases.
    ///
    /// Errors: the store does not open at the start (whatever the reason),
    /// or fails in a way trying again will not mend (not
    /// [`StoreError::is_transient`]). A transient error later (the
    /// connection broke, the server restarted, the file was busy) costs
    /// the thread that met it what it held in memory: it says so on
    /// stderr, drops those runs (their leases expire; every write is
    /// fenced, so nothing is lost) and connects again, waiting 50 ms,
    /// then twice as long after each failure in a row, up to 5 s.
    pub fn run(&self) -> Result<WorkerStats> {
        // Fail here, not in a thread, when the store cannot be opened.
        let store = self.connect()?;
        drop(store);
        let threads = self.config.concurrency.max(1);
        let outcome = std::thread::scope(|scope| {
            let heartbeat = scope.spawn(|| self.heartbeats());
            let loops: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        // One thread's lasting error ends the others too.
                        self.claim_loop().inspect_err(|_| self.stop_handle().stop())
                    })
                })
                .collect();
            let mut outcome = Ok(());
            for thread in loops {
                let result = thread.join().unwrap_or_else(|_| {
                    Err(StoreError::Invalid("a worker thread panicked".to_string()))
                });
                if outcome.is_ok() {
                    outcome = result;
                }
            }
            self.shared.stop.store(true, Ordering::SeqCst);
            let _ = heartbeat.join();
            outcome
        });
        outcome?;
        Ok(*self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// One thread's loop: claim due runs, advance them, repeat; after a
    /// transient error, connect again (waiting longer after each failure
    /// in a row) and go on.
    fn claim_loop(&self) -> Result<()> {
        let mut programs: HashMap<String, Program> = HashMap::new();
        let mut retry = Backoff::default();
        while !self.stopping() {
            let error = match self.connect() {
                Ok(mut store) => match self.connected(&mut store, &mut programs, &mut retry) {
                    Ok(()) => return Ok(()),
                    Err(error) => error,
                },
                Err(error) => error,
            };
            if !error.is_transient() {
                return Err(error);
            }
            let wait = retry.next();
            eprintln!(
                "{}: {error}; dropped what this thread held, connecting again in {} ms",
                self.config.name,
                wait.as_millis()
            );
            self.sleep_unless_stopped(wait);
        }
        Ok(())
    }

    /// The claim loop on one connection. However it ends, what it
    /// deferred is committed and what it did not start is given back; when
    /// that fails too, they are dropped (their leases expire).
    fn connected(
        &self,
        store: &mut Store,
        programs: &mut HashMap<String, Program>,
        retry: &mut Backoff,
    ) -> Result<()> {
        let mut batch = Batch::default();
        let settled = match self.claim_loop_on(store, &mut batch, programs, retry) {
            Ok(()) => self.settle(store, &mut batch, None).map(drop),
            Err(error) if error.is_transient() => Err(error),
            Err(error) => {
                let _ = self.settle(store, &mut batch, None);
                Err(error)
            }
        };
        if settled.is_err() {
            self.drop_batch(&mut batch);
        }
        settled
    }

    fn claim_loop_on(
        &self,
        store: &mut Store,
        batch: &mut Batch,
        programs: &mut HashMap<String, Program>,
        retry: &mut Backoff,
    ) -> Result<()> {
        let mut idle_since: Option<Instant> = None;
        while !self.stopping() {
            self.shared.busy.fetch_add(1, Ordering::SeqCst);
            let claim = match self.next_claim(store, batch) {
                Ok(claim) => claim,
                Err(error) => {
                    self.shared.busy.fetch_sub(1, Ordering::SeqCst);
                    return Err(error);
                }
            };
            retry.reset();
            let Some(claim) = claim else {
                self.shared.busy.fetch_sub(1, Ordering::SeqCst);
                if self.config.exit_when_idle
                    && self.idle_for(&mut idle_since)
                    && store.scheduled()? == 0
                {
                    return Ok(());
                }
                std::thread::sleep(self.config.poll);
                continue;
            };
            idle_since = None;
            self.count(|stats| stats.claimed += 1);
            let started = Instant::now();
            let mut advanced = self.advance(store, programs, claim, batch);
            if started.elapsed() > SLOW_RUN {
                batch.slow = true;
                // The runs claimed with it have waited long enough: they
                // go back for other threads.
                if advanced.is_ok() && !batch.queue.is_empty() {
                    if let Err(error) = self.settle(store, batch, None) {
                        advanced = Err(error);
                    }
                }
            }
            self.shared.busy.fetch_sub(1, Ordering::SeqCst);
            match advanced? {
                Outcome::Finished => self.count(|stats| stats.finished += 1),
                Outcome::Parked => self.count(|stats| stats.parked += 1),
                Outcome::Lost => self.count(|stats| stats.lost += 1),
                Outcome::Deferred => {}
            }
        }
        Ok(())
    }

    /// The next claimed run to advance: the next of the batch, else the
    /// first of a new batch, claimed in the transaction that commits the
    /// write-backs deferred so far.
    fn next_claim(&self, store: &mut Store, batch: &mut Batch) -> Result<Option<Claim>> {
        if let Some(claim) = batch.queue.pop_front() {
            return Ok(Some(claim));
        }
        batch.size = match batch.slow {
            true => 1,
            false => (batch.size * 2).clamp(1, self.config.claim_batch.max(1)),
        };
        batch.slow = false;
        let (commits, outcomes) = split(std::mem::take(&mut batch.deferred));
        let leases: Vec<Lease> = commits.iter().map(|(lease, _)| *lease).collect();
        let (made, claims) = store
            .commit_and_claim(commits, &self.config.name, batch.size, self.config.lease)
            .inspect_err(|_| self.landed(&leases, &outcomes, &[]))?;
        self.landed(&leases, &outcomes, &made);
        let mut held = self.shared.held.lock().unwrap_or_else(|e| e.into_inner());
        for claim in &claims {
            let lease = claim.lease;
            held.insert(
                (lease.run, lease.token),
                Held {
                    lease,
                    interrupt: None,
                    lost: Arc::new(AtomicBool::new(false)),
                    cancel: Arc::new(AtomicBool::new(claim.cancel_requested)),
                },
            );
        }
        drop(held);
        batch.queue.extend(claims);
        Ok(batch.queue.pop_front())
    }

    /// Commits the write-backs `batch` deferred (and `own`, a commit that
    /// cannot wait) and gives back the claims it has not started, in one
    /// transaction. Returns whether `own` was made (true without one).
    fn settle(
        &self,
        store: &mut Store,
        batch: &mut Batch,
        own: Option<(Lease, Commit)>,
    ) -> Result<bool> {
        if batch.deferred.is_empty() && batch.queue.is_empty() && own.is_none() {
            return Ok(true);
        }
        let (mut commits, outcomes) = split(std::mem::take(&mut batch.deferred));
        let leases: Vec<Lease> = commits.iter().map(|(lease, _)| *lease).collect();
        let released: Vec<Lease> = batch.queue.drain(..).map(|claim| claim.lease).collect();
        let has_own = own.is_some();
        commits.extend(own);
        let made = store.commit_all(commits, &released).inspect_err(|_| {
            self.landed(&leases, &outcomes, &[]);
            self.let_go(&released);
        })?;
        self.landed(&leases, &outcomes, &made);
        self.let_go(&released);
        Ok(!has_own || made.get(leases.len()).copied().unwrap_or(false))
    }

    /// Drops what `batch` holds after the store failed: the write-backs
    /// it deferred (counted as lost) and the claims it did not start.
    /// Their leases expire and the runs are claimed again as they were at
    /// their last commit.
    fn drop_batch(&self, batch: &mut Batch) {
        let (commits, outcomes) = split(std::mem::take(&mut batch.deferred));
        let leases: Vec<Lease> = commits.iter().map(|(lease, _)| *lease).collect();
        self.landed(&leases, &outcomes, &[]);
        let queued: Vec<Lease> = batch.queue.drain(..).map(|claim| claim.lease).collect();
        self.let_go(&queued);
    }

    /// Sleeps for `wait`, or less when the worker is asked to stop.
    fn sleep_unless_stopped(&self, wait: Duration) {
        let until = Instant::now() + wait;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(10)));
        }
    }

    /// Has the worker been asked to stop?
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Counts the deferred write-backs of `leases` as `outcomes` where
    /// `made`, as lost where not, and lets go of their runs.
    fn landed(&self, leases: &[Lease], outcomes: &[Outcome], made: &[bool]) {
        for (n, outcome) in outcomes.iter().enumerate() {
            match (made.get(n).copied().unwrap_or(false), outcome) {
                (true, Outcome::Finished) => self.count(|stats| stats.finished += 1),
                (true, Outcome::Parked) => self.count(|stats| stats.parked += 1),
                (true, Outcome::Deferred) => {}
                (false, _) | (true, Outcome::Lost) => self.count(|stats| stats.lost += 1),
            }
        }
        self.let_go(leases);
    }

    /// Stops holding the runs of `leases` (the heartbeat no longer extends
    /// them).
    fn let_go(&self, leases: &[Lease]) {
        if leases.is_empty() {
            return;
        }
        let mut held = self.shared.held.lock().unwrap_or_else(|e| e.into_inner());
        for lease in leases {
            held.remove(&(lease.run, lease.token));
        }
    }

    /// Has the whole worker been idle (no thread busy) for two polls?
    fn idle_for(&self, since: &mut Option<Instant>) -> bool {
        if self.shared.busy.load(Ordering::SeqCst) > 0 {
            *since = None;
            return false;
        }
        let since = since.get_or_insert_with(Instant::now);
        since.elapsed() >= self.config.poll * 2
    }

    fn count(&self, change: impl FnOnce(&mut WorkerStats)) {
        change(&mut self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Extends the leases of the runs held, every third of a lease, and
    /// passes on lost leases and cancel requests; asks for cancel requests
    /// every [`CANCEL_POLL`] in between. A failing store is reached again
    /// with a growing wait, as the claim loop does; the thread ends only
    /// when the worker does.
    fn heartbeats(&self) {
        let every = (self.config.lease / 3).max(Duration::from_millis(10));
        let mut store: Option<Store> = None;
        let mut retry = Backoff::default();
        let mut retry_at = Instant::now();
        let (mut last_beat, mut last_poll) = (Instant::now(), Instant::now());
        while !self.stopping() || self.busy() {
            std::thread::sleep(Duration::from_millis(10).min(every));
            let beat = last_beat.elapsed() >= every;
            if !beat && last_poll.elapsed() < CANCEL_POLL || Instant::now() < retry_at {
                continue;
            }
            // The connection is kept only while it works.
            let done = store
                .take()
                .map_or_else(|| self.connect(), Ok)
                .and_then(|mut connected| {
                    match beat {
                        true => self.beat(&mut connected),
                        false => self.poll_cancels(&mut connected),
                    }?;
                    store = Some(connected);
                    Ok(())
                });
            if let Err(error) = done {
                let wait = retry.next();
                retry_at = Instant::now() + wait;
                eprintln!(
                    "{}: {error} (heartbeats); connecting again in {} ms",
                    self.config.name,
                    wait.as_millis()
                );
                continue;
            }
            retry.reset();
            last_poll = Instant::now();
            if beat {
                last_beat = last_poll;
            }
        }
    }

    /// The runs held, as the heartbeat sees them.
    fn beating(&self) -> Vec<Beating> {
        self.shared
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|h| {
                (
                    h.lease,
                    h.interrupt.clone(),
                    Arc::clone(&h.lost),
                    Arc::clone(&h.cancel),
                )
            })
            .collect()
    }

    /// Extends the lease of every run held; interrupts those whose lease
    /// was lost or that were asked to cancel.
    fn beat(&self, store: &mut Store) -> Result<()> {
        for (lease, interrupt, lost, cancel) in self.beating() {
            let beat = store.heartbeat(lease, self.config.lease)?;
            if !beat.held {
                lost.store(true, Ordering::SeqCst);
                interrupt.iter().for_each(Interrupt::interrupt);
            } else if beat.cancel_requested && !cancel.swap(true, Ordering::SeqCst) {
                interrupt.iter().for_each(Interrupt::interrupt);
            }
        }
        Ok(())
    }

    /// Asks which of the runs held and not yet cancelling were asked to
    /// cancel, and interrupts them.
    fn poll_cancels(&self, store: &mut Store) -> Result<()> {
        let held: Vec<Beating> = self
            .beating()
            .into_iter()
            .filter(|(_, _, _, cancel)| !cancel.load(Ordering::SeqCst))
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        let runs: Vec<RunId> = held.iter().map(|(lease, ..)| lease.run).collect();
        let asked = store.cancels_requested(&runs)?;
        for (lease, interrupt, _, cancel) in held {
            if asked.contains(&lease.run) && !cancel.swap(true, Ordering::SeqCst) {
                interrupt.iter().for_each(Interrupt::interrupt);
            }
        }
        Ok(())
    }

    fn busy(&self) -> bool {
        self.shared.busy.load(Ordering::SeqCst) > 0
    }

    /// The program with `fingerprint`, compiled once per thread.
    fn program(
        &self,
        store: &mut Store,
        programs: &mut HashMap<String, Program>,
        fingerprint: &str,
    ) -> Result<std::result::Result<Program, String>> {
        if let Some(program) = programs.get(fingerprint) {
            return Ok(Ok(program.clone()));
        }
        let (name, source) = store.program_source(fingerprint)?;
        let imports = store.program_files(fingerprint)?;
        let program = match self.host.compile_program(&name, &source, &imports) {
            Ok(program) => program,
            Err(message) => return Ok(Err(format!("`{name}` does not compile here: {message}"))),
        };
        let compiled = crate::fingerprint(&program);
        if compiled != fingerprint {
            return Ok(Err(format!(
                "`{name}` compiles to a different program here (fingerprint {compiled}, \
                 submitted {fingerprint}): the worker's engine is not the submitter's"
            )));
        }
        programs.insert(fingerprint.to_string(), program.clone());
        Ok(Ok(program))
    }

    /// Advances one claimed run until it is written back (or its
    /// write-back deferred to `batch`) or lost.
    fn advance(
        &self,
        store: &mut Store,
        programs: &mut HashMap<String, Program>,
        claim: Claim,
        batch: &mut Batch,
    ) -> Result<Outcome> {
        let lease = claim.lease;
        let key = (lease.run, lease.token);
        let flags = self
            .shared
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .map(|held| (Arc::clone(&held.lost), Arc::clone(&held.cancel)));
        let Some((lost, cancel)) = flags else {
            return Ok(Outcome::Lost);
        };
        if lost.load(Ordering::SeqCst) {
            self.let_go(&[lease]);
            return Ok(Outcome::Lost);
        }
        let prepared = self
            .program(store, programs, &claim.program)?
            .and_then(|program| {
                let mut run = store
                    .restore_state(&claim.state, &program)
                    .map_err(|error| error.to_string())?;
                let dispatcher = self.host.prepare(&mut run, &claim.policy)?;
                Ok((program, run, dispatcher))
            });
        let (program, mut run, dispatcher) = match prepared {
            Ok(prepared) => prepared,
            Err(message) => {
                let commit = Commit {
                    status: Some(RunStatus::Failed),
                    error: Some(message),
                    ..Commit::default()
                };
                batch.deferred.push((lease, commit, Outcome::Finished));
                return Ok(Outcome::Deferred);
            }
        };
        if let Some(held) = self
            .shared
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&key)
        {
            held.interrupt = Some(run.interrupt_handle());
        }
        let mut advance = Advance {
            worker: self,
            store,
            batch,
            lease,
            program,
            run,
            dispatcher,
            lines: Lines::default(),
            lost,
            cancel,
            cancelled: false,
        };
        let outcome = advance.go(claim.recorded, claim.waiting);
        if !matches!(outcome, Ok(Outcome::Deferred)) {
            self.let_go(&[lease]);
        }
        outcome
    }
}

/// A held run as the heartbeat sees it: its lease, the interrupt of its
/// run once started, and its lost and cancel flags.
type Beating = (Lease, Option<Interrupt>, Arc<AtomicBool>, Arc<AtomicBool>);

/// The waits between attempts to reach a failing store: [`RETRY_FIRST`],
/// doubling up to [`RETRY_MAX`].
#[derive(Default)]
struct Backoff {
    /// The last wait; zero after a success.
    last: Duration,
}

impl Backoff {
    /// The wait before the next attempt.
    fn next(&mut self) -> Duration {
        self.last = (self.last * 2).clamp(RETRY_FIRST, RETRY_MAX);
        self.last
    }

    /// The store answered: the next failure waits [`RETRY_FIRST`] again.
    fn reset(&mut self) {
        self.last = Duration::ZERO;
    }
}

/// One thread's runs: claimed together and not started yet, or written
/// back in a transaction still to come.
#[derive(Default)]
struct Batch {
    /// Claims not started yet, in the order claimed.
    queue: VecDeque<Claim>,
    /// Write-backs deferred, each with what it means once made.
    deferred: Vec<(Lease, Commit, Outcome)>,
    /// How many runs the thread claimed last time (doubled before the
    /// first claim: one run).
    size: usize,
    /// Did a run of this batch wait for I/O or run long?
    slow: bool,
}

/// Deferred write-backs as commits and what each means once made.
fn split(deferred: Vec<(Lease, Commit, Outcome)>) -> (Vec<(Lease, Commit)>, Vec<Outcome>) {
    deferred
        .into_iter()
        .map(|(lease, commit, outcome)| ((lease, commit), outcome))
        .unzip()
}

/// Stops a [`Worker`] from another thread.
#[derive(Clone)]
pub struct StopHandle(Arc<Shared>);

impl StopHandle {
    /// Asks the worker to stop: each thread finishes or releases the run
    /// it holds (written back due now, for another worker) and returns;
    /// [`Worker::run`] then returns.
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        for held in self
            .0
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            held.interrupt.iter().for_each(Interrupt::interrupt);
        }
    }

    /// Has the worker been asked to stop?
    pub fn is_stopped(&self) -> bool {
        self.0.stop.load(Ordering::SeqCst)
    }
}

/// How advancing a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The run ended and was written back.
    Finished,
    /// The run was written back to wait, or released.
    Parked,
    /// The lease was lost; nothing was written.
    Lost,
    /// The write-back waits in the thread's batch; it is counted when made.
    Deferred,
}

/// What a run printed since its last commit.
#[derive(Default)]
struct Lines(Vec<String>);

impl Output for Lines {
    fn print(&mut self, text: &str) {
        self.0.push(text.to_string());
    }
}

/// One claimed run being advanced.
struct Advance<'a> {
    worker: &'a Worker,
    store: &'a mut Store,
    /// The thread's other runs.
    batch: &'a mut Batch,
    lease: Lease,
    program: Program,
    run: Run,
    dispatcher: Box<dyn Dispatcher>,
    lines: Lines,
    lost: Arc<AtomicBool>,
    cancel: Arc<AtomicBool>,
    /// The run's tasks were cancelled.
    cancelled: bool,
}

impl Advance<'_> {
    fn go(&mut self, recorded: HashMap<IoId, IoResult>, waiting: String) -> Result<Outcome> {
        self.reissue(recorded);
        if self.run.awaiting_send() {
            // Written back at a top-level `yield`: answer it before going on.
            if let Some(outcome) = self.answer_yield(waiting)? {
                return Ok(outcome);
            }
        }
        loop {
            if self.lost.load(Ordering::SeqCst) {
                return Ok(Outcome::Lost);
            }
            if let Some(outcome) = self.cancel_if_asked()? {
                return Ok(outcome);
            }
            if self.stopping() {
                return self.write_back(RunStatus::Pending, Some(now_ms()), String::new());
            }
            let step = self.run.resume(&mut self.lines);
            let next = match step {
                Err(error) => return self.finish(Err(error)),
                Ok(Step::Done(value)) => return self.finish(Ok(value)),
                Ok(Step::Paused) => self.paused()?,
                Ok(Step::Yield(value)) => self.at_yield(value)?,
                Ok(Step::Io(batch)) => self.io_phase(batch)?,
            };
            if let Some(outcome) = next {
                return Ok(outcome);
            }
        }
    }

    /// The run paused: an interrupt (looked at by the loop) or its
    /// instruction budget for one CPU phase spent, which ends it with a
    /// `Limit` error.
    fn paused(&mut self) -> Result<Option<Outcome>> {
        let Some(budget) = self.run.limits().budget else {
            return Ok(None);
        };
        if self.run.budget_left() > 0 {
            return Ok(None);
        }
        if self.cancelled {
            let message = format!(
                "Cancelled: the run went on for {budget} instructions after it was cancelled \
                 without waiting for anything"
            );
            return self.fail_with(message).map(Some);
        }
        let message = format!(
            "Limit: the run ran {budget} instructions without waiting for anything \
             (its `--max-instructions`)"
        );
        self.fail_with(message).map(Some)
    }

    /// Answers what the run was waiting for from the recorded results (and
    /// timers that are due), and issues the rest again (a timer for what
    /// is left of it).
    fn reissue(&mut self, recorded: HashMap<IoId, IoResult>) {
        let mut again = Vec::new();
        for mut request in self.run.pending_io() {
            if let Some(result) = recorded.get(&request.id) {
                self.run.complete(request.id, result.clone());
                continue;
            }
            if &*request.op == SLEEP_OP {
                if let Some(deadline) = self.run.io_deadline(request.id) {
                    let left = deadline - now_ms();
                    if left <= 0 {
                        // Due already (the run was claimed because it is).
                        self.run.complete(request.id, Ok(Data::Nil));
                        continue;
                    }
                    request.args = std::sync::Arc::new([Data::Int(left)]);
                }
            }
            again.push(request);
        }
        if !again.is_empty() {
            self.dispatcher.submit(again);
        }
    }

    /// Cancels the run's tasks once a cancel was asked for; ends the
    /// advance if that ended the run.
    fn cancel_if_asked(&mut self) -> Result<Option<Outcome>> {
        if self.cancelled || !self.cancel.load(Ordering::SeqCst) {
            return Ok(None);
        }
        self.cancelled = true;
        // Defers and handlers get a bounded time to run: a script that
        // catches `Cancelled` in a loop that never waits still ends.
        let mut limits = self.run.limits();
        limits.budget = Some(
            limits
                .budget
                .map_or(CANCEL_BUDGET, |b| b.min(CANCEL_BUDGET)),
        );
        self.run.set_limits(limits);
        match self.run.cancel(&mut self.lines) {
            Ok(()) => Ok(None),
            Err(error) => self.finish(Err(error)).map(Some),
        }
    }

    /// A top-level `yield`: delivers the first answer sent and not yet
    /// received, or writes the run back to wait for one.
    fn at_yield(&mut self, value: Value) -> Result<Option<Outcome>> {
        let waiting = format!("yield {}", shorten(&self.run.display(value)));
        self.answer_yield(waiting)
    }

    /// Delivers the first answer sent and not yet received to the pending
    /// top-level `yield`, or writes the run back waiting on `waiting`.
    fn answer_yield(&mut self, waiting: String) -> Result<Option<Outcome>> {
        if self.cancel.load(Ordering::SeqCst) {
            // Cancelling raises at the `yield`: no answer is needed.
            return Ok(None);
        }
        let after: i64 = self
            .run
            .host_note(SIGNAL_NOTE)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let Some((signal, json)) = self.store.next_signal(self.lease.run, after)? else {
            return self.write_back(RunStatus::Waiting, None, waiting).map(Some);
        };
        self.run.set_host_note(SIGNAL_NOTE, signal.to_string());
        match spool::answer::from_json(&mut self.run, &json) {
            Ok(answer) => {
                self.run.send(answer);
                Ok(None)
            }
            Err(message) => {
                let error = format!("the answer sent to the run's `yield` does not fit: {message}");
                self.fail_with(error).map(Some)
            }
        }
    }

    /// An I/O phase: commits the run before its new requests go out, parks
    /// it when it only waits on far timers, else waits for results and
    /// records them before the run hears of them.
    fn io_phase(&mut self, batch: Vec<IoRequest>) -> Result<Option<Outcome>> {
        if !batch.is_empty() {
            let now = now_ms();
            for request in batch.iter().filter(|r| &*r.op == SLEEP_OP) {
                let ms = request.args.first().and_then(Data::as_int).unwrap_or(0);
                self.run
                    .set_io_deadline(request.id, now.saturating_add(ms.max(0)));
            }
            if let Some(at) = self.only_far_timers() {
                // Nothing goes out: the run is written back with its timers
                // and their deadlines, and whoever claims it when it is due
                // answers them (`reissue`).
                return self.sleep_until(at).map(Some);
            }
            if !self.checkpoint()? {
                return Ok(Some(Outcome::Lost));
            }
            self.dispatcher.submit(batch);
        }
        if let Some(at) = self.only_far_timers() {
            return self.sleep_until(at).map(Some);
        }
        // The run waits here: the thread's other runs must not wait with it.
        self.batch.slow = true;
        self.worker.settle(self.store, self.batch, None)?;
        loop {
            if self.lost.load(Ordering::SeqCst) {
                return Ok(Some(Outcome::Lost));
            }
            if self.cancel.load(Ordering::SeqCst) && !self.cancelled {
                return Ok(None);
            }
            if self.stopping() {
                return self
                    .write_back(RunStatus::Pending, Some(now_ms()), String::new())
                    .map(Some);
            }
            let Some(finished) = self.dispatcher.wait_timeout(WAIT_SLICE) else {
                continue;
            };
            return self.deliver(finished);
        }
    }

    /// Records `finished` (all but timers) and hands it to the run.
    fn deliver(&mut self, finished: Vec<Completion>) -> Result<Option<Outcome>> {
        if finished.is_empty() {
            for request in self.run.pending_io() {
                self.run
                    .complete(request.id, Err(spool::driver::DROPPED.to_string()));
            }
            return Ok(None);
        }
        let to_record: Vec<(IoId, IoResult)> = finished
            .iter()
            .filter(|c| self.run.io_deadline(c.id).is_none())
            .map(|c| (c.id, c.result.clone()))
            .collect();
        if !self.store.record_io(self.lease, &to_record)? {
            return Ok(Some(Outcome::Lost));
        }
        for completion in finished {
            self.run.complete(completion.id, completion.result);
        }
        Ok(None)
    }

    /// Writes the run back `sleeping` until `at`.
    fn sleep_until(&mut self, at: i64) -> Result<Outcome> {
        let waiting = format!("sleep until {}", describe_time(at));
        self.write_back(RunStatus::Sleeping, Some(at), waiting)
    }

    /// Has the worker been asked to stop?
    fn stopping(&self) -> bool {
        self.worker.shared.stop.load(Ordering::SeqCst)
    }

    /// The earliest deadline, when every request in flight is a timer and
    /// none ends within [`WorkerConfig::hold_timers_below`].
    fn only_far_timers(&self) -> Option<i64> {
        let pending = self.run.pending_io();
        if pending.is_empty() || pending.iter().any(|r| &*r.op != SLEEP_OP) {
            return None;
        }
        let at = self.run.next_deadline()?;
        let far = at - now_ms() >= self.worker.config.hold_timers_below.as_millis() as i64;
        far.then_some(at)
    }

    /// Commits the run's state and output, keeping hold of it, with the
    /// thread's deferred write-backs; gives back its claims not started
    /// (the run is about to wait for I/O). False when the lease was lost.
    fn checkpoint(&mut self) -> Result<bool> {
        let commit = self.commit_of(RunStatus::Running);
        self.batch.slow = true;
        self.worker
            .settle(self.store, self.batch, Some((self.lease, commit)))
    }

    /// Defers `commit`, the run's last, to the thread's next transaction;
    /// `outcome` is what it means once made.
    fn defer(&mut self, commit: Commit, outcome: Outcome) -> Outcome {
        self.batch.deferred.push((self.lease, commit, outcome));
        Outcome::Deferred
    }

    /// A commit of the run's state, its new lines and the last signal it
    /// received, with `status`.
    fn commit_of(&mut self, status: RunStatus) -> Commit {
        Commit {
            state: Some(spool::snapshot_without_program(&mut self.run)),
            status: Some(status),
            lines: std::mem::take(&mut self.lines.0),
            consumed_signal: self.run.host_note(SIGNAL_NOTE).and_then(|n| n.parse().ok()),
            ..Commit::default()
        }
    }

    /// Writes the run back with `status`, due at `due_at`, waiting on
    /// `waiting` (in the thread's next transaction).
    fn write_back(
        &mut self,
        status: RunStatus,
        due_at: Option<i64>,
        waiting: String,
    ) -> Result<Outcome> {
        let mut commit = self.commit_of(status);
        commit.due_at = due_at;
        commit.waiting = waiting;
        Ok(self.defer(commit, Outcome::Parked))
    }

    /// Writes the ended run back: done with its result, or failed (or
    /// cancelled) with its error.
    fn finish(&mut self, ended: std::result::Result<Value, RunError>) -> Result<Outcome> {
        let cancelled = self.cancelled || self.cancel.load(Ordering::SeqCst);
        let (status, result, error) = match ended {
            Ok(value) => (RunStatus::Done, Some(self.run.display(value)), None),
            Err(error) => (RunStatus::Failed, None, Some(self.program.explain(&error))),
        };
        let status = if cancelled {
            RunStatus::Cancelled
        } else {
            status
        };
        let mut commit = self.commit_of(status);
        commit.result = result;
        commit.error = error;
        Ok(self.defer(commit, Outcome::Finished))
    }

    /// Ends the run with the host's error `message` (cancelled, once it
    /// was).
    fn fail_with(&mut self, message: String) -> Result<Outcome> {
        let status = match self.cancelled {
            true => RunStatus::Cancelled,
            false => RunStatus::Failed,
        };
        let mut commit = self.commit_of(status);
        commit.error = Some(message);
        Ok(self.defer(commit, Outcome::Finished))
    }
}

/// `text` cut to a length a table can show.
fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A time in ms since the Unix epoch as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn describe_time(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The calendar date `days` after 1970-01-01 (the proleptic Gregorian
/// calendar's civil-from-days conversion).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::{describe_time, Backoff, RETRY_MAX};
    use std::time::Duration;

    #[test]
    fn retries_wait_longer_up_to_a_cap_and_start_over_after_a_success() {
        let mut retry = Backoff::default();
        let waits: Vec<u128> = (0..9).map(|_| retry.next().as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(retry.next(), RETRY_MAX);
        retry.reset();
        assert_eq!(retry.next(), Duration::from_millis(50));
    }

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(describe_time(0), "1970-01-01 00:00:00");
        assert_eq!(describe_time(1_796_256_000_000), "2026-12-03 00:00:00");
        assert_eq!(
            describe_time(951_782_400_000 + 3_723_000),
            "2000-02-29 01:02:03"
        );
    }
}
