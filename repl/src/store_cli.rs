//! The run-store commands: `spool submit`, `worker`, `runs`, `send`,
//! `cancel`, `inspect RUN` and `logs`, on the store `--store URL` names
//! (else `SPOOL_STORE`, else `./spool.db`, a SQLite file created when
//! missing; `postgres://…` is a PostgreSQL database).
//!
//! A run is submitted with the policy and limits of `spool run`'s flags
//! (`--sandbox`, `--allow`, `--max-read`, ..., `--max-instructions`,
//! `--max-heap`, ...), kept with the run. A worker applies them under its
//! own flags, which are the ceiling: a sandboxed worker runs only
//! sandboxed runs whose grants it grants too, and every cap and limit is
//! the smaller of the two. `--state-key FILE` signs saved runs (give it to
//! every command that reads or writes them).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spool::{Dispatcher, Program, Run};
use spool_store::worker::describe_time;
use spool_store::{RunId, RunInfo, RunStatus, Store, Worker, WorkerConfig, WorkerHost};

use crate::cli::{Command, RunOptions, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE};
use crate::cli_io::{Category, Grant, Policy};

/// The usage of the store commands (part of `spool --help`).
pub const USAGE: &str = "\
runs kept in a store (`--store URL` or SPOOL_STORE; default ./spool.db,
a SQLite file; postgres://USER@HOST/DB for PostgreSQL):
  spool submit FILE [OPTIONS] [-- ARGS...]
                   store a new run of FILE with the policy and limits of
                   `spool run`'s OPTIONS (`--seed N` seeds its random(),
                   else entropy does); prints its id
  spool worker [--concurrency N] [--lease SECONDS] [--until-idle] [OPTIONS]
                   advance due runs until SIGTERM or Ctrl-C (--until-idle:
                   until every run has ended or waits for an answer);
                   OPTIONS are the ceiling of every run's policy and limits
  spool runs [--status S]   list runs: id, script, status, waiting on, since
  spool send RUN JSON       answer the yield run RUN waits at
  spool cancel RUN          cancel a run: its tasks get `Cancelled`
  spool inspect RUN         describe a stored run: status, tasks, pending I/O
  spool logs RUN [--follow] print what a run printed (--follow: until it ends)
";

/// Does `args` (after `inspect`) name a stored run rather than a saved
/// run's file? A number that is not an existing file does.
pub fn names_a_run(args: &[String]) -> bool {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--store" | "--state-key" => {
                args.next();
            }
            flag if flag.starts_with("--store=") || flag.starts_with("--state-key=") => {}
            first => {
                return first.parse::<i64>().is_ok() && !std::path::Path::new(first).exists();
            }
        }
    }
    false
}

/// Runs one store command (`args[0]` names it) and returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    match command(args) {
        Ok(code) => code,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}\n\n{USAGE}");
            EXIT_USAGE
        }
        Err(Failure::Input(message)) => {
            eprintln!("error: {message}");
            EXIT_USAGE
        }
        Err(Failure::Store(message)) => {
            eprintln!("error: {message}");
            EXIT_RUNTIME
        }
    }
}

/// Why a store command failed.
enum Failure {
    /// The command line is wrong (exit 2, with the usage).
    Usage(String),
    /// What was given does not fit (exit 2).
    Input(String),
    /// The store refused or failed (exit 1).
    Store(String),
}

impl From<spool_store::StoreError> for Failure {
    fn from(error: spool_store::StoreError) -> Failure {
        Failure::Store(error.to_string())
    }
}

/// `--flag=value` as the flag and its value; anything else as it is.
fn split_flag(arg: &str) -> (String, Option<String>) {
    match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => {
            (flag.to_string(), Some(value.to_string()))
        }
        _ => (arg.to_string(), None),
    }
}

/// The value of `flag`: given inline (`--flag=value`), else the next
/// argument.
fn flag_value(
    flag: &str,
    inline: Option<String>,
    args: &mut impl Iterator<Item = String>,
) -> Result<String, Failure> {
    inline
        .or_else(|| args.next())
        .ok_or_else(|| Failure::Usage(format!("`{flag}` needs a value")))
}

/// The options every store command takes, and the rest of its arguments.
struct Common {
    store: String,
    key: Option<Vec<u8>>,
    rest: Vec<String>,
}

/// Takes `--store URL` and `--state-key FILE` out of `args` (stopping at
/// `--`).
fn common(args: Vec<String>) -> Result<Common, Failure> {
    let mut store = std::env::var("SPOOL_STORE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| spool_store::DEFAULT_STORE.to_string());
    let mut key = None;
    let mut rest = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(&arg);
        match flag.as_str() {
            "--" => {
                rest.push(arg);
                rest.extend(args.by_ref());
            }
            "--store" => store = flag_value(&flag, inline, &mut args)?,
            "--state-key" => {
                let file = flag_value(&flag, inline, &mut args)?;
                let bytes = std::fs::read(&file)
                    .map_err(|e| Failure::Input(format!("cannot read the key `{file}`: {e}")))?;
                if bytes.len() < 16 {
                    return Err(Failure::Input(format!(
                        "the key `{file}` is too short: a host key has at least 16 bytes"
                    )));
                }
                key = Some(bytes);
            }
            _ => rest.push(arg),
        }
    }
    Ok(Common { store, key, rest })
}

impl Common {
    fn open(&self) -> Result<Store, Failure> {
        let mut store = Store::open(&self.store)
            .map_err(|e| Failure::Store(format!("cannot open the store `{}`: {e}", self.store)))?;
        if let Some(key) = &self.key {
            store.set_state_key(key);
        }
        Ok(store)
    }
}

fn command(mut args: Vec<String>) -> Result<i32, Failure> {
    let name = args.remove(0);
    let common = common(args)?;
    match name.as_str() {
        "submit" => submit(common),
        "worker" => worker(common),
        "runs" => runs(common),
        "send" => send(common),
        "cancel" => cancel(common),
        "inspect" => inspect(common),
        "logs" => logs(common),
        other => Err(Failure::Usage(format!("unknown command `{other}`"))),
    }
}

/// `spool run`'s options in `flags`, parsed as `spool run` does.
fn run_options(flags: &[String]) -> Result<RunOptions, String> {
    let mut args = vec!["-".to_string()];
    args.extend(flags.iter().cloned());
    match crate::cli::parse_run(args.into_iter(), false)? {
        Command::Run { options, .. } => Ok(options),
        _ => Err("not options of `spool run`".to_string()),
    }
}

/// The flags of `spool run` that make no sense for a stored run.
const NOT_FOR_STORED_RUNS: [&str; 4] = ["--state", "--step", "--trace", "--max-io"];

fn submit(common: Common) -> Result<i32, Failure> {
    let mut file = None;
    let mut flags = Vec::new();
    let mut script_args = Vec::new();
    let mut args = common.rest.iter().cloned();
    while let Some(arg) = args.next() {
        if arg == "--" {
            script_args = args.by_ref().collect();
            break;
        }
        let flag = arg.split_once('=').map_or(arg.as_str(), |(f, _)| f);
        if NOT_FOR_STORED_RUNS.contains(&flag) {
            return Err(Failure::Usage(format!(
                "`spool submit` does not take `{flag}`"
            )));
        }
        if !arg.starts_with("--") && file.is_none() {
            file = Some(arg);
            continue;
        }
        if !arg.starts_with("--") {
            return Err(Failure::Usage(format!(
                "unexpected argument `{arg}` (script arguments go after `--`)"
            )));
        }
        flags.push(arg.clone());
        if !arg.contains('=') && arg != "--sandbox" {
            flags.extend(args.next());
        }
    }
    let file = file.ok_or_else(|| Failure::Usage("`spool submit` needs a FILE".to_string()))?;
    let seed = run_options(&flags).map_err(Failure::Usage)?.seed;
    let source = std::fs::read_to_string(&file)
        .map_err(|e| Failure::Input(format!("cannot read `{file}`: {e}")))?;
    let program = crate::cli::compile_file(&file).map_err(|_| Failure::Input(String::new()))?;
    let policy = serde_json::to_string(&flags).unwrap_or_default();
    let mut store = common.open()?;
    let ids = store.submit_seeded(&program, &file, &source, vec![script_args], &policy, seed)?;
    let id = ids.first().copied().unwrap_or(spool_store::RunId(0));
    println!("{id}");
    Ok(EXIT_OK)
}

fn run_id(text: Option<&String>, command: &str) -> Result<RunId, Failure> {
    let text = text.ok_or_else(|| Failure::Usage(format!("`spool {command}` needs a RUN id")))?;
    text.parse()
        .map(RunId)
        .map_err(|_| Failure::Usage(format!("`{text}` is not a run id (a number)")))
}

fn no_more(args: &[String]) -> Result<(), Failure> {
    match args.first() {
        Some(extra) => Err(Failure::Usage(format!("unexpected argument `{extra}`"))),
        None => Ok(()),
    }
}

fn runs(common: Common) -> Result<i32, Failure> {
    let mut status = None;
    let mut args = common.rest.iter().cloned();
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(&arg);
        match flag.as_str() {
            "--status" => {
                let name = flag_value(&flag, inline, &mut args)?;
                status = Some(RunStatus::parse(&name).ok_or_else(|| {
                    let known: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                    Failure::Usage(format!(
                        "unknown status `{name}` (one of {})",
                        known.join(", ")
                    ))
                })?);
            }
            _ => return Err(Failure::Usage(format!("unexpected argument `{arg}`"))),
        }
    }
    let runs = common.open()?.runs(status)?;
    print!("{}", table(&runs));
    Ok(EXIT_OK)
}

/// The runs as `spool runs` prints them.
fn table(runs: &[RunInfo]) -> String {
    let header = ["ID", "SCRIPT", "STATUS", "WAITING ON", "SINCE (UTC)"];
    let rows: Vec<[String; 5]> = runs
        .iter()
        .map(|run| {
            [
                run.id.to_string(),
                run.script.clone(),
                run.status.to_string(),
                if run.waiting.is_empty() {
                    "-".to_string()
                } else {
                    run.waiting.clone()
                },
                describe_time(run.since),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == 4 {
                text.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    out
}

/// The stored run `id` restored on its program, compiled again.
fn restore(store: &mut Store, id: RunId) -> Result<Run, Failure> {
    let (state, fingerprint) = store.state(id)?;
    let (name, source) = store.program_source(&fingerprint)?;
    let program = crate::engine()
        .compile(&name, &source)
        .map_err(|e| Failure::Store(format!("`{name}` of run {id} no longer compiles: {e}")))?;
    Ok(store.restore_state(&state, &program)?)
}

fn send(common: Common) -> Result<i32, Failure> {
    let id = run_id(common.rest.first(), "send")?;
    let json = common
        .rest
        .get(1)
        .ok_or_else(|| Failure::Usage("`spool send` needs RUN and JSON".to_string()))?;
    no_more(&common.rest[2..])?;
    let mut store = common.open()?;
    let info = store.run(id)?;
    if info.status.is_finished() {
        return Err(spool_store::StoreError::Finished(id, info.status).into());
    }
    // Check the answer against what the script's yields receive now, so a
    // wrong one is refused here rather than failing the run later.
    let mut run = restore(&mut store, id)?;
    spool::answer::from_json(&mut run, json).map_err(Failure::Input)?;
    store.send(id, json)?;
    println!("sent to run {id}");
    Ok(EXIT_OK)
}

fn cancel(common: Common) -> Result<i32, Failure> {
    let id = run_id(common.rest.first(), "cancel")?;
    no_more(&common.rest[1..])?;
    common.open()?.cancel(id)?;
    println!("cancelling run {id}");
    Ok(EXIT_OK)
}

fn inspect(common: Common) -> Result<i32, Failure> {
    let id = run_id(common.rest.first(), "inspect")?;
    no_more(&common.rest[1..])?;
    let mut store = common.open()?;
    let info = store.run(id)?;
    let mut text = format!(
        "run {id}: {} ({})\n  submitted {}, {} since {}\n  claimed {} time(s), {} step(s) committed, {} line(s) printed\n",
        info.script,
        info.status,
        describe_time(info.created_at),
        info.status,
        describe_time(info.since),
        info.attempts,
        info.steps,
        info.output_lines,
    );
    if !info.args.is_empty() {
        text.push_str(&format!("  arguments: {}\n", info.args.join(" ")));
    }
    if !info.waiting.is_empty() {
        text.push_str(&format!("  waiting on: {}\n", info.waiting));
    }
    if let Some(due) = info.due_at {
        text.push_str(&format!("  due at: {}\n", describe_time(due)));
    }
    if info.cancel_requested {
        text.push_str("  cancel requested\n");
    }
    if !info.worker.is_empty() {
        text.push_str(&format!("  worker: {}\n", info.worker));
    }
    if let Some(result) = &info.result {
        text.push_str(&format!("  result: {result}\n"));
    }
    if let Some(error) = &info.error {
        text.push_str(&format!(
            "  error: {}\n",
            error.trim_end().replace('\n', "\n    ")
        ));
    }
    print!("{text}");
    if !info.status.is_finished() {
        let run = restore(&mut store, id)?;
        let send = format!("spool send {id} JSON");
        print!(
            "{}",
            crate::durable::describe_with(&format!("run {id}"), &run, &send)
        );
    }
    Ok(EXIT_OK)
}

fn logs(common: Common) -> Result<i32, Failure> {
    let id = run_id(common.rest.first(), "logs")?;
    let follow = match common.rest.get(1).map(String::as_str) {
        None => false,
        Some("--follow" | "-f") => true,
        Some(extra) => return Err(Failure::Usage(format!("unexpected argument `{extra}`"))),
    };
    no_more(common.rest.get(2..).unwrap_or_default())?;
    let mut store = common.open()?;
    let mut next = 0;
    loop {
        let finished = store.run(id)?.status.is_finished();
        let lines = store.output(id, next)?;
        next += lines.len() as i64;
        for line in lines {
            println!("{line}");
        }
        if !follow || finished {
            return Ok(EXIT_OK);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn worker(common: Common) -> Result<i32, Failure> {
    let mut config = WorkerConfig::default();
    let mut ceiling_flags = Vec::new();
    let mut args = common.rest.iter().cloned();
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(&arg);
        match flag.as_str() {
            "--concurrency" => {
                let text = flag_value(&flag, inline, &mut args)?;
                config.concurrency = text
                    .parse()
                    .ok()
                    .filter(|&n: &usize| (1..=1024).contains(&n))
                    .ok_or_else(|| {
                        Failure::Usage(format!(
                            "`--concurrency` needs a number from 1 to 1024, not `{text}`"
                        ))
                    })?;
            }
            "--lease" => {
                let text = flag_value(&flag, inline, &mut args)?;
                let seconds: f64 = text
                    .parse()
                    .ok()
                    .filter(|s: &f64| (0.1..=86_400.0).contains(s))
                    .ok_or_else(|| {
                        Failure::Usage(format!(
                            "`--lease` needs seconds from 0.1 to 86400, not `{text}`"
                        ))
                    })?;
                config.lease = Duration::from_secs_f64(seconds);
            }
            "--until-idle" if inline.is_none() => config.exit_when_idle = true,
            "--name" => config.name = flag_value(&flag, inline, &mut args)?,
            _ => {
                ceiling_flags.push(arg.clone());
                if inline.is_none() && arg.starts_with("--") && arg != "--sandbox" {
                    ceiling_flags.extend(args.next());
                }
            }
        }
    }
    let ceiling = run_options(&ceiling_flags).map_err(Failure::Usage)?;
    let host = Arc::new(CliHost { ceiling });
    let mut worker = Worker::new(&common.store, host, config);
    if let Some(key) = &common.key {
        worker.set_state_key(key);
    }
    let stop = worker.stop_handle();
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&signalled))
            .map_err(|e| Failure::Store(format!("cannot handle signals: {e}")))?;
    }
    let watcher_stop = stop.clone();
    std::thread::spawn(move || loop {
        if signalled.load(Ordering::SeqCst) {
            watcher_stop.stop();
            return;
        }
        if watcher_stop.is_stopped() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    });
    let stats = worker
        .run()
        .map_err(|e| Failure::Store(format!("the worker stopped: {e}")))?;
    stop.stop();
    eprintln!(
        "worker: {} claimed, {} finished, {} parked, {} lost",
        stats.claimed, stats.finished, stats.parked, stats.lost
    );
    Ok(EXIT_OK)
}

/// The command line as a worker's host: its engine and I/O operations,
/// under each run's policy within the worker's own.
struct CliHost {
    /// The worker's flags: the most any run may have.
    ceiling: RunOptions,
}

impl WorkerHost for CliHost {
    fn compile(&self, name: &str, source: &str) -> Result<Program, String> {
        self.compile_program(name, source, &[])
    }

    fn compile_program(
        &self,
        name: &str,
        source: &str,
        imports: &[(String, String)],
    ) -> Result<Program, String> {
        let load = |path: &str| {
            let found = imports.iter().find(|(name, _)| name == path);
            found
                .map(|(_, text)| text.clone().into_bytes())
                .ok_or_else(|| "not stored with the program".to_string())
        };
        crate::engine()
            .compile_with(name, source.as_bytes(), load)
            .map_err(|error| error.render())
    }

    fn prepare(&self, run: &mut Run, policy: &str) -> Result<Box<dyn Dispatcher>, String> {
        let flags: Vec<String> = serde_json::from_str(policy)
            .map_err(|e| format!("the run's stored policy is damaged: {e}"))?;
        let wanted = run_options(&flags).map_err(|e| format!("the run's stored policy: {e}"))?;
        let options = within(&wanted, &self.ceiling)?;
        let mut limits = options.limits;
        limits.budget = options.max_instructions;
        run.set_limits(limits);
        Ok(Box::new(crate::cli_io::dispatcher(
            spool::dispatch::DEFAULT_MAX_IN_FLIGHT,
            &options.io,
        )))
    }
}

/// The options a run gets: what it was submitted with, within the
/// worker's ceiling; an error names what the worker does not allow.
fn within(wanted: &RunOptions, ceiling: &RunOptions) -> Result<RunOptions, String> {
    let io = policy_within(&wanted.io, &ceiling.io)?;
    let mut limits = wanted.limits;
    limits.max_heap_bytes = limits.max_heap_bytes.min(ceiling.limits.max_heap_bytes);
    limits.max_call_depth = limits.max_call_depth.min(ceiling.limits.max_call_depth);
    limits.max_tasks = limits.max_tasks.min(ceiling.limits.max_tasks);
    let max_instructions = match (wanted.max_instructions, ceiling.max_instructions) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(RunOptions {
        io,
        limits,
        max_instructions,
        ..RunOptions::default()
    })
}

fn policy_within(wanted: &Policy, ceiling: &Policy) -> Result<Policy, String> {
    if ceiling.sandbox {
        if !wanted.sandbox {
            return Err(
                "Policy: this worker runs only sandboxed runs (submit with `--sandbox`)".into(),
            );
        }
        if let Some(grant) = wanted
            .grants
            .iter()
            .find(|g| !ceiling.grants.iter().any(|c| covers(c, g)))
        {
            return Err(format!(
                "Policy: this worker does not allow `--allow {}` the run was submitted with",
                show_grant(grant)
            ));
        }
    }
    Ok(Policy {
        max_read: wanted.max_read.min(ceiling.max_read),
        max_exec_output: wanted.max_exec_output.min(ceiling.max_exec_output),
        exec_timeout: wanted.exec_timeout.min(ceiling.exec_timeout),
        http_timeout: wanted.http_timeout.min(ceiling.http_timeout),
        sandbox: wanted.sandbox,
        grants: wanted.grants.clone(),
    })
}

/// Does the worker's grant `ceiling` cover the run's grant `wanted`?
fn covers(ceiling: &Grant, wanted: &Grant) -> bool {
    if ceiling.category != wanted.category {
        return false;
    }
    match (&ceiling.target, &wanted.target) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(c), Some(w)) if c == w => true,
        (Some(c), Some(w)) => {
            matches!(wanted.category, Category::Read | Category::Write)
                && std::path::Path::new(w).starts_with(c)
        }
    }
}

fn show_grant(grant: &Grant) -> String {
    let category = match grant.category {
        Category::Read => "read",
        Category::Write => "write",
        Category::Exec => "exec",
        Category::Net => "net",
        Category::Env => "env",
    };
    match &grant.target {
        Some(target) => format!("{category}={target}"),
        None => category.to_string(),
    }
}
