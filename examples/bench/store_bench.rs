//! The run-store benchmark: how fast a worker advances runs kept in a
//! store (`spool_store`), on SQLite and on PostgreSQL, on this machine.
//!
//! - Steps per second: `--runs` runs (2 000) each park `--steps` times
//!   (10) on a durable timer (`sleep(1)`, with the worker's
//!   `hold_timers_below` at zero, so every one is written back `sleeping`
//!   and claimed again when due) and then end; a worker in this process
//!   with `--concurrency` threads (4) advances them all. A step is one
//!   commit of a run's state: the figure is every run's steps over the
//!   wall time from the worker's start to its end (`exit_when_idle`).
//! - Latency from `send` to the run resuming: `--waiting` runs (200) wait
//!   at a top-level `yield`, the worker polling for due runs every
//!   `--poll` ms (25, the default). Each answer's time is taken before
//!   `Store::send` and when the run, resumed, calls the registered Rust
//!   function `resumed(id)`. One at a time: an answer to one run, waiting
//!   for it to resume before the next (`--waiting` answers). A burst: an
//!   answer to every waiting run at once, each timed from its own `send`.
//!
//! Both stores write to disk as they do in use (SQLite `synchronous=FULL`,
//! PostgreSQL with `fsync` on). SQLite's file is in the system's temporary
//! directory. PostgreSQL is a throwaway cluster this program makes there
//! with the server's own `initdb` and `pg_ctl` (the highest
//! `/usr/lib/postgresql/*/bin`, else `PATH`; as the user `postgres` through
//! `runuser` when run as root) and removes at the end, or the database of
//! `--pg URL` (its tables are created and left there); `--no-pg` skips it.
//!
//! Run with `cargo run --release -p spool-examples --example store_bench
//! [-- --runs N --steps K --concurrency C --waiting W --poll MS --pg URL
//! --no-pg]`.

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use spool::dispatch::{sleep_route, Handler, PoolDispatcher};
use spool::{Dispatcher, Engine, IoRequest, Program, Run};
use spool_store::{RunId, RunStatus, Store, Worker, WorkerConfig, WorkerHost};

/// Parks `args()[0]` times on a timer, then ends.
const TIMERS: &str = "\
let steps = args()[0].parse_int()!
for i in 0..steps {
  sleep(1)
}
";

/// Waits at a `yield` again and again, telling the host each time it
/// resumes.
const ANSWERS: &str = "\
let id = args()[0].parse_int()!
while true {
  let answer: int = yield \"next\"
  resumed(id)
}
";

type Failure = Box<dyn Error>;

/// What the command line asked for.
#[derive(Clone)]
struct Options {
    runs: usize,
    steps: usize,
    concurrency: usize,
    waiting: usize,
    poll: Duration,
    pg: Option<String>,
    no_pg: bool,
}

fn options() -> Result<Options, Failure> {
    let mut options = Options {
        runs: 2_000,
        steps: 10,
        concurrency: 4,
        waiting: 200,
        poll: WorkerConfig::default().poll,
        pg: None,
        no_pg: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize, Failure> {
            let text = args.next().ok_or(format!("{name} needs a number"))?;
            Ok(text
                .parse()
                .map_err(|_| format!("{name}: `{text}` is not a number"))?)
        };
        match arg.as_str() {
            "--runs" => options.runs = number("--runs")?.max(1),
            "--steps" => options.steps = number("--steps")?,
            "--concurrency" => options.concurrency = number("--concurrency")?.max(1),
            "--waiting" => options.waiting = number("--waiting")?.max(1),
            "--poll" => options.poll = Duration::from_millis(number("--poll")? as u64),
            "--pg" => options.pg = Some(args.next().ok_or("--pg needs a URL")?),
            "--no-pg" => options.no_pg = true,
            other => return Err(format!("unknown option `{other}`").into()),
        }
    }
    Ok(options)
}

/// When each latency run last resumed, by its number.
#[derive(Default)]
struct Resumes {
    times: Mutex<HashMap<i64, Instant>>,
    changed: Condvar,
}

impl Resumes {
    /// Waits until run `n` resumed after `since`; when it did.
    fn wait_after(&self, n: i64, since: Instant) -> Result<Instant, Failure> {
        let deadline = since + Duration::from_secs(30);
        let mut times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(&at) = times.get(&n).filter(|&&at| at >= since) {
                return Ok(at);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("run {n} did not resume within 30 s").into());
            }
            times = self
                .changed
                .wait_timeout(times, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The benchmark as the worker's host: an engine with `sleep` and
/// `resumed(id)`; timers are the only I/O.
struct Bench {
    engine: Engine,
}

impl Bench {
    fn new(resumes: Arc<Resumes>) -> Result<Bench, Failure> {
        let mut engine = Engine::new();
        engine.register_io("fn sleep(ms: int)")?;
        engine.register_fn("resumed", move |id: i64| {
            let mut times = resumes.times.lock().unwrap_or_else(|e| e.into_inner());
            times.insert(id, Instant::now());
            resumes.changed.notify_all();
        })?;
        Ok(Bench { engine })
    }
}

impl WorkerHost for Bench {
    fn compile(&self, name: &str, source: &str) -> Result<Program, String> {
        self.engine
            .compile(name, source)
            .map_err(|error| error.render())
    }

    fn prepare(&self, _run: &mut Run, _policy: &str) -> Result<Box<dyn Dispatcher>, String> {
        let handler: Handler = Arc::new(|request: &IoRequest| {
            Err(format!(
                "{}: not an operation of this benchmark",
                request.op
            ))
        });
        Ok(Box::new(
            PoolDispatcher::new(handler).with_router(sleep_route),
        ))
    }
}

/// The figures of one store.
struct Figures {
    steps: i64,
    seconds: f64,
    single: Vec<Duration>,
    burst: Vec<Duration>,
    burst_seconds: f64,
}

/// Steps per second: every run parked on its timers until it ends.
fn throughput(url: &str, bench: &Arc<Bench>, options: &Options) -> Result<(i64, f64), Failure> {
    let mut store = Store::open(url)?;
    let program = bench.engine.compile("timers.spl", TIMERS)?;
    let args = vec![vec![options.steps.to_string()]; options.runs];
    store.submit_many(&program, "timers.spl", TIMERS, args, "")?;
    let config = WorkerConfig {
        concurrency: options.concurrency,
        poll: options.poll,
        hold_timers_below: Duration::ZERO,
        exit_when_idle: true,
        ..WorkerConfig::default()
    };
    let host: Arc<dyn WorkerHost> = bench.clone();
    let started = Instant::now();
    Worker::new(url, host, config).run()?;
    let seconds = started.elapsed().as_secs_f64();
    let runs = store.runs(None)?;
    let done = runs.iter().filter(|r| r.status == RunStatus::Done).count();
    if done != options.runs {
        return Err(format!("{done} of {} runs finished", options.runs).into());
    }
    let steps = runs.iter().map(|r| r.steps).sum();
    let expected = (options.runs * (options.steps + 1)) as i64;
    if steps != expected {
        return Err(format!("{steps} steps, not {expected}").into());
    }
    Ok((steps, seconds))
}

/// Waits until `count` runs of `store` wait at their `yield`.
fn all_waiting(store: &mut Store, count: usize) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = store.counts()?;
        if counts.contains(&(RunStatus::Waiting, count as i64)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("runs are not all waiting: {counts:?}").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Latency from `send` to the run resuming, one at a time and in a burst.
fn latency(
    url: &str,
    bench: &Arc<Bench>,
    resumes: &Resumes,
    options: &Options,
) -> Result<(Vec<Duration>, Vec<Duration>, f64), Failure> {
    let mut store = Store::open(url)?;
    let program = bench.engine.compile("answers.spl", ANSWERS)?;
    let args = (0..options.waiting).map(|n| vec![n.to_string()]).collect();
    let ids: Vec<RunId> = store.submit_many(&program, "answers.spl", ANSWERS, args, "")?;
    let config = WorkerConfig {
        concurrency: options.concurrency,
        poll: options.poll,
        ..WorkerConfig::default()
    };
    let host: Arc<dyn WorkerHost> = bench.clone();
    let worker = Worker::new(url, host, config);
    let stop = worker.stop_handle();
    std::thread::scope(|scope| {
        let running = scope.spawn(|| worker.run());
        let measured = (|| -> Result<_, Failure> {
            all_waiting(&mut store, options.waiting)?;
            let mut single = Vec::with_capacity(ids.len());
            for (n, id) in ids.iter().enumerate() {
                let sent = Instant::now();
                store.send(*id, "1")?;
                single.push(resumes.wait_after(n as i64, sent)? - sent);
            }
            all_waiting(&mut store, options.waiting)?;
            let started = Instant::now();
            let mut sent = Vec::with_capacity(ids.len());
            for id in &ids {
                sent.push(Instant::now());
                store.send(*id, "2")?;
            }
            let mut burst = Vec::with_capacity(ids.len());
            for (n, at) in sent.iter().enumerate() {
                burst.push(resumes.wait_after(n as i64, *at)? - *at);
            }
            Ok((single, burst, started.elapsed().as_secs_f64()))
        })();
        stop.stop();
        let stats = running.join().map_err(|_| "the worker panicked")?;
        stats?;
        measured
    })
}

fn measure(url: &str, latency_url: &str, options: &Options) -> Result<Figures, Failure> {
    let resumes = Arc::new(Resumes::default());
    let bench = Arc::new(Bench::new(Arc::clone(&resumes))?);
    let (steps, seconds) = throughput(url, &bench, options)?;
    let (mut single, mut burst, burst_seconds) = latency(latency_url, &bench, &resumes, options)?;
    single.sort();
    burst.sort();
    Ok(Figures {
        steps,
        seconds,
        single,
        burst,
        burst_seconds,
    })
}

/// The `p`th percentile of sorted `times`, in ms.
fn percentile(times: &[Duration], p: usize) -> f64 {
    let index = (times.len() * p / 100).min(times.len() - 1);
    times[index].as_secs_f64() * 1e3
}

fn row(name: &str, figures: &Figures) {
    println!(
        "{name:<11} {:>7} {:>8.2} {:>8.0}   {:>8.1} {:>8.1}   {:>8.1} {:>8.1} {:>9.2}",
        figures.steps,
        figures.seconds,
        figures.steps as f64 / figures.seconds,
        percentile(&figures.single, 50),
        percentile(&figures.single, 99),
        percentile(&figures.burst, 50),
        percentile(&figures.burst, 99),
        figures.burst_seconds,
    );
}

fn main() -> Result<(), Failure> {
    let options = options()?;
    let scratch = std::env::temp_dir().join(format!("spool-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let _cleanup = RemoveOnDrop(scratch.clone());
    println!(
        "{} runs x {} timers (each written back `sleeping`, {} steps a run); {} runs waiting at a \
         `yield` for latency; {} worker threads in this process, polling every {} ms",
        options.runs,
        options.steps,
        options.steps + 1,
        options.waiting,
        options.concurrency,
        options.poll.as_millis()
    );
    let over = format!(
        "{:<11} {:>7} {:>8} {:>8}   {:>17}   {:>17}",
        "", "", "", "", "send -> resumed", "burst of answers"
    );
    println!("{}", over.trim_end());
    println!(
        "{:<11} {:>7} {:>8} {:>8}   {:>8} {:>8}   {:>8} {:>8} {:>9}",
        "store", "steps", "seconds", "steps/s", "p50 ms", "p99 ms", "p50 ms", "p99 ms", "all in s"
    );
    let sqlite = |name: &str| scratch.join(name).to_string_lossy().into_owned();
    let figures = measure(&sqlite("steps.db"), &sqlite("latency.db"), &options)?;
    row("SQLite", &figures);
    if options.no_pg {
        return Ok(());
    }
    let (urls, _cluster) = match &options.pg {
        Some(url) => ((url.clone(), url.clone()), None),
        None => match PgCluster::start(&scratch) {
            Ok(cluster) => {
                let urls = (
                    cluster.create_database("steps")?,
                    cluster.create_database("latency")?,
                );
                (urls, Some(cluster))
            }
            Err(why) => {
                println!("PostgreSQL  skipped: {why}");
                return Ok(());
            }
        },
    };
    let figures = measure(&urls.0, &urls.1, &options)?;
    row("PostgreSQL", &figures);
    Ok(())
}

/// A directory removed when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A throwaway PostgreSQL cluster under the scratch directory, stopped
/// when dropped.
struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: Option<String>,
}

impl PgCluster {
    fn start(scratch: &Path) -> Result<PgCluster, String> {
        let bin = server_bin().ok_or("the PostgreSQL server (initdb, pg_ctl) is not installed")?;
        let run_as = match run(Command::new("id").arg("-u"))?.trim() {
            "0" => Some("postgres".to_string()),
            _ => None,
        };
        let dir = scratch.join("pg");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if let Some(user) = &run_as {
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:"))
                .arg(scratch))?;
        }
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| listener.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let cluster = PgCluster {
            bin,
            dir,
            port,
            run_as,
        };
        let data = cluster.dir.join("data");
        run(cluster.server("initdb").arg("-D").arg(&data).args([
            "--auth=trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
        ]))?;
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nmax_connections = 100\n",
            cluster.dir.display()
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .map_err(|e| e.to_string())?;
        std::io::Write::write_all(&mut file, conf.as_bytes()).map_err(|e| e.to_string())?;
        run(cluster
            .server("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(cluster.dir.join("log"))
            .args(["-w", "-o"])
            .arg(format!("-p {port}"))
            .arg("start"))?;
        Ok(cluster)
    }

    /// `program` of the server, as the server's user.
    fn server(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut runuser = Command::new("runuser");
                runuser.args(["-u", user, "--"]).arg(path);
                runuser
            }
            None => Command::new(path),
        };
        command.current_dir("/");
        command
    }

    /// Creates database `name`; its URL.
    fn create_database(&self, name: &str) -> Result<String, String> {
        let server = format!("postgres://postgres@127.0.0.1:{}", self.port);
        run(Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-d"])
            .arg(format!("{server}/postgres"))
            .args(["-c", &format!("CREATE DATABASE {name}")]))?;
        Ok(format!("{server}/{name}"))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .server("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The highest `/usr/lib/postgresql/*/bin` with the server, else the first
/// directory on `PATH` with it.
fn server_bin() -> Option<PathBuf> {
    let has_server = |dir: &Path| ["initdb", "pg_ctl"].iter().all(|p| dir.join(p).is_file());
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_server(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| has_server(dir))
}

/// Runs `command`; its standard output, or what went wrong.
fn run(command: &mut Command) -> Result<String, String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
