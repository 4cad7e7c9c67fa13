//! The run store under crashes and races, through the real `spool`
//! binary, each scenario on SQLite (a file) and on PostgreSQL (a fresh
//! database on the shared cluster; a dedicated cluster where the server
//! is restarted): workers killed with SIGKILL at random moments (no step
//! lost, no recorded I/O performed again, duplicates only of requests in
//! flight at a kill), a worker frozen past its lease (its writes change
//! nothing once it wakes), `send` racing the commit that parks a run at
//! its `yield`, `cancel` of sleeping and running runs and of loops that
//! never wait, a durable timer across a restart of the worker and the
//! database, a worker that keeps working across a restart of the database,
//! the store commands' output and exit codes, and a program of several
//! files run as it was submitted.
//!
//! Effects are made observable by `exec("sh", ...)` appending a line to a
//! log file: the performance's start time (ns) is both written to the
//! log and returned to the run, which prints it, so the log tells which
//! performance of a request the run received (the recorded one) and
//! whether any was started after it.
#![cfg(unix)]

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use spool_store::{now_ms, RunId, RunInfo, RunStatus, Store};
use spool_tests::XorShift;

use crate::cli::{scratch, spool_binary, stderr, stdout};
use crate::cli_security::finish_within;
use crate::pg_cluster;

// ---------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------

/// A scratch directory of this test process (two test processes running
/// the same test must not share a log or a SQLite file), removed when the
/// test passes, kept for a look when it fails.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        Scratch(scratch(&format!("{test}-{}", std::process::id()), &[]))
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A scratch directory for `test` and the URL of a SQLite store in it.
fn sqlite_store(test: &str) -> (Scratch, String) {
    let dir = Scratch::new(test);
    let url = dir.join("runs.db").to_string_lossy().into_owned();
    (dir, url)
}

/// A scratch directory for `test` and a fresh database on the shared
/// cluster; `None` when PostgreSQL is not installed (reported).
fn postgres_store(test: &str) -> Option<(Scratch, String)> {
    let cluster = pg_cluster::shared(test)?;
    let url = pg_cluster::fresh_database(cluster, test);
    Some((Scratch::new(test), url))
}

/// `ARGS` with `--store URL` added after the options (before `--`): `spool
/// inspect` takes a run id only as its first argument.
fn with_store<'a>(args: &[&'a str], url: &'a str) -> Vec<&'a str> {
    let at = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let mut all = args[..at].to_vec();
    all.extend(["--store", url]);
    all.extend(&args[at..]);
    all
}

/// `spool COMMAND ARGS --store URL` in `dir`, failing the test after 30 s.
#[track_caller]
fn cli(dir: &Path, url: &str, command: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(spool_binary());
    cmd.arg(command)
        .args(with_store(args, url))
        .current_dir(dir)
        .env_remove("SPOOL_STORE")
        .env_remove("RUST_BACKTRACE");
    finish_within(&mut cmd, &format!("spool {command} {}", args.join(" ")), 30)
}

/// Asserts `output` exited with `code`, showing what it printed.
#[track_caller]
fn expect_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: exit status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// A child process (a worker, `logs --follow`) killed with SIGKILL when
/// dropped, so a failing test leaves none behind.
struct Proc {
    child: Child,
    what: String,
    /// Where its stderr goes.
    errors: PathBuf,
}

impl Proc {
    /// Starts `spool COMMAND --store URL ARGS` in `dir`, stdout to
    /// `stdout` (or nowhere), stderr to `dir/NAME.err`.
    fn start(dir: &Path, url: &str, name: &str, command: &str, args: &[&str]) -> Proc {
        Proc::start_with(dir, url, name, command, args, Stdio::null())
    }

    fn start_with(
        dir: &Path,
        url: &str,
        name: &str,
        command: &str,
        args: &[&str],
        out: Stdio,
    ) -> Proc {
        let errors = dir.join(format!("{name}.err"));
        let child = Command::new(spool_binary())
            .arg(command)
            .args(with_store(args, url))
            .current_dir(dir)
            .env_remove("SPOOL_STORE")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(File::create(&errors).expect("create a stderr file"))
            .spawn()
            .expect("cannot start the spool binary");
        Proc {
            child,
            what: format!("spool {command} {} ({name})", args.join(" ")),
            errors,
        }
    }

    /// A worker named `name` with `flags`.
    fn worker(dir: &Path, url: &str, name: &str, flags: &[&str]) -> Proc {
        let mut args = vec!["--name", name];
        args.extend_from_slice(flags);
        Proc::start(dir, url, name, "worker", &args)
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`) with `kill(1)`.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -s {signal} {} failed", self.what);
    }

    /// SIGKILL, and waits for it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Has it exited?
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for a child")
    }

    /// Waits for it to exit by itself, failing the test after `seconds`.
    #[track_caller]
    fn wait(&mut self, seconds: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "`{}` did not exit within {seconds} s; stderr:\n{}",
                self.what,
                self.errors()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it wrote to stderr so far.
    fn errors(&self) -> String {
        std::fs::read_to_string(&self.errors).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `done` every 20 ms, failing the test with `what` (and whatever
/// `describe` says then) after `seconds`.
#[track_caller]
fn wait_until(
    seconds: f64,
    what: &str,
    mut done: impl FnMut() -> bool,
    describe: impl Fn() -> String,
) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {seconds} s waiting for {what}\n{}",
            describe()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens the store, retrying briefly (a PostgreSQL server just restarted).
fn open(url: &str) -> Store {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Store::open(url) {
            Ok(store) => return store,
            Err(e) if Instant::now() < deadline => {
                eprintln!("opening {url}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("cannot open the store {url}: {e}"),
        }
    }
}

/// Submits `source` (as `name`) with `args`, as `spool submit` does.
fn submit(store: &mut Store, name: &str, source: &str, args: &[&str]) -> RunId {
    let program = spool_cli::engine()
        .compile(name, source)
        .unwrap_or_else(|e| panic!("{name} does not compile: {}", e.render()));
    let args = args.iter().map(|a| a.to_string()).collect();
    store
        .submit(&program, name, source, args, "[]")
        .expect("submit")
}

fn info(store: &mut Store, id: RunId) -> RunInfo {
    store.run(id).expect("the run exists")
}

/// Every run, one line each, for failure messages.
fn describe_runs(url: &str) -> String {
    let Ok(mut store) = Store::open(url) else {
        return format!("(the store {url} does not open)");
    };
    let runs = store.runs(None).unwrap_or_default();
    let mut text = String::from("runs:\n");
    for run in runs {
        text.push_str(&format!(
            "  {} {} {} waiting={:?} attempts={} steps={} lines={} error={:?}\n",
            run.id,
            run.script,
            run.status,
            run.waiting,
            run.attempts,
            run.steps,
            run.output_lines,
            run.error
        ));
    }
    text
}

/// Now in ns since the Unix epoch, the clock `date +%s%N` reads.
fn nanos_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------
// Effects: `sh` appends `TAG NAME START END` to a log and returns START.
// ---------------------------------------------------------------------

/// The Spool function performing effect `name` of run `tag`: one line
/// appended to the log `log` by `sh`, with the start and end of this
/// performance in ns; the run gets the start back.
const EFFECT_FN: &str = r#"
fn effect(log: str, tag: str, name: str) -> str {
  let out = exec("sh", ["-c", "s=$(date +%s%N); echo $2 $3 $s $(date +%s%N) >> $1; printf %s $s", "sh", log, tag, name])
  if out.code != 0 {
    throw Error(kind: "Effect", message: out.stderr)
  }
  return out.stdout
}
"#;

/// One performance of an effect, as logged.
#[derive(Clone, Copy, Debug)]
struct Performance {
    start: u128,
    end: u128,
}

/// The log's performances, by (tag, effect name), in the log's order.
fn read_effects(log: &Path) -> HashMap<(String, String), Vec<Performance>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut effects: HashMap<(String, String), Vec<Performance>> = HashMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let [tag, name, start, end] = parts[..] else {
            panic!("a damaged log line {line:?} in:\n{text}");
        };
        let parse = |n: &str| -> u128 {
            n.parse()
                .unwrap_or_else(|_| panic!("bad time in log line {line:?}"))
        };
        effects
            .entry((tag.to_string(), name.to_string()))
            .or_default()
            .push(Performance {
                start: parse(start),
                end: parse(end),
            });
    }
    effects
}

// ---------------------------------------------------------------------
// 1. Workers killed with SIGKILL at random moments
// ---------------------------------------------------------------------

/// One run of the kill test: steps with effects and short (held) sleeps,
/// three spawned tasks with effects (two at once), a long sleep (the run
/// is parked `sleeping`), more steps, and a top-level `defer`.
fn kill_script() -> String {
    format!(
        "{EFFECT_FN}
let tag = args()[0]
let log = args()[1]
defer print(\"${{tag}} defer\")
print(\"${{tag}} begin\")
for i in 0..3 {{
  let got = effect(log, tag, \"step${{i}}\")
  print(\"${{tag}} step${{i}} ${{got}}\")
  sleep(120)
}}
let tasks = [0, 1, 2].map(fn(j) => spawn (fn() -> str {{
  if j == 2 {{
    sleep(60)
  }}
  return effect(log, tag, \"task${{j}}\")
}})())
for j in 0..3 {{
  let got = await tasks[j]
  print(\"${{tag}} task${{j}} ${{got}}\")
}}
sleep(1100)
for i in 3..5 {{
  let got = effect(log, tag, \"step${{i}}\")
  print(\"${{tag}} step${{i}} ${{got}}\")
  sleep(80)
}}
print(\"${{tag}} end\")
"
    )
}

/// The effects of one kill-test run, in the order it prints them.
const KILL_EFFECTS: [&str; 8] = [
    "step0", "step1", "step2", "task0", "task1", "task2", "step3", "step4",
];

/// Runs in flight at once per worker, and requests in flight at once per
/// run (the three tasks' effects): what one kill can interrupt.
const KILL_CONCURRENCY: usize = 2;
const MAX_REQUESTS_PER_RUN: usize = 3;

fn workers_killed_at_random_moments(dir: &Path, url: &str, seed: u64) {
    const RUNS: usize = 6;
    const KILLS: usize = 18;
    let log = dir.join("effects.log");
    let log_text = log.to_string_lossy().into_owned();
    let source = kill_script();
    let mut store = open(url);
    let tags: Vec<String> = (0..RUNS).map(|n| format!("r{n}")).collect();
    let ids: Vec<RunId> = tags
        .iter()
        .map(|tag| submit(&mut store, "kill.spl", &source, &[tag, &log_text]))
        .collect();

    let concurrency = KILL_CONCURRENCY.to_string();
    let flags = ["--concurrency", &concurrency, "--lease", "0.5"];
    let mut rng = XorShift::new(seed);
    let mut kills_while_busy = 0;
    let mut kill_times = Vec::new();
    let started = Instant::now();
    for round in 0..KILLS {
        let mut worker = Proc::worker(dir, url, &format!("killed-{round}"), &flags);
        std::thread::sleep(ms(20 + rng.below(281) as u64));
        let busy = store
            .runs(None)
            .expect("runs")
            .iter()
            .any(|run| !run.status.is_finished());
        if let Some(status) = worker.exited() {
            panic!(
                "worker {round} exited by itself ({status}):\n{}",
                worker.errors()
            );
        }
        kill_times.push(nanos_now());
        worker.kill();
        kills_while_busy += usize::from(busy);
    }
    let last_kill = *kill_times.last().expect("killed");
    let killing = started.elapsed();
    let last_flags = [&flags[..], &["--until-idle"][..]].concat();
    let mut last = Proc::worker(dir, url, "last", &last_flags);
    let status = last.wait(60);
    assert!(
        status.success(),
        "the last worker failed:\n{}",
        last.errors()
    );
    eprintln!(
        "{url}: {KILLS} kills in {killing:?}, {kills_while_busy} with runs unfinished; \
         the last worker: {}",
        last.errors().trim()
    );
    assert!(
        kills_while_busy >= 5,
        "only {kills_while_busy} kills hit unfinished runs: the test tested little\n{}",
        describe_runs(url)
    );

    let last_lost_none = last.errors().contains(" 0 lost");
    let effects = read_effects(&log);
    let mut duplicates = Vec::new();
    for (tag, id) in tags.iter().zip(&ids) {
        let run = info(&mut store, *id);
        assert_eq!(
            run.status,
            RunStatus::Done,
            "run {tag} ({id}) did not finish: {run:?}\n{}",
            describe_runs(url)
        );
        // What it printed: every line once, in order, each effect with the
        // start of the performance it received.
        let lines = store.output(*id, 0).expect("output");
        let shown = cli(dir, url, "logs", &[&id.to_string()]);
        expect_exit(&shown, 0, "spool logs");
        assert_eq!(
            stdout(&shown),
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
            "`spool logs {id}` is not what the store holds"
        );
        let mut expected = vec![format!("{tag} begin")];
        expected.extend(KILL_EFFECTS.iter().map(|name| format!("{tag} {name} *")));
        expected.push(format!("{tag} end"));
        expected.push(format!("{tag} defer"));
        let pattern: Vec<String> = lines
            .iter()
            .map(|line| match line.rsplit_once(' ') {
                Some((head, last)) if last.bytes().all(|b| b.is_ascii_digit()) => {
                    format!("{head} *")
                }
                _ => line.clone(),
            })
            .collect();
        assert_eq!(
            pattern, expected,
            "run {tag} printed lines lost, repeated or out of order:\n{lines:#?}"
        );
        for (name, line) in KILL_EFFECTS.iter().zip(&lines[1..]) {
            let received: u128 = line
                .rsplit_once(' ')
                .and_then(|(_, n)| n.parse().ok())
                .expect("a start time");
            let performed = effects
                .get(&(tag.clone(), name.to_string()))
                .unwrap_or_else(|| panic!("effect {tag} {name} never happened"));
            let recorded = performed
                .iter()
                .find(|p| p.start == received)
                .unwrap_or_else(|| {
                    panic!(
                        "run {tag} received {name} started at {received}, which the log does not \
                         hold: {performed:?}"
                    )
                });
            // A performance started after the recorded one ended would be a
            // recorded request performed again.
            if let Some(again) = performed.iter().find(|p| p.start > recorded.end) {
                panic!(
                    "effect {tag} {name} was performed again (started {}) after the performance \
                     the run received (ended {}): {performed:?}",
                    again.start, recorded.end
                );
            }
            // Every performance but the recorded one was cut off by a kill:
            // none began after the last kill (give a process forked just
            // before it time to start), unless the last worker lost a lease
            // (a heartbeat late on a loaded machine): then its requests in
            // flight were issued again too.
            if let Some(late) = performed.iter().find(|p| {
                last_lost_none && p.start != recorded.start && p.start > last_kill + 1_000_000_000
            }) {
                panic!(
                    "effect {tag} {name} was performed twice by the last worker, which was \
                     never killed ({late:?}): {performed:?}"
                );
            }
            if performed.len() > 1 {
                duplicates.push(format!("{tag} {name} x{}", performed.len()));
            }
        }
    }
    let extra: usize = effects.values().map(|p| p.len() - 1).sum();
    assert_eq!(
        effects.len(),
        RUNS * KILL_EFFECTS.len(),
        "unexpected effects in the log: {:?}",
        effects.keys().collect::<Vec<_>>()
    );
    eprintln!("{url}: {extra} effect(s) performed twice (in flight at a kill): {duplicates:?}");
    let bound = KILLS * KILL_CONCURRENCY * MAX_REQUESTS_PER_RUN;
    assert!(
        extra <= bound,
        "{extra} effects repeated, more than {KILLS} kills could interrupt ({bound}): \
         {duplicates:?}"
    );
}

#[test]
fn workers_killed_at_random_moments_sqlite() {
    let (dir, url) = sqlite_store("store_kill_sqlite");
    workers_killed_at_random_moments(&dir, &url, 0x5EED_0001);
}

#[test]
fn workers_killed_at_random_moments_postgres() {
    let Some((dir, url)) = postgres_store("store_kill_postgres") else {
        return;
    };
    workers_killed_at_random_moments(&dir, &url, 0x5EED_0002);
}

// ---------------------------------------------------------------------
// 2. A worker frozen past its lease
// ---------------------------------------------------------------------

fn frozen_worker_changes_nothing(dir: &Path, url: &str) {
    let log = dir.join("effects.log");
    let log_text = log.to_string_lossy().into_owned();
    let source = format!(
        "{EFFECT_FN}
let log = args()[0]
let a = effect(log, \"f\", \"a\")
print(\"a ${{a}}\")
sleep(700)
let b = effect(log, \"f\", \"b\")
print(\"b ${{b}}\")
sleep(100)
let c = effect(log, \"f\", \"c\")
print(\"c ${{c}}\")
"
    );
    let mut store = open(url);
    let id = submit(&mut store, "frozen.spl", &source, &[&log_text]);
    let mut first = Proc::worker(dir, url, "first", &["--lease", "1", "--until-idle"]);
    // "a" is committed with the state that waits in `sleep(700)`: the
    // first worker holds the run there when it is frozen.
    wait_until(
        20.0,
        "the first worker to commit line a",
        || info(&mut store, id).output_lines >= 1,
        || describe_runs(url),
    );
    first.signal("STOP");
    let frozen_at = Instant::now();
    let mut second = Proc::worker(dir, url, "second", &["--lease", "5", "--until-idle"]);
    let status = second.wait(30);
    assert!(status.success(), "second worker: {}", second.errors());
    assert!(
        second
            .errors()
            .contains("worker: 1 claimed, 1 finished, 0 parked, 0 lost"),
        "the second worker should take the run and finish it:\n{}",
        second.errors()
    );
    let after_second = info(&mut store, id);
    assert_eq!(after_second.status, RunStatus::Done, "{after_second:?}");
    assert_eq!(after_second.worker, "second");
    assert_eq!(after_second.attempts, 2, "{after_second:?}");
    let output = store.output(id, 0).expect("output");
    let log_before = std::fs::read_to_string(&log).expect("the log");
    assert!(
        frozen_at.elapsed() > ms(1000),
        "the lease cannot have expired yet"
    );

    first.signal("CONT");
    let status = first.wait(30);
    assert!(status.success(), "first worker: {}", first.errors());
    // It woke, found its lease gone, and dropped the run.
    assert!(
        first
            .errors()
            .contains("worker: 1 claimed, 0 finished, 0 parked, 1 lost"),
        "the first worker should lose the run:\n{}",
        first.errors()
    );
    let after_first = info(&mut store, id);
    assert_eq!(
        after_first, after_second,
        "the frozen worker changed the run when it woke"
    );
    assert_eq!(store.output(id, 0).expect("output"), output);
    let log_after = std::fs::read_to_string(&log).expect("the log");
    assert_eq!(
        log_after, log_before,
        "the frozen worker performed I/O after it woke"
    );
    let effects = read_effects(&log);
    for (name, line) in ["a", "b", "c"].iter().zip(&output) {
        let performed = &effects[&("f".to_string(), name.to_string())];
        assert_eq!(performed.len(), 1, "effect {name}: {performed:?}");
        assert_eq!(*line, format!("{name} {}", performed[0].start));
    }
    assert_eq!(output.len(), 3, "{output:?}");
}

#[test]
fn frozen_worker_changes_nothing_sqlite() {
    let (dir, url) = sqlite_store("store_frozen_sqlite");
    frozen_worker_changes_nothing(&dir, &url);
}

#[test]
fn frozen_worker_changes_nothing_postgres() {
    let Some((dir, url)) = postgres_store("store_frozen_postgres") else {
        return;
    };
    frozen_worker_changes_nothing(&dir, &url);
}

// ---------------------------------------------------------------------
// 3. `send` racing the commit that parks a run at its `yield`
// ---------------------------------------------------------------------

fn send_races_the_commit(dir: &Path, url: &str, seed: u64) {
    const RUNS: usize = 50;
    let source = "print(\"asking ${args()[0]}\")\nlet n: int = yield \"n?\"\nprint(\"got ${n}\")\n";
    std::fs::write(dir.join("ask.spl"), source).expect("write the script");
    let mut store = open(url);
    let _worker = Proc::worker(dir, url, "racer", &["--concurrency", "2"]);
    let mut rng = XorShift::new(seed);
    let mut ids = Vec::new();
    for n in 0..RUNS {
        let id = submit(&mut store, "ask.spl", source, &[&n.to_string()]);
        let value = (n * 7).to_string();
        // Right away, or as the worker reaches the `yield`, or once it
        // has parked the run; every fifth through the command line.
        std::thread::sleep(Duration::from_micros(rng.below(15_000) as u64));
        if n % 5 == 0 {
            let sent = cli(dir, url, "send", &[&id.to_string(), &value]);
            expect_exit(&sent, 0, "spool send");
            assert_eq!(stdout(&sent), format!("sent to run {id}\n"));
        } else {
            store.send(id, &value).expect("send");
        }
        ids.push(id);
    }
    wait_until(
        30.0,
        "every run to finish",
        || {
            store
                .runs(None)
                .expect("runs")
                .iter()
                .all(|r| r.status.is_finished())
        },
        || describe_runs(url),
    );
    let mut parked_first = 0;
    for (n, id) in ids.iter().enumerate() {
        let run = info(&mut store, *id);
        assert_eq!(run.status, RunStatus::Done, "{run:?}");
        assert_eq!(
            store.output(*id, 0).expect("output"),
            [format!("asking {n}"), format!("got {}", n * 7)],
            "run {id}"
        );
        assert_eq!(store.next_signal(*id, 0).expect("signals"), None);
        parked_first += usize::from(run.attempts > 1);
    }
    eprintln!("{url}: {parked_first} of {RUNS} runs were parked waiting before the answer came");
}

#[test]
fn send_races_the_commit_sqlite() {
    let (dir, url) = sqlite_store("store_send_race_sqlite");
    send_races_the_commit(&dir, &url, 0x5E4D_0001);
}

#[test]
fn send_races_the_commit_postgres() {
    let Some((dir, url)) = postgres_store("store_send_race_postgres") else {
        return;
    };
    send_races_the_commit(&dir, &url, 0x5E4D_0002);
}

// ---------------------------------------------------------------------
// 4. `cancel` of a sleeping run and of a running one
// ---------------------------------------------------------------------

fn cancel_sleeping_and_running(dir: &Path, url: &str) {
    let sleeper =
        "defer print(\"cleanup sleeper\")\nprint(\"sleeping\")\nsleep(60000)\nprint(\"never\")\n";
    // The program outlives the test by at most its 10 s: a cancelled
    // run's `exec` is abandoned, not killed.
    let busy = "defer print(\"cleanup busy\")\nprint(\"busy\")\nexec(\"sleep\", [\"10\"])\nprint(\"never\")\n";
    let mut store = open(url);
    let sleeping = submit(&mut store, "sleeper.spl", sleeper, &[]);
    let running = submit(&mut store, "busy.spl", busy, &[]);
    let _worker = Proc::worker(
        dir,
        url,
        "canceller",
        &["--concurrency", "2", "--lease", "1.5"],
    );
    wait_until(
        20.0,
        "one run sleeping, the other in its exec",
        || {
            let a = info(&mut store, sleeping);
            let b = info(&mut store, running);
            a.status == RunStatus::Sleeping && b.status == RunStatus::Running && b.output_lines == 1
        },
        || describe_runs(url),
    );
    let asked = Instant::now();
    for id in [sleeping, running] {
        let out = cli(dir, url, "cancel", &[&id.to_string()]);
        expect_exit(&out, 0, "spool cancel");
        assert_eq!(stdout(&out), format!("cancelling run {id}\n"));
    }
    wait_until(
        6.0,
        "both runs to be cancelled",
        || {
            [sleeping, running]
                .iter()
                .all(|id| info(&mut store, *id).status.is_finished())
        },
        || describe_runs(url),
    );
    let took = asked.elapsed();
    eprintln!("{url}: both cancelled {took:?} after `spool cancel`");
    for (id, lines) in [
        (sleeping, ["sleeping", "cleanup sleeper"]),
        (running, ["busy", "cleanup busy"]),
    ] {
        let run = info(&mut store, id);
        assert_eq!(run.status, RunStatus::Cancelled, "{run:?}");
        assert!(run.cancel_requested);
        let error = run.error.clone().unwrap_or_default();
        assert!(error.contains("Cancelled"), "run {id}: {error}");
        assert_eq!(store.output(id, 0).expect("output"), lines, "run {id}");
        // A cancelled run can be cancelled no more.
        let again = cli(dir, url, "cancel", &[&id.to_string()]);
        expect_exit(&again, 1, "cancel a cancelled run");
        assert_eq!(
            stderr(&again),
            format!("error: run {id} has ended (cancelled)\n")
        );
    }
}

#[test]
fn cancel_sleeping_and_running_sqlite() {
    let (dir, url) = sqlite_store("store_cancel_sqlite");
    cancel_sleeping_and_running(&dir, &url);
}

#[test]
fn cancel_sleeping_and_running_postgres() {
    let Some((dir, url)) = postgres_store("store_cancel_postgres") else {
        return;
    };
    cancel_sleeping_and_running(&dir, &url);
}

// ---------------------------------------------------------------------
// 5. A timer across a restart of the worker and of the database
// ---------------------------------------------------------------------

/// A run that measures its own `sleep(ms)` with `now()` (recorded, so
/// the times survive restarts).
fn timed_sleep(ms: i64) -> String {
    format!("let t0 = now()\nsleep({ms})\nlet t1 = now()\nprint(\"slept ${{t1 - t0}}\")\n")
}

fn timer_survives_restarts(dir: &Path, url: &str, restart: &dyn Fn()) {
    const SHORT: i64 = 3000;
    const LONG: i64 = 4000;
    const SECOND_WORKER_AT: i64 = 3300;
    let mut store = open(url);
    let t0 = now_ms();
    let short = submit(&mut store, "short.spl", &timed_sleep(SHORT), &[]);
    let long = submit(&mut store, "long.spl", &timed_sleep(LONG), &[]);
    let mut first = Proc::worker(dir, url, "before", &["--concurrency", "2"]);
    wait_until(
        10.0,
        "both runs to be parked sleeping",
        || {
            [short, long]
                .iter()
                .all(|id| info(&mut store, *id).status == RunStatus::Sleeping)
        },
        || describe_runs(url),
    );
    first.kill();
    drop(store);
    restart();
    let wait = SECOND_WORKER_AT - (now_ms() - t0);
    if wait > 0 {
        std::thread::sleep(ms(wait as u64));
    } else {
        eprintln!("{url}: the restart took {} ms", now_ms() - t0);
    }
    let started = now_ms();
    let mut second = Proc::worker(dir, url, "after", &["--concurrency", "2", "--until-idle"]);
    let status = second.wait(30);
    assert!(status.success(), "{}", second.errors());
    let mut store = open(url);
    for (id, sleep) in [(short, SHORT), (long, LONG)] {
        let run = info(&mut store, id);
        assert_eq!(run.status, RunStatus::Done, "{}", describe_runs(url));
        let lines = store.output(id, 0).expect("output");
        let slept: i64 = lines
            .first()
            .and_then(|l| l.strip_prefix("slept "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("run {id} printed {lines:?}"));
        let done_after = run.since - t0;
        eprintln!(
            "{url}: sleep({sleep}) slept {slept} ms, done {done_after} ms after submitting, \
             {} ms after the second worker started",
            run.since - started
        );
        assert!(slept >= sleep, "sleep({sleep}) ended early: {slept} ms");
        assert!(
            done_after >= sleep,
            "sleep({sleep}) done after {done_after}"
        );
        // The deadline was kept: neither started again by the worker that
        // claimed it after the restart nor pushed back to its start.
        assert!(
            done_after < sleep.max(started - t0) + 2000,
            "sleep({sleep}) done {done_after} ms after submitting, {} ms after the second \
             worker started: the deadline was not kept",
            run.since - started
        );
    }
}

#[test]
fn timer_survives_restarts_sqlite() {
    let (dir, url) = sqlite_store("store_timer_sqlite");
    timer_survives_restarts(&dir, &url, &|| {});
}

#[test]
fn timer_survives_restarts_postgres() {
    let test = "timer_survives_restarts_postgres";
    let Some(cluster) = pg_cluster::start_or_skip(test) else {
        return;
    };
    let url = pg_cluster::fresh_database(&cluster, test);
    let dir = Scratch::new("store_timer_postgres");
    timer_survives_restarts(&dir, &url, &|| {
        cluster.restart().expect("PostgreSQL restarts");
    });
}

// ---------------------------------------------------------------------
// 6. The store commands through the binary
// ---------------------------------------------------------------------

/// The rows of `spool runs`, cells split at runs of two spaces or more;
/// the first is the header.
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

fn store_commands(dir: &Path, url: &str) {
    std::fs::write(
        dir.join("greet.spl"),
        "print(\"hello\")\nlet name: str = yield \"who?\"\nprint(\"hi ${name}\")\nsleep(10)\nprint(\"bye\")\n",
    )
    .expect("write greet.spl");
    std::fs::write(dir.join("nap.spl"), "print(\"napping\")\nsleep(60000)\n").expect("write");

    // submit prints the id, and nothing else.
    let submitted = cli(dir, url, "submit", &["greet.spl", "--", "x", "y z"]);
    expect_exit(&submitted, 0, "spool submit");
    let greet: i64 = stdout(&submitted)
        .strip_suffix('\n')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("submit printed {:?}", stdout(&submitted)));
    let submitted = cli(dir, url, "submit", &["nap.spl"]);
    expect_exit(&submitted, 0, "spool submit");
    let nap: i64 = stdout(&submitted).trim().parse().expect("an id");
    assert_ne!(greet, nap);
    let (greet_id, nap_id) = (greet.to_string(), nap.to_string());
    let bad = cli(dir, url, "submit", &["missing.spl"]);
    expect_exit(&bad, 2, "submit a missing file");
    assert!(stderr(&bad).contains("cannot read `missing.spl`"));

    let listed = cli(dir, url, "runs", &[]);
    expect_exit(&listed, 0, "spool runs");
    let rows = table_rows(&stdout(&listed));
    assert_eq!(
        rows[0],
        ["ID", "SCRIPT", "STATUS", "WAITING ON", "SINCE (UTC)"],
        "{}",
        stdout(&listed)
    );
    assert_eq!(rows.len(), 3, "{}", stdout(&listed));
    assert_eq!(rows[1][..4], [&greet_id, "greet.spl", "pending", "-"]);
    assert_eq!(rows[2][..4], [&nap_id, "nap.spl", "pending", "-"]);

    let _worker = Proc::worker(dir, url, "cli", &["--concurrency", "2"]);
    let mut store = open(url);
    wait_until(
        20.0,
        "greet waiting and nap sleeping",
        || {
            info(&mut store, RunId(greet)).status == RunStatus::Waiting
                && info(&mut store, RunId(nap)).status == RunStatus::Sleeping
        },
        || describe_runs(url),
    );
    let listed = cli(dir, url, "runs", &[]);
    let rows = table_rows(&stdout(&listed));
    assert_eq!(
        rows[1][..4],
        [&greet_id, "greet.spl", "waiting", "yield who?"]
    );
    assert_eq!(rows[2][..3], [&nap_id, "nap.spl", "sleeping"]);
    assert!(rows[2][3].starts_with("sleep until "), "{rows:?}");
    let waiting = cli(dir, url, "runs", &["--status", "waiting"]);
    expect_exit(&waiting, 0, "runs --status waiting");
    let rows = table_rows(&stdout(&waiting));
    assert_eq!(rows.len(), 2, "{}", stdout(&waiting));
    assert_eq!(rows[1][0], greet_id);
    let bogus = cli(dir, url, "runs", &["--status", "asleep"]);
    expect_exit(&bogus, 2, "runs --status asleep");
    assert!(stderr(&bogus).contains("unknown status `asleep`"));

    // inspect: the status, what it waits on, the pending I/O.
    let shown = cli(dir, url, "inspect", &[&nap_id]);
    expect_exit(&shown, 0, "inspect the sleeping run");
    let text = stdout(&shown);
    assert!(
        text.starts_with(&format!("run {nap}: nap.spl (sleeping)\n")),
        "{text}"
    );
    assert!(text.contains("  waiting on: sleep until "), "{text}");
    assert!(text.contains("pending I/O: 1\n"), "{text}");
    assert!(
        text.contains("  #1 sleep(60000) for task 0, due in "),
        "{text}"
    );
    let shown = cli(dir, url, "inspect", &[&greet_id]);
    expect_exit(&shown, 0, "inspect the waiting run");
    let text = stdout(&shown);
    assert!(
        text.starts_with(&format!("run {greet}: greet.spl (waiting)\n")),
        "{text}"
    );
    assert!(text.contains("  arguments: x y z\n"), "{text}");
    assert!(text.contains("  waiting on: yield who?\n"), "{text}");
    assert!(text.contains("pending I/O: 0\n"), "{text}");
    // The answer is given with `spool send`, not with a file's `resume`.
    assert!(
        text.contains(&format!(
            "status: waiting for the answer to a top-level yield (it receives `str`; \
             give it with `spool send {greet} JSON`)\n"
        )),
        "{text}"
    );
    assert!(!text.contains("spool resume"), "{text}");

    // logs --follow keeps printing until the run ends.
    let mut follow = Proc::start_with(
        dir,
        url,
        "follow",
        "logs",
        &[&greet_id, "--follow"],
        Stdio::piped(),
    );
    std::thread::sleep(ms(300));
    assert!(
        follow.exited().is_none(),
        "logs --follow returned before the run ended"
    );

    // A wrong answer is refused, and the run is left as it was.
    let before = info(&mut store, RunId(greet));
    for (json, message) in [
        (
            "42",
            "error: `42` is not a `str`, which the pending `yield` receives",
        ),
        ("\"unterminated", "error: "),
    ] {
        let sent = cli(dir, url, "send", &[&greet_id, json]);
        expect_exit(&sent, 2, &format!("send {json}"));
        assert!(stderr(&sent).starts_with(message), "{}", stderr(&sent));
        assert_eq!(stdout(&sent), "");
    }
    assert_eq!(info(&mut store, RunId(greet)), before);
    assert_eq!(store.next_signal(RunId(greet), 0).expect("signals"), None);

    let sent = cli(dir, url, "send", &[&greet_id, "\"ann\""]);
    expect_exit(&sent, 0, "send \"ann\"");
    assert_eq!(stdout(&sent), format!("sent to run {greet}\n"));
    let status = follow.wait(20);
    assert!(status.success(), "logs --follow: {}", follow.errors());
    let mut followed = String::new();
    std::io::Read::read_to_string(follow.child.stdout.as_mut().expect("piped"), &mut followed)
        .expect("read logs --follow");
    assert_eq!(followed, "hello\nhi ann\nbye\n");
    let logs = cli(dir, url, "logs", &[&greet_id]);
    expect_exit(&logs, 0, "spool logs");
    assert_eq!(stdout(&logs), "hello\nhi ann\nbye\n");
    assert_eq!(info(&mut store, RunId(greet)).status, RunStatus::Done);

    // Finished and missing runs.
    let ended = format!("error: run {greet} has ended (done)\n");
    for (command, args) in [
        ("send", vec![greet_id.as_str(), "\"bob\""]),
        ("cancel", vec![greet_id.as_str()]),
    ] {
        let out = cli(dir, url, command, &args);
        expect_exit(&out, 1, &format!("{command} to a finished run"));
        assert_eq!(stderr(&out), ended);
    }
    let missing = "error: there is no run 999 in the store\n";
    for (command, args) in [
        ("send", vec!["999", "\"bob\""]),
        ("cancel", vec!["999"]),
        ("logs", vec!["999"]),
        ("inspect", vec!["999"]),
    ] {
        let out = cli(dir, url, command, &args);
        expect_exit(&out, 1, &format!("{command} to a missing run"));
        assert_eq!(stderr(&out), missing, "{command}");
    }

    // Cancelling the sleeping run ends it at once.
    let out = cli(dir, url, "cancel", &[&nap_id]);
    expect_exit(&out, 0, "cancel");
    wait_until(
        10.0,
        "the nap to be cancelled",
        || info(&mut store, RunId(nap)).status == RunStatus::Cancelled,
        || describe_runs(url),
    );
    let done = cli(dir, url, "runs", &["--status", "done"]);
    let rows = table_rows(&stdout(&done));
    assert_eq!(rows.len(), 2, "{}", stdout(&done));
    assert_eq!(rows[1][..4], [&greet_id, "greet.spl", "done", "-"]);
    let shown = cli(dir, url, "inspect", &[&nap_id]);
    let text = stdout(&shown);
    assert!(text.contains("(cancelled)") && text.contains("  cancel requested\n"));
    assert!(text.contains("  error: Cancelled"), "{text}");
}

#[test]
fn store_commands_sqlite() {
    let (dir, url) = sqlite_store("store_commands_sqlite");
    store_commands(&dir, &url);
}

#[test]
fn store_commands_postgres() {
    let Some((dir, url)) = postgres_store("store_commands_postgres") else {
        return;
    };
    store_commands(&dir, &url);
}

// ---------------------------------------------------------------------
// 7. A worker across a restart of the database (it is not restarted)
// ---------------------------------------------------------------------

/// A run doing `exec`s one after another, printing after each: it is in
/// the middle of its work when the server goes away.
const STEADY: &str = "for i in 0..6 {\n  exec(\"sleep\", [\"0.3\"])\n  print(\"step ${i}\")\n}\n";

#[test]
fn worker_survives_database_restart_postgres() {
    let test = "worker_survives_database_restart_postgres";
    let Some(cluster) = pg_cluster::start_or_skip(test) else {
        return;
    };
    let url = pg_cluster::fresh_database(&cluster, test);
    let dir = Scratch::new("store_db_restart_postgres");
    let url = url.as_str();
    let mut worker = Proc::worker(
        &dir,
        url,
        "steadfast",
        &["--concurrency", "2", "--lease", "2"],
    );
    let mut store = open(url);
    let first = submit(&mut store, "first.spl", "print(\"first\")\n", &[]);
    let nap = submit(&mut store, "nap.spl", &timed_sleep(4000), &[]);
    let steady = submit(&mut store, "steady.spl", STEADY, &[]);
    wait_until(
        20.0,
        "the first run done, the nap parked and the steady run started",
        || {
            info(&mut store, first).status == RunStatus::Done
                && info(&mut store, nap).status == RunStatus::Sleeping
                && info(&mut store, steady).output_lines >= 1
        },
        || describe_runs(url),
    );
    drop(store);
    // Down long enough for a few failed attempts to reconnect.
    cluster.stop();
    std::thread::sleep(ms(1500));
    assert!(
        worker.exited().is_none(),
        "the worker ended while the server was down; stderr:\n{}",
        worker.errors()
    );
    cluster.restart().expect("PostgreSQL restarts");
    let mut store = open(url);
    let later: Vec<RunId> = (0..3)
        .map(|n| {
            let source = format!("sleep(10)\nprint(\"later {n}\")\n");
            submit(&mut store, &format!("later{n}.spl"), &source, &[])
        })
        .collect();
    let mut all = vec![nap, steady];
    all.extend(&later);
    wait_until(
        30.0,
        "every run to be done by the same worker",
        || {
            all.iter()
                .all(|id| info(&mut store, *id).status == RunStatus::Done)
        },
        || format!("{}worker stderr:\n{}", describe_runs(url), worker.errors()),
    );
    assert!(
        worker.exited().is_none(),
        "the worker ended; stderr:\n{}",
        worker.errors()
    );
    // The steady run was dropped at the failure and claimed again from
    // its last commit: every step printed once.
    let steps: Vec<String> = (0..6).map(|i| format!("step {i}")).collect();
    assert_eq!(store.output(steady, 0).expect("output"), steps);
    for (n, id) in later.iter().enumerate() {
        assert_eq!(
            store.output(*id, 0).expect("output"),
            [format!("later {n}")]
        );
    }
    let errors = worker.errors();
    assert!(
        errors.contains("steadfast: the store is unavailable: ")
            && errors.contains("connecting again in "),
        "the worker did not say it reconnects:\n{errors}"
    );
    eprintln!("{url}: the worker said:\n{errors}");
    worker.signal("TERM");
    let status = worker.wait(10);
    assert!(status.success(), "{}", worker.errors());
}

// ---------------------------------------------------------------------
// 8. `cancel` of runs that never wait: a loop without a suspension point
// ---------------------------------------------------------------------

fn cancel_busy_loops(dir: &Path, url: &str) {
    let scripts = [
        ("spin.spl", "print(\"spinning\")\nwhile true {}\n"),
        (
            "spin_defer.spl",
            "defer print(\"cleanup\")\nprint(\"spinning\")\nlet n = 0\nwhile true {\n  n += 1\n}\n",
        ),
        // Catches `Cancelled` and goes on spinning: ended by the worker.
        (
            "stubborn.spl",
            "print(\"spinning\")\nwhile true {\n  try {\n    while true {}\n  } catch e {\n    \
             print(\"caught ${e.kind}\")\n  }\n}\n",
        ),
    ];
    let mut store = open(url);
    let ids: Vec<RunId> = scripts
        .iter()
        .map(|(name, source)| submit(&mut store, name, source, &[]))
        .collect();
    // The default lease (30 s) heartbeats every 10 s: a cancel noticed in
    // a couple of seconds is noticed between heartbeats.
    let _worker = Proc::worker(dir, url, "spinner", &["--concurrency", "3"]);
    wait_until(
        20.0,
        "every run claimed",
        || {
            ids.iter()
                .all(|id| info(&mut store, *id).status == RunStatus::Running)
        },
        || describe_runs(url),
    );
    // Each thread's first claim is one run: all three are spinning soon
    // (what they print is committed when they end).
    std::thread::sleep(ms(500));
    let asked = Instant::now();
    for id in &ids {
        let out = cli(dir, url, "cancel", &[&id.to_string()]);
        expect_exit(&out, 0, "spool cancel");
    }
    wait_until(
        3.0,
        "every run to be cancelled",
        || {
            ids.iter()
                .all(|id| info(&mut store, *id).status == RunStatus::Cancelled)
        },
        || describe_runs(url),
    );
    eprintln!(
        "{url}: the loops cancelled {:?} after `spool cancel`",
        asked.elapsed()
    );
    let expected: [&[&str]; 3] = [
        &["spinning"],
        &["spinning", "cleanup"],
        &["spinning", "caught Cancelled"],
    ];
    for (id, lines) in ids.iter().zip(expected) {
        let run = info(&mut store, *id);
        assert_eq!(store.output(*id, 0).expect("output"), lines, "{run:?}");
        let error = run.error.unwrap_or_default();
        assert!(error.contains("Cancelled"), "run {id}: {error}");
    }
}

#[test]
fn cancel_busy_loops_sqlite() {
    let (dir, url) = sqlite_store("store_cancel_loops_sqlite");
    cancel_busy_loops(&dir, &url);
}

#[test]
fn cancel_busy_loops_postgres() {
    let Some((dir, url)) = postgres_store("store_cancel_loops_postgres") else {
        return;
    };
    cancel_busy_loops(&dir, &url);
}

// ---------------------------------------------------------------------
// 9. A program of several files
// ---------------------------------------------------------------------

/// A program whose main file imports another, submitted, then run by a
/// worker after the imported file changed on disk: the store keeps every
/// file of the program as submitted.
fn program_of_several_files(dir: &Path, url: &str) {
    std::fs::create_dir_all(dir.join("app/lib")).expect("mkdir");
    let main = "import \"lib/greet.spl\" as g\nprint(g.hello(\"store\"))\nselect {\n  after(10) => print(\"timer\")\n}\n";
    std::fs::write(dir.join("app/main.spl"), main).expect("write");
    let greet = "fn hello(who: str) -> str { return \"hello, ${who}\" }\n";
    std::fs::write(dir.join("app/lib/greet.spl"), greet).expect("write");
    let submitted = cli(dir, url, "submit", &["app/main.spl"]);
    expect_exit(&submitted, 0, "submit");
    let id = stdout(&submitted).trim().to_string();
    std::fs::write(
        dir.join("app/lib/greet.spl"),
        "fn hello(who: str) -> str { return \"changed\" }\n",
    )
    .expect("write");
    expect_exit(&cli(dir, url, "worker", &["--until-idle"]), 0, "worker");
    let logs = cli(dir, url, "logs", &[&id]);
    expect_exit(&logs, 0, "logs");
    assert_eq!(stdout(&logs), "hello, store\ntimer\n");
    let shown = stdout(&cli(dir, url, "inspect", &[&id]));
    assert!(shown.contains("done"), "{shown}");
}

#[test]
fn program_of_several_files_sqlite() {
    let (dir, url) = sqlite_store("several_files_sqlite");
    program_of_several_files(&dir, &url);
}

#[test]
fn program_of_several_files_postgres() {
    let Some((dir, url)) = postgres_store("several_files_postgres") else {
        return;
    };
    program_of_several_files(&dir, &url);
}
