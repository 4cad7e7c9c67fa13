//! Run stores: many runs of Spool programs kept in a database, advanced by
//! any number of workers on any number of machines, answered and cancelled
//! from outside.
//!
//! A [`Store`] lives in SQLite (a file, nothing to install: the default)
//! or PostgreSQL (`postgres://…`, for a fleet); both speak through one
//! [`backend::Backend`] trait, and every operation below is written once,
//! so they behave the same.
//!
//! # The tables
//!
//! - `spool_programs`: each program once, by fingerprint, with its source
//!   (its main file's; `spool_program_files` holds the files it imports)
//!   (a worker compiles it again and checks the fingerprint).
//! - `spool_runs`: one row per run: its status, what it waits on, its
//!   saved state (without the program; signed when the store has a host
//!   key), `due_at`, the lease token of the worker holding it, how often
//!   it was claimed, the policy it was submitted with.
//! - `spool_signals`: answers to top-level `yield`s (`spool send`), in the
//!   order sent; each is delivered once, in the same transaction as the
//!   state that received it.
//! - `spool_io_results`: each I/O result, recorded as it arrives under
//!   (run, request id), so a request that finished is never performed again.
//! - `spool_output`: what a run printed, line by line, written with the
//!   state that printed it.
//!
//! # One clock: `due_at`
//!
//! A run is claimed when `due_at <= now` (an index holds only runs that
//! have one). A new or answered run is due now; a run whose tasks all
//! sleep is due at its earliest deadline; a run being worked on is due
//! when its lease expires (heartbeats push it on), so a crashed worker's
//! run is simply claimed again; a run waiting at a `yield`, or finished,
//! has none and costs nothing. Every write of a worker names its lease
//! token: once a lease is lost, the old holder changes nothing.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("spool-store-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("runs.db");
//! let mut store = spool_store::Store::open(path.to_str().unwrap()).unwrap();
//! let engine = spool::Engine::new();
//! let source = "let name: str = yield \"who?\"\nprint(\"hello, ${name}\")";
//! let program = engine.compile("hello.spl", source).unwrap();
//! let id = store.submit(&program, "hello.spl", source, vec![], "").unwrap();
//! assert_eq!(store.run(id).unwrap().status, spool_store::RunStatus::Pending);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

pub mod backend;
pub mod postgres;
pub mod sqlite;
pub mod worker;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backend::{Backend, Cell, DbError, Dialect, Row};
use spool::{IoId, IoResult, Program, Run};

pub use worker::{Worker, WorkerConfig, WorkerHost, WorkerStats};

/// The store used when none is named: `spool.db` in the current directory.
pub const DEFAULT_STORE: &str = "spool.db";

/// A run's number in its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Ready to be claimed once due (new, answered, released or woken).
    Pending,
    /// Held by a worker under a lease.
    Running,
    /// Every task waits on a timer; due at the earliest deadline.
    Sleeping,
    /// Waiting at a top-level `yield` for `send`.
    Waiting,
    /// Finished.
    Done,
    /// Ended with an uncaught error.
    Failed,
    /// Ended after `cancel`.
    Cancelled,
}

impl RunStatus {
    /// Every status, in the order a run goes through them.
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Sleeping,
        RunStatus::Waiting,
        RunStatus::Done,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Sleeping => "sleeping",
            RunStatus::Waiting => "waiting",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Has the run ended?
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Done | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreError {
    /// The database failed or refused.
    Database(String),
    /// The database could not be reached or could not go on now (the
    /// connection broke, the server restarts, the file is busy or an I/O
    /// failed): the same operation may succeed on a new connection later.
    Unavailable(String),
    /// No run has this id.
    NoSuchRun(RunId),
    /// The run has ended; nothing can be sent to it or cancelled.
    Finished(RunId, RunStatus),
    /// Something stored cannot be used (a changed program, a saved run
    /// that does not restore, an answer of the wrong type).
    Invalid(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Database(message) => write!(f, "the store failed: {message}"),
            StoreError::Unavailable(message) => write!(f, "the store is unavailable: {message}"),
            StoreError::NoSuchRun(id) => write!(f, "there is no run {id} in the store"),
            StoreError::Finished(id, status) => write!(f, "run {id} has ended ({status})"),
            StoreError::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// May the same operation succeed later on a new connection
    /// ([`StoreError::Unavailable`])?
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<DbError> for StoreError {
    fn from(error: DbError) -> StoreError {
        match error.transient {
            true => StoreError::Unavailable(error.message),
            false => StoreError::Database(error.message),
        }
    }
}

/// What a store operation returns.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A run as `spool runs` and `spool inspect` show it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// Its id.
    pub id: RunId,
    /// The script's file name.
    pub script: String,
    /// Where it stands.
    pub status: RunStatus,
    /// What it waits on, for people (`yield "approve?"`, `sleep until …`).
    pub waiting: String,
    /// When it is due (ms since the Unix epoch), if ever.
    pub due_at: Option<i64>,
    /// When its status last changed (ms since the Unix epoch).
    pub since: i64,
    /// When it was submitted (ms since the Unix epoch).
    pub created_at: i64,
    /// How often a worker claimed it.
    pub attempts: i64,
    /// Was it asked to cancel?
    pub cancel_requested: bool,
    /// How many times its state was committed (its steps).
    pub steps: i64,
    /// How many lines it printed.
    pub output_lines: i64,
    /// The script's arguments.
    pub args: Vec<String>,
    /// The main program's result, as printed, once done.
    pub result: Option<String>,
    /// The error it ended with, with its trace.
    pub error: Option<String>,
    /// The policy it was submitted with (the host's to read).
    pub policy: String,
    /// The worker holding it, or that held it last.
    pub worker: String,
}

/// A worker's hold on a run: every write it makes names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The run held.
    pub run: RunId,
    /// The token of this claim; a later claim gets another.
    pub token: i64,
}

/// A run a worker claimed.
#[derive(Debug)]
pub struct Claim {
    /// The hold on it.
    pub lease: Lease,
    /// The fingerprint of its program.
    pub program: String,
    /// The script's file name.
    pub script: String,
    /// Its saved state, without the program (signed with the host key
    /// when the store has one).
    pub state: Vec<u8>,
    /// The policy it was submitted with.
    pub policy: String,
    /// Was it asked to cancel?
    pub cancel_requested: bool,
    /// How many lines it printed before.
    pub output_lines: i64,
    /// What it waited on when it was written back.
    pub waiting: String,
    /// I/O results recorded for it, by request id.
    pub recorded: HashMap<IoId, IoResult>,
}

/// What a worker writes back for a run it holds.
#[derive(Clone, Debug, Default)]
pub struct Commit {
    /// The run's new state, when it changed (sealed by the store).
    pub state: Option<Vec<u8>>,
    /// Where the run stands now; [`RunStatus::Running`] keeps holding it.
    pub status: Option<RunStatus>,
    /// When it is due next (for `Sleeping` and a released `Pending`).
    pub due_at: Option<i64>,
    /// What it waits on, for people.
    pub waiting: String,
    /// Lines printed since the last commit.
    pub lines: Vec<String>,
    /// The last signal the state has received, if it received one.
    pub consumed_signal: Option<i64>,
    /// The result of a run that is done, as printed.
    pub result: Option<String>,
    /// The error a run ended with.
    pub error: Option<String>,
}

/// What a heartbeat learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// Is the lease still held (and now extended)?
    pub held: bool,
    /// Was the run asked to cancel?
    pub cancel_requested: bool,
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// A fresh lease token: positive, and different for every claim (also the
/// seed of a submitted run's `random()`).
fn new_token() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.write_i64(now_ms());
    (hasher.finish() >> 1) as i64 | 1
}

/// The tables and indexes, as `dialect` spells them.
fn schema(dialect: Dialect) -> String {
    let (serial, blob) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
        Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", "BYTEA"),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS spool_programs (
            fingerprint TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            source TEXT NOT NULL,
            created_at BIGINT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS spool_runs (
            id {serial},
            program TEXT NOT NULL,
            script TEXT NOT NULL,
            args TEXT NOT NULL,
            policy TEXT NOT NULL,
            status TEXT NOT NULL,
            waiting TEXT NOT NULL,
            due_at BIGINT,
            lease BIGINT NOT NULL,
            worker TEXT NOT NULL,
            attempts BIGINT NOT NULL,
            cancel BIGINT NOT NULL,
            steps BIGINT NOT NULL,
            output_lines BIGINT NOT NULL,
            state {blob} NOT NULL,
            result TEXT,
            error TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS spool_runs_due ON spool_runs (due_at) WHERE due_at IS NOT NULL;
        CREATE INDEX IF NOT EXISTS spool_runs_status ON spool_runs (status, id);
        CREATE TABLE IF NOT EXISTS spool_signals (
            id {serial},
            run_id BIGINT NOT NULL,
            value TEXT NOT NULL,
            sent_at BIGINT NOT NULL,
            consumed BIGINT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS spool_signals_run ON spool_signals (run_id, id);
        CREATE TABLE IF NOT EXISTS spool_io_results (
            run_id BIGINT NOT NULL,
            request_id BIGINT NOT NULL,
            result {blob} NOT NULL,
            PRIMARY KEY (run_id, request_id)
        );
        CREATE TABLE IF NOT EXISTS spool_output (
            run_id BIGINT NOT NULL,
            line BIGINT NOT NULL,
            text TEXT NOT NULL,
            PRIMARY KEY (run_id, line)
        );
        CREATE TABLE IF NOT EXISTS spool_program_files (
            fingerprint TEXT NOT NULL,
            path TEXT NOT NULL,
            source TEXT NOT NULL,
            PRIMARY KEY (fingerprint, path)
        );"
    )
}

/// The columns [`RunInfo`] is read from, in order.
const INFO_COLUMNS: &str =
    "id, script, status, waiting, due_at, updated_at, created_at, attempts, \
     cancel, steps, output_lines, args, result, error, policy, worker";

fn info(row: Row) -> RunInfo {
    let args: Vec<String> = serde_json::from_str(&row[11].text()).unwrap_or_default();
    RunInfo {
        id: RunId(row[0].int()),
        script: row[1].text(),
        status: RunStatus::parse(&row[2].text()).unwrap_or(RunStatus::Failed),
        waiting: row[3].text(),
        due_at: row[4].opt_int(),
        since: row[5].int(),
        created_at: row[6].int(),
        attempts: row[7].int(),
        cancel_requested: row[8].int() != 0,
        steps: row[9].int(),
        output_lines: row[10].int(),
        args,
        result: row[12].opt_text(),
        error: row[13].opt_text(),
        policy: row[14].text(),
        worker: row[15].text(),
    }
}

/// A run store: one connection to its database.
pub struct Store {
    db: Box<dyn Backend>,
    /// Saved runs are signed with this key and checked against it.
    key: Option<Arc<[u8]>>,
    /// What the store was opened with.
    url: String,
}

impl Store {
    /// Opens the store at `url`, creating its tables when missing:
    /// `postgres://…` (or `postgresql://…`) is a PostgreSQL database,
    /// `sqlite://PATH` or a plain path a SQLite file (created if needed).
    pub fn open(url: &str) -> Result<Store> {
        let db: Box<dyn Backend> =
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                Box::new(postgres::Postgres::connect(url)?)
            } else {
                let path = url.strip_prefix("sqlite://").unwrap_or(url);
                Box::new(sqlite::Sqlite::open(path)?)
            };
        let mut store = Store {
            db,
            key: None,
            url: url.to_string(),
        };
        store.create_tables()?;
        Ok(store)
    }

    /// What the store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which database the store lives in.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Signs the saved runs this store writes with `key` (HMAC-SHA256) and
    /// refuses, when reading, any that is unsigned or changed.
    pub fn set_state_key(&mut self, key: &[u8]) {
        self.key = Some(Arc::from(key));
    }

    fn create_tables(&mut self) -> Result<()> {
        let dialect = self.db.dialect();
        let schema = schema(dialect);
        if dialect == Dialect::Postgres {
            // `CREATE INDEX IF NOT EXISTS` locks its table even when the
            // index exists, and the schema runs as one transaction: run
            // while workers commit, it waits for them and deadlocks with
            // them (one side gets "deadlock detected"). Created in one
            // transaction, the schema is all there when its last table is.
            let present = self
                .db
                .query("SELECT to_regclass('spool_program_files') IS NOT NULL", &[])?;
            if present.first().is_some_and(|row| row[0].int() == 1) {
                return Ok(());
            }
            // Workers starting together must not create the tables twice.
            self.db
                .execute("SELECT pg_advisory_lock(7436541)", &[])
                .map(drop)?;
            let created = self.db.execute(&schema, &[]);
            self.db
                .execute("SELECT pg_advisory_unlock(7436541)", &[])
                .map(drop)?;
            created?;
            return Ok(());
        }
        self.db.execute(&schema, &[])?;
        Ok(())
    }

    /// Runs `body` in one write transaction, committing when it returns
    /// `Ok` and rolling back otherwise.
    fn transaction<T>(&mut self, body: impl FnOnce(&mut dyn Backend) -> Result<T>) -> Result<T> {
        self.db.begin()?;
        match body(self.db.as_mut()) {
            Ok(value) => {
                self.db.commit()?;
                Ok(value)
            }
            Err(error) => {
                self.db.rollback();
                Err(error)
            }
        }
    }

    /// `sql` reading one run's row for writing: locked on PostgreSQL (the
    /// write transaction already holds SQLite's lock).
    fn locking(&self, sql: &str) -> String {
        match self.db.dialect() {
            Dialect::Sqlite => sql.to_string(),
            Dialect::Postgres => format!("{sql} FOR UPDATE"),
        }
    }

    /// `state` as stored: signed when the store has a key.
    fn seal(&self, state: Vec<u8>) -> Vec<u8> {
        match &self.key {
            Some(key) => spool::snapshot::sign(&state, key),
            None => state,
        }
    }

    /// Restores a stored state on `program`, checking its signature when
    /// the store has a key.
    pub fn restore_state(&self, state: &[u8], program: &Program) -> Result<Run> {
        let bytes = match &self.key {
            Some(key) => spool::snapshot::verify(state, key)
                .map_err(|e| StoreError::Invalid(format!("the saved run is refused: {e}")))?,
            None => state,
        };
        spool::restore_with_program(bytes, program)
            .map_err(|e| StoreError::Invalid(format!("the saved run does not restore: {e}")))
    }

    /// Submits a new run of `program` (compiled from `source`, the file
    /// `name`) with the script arguments `args` and the host's `policy`
    /// (kept with the run, for the worker): stores the program unless its
    /// fingerprint is known, and the run, due now. Returns its id.
    pub fn submit(
        &mut self,
        program: &Program,
        name: &str,
        source: &str,
        args: Vec<String>,
        policy: &str,
    ) -> Result<RunId> {
        let ids = self.submit_many(program, name, source, vec![args], policy)?;
        Ok(ids.first().copied().unwrap_or(RunId(0)))
    }

    /// Submits one run of `program` per entry of `args` (its script
    /// arguments), as [`Store::submit`] does, in one transaction: a
    /// thousand runs cost one write to disk, not a thousand. Returns their
    /// ids in order. Each run's `random()` is seeded from entropy.
    pub fn submit_many(
        &mut self,
        program: &Program,
        name: &str,
        source: &str,
        args: Vec<Vec<String>>,
        policy: &str,
    ) -> Result<Vec<RunId>> {
        self.submit_seeded(program, name, source, args, policy, None)
    }

    /// [`Store::submit_many`], with every run's `random()` seeded with
    /// `seed` (`spool submit --seed N`), or each from entropy for `None`.
    pub fn submit_seeded(
        &mut self,
        program: &Program,
        name: &str,
        source: &str,
        args: Vec<Vec<String>>,
        policy: &str,
        seed: Option<u64>,
    ) -> Result<Vec<RunId>> {
        let fingerprint = fingerprint(program);
        let runs: Vec<(String, Vec<u8>)> = args
            .into_iter()
            .map(|args| {
                let mut run = program.start(args.clone());
                run.seed(seed.unwrap_or_else(|| new_token() as u64));
                let state = self.seal(spool::snapshot_without_program(&mut run));
                let args = serde_json::to_string(&args).unwrap_or_else(|_| "[]".to_string());
                (args, state)
            })
            .collect();
        let now = now_ms();
        let imports: Vec<&(String, String)> = program
            .sources()
            .iter()
            .filter(|(path, _)| path != name)
            .collect();
        self.transaction(|db| {
            db.execute(
                "INSERT INTO spool_programs (fingerprint, name, source, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (fingerprint) DO NOTHING",
                &[fingerprint.clone().into(), name.into(), source.into(), now.into()],
            )?;
            for (path, text) in &imports {
                db.execute(
                    "INSERT INTO spool_program_files (fingerprint, path, source) \
                     VALUES ($1, $2, $3) ON CONFLICT (fingerprint, path) DO NOTHING",
                    &[fingerprint.clone().into(), path.as_str().into(), text.as_str().into()],
                )?;
            }
            let mut ids = Vec::with_capacity(runs.len());
            for (args, state) in runs {
                let rows = db.query(
                    "INSERT INTO spool_runs (program, script, args, policy, status, waiting, due_at, \
                     lease, worker, attempts, cancel, steps, output_lines, state, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'pending', '', $5, 0, '', 0, 0, 0, 0, $6, $5, $5) RETURNING id",
                    &[
                        fingerprint.clone().into(),
                        name.into(),
                        args.into(),
                        policy.into(),
                        now.into(),
                        state.into(),
                    ],
                )?;
                ids.push(RunId(rows.first().map_or(0, |row| row[0].int())));
            }
            Ok(ids)
        })
    }

    /// The file name and source of the program with `fingerprint`.
    pub fn program_source(&mut self, fingerprint: &str) -> Result<(String, String)> {
        let rows = self.db.query(
            "SELECT name, source FROM spool_programs WHERE fingerprint = $1",
            &[fingerprint.into()],
        )?;
        match rows.into_iter().next() {
            Some(row) => Ok((row[0].text(), row[1].text())),
            None => Err(StoreError::Invalid(format!(
                "the store has no program with fingerprint {fingerprint}"
            ))),
        }
    }

    /// The files the program with `fingerprint` imports (LANGUAGE.md §11),
    /// as `(path, source)` with paths relative to its main file's folder;
    /// empty for a program of one file.
    pub fn program_files(&mut self, fingerprint: &str) -> Result<Vec<(String, String)>> {
        let rows = self.db.query(
            "SELECT path, source FROM spool_program_files WHERE fingerprint = $1 ORDER BY path",
            &[fingerprint.into()],
        )?;
        Ok(rows
            .into_iter()
            .map(|row| (row[0].text(), row[1].text()))
            .collect())
    }

    /// Claims up to `max` due runs for `worker`, each under a new lease of
    /// `lease` (one statement: `FOR UPDATE SKIP LOCKED` on PostgreSQL, the
    /// write lock on SQLite).
    pub fn claim(&mut self, worker: &str, max: usize, lease: Duration) -> Result<Vec<Claim>> {
        let (_, claims) = self.commit_and_claim(Vec::new(), worker, max, lease)?;
        Ok(claims)
    }

    /// Writes back `commits` (each as [`Store::commit`] would, each fenced
    /// by its own lease) and claims up to `max` due runs (as
    /// [`Store::claim`]), in one transaction: a worker hands in the runs it
    /// is done with and takes the next ones for the price of one write to
    /// disk. Returns whether each commit was made, and the claims.
    pub fn commit_and_claim(
        &mut self,
        commits: Vec<(Lease, Commit)>,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<(Vec<bool>, Vec<Claim>)> {
        let now = now_ms();
        let token = new_token();
        let skip_locked = match self.db.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE spool_runs SET status = 'running', lease = $1, worker = $2, due_at = $3, \
             attempts = attempts + 1, updated_at = CASE WHEN status = 'running' THEN updated_at ELSE $4 END \
             WHERE id IN (SELECT id FROM spool_runs WHERE due_at IS NOT NULL AND due_at <= $4 \
             ORDER BY due_at LIMIT $5{skip_locked}) \
             RETURNING id, program, script, state, policy, cancel, output_lines, waiting"
        );
        let expires = now.saturating_add(lease.as_millis() as i64);
        let commits = self.sealed(commits);
        let locking = self.locking(COMMIT_LOCKING);
        let (made, rows, mut recorded) = self.transaction(|db| {
            let made = apply_writes(db, &locking, commits, &[], now)?;
            let rows = match max {
                0 => Vec::new(),
                // Planned each time: see `Backend::query_fresh`.
                _ => db.query_fresh(
                    &sql,
                    &[
                        token.into(),
                        worker.into(),
                        expires.into(),
                        now.into(),
                        (max as i64).into(),
                    ],
                )?,
            };
            let ids: Vec<RunId> = rows.iter().map(|row| RunId(row[0].int())).collect();
            let recorded = recorded_io_of(db, &ids)?;
            Ok((made, rows, recorded))
        })?;
        let mut claims = Vec::with_capacity(rows.len());
        for mut row in rows {
            let run = RunId(row[0].int());
            let state = std::mem::replace(&mut row[3], Cell::Null).blob();
            claims.push(Claim {
                lease: Lease { run, token },
                program: row[1].text(),
                script: row[2].text(),
                state,
                policy: row[4].text(),
                cancel_requested: row[5].int() != 0,
                output_lines: row[6].int(),
                waiting: row[7].text(),
                recorded: recorded.remove(&run).unwrap_or_default(),
            });
        }
        Ok((made, claims))
    }

    /// The I/O results recorded for `run`, by request id.
    pub fn recorded_io(&mut self, run: RunId) -> Result<HashMap<IoId, IoResult>> {
        let mut recorded = recorded_io_of(self.db.as_mut(), &[run])?;
        Ok(recorded.remove(&run).unwrap_or_default())
    }

    /// Extends `lease` to `lease_for` from now, if it is still held.
    pub fn heartbeat(&mut self, lease: Lease, lease_for: Duration) -> Result<Heartbeat> {
        let expires = now_ms().saturating_add(lease_for.as_millis() as i64);
        let rows = self.transaction(|db| {
            Ok(db.query(
                "UPDATE spool_runs SET due_at = $3 WHERE id = $1 AND lease = $2 \
                 AND status = 'running' RETURNING cancel",
                &[lease.run.0.into(), lease.token.into(), expires.into()],
            )?)
        })?;
        Ok(match rows.first() {
            Some(row) => Heartbeat {
                held: true,
                cancel_requested: row[0].int() != 0,
            },
            None => Heartbeat {
                held: false,
                cancel_requested: false,
            },
        })
    }

    /// Records I/O results of `lease`'s run as they arrived. Returns false
    /// (recording nothing) when the lease was lost.
    pub fn record_io(&mut self, lease: Lease, results: &[(IoId, IoResult)]) -> Result<bool> {
        if results.is_empty() {
            return Ok(true);
        }
        let encoded: Vec<(i64, Vec<u8>)> = results
            .iter()
            .map(|(id, result)| {
                (
                    id.0 as i64,
                    postcard::to_allocvec(result).unwrap_or_default(),
                )
            })
            .collect();
        let locking = self.locking("SELECT lease, status FROM spool_runs WHERE id = $1");
        self.transaction(|db| {
            if !holds_row(db, &locking, lease)? {
                return Ok(false);
            }
            for (id, bytes) in encoded {
                db.execute(
                    "INSERT INTO spool_io_results (run_id, request_id, result) VALUES ($1, $2, $3) \
                     ON CONFLICT (run_id, request_id) DO NOTHING",
                    &[lease.run.0.into(), id.into(), bytes.into()],
                )?;
            }
            Ok(true)
        })
    }

    /// The first signal sent to `run` after signal `after` and not yet
    /// delivered: its id and JSON.
    pub fn next_signal(&mut self, run: RunId, after: i64) -> Result<Option<(i64, String)>> {
        let rows = self.db.query(
            "SELECT id, value FROM spool_signals WHERE run_id = $1 AND consumed = 0 AND id > $2 \
             ORDER BY id LIMIT 1",
            &[run.0.into(), after.into()],
        )?;
        Ok(rows.first().map(|row| (row[0].int(), row[1].text())))
    }

    /// Writes back what `lease`'s holder did, in one transaction fenced by
    /// the lease: the state, the lines printed, the signal consumed, the
    /// new status. Returns false (changing nothing) when the lease was
    /// lost. A run committed as waiting at a `yield` that was answered in
    /// the meantime, or asked to cancel, is due again at once.
    pub fn commit(&mut self, lease: Lease, commit: Commit) -> Result<bool> {
        let made = self.commit_all(vec![(lease, commit)], &[])?;
        Ok(made.first().copied().unwrap_or(false))
    }

    /// Writes back several runs at once, in one transaction, each as
    /// [`Store::commit`] would (each fenced by its own lease), and gives
    /// back the runs claimed under `release` that their worker has not
    /// started: due again at once, that claim not counted. Returns whether
    /// each commit was made.
    pub fn commit_all(
        &mut self,
        commits: Vec<(Lease, Commit)>,
        release: &[Lease],
    ) -> Result<Vec<bool>> {
        let now = now_ms();
        let commits = self.sealed(commits);
        let locking = self.locking(COMMIT_LOCKING);
        self.transaction(|db| apply_writes(db, &locking, commits, release, now))
    }

    /// `commits` with their states sealed.
    fn sealed(&self, commits: Vec<(Lease, Commit)>) -> Vec<(Lease, Commit)> {
        commits
            .into_iter()
            .map(|(lease, mut commit)| {
                commit.state = commit.state.map(|state| self.seal(state));
                (lease, commit)
            })
            .collect()
    }

    /// Answers the top-level `yield` run `id` waits at (or will wait at
    /// next) with `json`; a waiting run becomes due at once. The caller
    /// checks the JSON fits the type the `yield` receives.
    pub fn send(&mut self, id: RunId, json: &str) -> Result<()> {
        let now = now_ms();
        let locking = self.locking("SELECT status FROM spool_runs WHERE id = $1");
        self.transaction(|db| {
            let status = status_of(db, &locking, id)?;
            db.execute(
                "INSERT INTO spool_signals (run_id, value, sent_at, consumed) VALUES ($1, $2, $3, 0)",
                &[id.0.into(), json.into(), now.into()],
            )?;
            if status == RunStatus::Waiting {
                db.execute(
                    "UPDATE spool_runs SET status = 'pending', due_at = $2, updated_at = $2 WHERE id = $1",
                    &[id.0.into(), now.into()],
                )?;
            }
            Ok(())
        })
    }

    /// Asks run `id` to cancel: the worker that holds it (or the next to
    /// claim it, at once) cancels its tasks and lets its defers run.
    pub fn cancel(&mut self, id: RunId) -> Result<()> {
        let now = now_ms();
        let locking = self.locking("SELECT status FROM spool_runs WHERE id = $1");
        self.transaction(|db| {
            let status = status_of(db, &locking, id)?;
            db.execute("UPDATE spool_runs SET cancel = 1 WHERE id = $1", &[id.0.into()])?;
            if status != RunStatus::Running {
                db.execute(
                    "UPDATE spool_runs SET status = 'pending', due_at = $2, updated_at = $2 WHERE id = $1",
                    &[id.0.into(), now.into()],
                )?;
            }
            Ok(())
        })
    }

    /// Which of `runs` have been asked to cancel: one read, no lock (a
    /// worker asks often for the runs it is advancing).
    pub fn cancels_requested(&mut self, runs: &[RunId]) -> Result<Vec<RunId>> {
        let sql = "SELECT id FROM spool_runs WHERE cancel <> 0 AND id IN";
        let rows = query_runs(&mut *self.db, sql, runs)?;
        Ok(rows.iter().map(|row| RunId(row[0].int())).collect())
    }

    /// Every run, or those with `status`, oldest first.
    pub fn runs(&mut self, status: Option<RunStatus>) -> Result<Vec<RunInfo>> {
        let rows = match status {
            Some(status) => self.db.query(
                &format!("SELECT {INFO_COLUMNS} FROM spool_runs WHERE status = $1 ORDER BY id"),
                &[status.as_str().into()],
            )?,
            None => self.db.query(
                &format!("SELECT {INFO_COLUMNS} FROM spool_runs ORDER BY id"),
                &[],
            )?,
        };
        Ok(rows.into_iter().map(info).collect())
    }

    /// How many runs have a `due_at`: pending, running or sleeping, the
    /// runs some worker still has to advance.
    pub fn scheduled(&mut self) -> Result<i64> {
        let rows = self.db.query_fresh(
            "SELECT COUNT(*) FROM spool_runs WHERE due_at IS NOT NULL",
            &[],
        )?;
        Ok(rows.first().map_or(0, |row| row[0].int()))
    }

    /// How many runs have each status.
    pub fn counts(&mut self) -> Result<Vec<(RunStatus, i64)>> {
        let rows = self.db.query(
            "SELECT status, COUNT(*) FROM spool_runs GROUP BY status ORDER BY status",
            &[],
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|row| Some((RunStatus::parse(&row[0].text())?, row[1].int())))
            .collect())
    }

    /// Run `id`.
    pub fn run(&mut self, id: RunId) -> Result<RunInfo> {
        let rows = self.db.query(
            &format!("SELECT {INFO_COLUMNS} FROM spool_runs WHERE id = $1"),
            &[id.0.into()],
        )?;
        rows.into_iter()
            .next()
            .map(info)
            .ok_or(StoreError::NoSuchRun(id))
    }

    /// Run `id`'s saved state and its program's fingerprint.
    pub fn state(&mut self, id: RunId) -> Result<(Vec<u8>, String)> {
        let mut rows = self.db.query(
            "SELECT state, program FROM spool_runs WHERE id = $1",
            &[id.0.into()],
        )?;
        let Some(mut row) = rows.pop() else {
            return Err(StoreError::NoSuchRun(id));
        };
        let program = row[1].text();
        Ok((std::mem::replace(&mut row[0], Cell::Null).blob(), program))
    }

    /// The lines run `id` printed, from line `from` (0 is the first).
    pub fn output(&mut self, id: RunId, from: i64) -> Result<Vec<String>> {
        let rows = self.db.query(
            "SELECT text FROM spool_output WHERE run_id = $1 AND line >= $2 ORDER BY line",
            &[id.0.into(), from.into()],
        )?;
        Ok(rows.into_iter().map(|row| row[0].text()).collect())
    }
}

/// The `due_at` a commit that keeps holding its run writes: the lease's
/// expiry stays as the heartbeats set it.
const KEEP_DUE: i64 = -2;

/// The statement reading a run's row before a commit (locked on
/// PostgreSQL, see [`Store::locking`]).
const COMMIT_LOCKING: &str =
    "SELECT lease, status, output_lines, cancel FROM spool_runs WHERE id = $1";

/// Applies `commits` (their states already sealed) and gives back the
/// unstarted claims of `release`, inside a transaction, in the order of
/// their runs' ids: two transactions writing the same runs (a lost lease's
/// old holder and its new one) lock them in the same order and never
/// deadlock. Returns whether each commit was made, in the order given.
fn apply_writes(
    db: &mut dyn Backend,
    locking: &str,
    commits: Vec<(Lease, Commit)>,
    release: &[Lease],
    now: i64,
) -> Result<Vec<bool>> {
    let mut made = vec![false; commits.len()];
    let mut writes: Vec<(Lease, Option<(usize, Commit)>)> = commits
        .into_iter()
        .enumerate()
        .map(|(n, (lease, commit))| (lease, Some((n, commit))))
        .chain(release.iter().map(|lease| (*lease, None)))
        .collect();
    writes.sort_by_key(|(lease, _)| lease.run);
    for (lease, write) in writes {
        match write {
            Some((n, commit)) => made[n] = apply_commit(db, locking, lease, commit, now)?,
            None => {
                db.execute(
                    "UPDATE spool_runs SET status = 'pending', due_at = $3, lease = 0, \
                     attempts = attempts - 1 WHERE id = $1 AND lease = $2 AND status = 'running'",
                    &[lease.run.0.into(), lease.token.into(), now.into()],
                )?;
            }
        }
    }
    Ok(made)
}

/// Applies one commit (its state already sealed) inside a transaction:
/// false, changing nothing, when `lease` no longer holds the run.
fn apply_commit(
    db: &mut dyn Backend,
    locking: &str,
    lease: Lease,
    commit: Commit,
    now: i64,
) -> Result<bool> {
    let status = commit.status.unwrap_or(RunStatus::Running);
    let state = commit.state;
    let rows = db.query(locking, &[lease.run.0.into()])?;
    let Some(row) = rows.first() else {
        return Ok(false);
    };
    if row[0].int() != lease.token || row[1].text() != "running" {
        return Ok(false);
    }
    let first_line = row[2].int();
    let cancel = row[3].int() != 0;
    let run = lease.run.0;
    for (n, text) in commit.lines.iter().enumerate() {
        db.execute(
            "INSERT INTO spool_output (run_id, line, text) VALUES ($1, $2, $3) \
             ON CONFLICT (run_id, line) DO UPDATE SET text = excluded.text",
            &[
                run.into(),
                (first_line + n as i64).into(),
                text.as_str().into(),
            ],
        )?;
    }
    if let Some(signal) = commit.consumed_signal {
        db.execute(
            "UPDATE spool_signals SET consumed = 1 WHERE run_id = $1 AND id <= $2 AND consumed = 0",
            &[run.into(), signal.into()],
        )?;
    }
    let (status, due_at) = match status {
        RunStatus::Waiting => {
            let after = commit.consumed_signal.unwrap_or(0);
            let answered = !db
                .query(
                    "SELECT id FROM spool_signals WHERE run_id = $1 AND consumed = 0 AND id > $2 LIMIT 1",
                    &[run.into(), after.into()],
                )?
                .is_empty();
            match answered || cancel {
                true => (RunStatus::Pending, Some(now)),
                false => (RunStatus::Waiting, None),
            }
        }
        RunStatus::Sleeping if cancel => (RunStatus::Pending, Some(now)),
        RunStatus::Sleeping | RunStatus::Pending => (status, Some(commit.due_at.unwrap_or(now))),
        RunStatus::Running => (status, Some(KEEP_DUE)),
        RunStatus::Done | RunStatus::Failed | RunStatus::Cancelled => {
            db.execute(
                "DELETE FROM spool_io_results WHERE run_id = $1",
                &[run.into()],
            )?;
            (status, None)
        }
    };
    let held = if status == RunStatus::Running {
        lease.token
    } else {
        0
    };
    let (has_state, state) = match state {
        Some(state) => (1, state),
        None => (0, Vec::new()),
    };
    db.execute(
        "UPDATE spool_runs SET \
         updated_at = CASE WHEN status = $2 THEN updated_at ELSE $3 END, \
         status = $2, due_at = CASE WHEN CAST($4 AS BIGINT) = -2 THEN due_at \
         ELSE NULLIF(CAST($4 AS BIGINT), -1) END, lease = $5, waiting = $6, \
         state = CASE WHEN CAST($7 AS BIGINT) = 1 THEN $8 ELSE state END, \
         steps = steps + 1, output_lines = output_lines + $9, \
         result = NULLIF($10, ''), error = NULLIF($11, '') \
         WHERE id = $1",
        &[
            run.into(),
            status.as_str().into(),
            now.into(),
            due_at.unwrap_or(-1).into(),
            held.into(),
            commit.waiting.as_str().into(),
            has_state.into(),
            state.into(),
            (commit.lines.len() as i64).into(),
            commit.result.unwrap_or_default().into(),
            commit.error.unwrap_or_default().into(),
        ],
    )?;
    Ok(true)
}

/// The I/O results recorded for `runs`, by run and request id.
fn recorded_io_of(
    db: &mut dyn Backend,
    runs: &[RunId],
) -> Result<HashMap<RunId, HashMap<IoId, IoResult>>> {
    let mut recorded: HashMap<RunId, HashMap<IoId, IoResult>> = HashMap::new();
    let sql = "SELECT run_id, request_id, result FROM spool_io_results WHERE run_id IN";
    for mut row in query_runs(db, sql, runs)? {
        let run = RunId(row[0].int());
        let id = IoId(row[1].int() as u64);
        let bytes = std::mem::replace(&mut row[2], Cell::Null).blob();
        let result: IoResult = postcard::from_bytes(&bytes).map_err(|e| {
            StoreError::Invalid(format!("a recorded result of run {run} is damaged: {e}"))
        })?;
        recorded.entry(run).or_default().insert(id, result);
    }
    Ok(recorded)
}

/// The rows of `sql` (a statement ending in `IN`) for the ids of `runs`,
/// at most 16 ids a statement, so there are at most 16 statements to
/// prepare.
fn query_runs(db: &mut dyn Backend, sql: &str, runs: &[RunId]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for chunk in runs.chunks(16) {
        let places: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!("{sql} ({})", places.join(", "));
        let params: Vec<Cell> = chunk.iter().map(|run| run.0.into()).collect();
        rows.extend(db.query(&sql, &params)?);
    }
    Ok(rows)
}

/// Does `lease` still hold its run (locked by `locking`)?
fn holds_row(db: &mut dyn Backend, locking: &str, lease: Lease) -> Result<bool> {
    let rows = db.query(locking, &[lease.run.0.into()])?;
    Ok(rows
        .first()
        .is_some_and(|row| row[0].int() == lease.token && row[1].text() == "running"))
}

/// The status of run `id` (its row locked by `locking`), refusing a run
/// that does not exist or has ended.
fn status_of(db: &mut dyn Backend, locking: &str, id: RunId) -> Result<RunStatus> {
    let rows = db.query(locking, &[id.0.into()])?;
    let Some(row) = rows.first() else {
        return Err(StoreError::NoSuchRun(id));
    };
    let status = RunStatus::parse(&row[0].text()).unwrap_or(RunStatus::Failed);
    if status.is_finished() {
        return Err(StoreError::Finished(id, status));
    }
    Ok(status)
}

/// The fingerprint a program is stored under.
pub fn fingerprint(program: &Program) -> String {
    format!("{:016x}", spool::snapshot::fingerprint(program.bytecode()))
}
