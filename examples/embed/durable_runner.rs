//! A small durable workflow runner: runs live in a SQLite database, each
//! row holding the run's script and its state saved without its program
//! ([`spool::snapshot_without_program`]); the runner can be killed with
//! `kill -9` at any moment and started again, and no step a workflow
//! completed is lost or performed twice.
//!
//! How it holds up:
//!
//! - **Write-ahead checkpoints.** Before a batch of I/O requests is
//!   performed, [`Hooks::before_io`] saves the run, which then records
//!   those requests as in flight. A restart restores the last checkpoint
//!   and issues the requests in flight again with the same ids; no script
//!   code runs twice.
//! - **Effects recorded with their results.** A `step` appends a row to
//!   the `step_log` table and records its result in `io_results` under
//!   (run id, request id), in one SQLite transaction. A request issued
//!   again after a restart finds its result there and is answered from the
//!   table instead of being performed again: at-least-once delivery, made
//!   exactly-once by the host.
//! - **Timers keep their deadline.** A `sleep`'s deadline is saved with
//!   the run ([`Run::set_io_deadline`]); one issued again waits only for
//!   what is left of it ([`Hooks::reissue`]).
//!
//! What a script prints after its last checkpoint is printed again after a
//! restart; what the host does is not repeated.
//!
//! Run with `cargo run -p spool-examples --example durable_runner DB_PATH`:
//! it creates the database if needed, submits two runs of a demo workflow
//! when there are none, runs every pending run to its end, printing
//! progress, and prints the step log. For tests, the environment variable
//! `DURABLE_RUNNER_CRASH_AFTER_STEPS=N` makes the process exit abruptly
//! (code [`CRASH_EXIT_CODE`]) right after its Nth step is committed, before
//! the run hears of it: the worst moment for a crash.

use std::collections::HashMap;
use std::error::Error;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use spool::{
    Completion, Data, Dispatcher, Driven, Engine, Hooks, IoId, IoRequest, IoResult, Output,
    Program, Run, Stop, Value,
};

/// The demo workflow: an order going through its steps. Each `step` is an
/// effect the host performs exactly once and answers with its number in
/// the step log; `sleep` waits as real workflows do between steps.
const ORDER_WORKFLOW: &str = r#"
let order = args()[0]
print("order ${order}: started")
let reserved = step("${order}: reserve stock")
sleep(150)
let charged = step("${order}: charge card")
// Three notifications at once: one batch of three requests.
let channels = ["email", "sms", "webhook"]
let notified = channels.map(fn(channel) => spawn step("${order}: notify by ${channel}"))
for task in notified {
  await task
}
sleep(150)
let shipped = step("${order}: ship")
print("order ${order}: done (steps ${reserved}, ${charged}, ${shipped})")
"#;

/// The workflow's name, stored with each run of it.
const ORDER_WORKFLOW_NAME: &str = "order.spl";

/// The orders the demo submits, one run each.
const DEMO_ORDERS: [&str; 2] = ["A-17", "B-42"];

/// The host's I/O operations.
const SIGNATURES: [&str; 2] = ["fn step(name: str) -> int", "fn sleep(ms: int)"];

/// The exit code of a crash asked for by `DURABLE_RUNNER_CRASH_AFTER_STEPS`.
const CRASH_EXIT_CODE: i32 = 86;

/// The host note a run's checkpoints carry once it has started.
const STARTED_NOTE: &str = "durable_runner.started";

/// The tables, created when missing.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    workflow TEXT NOT NULL,       -- the script's file name, for people
    source TEXT NOT NULL,         -- the script the run was started on
    status TEXT NOT NULL,         -- pending, done or failed
    state BLOB NOT NULL,          -- the last checkpoint, without its program
    error TEXT                    -- why a failed run failed
);
CREATE TABLE IF NOT EXISTS io_results (
    run_id INTEGER NOT NULL,
    request_id INTEGER NOT NULL,
    value INTEGER NOT NULL,       -- the step's result: its number in step_log
    PRIMARY KEY (run_id, request_id)
);
CREATE TABLE IF NOT EXISTS step_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    request_id INTEGER NOT NULL,
    step TEXT NOT NULL
);
";

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: durable_runner DB_PATH");
        std::process::exit(2);
    };
    if let Err(error) = run_all(&path) {
        eprintln!("durable_runner: {error}");
        std::process::exit(1);
    }
}

/// Opens the store, submits the demo when it holds no runs, runs every
/// pending run and prints the outcome.
fn run_all(path: &str) -> Result<(), Box<dyn Error>> {
    let db = open_store(path)?;
    let engine = engine()?;
    submit_demo_if_empty(&db, &engine)?;
    let mut runner = Runner {
        db: &db,
        engine,
        programs: HashMap::new(),
        crash_after: crash_after_steps(),
    };
    while let Some(run_id) = next_pending(&db)? {
        runner.run_to_end(run_id)?;
    }
    println!("all runs finished");
    print_runs(&db)?;
    print_step_log(&db)?;
    Ok(())
}

/// The engine workflows compile against: the standard library and the
/// host's operations.
fn engine() -> Result<Engine, Box<dyn Error>> {
    let mut engine = Engine::new();
    for signature in SIGNATURES {
        engine.register_io(signature)?;
    }
    Ok(engine)
}

/// `DURABLE_RUNNER_CRASH_AFTER_STEPS`, if set to a number.
fn crash_after_steps() -> Option<u64> {
    std::env::var("DURABLE_RUNNER_CRASH_AFTER_STEPS")
        .ok()?
        .parse()
        .ok()
}

// ---- the store ----

/// Opens (creating if needed) the database at `path`. In WAL mode a
/// committed transaction survives the process being killed.
fn open_store(path: &str) -> rusqlite::Result<Connection> {
    let db = Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.busy_timeout(Duration::from_secs(5))?;
    db.execute_batch(SCHEMA)?;
    Ok(db)
}

/// Submits one run of the demo workflow per demo order, in one
/// transaction, when the store holds no runs at all.
fn submit_demo_if_empty(db: &Connection, engine: &Engine) -> Result<(), Box<dyn Error>> {
    let submit = db.unchecked_transaction()?;
    let runs: i64 = submit.query_row("SELECT COUNT(*) FROM runs", [], |row| row.get(0))?;
    if runs > 0 {
        return Ok(());
    }
    let program = engine.compile(ORDER_WORKFLOW_NAME, ORDER_WORKFLOW)?;
    for order in DEMO_ORDERS {
        let id = insert_run(
            &submit,
            &program,
            ORDER_WORKFLOW_NAME,
            ORDER_WORKFLOW,
            order,
        )?;
        println!("submitted run {id}: {ORDER_WORKFLOW_NAME} for order {order}");
    }
    submit.commit()?;
    Ok(())
}

/// Stores a new run of `program` (compiled from `source`) with the
/// argument `arg`, pending; its state is the run before its first
/// instruction. Returns its id.
fn insert_run(
    db: &Connection,
    program: &Program,
    workflow: &str,
    source: &str,
    arg: &str,
) -> rusqlite::Result<i64> {
    let mut run = program.start(vec![arg.to_string()]);
    let state = spool::snapshot_without_program(&mut run);
    db.execute(
        "INSERT INTO runs (workflow, source, status, state) VALUES (?1, ?2, 'pending', ?3)",
        params![workflow, source, state],
    )?;
    Ok(db.last_insert_rowid())
}

/// The oldest pending run, if any.
fn next_pending(db: &Connection) -> rusqlite::Result<Option<i64>> {
    db.query_row(
        "SELECT id FROM runs WHERE status = 'pending' ORDER BY id LIMIT 1",
        [],
        |row| row.get(0),
    )
    .optional()
}

/// Replaces run `run_id`'s checkpoint with `run`.
fn save_checkpoint(db: &Connection, run_id: i64, run: &mut Run) -> rusqlite::Result<()> {
    let state = spool::snapshot_without_program(run);
    db.execute(
        "UPDATE runs SET state = ?1 WHERE id = ?2",
        params![state, run_id],
    )?;
    Ok(())
}

/// Marks run `run_id` finished (`done`, or `failed` with `error`) and
/// forgets its recorded results, which no restart will ask for again, in
/// one transaction.
fn finish_run(db: &Connection, run_id: i64, error: Option<&str>) -> rusqlite::Result<()> {
    let finish = db.unchecked_transaction()?;
    let status = if error.is_some() { "failed" } else { "done" };
    finish.execute(
        "UPDATE runs SET status = ?1, error = ?2 WHERE id = ?3",
        params![status, error, run_id],
    )?;
    finish.execute("DELETE FROM io_results WHERE run_id = ?1", [run_id])?;
    finish.commit()
}

fn print_runs(db: &Connection) -> rusqlite::Result<()> {
    let mut runs = db.prepare("SELECT id, workflow, status, error FROM runs ORDER BY id")?;
    let mut rows = runs.query([])?;
    println!("runs:");
    while let Some(row) = rows.next()? {
        let (id, workflow, status): (i64, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let error: Option<String> = row.get(3)?;
        match error {
            Some(error) => println!("  run {id} ({workflow}): {status}: {error}"),
            None => println!("  run {id} ({workflow}): {status}"),
        }
    }
    Ok(())
}

fn print_step_log(db: &Connection) -> rusqlite::Result<()> {
    let mut log = db.prepare("SELECT seq, run_id, request_id, step FROM step_log ORDER BY seq")?;
    let mut rows = log.query([])?;
    println!("step log:");
    while let Some(row) = rows.next()? {
        let (seq, run_id, request_id, step): (i64, i64, i64, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        println!("  {seq}: run {run_id} request {request_id}: {step}");
    }
    Ok(())
}

// ---- running ----

/// Runs the store's runs, one at a time.
struct Runner<'db> {
    db: &'db Connection,
    engine: Engine,
    /// Programs compiled in this process, by source.
    programs: HashMap<String, Program>,
    /// Exit abruptly after this many steps (a test's crash).
    crash_after: Option<u64>,
}

impl Runner<'_> {
    /// Restores run `run_id` from its last checkpoint and drives it until
    /// it finishes or fails, checkpointing before each I/O batch.
    fn run_to_end(&mut self, run_id: i64) -> Result<(), Box<dyn Error>> {
        let stored = load_run(self.db, run_id)?;
        let program = self.program(&stored.workflow, &stored.source)?;
        let mut run = spool::restore_with_program(&stored.state, &program)?;
        announce(run_id, &stored.workflow, &run);
        let mut dispatcher = StepDispatcher::new(self.db, run_id, self.crash_after);
        let mut hooks = Checkpoints {
            db: self.db,
            run_id,
        };
        let mut output = RunOutput { run_id };
        let driven = spool::drive_with(&mut run, &mut output, &mut dispatcher, &mut hooks);
        record_outcome(self.db, run_id, driven)
    }

    /// The program compiled from `source`, compiled once per process.
    fn program(&mut self, workflow: &str, source: &str) -> Result<Program, Box<dyn Error>> {
        if let Some(program) = self.programs.get(source) {
            return Ok(program.clone());
        }
        let program = self.engine.compile(workflow, source)?;
        self.programs.insert(source.to_string(), program.clone());
        Ok(program)
    }
}

/// A run as the store keeps it.
struct StoredRun {
    workflow: String,
    source: String,
    state: Vec<u8>,
}

fn load_run(db: &Connection, run_id: i64) -> rusqlite::Result<StoredRun> {
    db.query_row(
        "SELECT workflow, source, state FROM runs WHERE id = ?1",
        [run_id],
        |row| {
            Ok(StoredRun {
                workflow: row.get(0)?,
                source: row.get(1)?,
                state: row.get(2)?,
            })
        },
    )
}

/// Says whether run `run_id` starts or continues, and with how many
/// requests in flight.
fn announce(run_id: i64, workflow: &str, run: &Run) {
    if run.host_note(STARTED_NOTE).is_none() {
        println!("run {run_id}: starting {workflow}");
        return;
    }
    let in_flight = run.pending_io().len();
    println!(
        "run {run_id}: continuing {workflow} from its last checkpoint, \
         {in_flight} request(s) in flight"
    );
}

/// Records how the drive of run `run_id` ended. A hook's error (the store
/// failed, or the workflow yielded) leaves the run pending: it continues
/// from its last checkpoint next time, as after a crash.
fn record_outcome(
    db: &Connection,
    run_id: i64,
    driven: Result<Driven, Stop>,
) -> Result<(), Box<dyn Error>> {
    match driven {
        Ok(Driven::Done(_)) => {
            finish_run(db, run_id, None)?;
            println!("run {run_id}: done");
        }
        Ok(Driven::AtYield) => unreachable!("the hooks never stop at a yield"),
        Err(Stop::Run(error)) => {
            let message = format!("{}: {}", error.kind, error.message);
            finish_run(db, run_id, Some(&message))?;
            println!("run {run_id}: failed: {message}");
        }
        Err(Stop::Host(message)) => return Err(message.into()),
    }
    Ok(())
}

/// Where a run's `print`s go: standard output, marked with the run.
struct RunOutput {
    run_id: i64,
}

impl Output for RunOutput {
    fn print(&mut self, text: &str) {
        println!("run {} | {text}", self.run_id);
    }
}

/// The runner's part in the drive: checkpoints before each batch, timers'
/// deadlines, and what is left of them after a restart.
struct Checkpoints<'db> {
    db: &'db Connection,
    run_id: i64,
}

impl Hooks for Checkpoints<'_> {
    fn reissue(&mut self, run: &Run, pending: &mut [IoRequest]) {
        for request in pending.iter_mut().filter(|r| &*r.op == "sleep") {
            if let Some(deadline) = run.io_deadline(request.id) {
                let left = (deadline - unix_ms()).max(0);
                println!(
                    "run {}: request {}: sleep continues, {left} ms left",
                    self.run_id, request.id.0
                );
                request.args = std::sync::Arc::new([Data::Int(left)]);
            }
        }
    }

    fn before_io(&mut self, run: &mut Run, batch: &[IoRequest]) -> Result<(), String> {
        // Results that arrived without new requests need no checkpoint:
        // the last one already makes the run repeat no effect.
        if batch.is_empty() {
            return Ok(());
        }
        run.set_host_note(STARTED_NOTE, "yes");
        let now = unix_ms();
        for request in batch.iter().filter(|r| &*r.op == "sleep") {
            let ms = request.args.first().and_then(Data::as_int).unwrap_or(0);
            run.set_io_deadline(request.id, now.saturating_add(ms));
        }
        save_checkpoint(self.db, self.run_id, run)
            .map_err(|error| format!("cannot save run {}: {error}", self.run_id))
    }

    fn answer(&mut self, _run: &mut Run, _value: Value) -> Result<Option<Value>, String> {
        Err("a workflow yielded to the host; this runner answers no yields".to_string())
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// Performs a run's requests: `step` at once, in a transaction with its
/// recorded result (or answered from the record); `sleep` on a timer,
/// waited for in [`Dispatcher::wait`].
struct StepDispatcher<'db> {
    db: &'db Connection,
    run_id: i64,
    /// Answers not yet handed back.
    ready: Vec<Completion>,
    /// Sleeps in progress: when each ends.
    timers: Vec<(Instant, IoId)>,
    /// Steps performed by this process.
    performed: u64,
    crash_after: Option<u64>,
}

impl<'db> StepDispatcher<'db> {
    fn new(db: &'db Connection, run_id: i64, crash_after: Option<u64>) -> Self {
        StepDispatcher {
            db,
            run_id,
            ready: Vec::new(),
            timers: Vec::new(),
            performed: 0,
            crash_after,
        }
    }

    /// Starts one request: a timer for `sleep`, the answer for the rest.
    fn start(&mut self, request: &IoRequest) {
        match (&*request.op, &request.args[..]) {
            ("sleep", [Data::Int(ms)]) => {
                let duration = Duration::from_millis((*ms).max(0) as u64);
                self.timers.push((Instant::now() + duration, request.id));
            }
            ("step", [Data::Str(name)]) => {
                let result = self.step(request.id, name);
                self.ready.push(Completion {
                    id: request.id,
                    result,
                });
            }
            (op, _) => self.ready.push(Completion {
                id: request.id,
                result: Err(format!("{op}: not an operation of this runner")),
            }),
        }
    }

    /// Step `name` of request `id`, performed once: the recorded result if
    /// the request was performed before, else the step's effect and its
    /// record in one transaction. A failing store ends the process, which
    /// a restart recovers from like from a crash.
    fn step(&mut self, id: IoId, name: &str) -> IoResult {
        match perform_step(self.db, self.run_id, id, name) {
            Ok(Performed::Now(seq)) => {
                println!("run {}: request {}: step {seq}: {name}", self.run_id, id.0);
                self.performed += 1;
                if self.crash_after == Some(self.performed) {
                    println!("crashing on purpose after {} step(s)", self.performed);
                    std::process::exit(CRASH_EXIT_CODE);
                }
                Ok(Data::Int(seq))
            }
            Ok(Performed::Before(result)) => {
                println!(
                    "run {}: request {}: performed before a restart, answered from the table",
                    self.run_id, id.0
                );
                result
            }
            Err(error) => {
                eprintln!("durable_runner: the store failed: {error}");
                std::process::exit(1);
            }
        }
    }

    /// Hands back every timer that has ended, waiting for the first one
    /// if none has.
    fn wait_for_timers(&mut self) -> Vec<Completion> {
        let Some(&(first, _)) = self.timers.iter().min_by_key(|(at, _)| *at) else {
            return Vec::new();
        };
        std::thread::sleep(first.saturating_duration_since(Instant::now()));
        let now = Instant::now();
        let (ended, running) = self.timers.drain(..).partition(|(at, _)| *at <= now);
        self.timers = running;
        ended
            .into_iter()
            .map(|(_, id): (Instant, IoId)| Completion {
                id,
                result: Ok(Data::Nil),
            })
            .collect()
    }
}

impl Dispatcher for StepDispatcher<'_> {
    fn submit(&mut self, batch: Vec<IoRequest>) {
        for request in &batch {
            self.start(request);
        }
    }

    fn wait(&mut self) -> Vec<Completion> {
        if self.ready.is_empty() {
            return self.wait_for_timers();
        }
        std::mem::take(&mut self.ready)
    }
}

/// How a step request was answered.
enum Performed {
    /// Performed now; its number in the step log.
    Now(i64),
    /// Performed before (by a process that died before the run heard of
    /// it); the recorded result.
    Before(IoResult),
}

/// Performs step `name` for request `id` of run `run_id` unless its result
/// is recorded: the step's row and the result's record are written in one
/// transaction, so either both exist or neither does.
fn perform_step(db: &Connection, run_id: i64, id: IoId, name: &str) -> rusqlite::Result<Performed> {
    let request_id = id.0 as i64;
    let step = db.unchecked_transaction()?;
    if let Some(result) = recorded_result(&step, run_id, request_id)? {
        return Ok(Performed::Before(result));
    }
    step.execute(
        "INSERT INTO step_log (run_id, request_id, step) VALUES (?1, ?2, ?3)",
        params![run_id, request_id, name],
    )?;
    let seq = step.last_insert_rowid();
    step.execute(
        "INSERT INTO io_results (run_id, request_id, value) VALUES (?1, ?2, ?3)",
        params![run_id, request_id, seq],
    )?;
    step.commit()?;
    Ok(Performed::Now(seq))
}

/// The result recorded for request `request_id` of run `run_id`, if any.
fn recorded_result(
    db: &Connection,
    run_id: i64,
    request_id: i64,
) -> rusqlite::Result<Option<IoResult>> {
    let value: Option<i64> = db
        .query_row(
            "SELECT value FROM io_results WHERE run_id = ?1 AND request_id = ?2",
            params![run_id, request_id],
            |row| row.get(0),
        )
        .optional()?;
    Ok(value.map(|seq| Ok(Data::Int(seq))))
}
