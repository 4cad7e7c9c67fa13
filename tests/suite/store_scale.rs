//! Run stores at scale, on SQLite (files in a temporary directory) and on
//! PostgreSQL (fresh databases on the suite's shared throwaway cluster,
//! `pg_cluster.rs`); each scenario is one function of its stores' URLs,
//! with a `_sqlite` and a `_postgres` test.
//!
//! - Racing workers: 1 000 short runs and 4 `spool worker --until-idle`
//!   processes started at once. Each run's one side effect (an `exec`
//!   appending its id to a file) happens exactly once; each run is claimed
//!   once, commits its two steps and prints its line once; no worker loses
//!   a lease.
//! - Many suspensions: 10 000 runs, each parked three times on a durable
//!   timer (`sleep(1100)`, past the worker's `hold_timers_below` of 1 s, so
//!   it is written back `sleeping` and claimed again when due), across 4
//!   worker processes, within 60 s from the first submit: none lost, none
//!   claimed more than its four times or committing a step more than its
//!   four, each printing exactly its lines.
//! - Waiting runs cost nothing: claims of due runs are timed in two stores
//!   in turns, one also holding 100 000 runs waiting at a `yield` (they
//!   have no `due_at`, which the claim's index leaves out; its connection
//!   claimed before they came, as a long-running worker's would have): the
//!   median claim beside them is within three times the other's.
//!
//! The scenarios take turns (one lock), so each one's timing is its own on
//! a two-core machine; each prints its figures (`--nocapture`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use spool_store::backend::Backend;
use spool_store::{RunId, RunInfo, RunStatus, Store};

use crate::cli::spool_binary;
use crate::pg_cluster;

/// One scenario at a time: they measure time and use both cores.
static TURN: Mutex<()> = Mutex::new(());

/// A scenario: the URLs of its stores (empty) and a directory of its own.
type Scenario = fn(&[String], &Path);

/// Runs `scenario` on `stores` SQLite files in a temporary directory.
fn on_sqlite(test: &str, stores: usize, scenario: Scenario) {
    // Built (when it must be) before anything is timed.
    spool_binary();
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let dir = TempDir::new(test);
    let urls: Vec<String> = (0..stores)
        .map(|n| {
            dir.0
                .join(format!("runs{n}.db"))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    scenario(&urls, &dir.0);
    drop(dir);
    eprintln!("{test}: {:.2?} in all", started.elapsed());
}

/// Runs `scenario` on `stores` new databases of the shared PostgreSQL
/// cluster (skipped when PostgreSQL is not installed).
fn on_postgres(test: &str, stores: usize, scenario: Scenario) {
    let Some(cluster) = pg_cluster::shared(test) else {
        return;
    };
    spool_binary();
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let urls: Vec<String> = (0..stores)
        .map(|_| pg_cluster::fresh_database(cluster, test))
        .collect();
    let dir = TempDir::new(test);
    scenario(&urls, &dir.0);
    drop(dir);
    eprintln!("{test}: {:.2?} in all", started.elapsed());
}

/// A directory under the system's temporary directory, removed when
/// dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("spool-store-scale-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Worker processes, killed when dropped before they end.
struct Workers(Vec<Child>);

impl Workers {
    /// Starts `count` `spool worker --until-idle` processes on `url`, in
    /// `dir`, at once.
    fn start(url: &str, dir: &Path, count: usize) -> Workers {
        let children = (0..count)
            .map(|n| {
                Command::new(spool_binary())
                    .args(["worker", "--until-idle", "--store", url, "--name"])
                    .arg(format!("w{n}"))
                    .current_dir(dir)
                    .env_remove("SPOOL_STORE")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("cannot start `spool worker`")
            })
            .collect();
        Workers(children)
    }

    /// Waits for every worker to end (at most `limit`), each successfully;
    /// returns what each printed on stderr (its counts).
    fn wait(mut self, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut reports = Vec::new();
        while let Some(mut child) = self.0.pop() {
            loop {
                if child
                    .try_wait()
                    .expect("cannot wait for a worker")
                    .is_some()
                {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("a worker did not end within {limit:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let output = child
                .wait_with_output()
                .expect("cannot read a worker's output");
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(
                output.status.success(),
                "a worker failed ({}):\n{stderr}",
                output.status
            );
            reports.push(stderr.trim().to_string());
        }
        reports
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A direct connection to the store's database, for bulk reads and the
/// rows of the last scenario.
fn database(url: &str) -> Box<dyn Backend> {
    if url.starts_with("postgres://") {
        Box::new(spool_store::postgres::Postgres::connect(url).expect("connects"))
    } else {
        Box::new(spool_store::sqlite::Sqlite::open(url).expect("opens"))
    }
}

/// Every line every run printed, by run, in order.
fn all_output(url: &str) -> HashMap<i64, Vec<String>> {
    let rows = database(url)
        .query(
            "SELECT run_id, line, text FROM spool_output ORDER BY run_id, line",
            &[],
        )
        .expect("reads the output");
    let mut output: HashMap<i64, Vec<String>> = HashMap::new();
    for row in rows {
        let lines = output.entry(row[0].int()).or_default();
        assert_eq!(
            row[1].int(),
            lines.len() as i64,
            "a gap in run {}'s output",
            row[0].int()
        );
        lines.push(row[2].text());
    }
    output
}

/// Submits one run of `source` (as `name`) per argument list, in one
/// transaction, as `spool submit` would (compiled by the command line's
/// engine, no flags), returning their ids in order.
fn submit_all(store: &mut Store, name: &str, source: &str, args: Vec<Vec<String>>) -> Vec<RunId> {
    let program = spool_cli::engine().compile(name, source).expect("compiles");
    store
        .submit_many(&program, name, source, args, "[]")
        .expect("submits")
}

/// The runs' ids as their one argument: `["1"]`, `["2"]`, ...
fn numbered(count: usize) -> Vec<Vec<String>> {
    (1..=count).map(|n| vec![n.to_string()]).collect()
}

/// Checks that every run in `runs` is done, was claimed `claims` times,
/// committed `steps` steps and printed `lines(arg)`, and nothing else
/// is in the store.
fn check_runs(
    url: &str,
    runs: &[RunInfo],
    count: usize,
    claims: i64,
    steps: i64,
    lines: impl Fn(&str) -> Vec<String>,
) {
    assert_eq!(runs.len(), count, "runs in the store");
    let output = all_output(url);
    let mut problems = Vec::new();
    for run in runs {
        let arg = run.args.first().cloned().unwrap_or_default();
        let printed = output.get(&run.id.0).cloned().unwrap_or_default();
        if run.status != RunStatus::Done
            || run.attempts != claims
            || run.steps != steps
            || printed != lines(&arg)
            || run.output_lines != printed.len() as i64
        {
            problems.push(format!(
                "run {} ({arg}): {}, claimed {} times, {} steps, printed {printed:?}{}",
                run.id,
                run.status,
                run.attempts,
                run.steps,
                run.error
                    .as_deref()
                    .map(|e| format!(", error {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    let shown = problems.len().min(10);
    assert!(
        problems.is_empty(),
        "{} of {count} runs are not as expected (want done, claimed {claims} times, {steps} steps):\n{}",
        problems.len(),
        problems[..shown].join("\n")
    );
    assert_eq!(output.len(), count, "runs with output");
}

/// The runs each worker claimed, from its report `worker: C claimed, F
/// finished, P parked, L lost`; checks that none lost a lease.
fn claimed(reports: &[String]) -> Vec<u64> {
    reports
        .iter()
        .map(|report| {
            let line = report.lines().last().unwrap_or_default();
            let counts: Vec<u64> = line
                .strip_prefix("worker: ")
                .unwrap_or_default()
                .split(", ")
                .filter_map(|part| part.split(' ').next()?.parse().ok())
                .collect();
            let [claimed, _, _, lost] = counts[..] else {
                panic!("not a worker's report: {report}");
            };
            assert_eq!(lost, 0, "a worker lost leases: {report}");
            claimed
        })
        .collect()
}

// --- Racing workers ------------------------------------------------------

const RACE_RUNS: usize = 1_000;
const RACE_WORKERS: usize = 4;

/// Each run's one effect: its id appended to `effects.log` by a process.
const RACE_SCRIPT: &str = "\
let id = args()[0]
let out = exec(\"sh\", [\"-c\", \"echo ${id} >> effects.log\"])
print(\"${id} ran, exit ${out.code}\")
";

fn racing_workers(urls: &[String], dir: &Path) {
    let url = &urls[0];
    let started = Instant::now();
    let mut store = Store::open(url).expect("opens");
    submit_all(&mut store, "race.spl", RACE_SCRIPT, numbered(RACE_RUNS));
    let submitted = started.elapsed();
    let reports = Workers::start(url, dir, RACE_WORKERS).wait(Duration::from_secs(120));
    let worked = started.elapsed() - submitted;
    let runs = store.runs(None).expect("lists");
    // exec, then done: the checkpoint before the exec and the end.
    check_runs(url, &runs, RACE_RUNS, 1, 2, |id| {
        vec![format!("{id} ran, exit 0")]
    });
    let log = std::fs::read_to_string(dir.join("effects.log")).expect("the effects");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in log.lines() {
        *seen.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "effects not exactly once: {twice:?}");
    assert_eq!(seen.len(), RACE_RUNS, "runs whose effect happened");
    let claims = claimed(&reports);
    assert_eq!(
        claims.iter().sum::<u64>(),
        RACE_RUNS as u64,
        "claims: {reports:?}"
    );
    let mut by_worker: HashMap<String, usize> = HashMap::new();
    for run in &runs {
        *by_worker.entry(run.worker.clone()).or_default() += 1;
    }
    assert!(
        by_worker.len() >= 2,
        "the workers did not race: {by_worker:?}"
    );
    eprintln!(
        "racing workers ({}): {RACE_RUNS} runs submitted in {submitted:.2?}, done by {RACE_WORKERS} \
         workers in {worked:.2?}; runs per worker {claims:?}",
        store_kind(url)
    );
}

#[test]
fn store_scale_racing_workers_sqlite() {
    on_sqlite("racing_sqlite", 1, racing_workers);
}

#[test]
fn store_scale_racing_workers_postgres() {
    on_postgres("store_scale_racing_workers_postgres", 1, racing_workers);
}

fn store_kind(url: &str) -> &'static str {
    if url.starts_with("postgres://") {
        "PostgreSQL"
    } else {
        "SQLite"
    }
}

// --- Many suspensions ----------------------------------------------------

const TIMER_RUNS: usize = 10_000;
const TIMER_WORKERS: usize = 4;
const TIMER_BUDGET: Duration = Duration::from_secs(60);

/// Three durable timers: each parks the run `sleeping` for 1.1 s, so
/// every run is claimed four times.
const TIMER_SCRIPT: &str = "\
let id = args()[0]
print(\"${id} 0\")
for i in 1..4 {
  sleep(1100)
  print(\"${id} ${i}\")
}
";

fn many_suspensions(urls: &[String], dir: &Path) {
    let url = &urls[0];
    let started = Instant::now();
    let mut store = Store::open(url).expect("opens");
    submit_all(&mut store, "timers.spl", TIMER_SCRIPT, numbered(TIMER_RUNS));
    let submitted = started.elapsed();
    let reports = Workers::start(url, dir, TIMER_WORKERS).wait(TIMER_BUDGET * 2);
    let elapsed = started.elapsed();
    let runs = store.runs(None).expect("lists");
    let steps: i64 = runs.iter().map(|r| r.steps).sum();
    let claims = claimed(&reports);
    eprintln!(
        "many suspensions ({}): {TIMER_RUNS} runs x 3 timers submitted in {submitted:.2?}, all \
         done in {elapsed:.2?} ({steps} steps, {:.0} steps/s); claims per worker {claims:?}",
        store_kind(url),
        steps as f64 / (elapsed - submitted).as_secs_f64(),
    );
    assert_eq!(
        claims.iter().sum::<u64>(),
        4 * TIMER_RUNS as u64,
        "claims: {reports:?}"
    );
    // Claimed four times; written back three times `sleeping`, then done.
    check_runs(url, &runs, TIMER_RUNS, 4, 4, |id| {
        (0..4).map(|i| format!("{id} {i}")).collect()
    });
    assert!(
        elapsed <= TIMER_BUDGET,
        "took {elapsed:.2?}, over {TIMER_BUDGET:?}"
    );
}

#[test]
fn store_scale_many_suspensions_sqlite() {
    on_sqlite("suspensions_sqlite", 1, many_suspensions);
}

#[test]
fn store_scale_many_suspensions_postgres() {
    on_postgres("store_scale_many_suspensions_postgres", 1, many_suspensions);
}

// --- Waiting runs cost nothing -------------------------------------------

const WAITING_RUNS: usize = 100_000;
/// Claims timed in each store.
const TIMED_CLAIMS: usize = 200;
/// Claims made in the crowded store before it fills up, so its connection
/// has planned them while it was small (as a worker started early has).
const EARLY_CLAIMS: usize = 10;

const WAITING_SCRIPT: &str = "let answer: str = yield \"approve?\"\nprint(answer)\n";
const DUE_SCRIPT: &str = "print(\"due\")\n";

/// The columns of a run copied from another, all but its id.
const RUN_COLUMNS: &str = "program, script, args, policy, status, waiting, due_at, lease, worker, \
     attempts, cancel, steps, output_lines, state, result, error, created_at, updated_at";

/// Claims one due run of `store`, which must not be one of `waiting`;
/// how long that took.
fn time_claim(store: &mut Store, waiting: &[RunId]) -> Duration {
    let started = Instant::now();
    let claims = store
        .claim("timer", 1, Duration::from_secs(3600))
        .expect("claims");
    let took = started.elapsed();
    assert_eq!(claims.len(), 1, "a due run is claimed");
    let id = claims[0].lease.run;
    assert!(!waiting.contains(&id), "run {id} was claimed: it waits");
    took
}

/// Two stores, one with nothing but due runs, the other with
/// `WAITING_RUNS` runs waiting at a `yield` beside as many due ones; their
/// claims are timed in turns, so a busy machine slows both alike.
fn waiting_runs_cost_nothing(urls: &[String], dir: &Path) {
    let mut plain = Store::open(&urls[0]).expect("opens");
    let mut crowded = Store::open(&urls[1]).expect("opens");
    // One run waiting at its `yield`, as a worker leaves it.
    let first = submit_all(&mut crowded, "approve.spl", WAITING_SCRIPT, vec![vec![]])[0];
    Workers::start(&urls[1], dir, 1).wait(Duration::from_secs(60));
    let template = crowded.run(first).expect("the run");
    assert_eq!(template.status, RunStatus::Waiting, "{template:?}");
    assert_eq!(template.due_at, None);
    let due = numbered(TIMED_CLAIMS + EARLY_CLAIMS);
    submit_all(&mut crowded, "due.spl", DUE_SCRIPT, due.clone());
    for _ in 0..EARLY_CLAIMS {
        time_claim(&mut crowded, &[first]);
    }

    // 99 999 more like it, in one statement.
    let copied = Instant::now();
    let copies = WAITING_RUNS - 1;
    database(&urls[1])
        .execute(
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {copies}) \
                 INSERT INTO spool_runs ({RUN_COLUMNS}) SELECT {RUN_COLUMNS} FROM spool_runs, n \
                 WHERE spool_runs.id = {first}"
            ),
            &[],
        )
        .expect("copies the waiting run");
    let copied = copied.elapsed();
    let counts = crowded.counts().expect("counts");
    assert!(
        counts.contains(&(RunStatus::Waiting, WAITING_RUNS as i64)),
        "{counts:?}"
    );
    let waiting: Vec<RunId> = crowded
        .runs(Some(RunStatus::Waiting))
        .expect("lists")
        .iter()
        .map(|run| run.id)
        .collect();

    submit_all(&mut plain, "due.spl", DUE_SCRIPT, due);
    let mut without = Vec::with_capacity(TIMED_CLAIMS);
    let mut with = Vec::with_capacity(TIMED_CLAIMS);
    for _ in 0..TIMED_CLAIMS {
        without.push(time_claim(&mut plain, &[]));
        with.push(time_claim(&mut crowded, &waiting));
    }
    without.sort();
    with.sort();
    let median = |times: &[Duration]| times[times.len() / 2];
    let p90 = |times: &[Duration]| times[times.len() * 9 / 10];
    eprintln!(
        "claims ({}): median {:.2?}, p90 {:.2?} beside {WAITING_RUNS} waiting runs (copied in \
         {copied:.2?}); median {:.2?}, p90 {:.2?} in a store without them",
        store_kind(&urls[0]),
        median(&with),
        p90(&with),
        median(&without),
        p90(&without)
    );
    // Three times, and a millisecond for the noise of a shared machine.
    let limit = median(&without) * 3 + Duration::from_millis(1);
    assert!(
        median(&with) <= limit,
        "a claim beside {WAITING_RUNS} waiting runs takes {:.2?} (median), over {limit:.2?}",
        median(&with)
    );
}

#[test]
fn store_scale_waiting_runs_cost_nothing_sqlite() {
    on_sqlite("waiting_sqlite", 2, waiting_runs_cost_nothing);
}

#[test]
fn store_scale_waiting_runs_cost_nothing_postgres() {
    on_postgres(
        "store_scale_waiting_runs_cost_nothing_postgres",
        2,
        waiting_runs_cost_nothing,
    );
}
