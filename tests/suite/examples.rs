//! The embedding examples, built and run as programs: `embed_basic` reads
//! the `Order` its script returns as a Rust value and the script catches
//! a Rust function's error; `async_host` overlaps ten 100 ms fetches under
//! both kinds of `AsyncDispatcher`; `host_fn_bench` runs its loops a few
//! times (a smoke test, not a measurement); `batch_sql` answers 1 000
//! tasks' lookups with 2 queries and gets the checksum of one query per
//! request; `durable_runner`, killed with SIGKILL at random moments (and
//! made to crash right after a step) and started again until its runs
//! finish, performs every step exactly once.
//!
//! The examples are built once per test run with `cargo build -p
//! spool-examples --example ...` into the same target directory as this
//! test binary, like the `spool` binary in `cli.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::profile_dir;

/// The examples this module runs.
const EXAMPLES: [&str; 6] = [
    "embed_basic",
    "async_host",
    "host_fn_bench",
    "store_worker",
    "batch_sql",
    "durable_runner",
];

/// The exit code `durable_runner` crashes with when asked to.
const CRASH_EXIT_CODE: i32 = 86;

/// Each demo order's steps, as `durable_runner` logs them.
const ORDERS: [&str; 2] = ["A-17", "B-42"];
const STEPS: [&str; 6] = [
    "reserve stock",
    "charge card",
    "notify by email",
    "notify by sms",
    "notify by webhook",
    "ship",
];

#[test]
fn embed_basic_returns_a_rust_value_and_catches_a_host_error() {
    let output = Command::new(example("embed_basic"))
        .output()
        .expect("embed_basic runs");
    let text = successful_stdout(&output);
    let expected = [
        "compile-time check: mismatched types: expected `int`, found `str`",
        "script printed: skipped caviar: NotFound: no price for `caviar`",
        "script printed: 2 lines, total 15.25",
        "the script returned: Order { id: 17, lines: [\
         Line { item: Item { name: \"tea\", price_cents: 350 }, quantity: 2, total_cents: 700 }, \
         Line { item: Item { name: \"scones\", price_cents: 275 }, quantity: 3, total_cents: 825 }\
         ], total_cents: 1525 }",
        "order 17 has 2 lines; the host adds them up to 15.25",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");
}

#[test]
fn async_host_overlaps_the_fetches_under_both_dispatchers() {
    let output = Command::new(example("async_host"))
        .output()
        .expect("async_host runs");
    let text = successful_stdout(&output);
    let printed = values_after(&text, "  script printed: ");
    let pages: Vec<String> = (0..10).map(|n| format!("<page {n}> (")).collect();
    assert_eq!(printed.len(), pages.len(), "{text}");
    for (line, page) in printed.iter().zip(&pages) {
        assert!(line.starts_with(page.as_str()), "{text}");
    }
    assert!(
        text.contains("the script printed the same 10 lines"),
        "{text}"
    );
    let dispatchers = values_after(&text, "  dispatcher: ");
    let expected = [
        "20 requests, answered by 20 futures; view queries: 10",
        "20 requests in 2 batches, answered by 2 futures; view queries: 1",
    ];
    assert_eq!(dispatchers, expected, "{text}");
    // Ten 100 ms fetches one after the other take a second; overlapped,
    // about 100 ms. Leave room for a loaded machine.
    let elapsed = values_after(&text, "  elapsed: ");
    assert_eq!(elapsed.len(), 2, "{text}");
    for line in elapsed {
        let ms: u64 = line
            .split_once(" ms")
            .and_then(|(ms, _)| ms.parse().ok())
            .unwrap_or_else(|| panic!("no time in {line:?}"));
        assert!((100..600).contains(&ms), "{ms} ms: {text}");
    }
}

#[test]
fn host_fn_bench_runs_with_a_few_iterations() {
    let output = Command::new(example("host_fn_bench"))
        .arg("1000")
        .output()
        .expect("host_fn_bench runs");
    let text = successful_stdout(&output);
    for label in ["(a) register_fn", "(b) library native", "(c) I/O operation"] {
        let line = text.lines().find(|l| l.starts_with(label));
        assert!(line.is_some_and(|l| l.contains("calls/s")), "{text}");
    }
    assert!(text.contains("(a) / (b): "), "{text}");
}

#[test]
fn store_worker_submits_parks_answers_and_finishes_runs() {
    let output = Command::new(example("store_worker"))
        .output()
        .expect("store_worker runs");
    let text = successful_stdout(&output);
    for expected in [
        "worker: 3 claimed, 3 parked",
        "run 1 waits on: yield refund ada?",
        "worker: 3 claimed, 3 finished",
        "run 1: done",
        "run 2: done",
        "run 3: done",
        "  linus: kept",
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "no `{expected}` in:\n{text}"
        );
    }
    let refunded = text
        .lines()
        .filter(|l| l.contains(": refunded, receipt "))
        .count();
    assert_eq!(refunded, 2, "{text}");
}

#[test]
fn batch_sql_answers_a_batch_with_one_query_per_operation() {
    let output = Command::new(example("batch_sql"))
        .output()
        .expect("batch_sql runs");
    let text = successful_stdout(&output);
    let queries = values_after(&text, "queries: ");
    assert_eq!(queries, ["2", "2000"], "{text}");
    let checksums = values_after(&text, "checksum: ");
    assert_eq!(checksums.len(), 2, "{text}");
    assert_eq!(checksums[0], checksums[1], "{text}");
    assert!(checksums[0].parse::<i64>().is_ok_and(|n| n > 0), "{text}");
}

#[test]
fn durable_runner_survives_kill_9_at_random_moments() {
    let db = scratch_db("durable_runner_kill");
    let mut random = Random::from_clock();
    let mut history = Vec::new();
    let mut kills = 0;
    // Each process lives up to 200 ms; the runs need more than 600 ms of
    // sleeps (a sleep's deadline holds across restarts), so at least
    // three processes are killed before one finishes.
    for _ in 0..40 {
        let delay = Duration::from_millis(random.below(200));
        let mut child = start_runner(&db, None);
        if wait_up_to(&mut child, delay) {
            history.push(format!("finished within {delay:?}"));
            break;
        }
        child.kill().expect("the runner can be killed");
        let output = child.wait_with_output().expect("the runner is reaped");
        kills += 1;
        history.push(format!(
            "killed after {delay:?}, having printed:\n{}",
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    let history = history.join("\n");
    assert!(kills >= 3, "{kills} kills:\n{history}");
    let output = finish_runner(&db);
    let text = successful_stdout(&output);
    assert_finished_exactly_once(&text, &history);
}

#[test]
fn durable_runner_crashing_after_each_step_repeats_none() {
    let db = scratch_db("durable_runner_crash");
    let mut crashes = 0;
    let mut answered_from_the_table = 0;
    let output = loop {
        let child = start_runner(&db, Some(1));
        let output = child.wait_with_output().expect("the runner finishes");
        if output.status.code() != Some(CRASH_EXIT_CODE) {
            break output;
        }
        crashes += 1;
        let text = String::from_utf8_lossy(&output.stdout);
        answered_from_the_table += text.matches("answered from the table").count();
        assert!(crashes <= 40, "still crashing after 40 restarts:\n{text}");
    };
    let text = successful_stdout(&output);
    // One crash per step: every step but the last of each process's run.
    assert!(crashes >= 12, "{crashes} crashes\n{text}");
    assert!(answered_from_the_table >= 10, "{answered_from_the_table}");
    assert_finished_exactly_once(&text, "");
}

/// Checks the final report of `durable_runner`: both runs done, and the
/// step log holding each demo step exactly once.
#[track_caller]
fn assert_finished_exactly_once(text: &str, history: &str) {
    assert!(text.contains("all runs finished"), "{text}\n{history}");
    for run in 1..=ORDERS.len() {
        let line = format!("  run {run} (order.spl): done");
        assert!(text.lines().any(|l| l == line), "{text}\n{history}");
    }
    let mut performed: BTreeMap<String, usize> = BTreeMap::new();
    for step in step_log(text) {
        *performed.entry(step).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = ORDERS
        .iter()
        .flat_map(|order| {
            STEPS
                .iter()
                .map(move |step| (format!("{order}: {step}"), 1))
        })
        .collect();
    assert_eq!(performed, expected, "{text}\n{history}");
}

/// The steps of the step log `durable_runner` prints at the end
/// (`  7: run 2 request 1: B-42: reserve stock`).
fn step_log(text: &str) -> Vec<String> {
    let log = text.split_once("step log:\n").map_or("", |(_, log)| log);
    log.lines()
        .filter_map(|line| line.splitn(3, ": ").nth(2))
        .map(str::to_string)
        .collect()
}

/// What follows `prefix` on each line that starts with it.
fn values_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .collect()
}

/// Standard output of a program that must have exited with 0.
#[track_caller]
fn successful_stdout(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "exit status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Starts `durable_runner` on `db`, crashing after `crash_after` steps if
/// given.
fn start_runner(db: &Path, crash_after: Option<u32>) -> Child {
    let mut command = Command::new(example("durable_runner"));
    command
        .arg(db)
        .env_remove("DURABLE_RUNNER_CRASH_AFTER_STEPS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(steps) = crash_after {
        command.env("DURABLE_RUNNER_CRASH_AFTER_STEPS", steps.to_string());
    }
    command.spawn().expect("durable_runner starts")
}

/// Runs `durable_runner` on `db` until it ends by itself (killing it after
/// 30 s, when something is wrong).
fn finish_runner(db: &Path) -> Output {
    let mut child = start_runner(db, None);
    if !wait_up_to(&mut child, Duration::from_secs(30)) {
        let _ = child.kill();
    }
    child.wait_with_output().expect("the runner is reaped")
}

/// Waits until `child` exits or `limit` passes; true if it exited. Its
/// output stays in the pipes (the runner prints a few kilobytes at most).
fn wait_up_to(child: &mut Child, limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        if child
            .try_wait()
            .expect("the runner can be waited for")
            .is_some()
        {
            return true;
        }
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(Duration::from_millis(5)));
    }
}

/// A fresh directory for a test's database; returns the database's path.
fn scratch_db(test: &str) -> PathBuf {
    let dir = profile_dir().join("spool-example-tests").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create a scratch directory");
    dir.join("runs.db")
}

/// A small xorshift generator seeded from the clock: kill moments differ
/// from one test run to the next.
struct Random(u64);

impl Random {
    fn from_clock() -> Random {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos() as u64);
        Random(nanos | 1)
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// The example program `name`, every example built on first use.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(build_examples);
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    profile_dir().join("examples").join(file)
}

fn build_examples() {
    let mut args = vec!["-p", "spool-examples"];
    for name in EXAMPLES {
        args.extend(["--example", name]);
    }
    crate::cli::cargo_build(&args);
}
