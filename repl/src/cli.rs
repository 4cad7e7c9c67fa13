//! The `spool` command line: argument parsing, running scripts, and how
//! results and errors are shown.
//!
//! Exit codes: 0 when the run finished, 1 for a runtime error, 2 for a
//! usage or compile error, and N when the script called `exit(N)`.

use std::io::{IsTerminal, Write};

use crate::trace::TraceRecorder;
use spool::{CompileError, Output, Run, RunError, Step};

/// Exit code of a finished run.
pub const EXIT_OK: i32 = 0;
/// Exit code of a run that ended with an uncaught error.
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code of a usage or compile error.
pub const EXIT_USAGE: i32 = 2;

const USAGE: &str = "\
usage: spool                           start the interactive prompt (also `spool repl`)
       spool FILE [ARGS...]            run a script
       spool run FILE [OPTIONS] [-- ARGS...]
                                       run a script with options and arguments
       spool check FILE                report compile errors without running
       spool disasm FILE               print the compiled bytecode
       spool resume PATH [OPTIONS] [--send JSON]
                                       continue a saved run
       spool inspect PATH              describe a saved run: tasks, stacks, pending I/O
       spool --help | --version

options of `spool run` and `spool resume`:
  --state PATH     (run) save the run to PATH before every I/O phase, at each
                   top-level yield and at the end (`spool resume PATH`
                   continues it after a crash); refused over an unfinished run
  --step           stop at each top-level yield: print it, save, exit 0
  --send JSON      (resume) the answer to the yield the run is waiting at
  --program FILE   (resume) continue on FILE, a changed version of the script,
                   if no function the run is inside changed
  --seed N         (run) seed random() with N to repeat a run's numbers
                   (default: from the operating system's entropy)
  --max-io N       run at most N I/O requests at once (default 128)
  --trace PATH     write a Chrome trace-event file of CPU and I/O phases

limits of the script's I/O (given again to `spool resume`; never saved):
  --max-read BYTES         read_file reads at most BYTES (default 64M;
                           sizes take k, M, G: 4096, 64k, 64M, 1G)
  --max-exec-output BYTES  exec collects at most BYTES of output (default 64M)
  --exec-timeout SECONDS   exec kills a program after SECONDS (default 600)
  --http-timeout SECONDS   an HTTP request fails after SECONDS (default 60)
  --sandbox                deny every I/O operation but now, sleep and input
                           unless granted by --allow
  --allow CATEGORY[=TARGET]
                           (with --sandbox, repeatable) grant read=PATH,
                           write=PATH (a file, or a directory and all in it),
                           exec=PROGRAM, net=HOST, env=NAME; a CATEGORY
                           alone grants all of it

limits of the run (given again to `spool resume`; never saved):
  --max-instructions N     run at most N instructions (library functions count
                           their work; default 10000000000, about half a
                           minute; `unlimited` lifts it), then stop: saved
                           there with --state (exit 0; `spool resume`
                           continues), else a Limit error
  --max-heap BYTES         the heap and stack may use BYTES (default 2G)
  --max-depth N            calls may nest N deep (default 200000)
  --max-tasks N            at most N tasks alive at once (default 1000000)

  --state-key FILE         (also `spool inspect PATH --state-key FILE`) sign
                           saved runs with the host key in FILE (HMAC-SHA256)
                           and refuse any that is unsigned or changed
";

/// A parsed command line.
#[derive(Debug, PartialEq)]
pub(crate) enum Command {
    Run {
        file: String,
        args: Vec<String>,
        options: RunOptions,
    },
    Resume {
        path: String,
        send: Option<String>,
        program: Option<String>,
        options: RunOptions,
    },
    Inspect {
        path: String,
        key: Option<String>,
    },
    Check {
        file: String,
    },
    Disasm {
        file: String,
    },
    Repl,
    Help,
    Version,
    /// A run-store command (`submit`, `worker`, `runs`, `send`, `cancel`,
    /// `inspect RUN`, `logs`), with all its arguments.
    Store(Vec<String>),
}

/// The options of `spool run`.
#[derive(Debug, PartialEq)]
pub(crate) struct RunOptions {
    /// Most I/O requests running at once.
    pub(crate) max_io: usize,
    /// Where to write a trace of the run.
    pub(crate) trace: Option<String>,
    /// Where to save the run after every I/O phase and top-level yield.
    pub(crate) state: Option<String>,
    /// Stop at each top-level yield after saving.
    pub(crate) step: bool,
    /// The caps, timeouts and sandbox of the script's I/O.
    pub(crate) io: crate::cli_io::Policy,
    /// The run's resource limits (`--max-heap`, `--max-depth`,
    /// `--max-tasks`); never read from a saved run.
    pub(crate) limits: spool::Limits,
    /// `--max-instructions`: most instructions this invocation may run
    /// ([`DEFAULT_MAX_INSTRUCTIONS`] unless given; `None` is unlimited).
    pub(crate) max_instructions: Option<u64>,
    /// `--state-key FILE`: sign saved runs and require the signature.
    pub(crate) state_key: Option<String>,
    /// `--seed N`: the seed of `random()` (from entropy when not given).
    pub(crate) seed: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            max_io: spool::dispatch::DEFAULT_MAX_IN_FLIGHT,
            trace: None,
            state: None,
            step: false,
            io: crate::cli_io::Policy::default(),
            limits: spool::Limits::default(),
            max_instructions: Some(DEFAULT_MAX_INSTRUCTIONS),
            state_key: None,
            seed: None,
        }
    }
}

/// The instruction budget of `spool run` and `spool resume` when
/// `--max-instructions` is not given: about half a minute of a tight loop,
/// so a runaway script ends with a `Limit` error (or, under `--state`, is
/// paused and saved) instead of running forever.
pub const DEFAULT_MAX_INSTRUCTIONS: u64 = 10_000_000_000;

/// Runs the command line `args` (without the program name) and returns the
/// process's exit code, which the process is to exit with: `spool run`
/// leaves its run and program to the process's end instead of freeing them.
pub fn main(args: Vec<String>) -> i32 {
    let command = match parse_args(args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    let key = match &command {
        Command::Run { options, .. } | Command::Resume { options, .. } => options.state_key.clone(),
        Command::Inspect { key, .. } => key.clone(),
        _ => None,
    };
    if let Some(file) = key {
        if let Err(message) = crate::durable::use_state_key(&file) {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    }
    match command {
        Command::Help => {
            print!("{USAGE}\n{}", crate::store_cli::USAGE);
            EXIT_OK
        }
        Command::Version => {
            println!("spool {}", env!("CARGO_PKG_VERSION"));
            EXIT_OK
        }
        Command::Repl => crate::repl::main(),
        Command::Store(args) => crate::store_cli::main(args),
        Command::Run {
            file,
            args,
            options,
        } => run_file(&file, args, &options),
        Command::Resume {
            path,
            send,
            program,
            options,
        } => resume_file(&path, send.as_deref(), program.as_deref(), options),
        Command::Inspect { path, .. } => match crate::durable::load(&path) {
            Ok(run) => {
                print!("{}", crate::durable::describe(&path, &run));
                EXIT_OK
            }
            Err(message) => {
                eprintln!("error: {message}");
                EXIT_USAGE
            }
        },
        Command::Check { file } => match compile_file(&file) {
            Ok(_) => EXIT_OK,
            Err(code) => code,
        },
        Command::Disasm { file } => match compile_file(&file) {
            Ok(program) => {
                print!("{}", program.disassemble());
                EXIT_OK
            }
            Err(code) => code,
        },
    }
}

fn parse_args(args: Vec<String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return Ok(Command::Repl);
    };
    let file_arg = |args: &mut std::vec::IntoIter<String>, command: &str| {
        let file = args
            .next()
            .ok_or_else(|| format!("`spool {command}` needs a FILE"))?;
        reject_flag(&file)?;
        Ok::<String, String>(file)
    };
    match first.as_str() {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "-V" | "--version" => Ok(Command::Version),
        "run" => parse_run(args, false),
        "repl" => match args.next() {
            None => Ok(Command::Repl),
            Some(extra) => Err(format!("unexpected argument `{extra}`")),
        },
        "resume" => parse_run(args, true),
        "submit" | "worker" | "runs" | "send" | "cancel" | "logs" => {
            let mut all = vec![first];
            all.extend(args);
            Ok(Command::Store(all))
        }
        "inspect" if crate::store_cli::names_a_run(args.as_slice()) => {
            let mut all = vec![first];
            all.extend(args);
            Ok(Command::Store(all))
        }
        "inspect" => {
            let path = file_arg(&mut args, "inspect")?;
            let key = match args.next().as_deref() {
                None => None,
                Some("--state-key") => Some(args.next().ok_or("`--state-key` needs a FILE")?),
                Some(extra) => return Err(format!("unexpected argument `{extra}`")),
            };
            if let Some(extra) = args.next() {
                return Err(format!("unexpected argument `{extra}`"));
            }
            Ok(Command::Inspect { path, key })
        }
        "check" | "disasm" => {
            let file = file_arg(&mut args, &first)?;
            if let Some(extra) = args.next() {
                return Err(format!("unexpected argument `{extra}`"));
            }
            Ok(if first == "check" {
                Command::Check { file }
            } else {
                Command::Disasm { file }
            })
        }
        _ => {
            reject_flag(&first)?;
            let rest: Vec<String> = args.collect();
            let rest = if rest.first().map(String::as_str) == Some("--") {
                rest[1..].to_vec()
            } else {
                rest
            };
            Ok(Command::Run {
                file: first,
                args: rest,
                options: RunOptions::default(),
            })
        }
    }
}

/// `spool run FILE [OPTIONS] [-- ARGS...]` and `spool resume PATH
/// [OPTIONS]`; options may come before or after the file.
pub(crate) fn parse_run(
    mut args: std::vec::IntoIter<String>,
    resume: bool,
) -> Result<Command, String> {
    let mut file = None;
    let mut options = RunOptions::default();
    let mut script_args = Vec::new();
    let (mut send, mut program) = (None, None);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("`{name}` needs a value"))
        };
        match flag.as_str() {
            "--" if resume => return Err("`spool resume` takes no script arguments".into()),
            "--" => {
                script_args = args.by_ref().collect();
                break;
            }
            "--max-io" => {
                let text = value("--max-io")?;
                options.max_io = text
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n >= 1)
                    .ok_or_else(|| format!("`--max-io` needs a positive number, not `{text}`"))?;
            }
            "--trace" => options.trace = Some(value("--trace")?),
            "--state" if !resume => options.state = Some(value("--state")?),
            "--step" if inline.is_none() => options.step = true,
            "--send" if resume => send = Some(value("--send")?),
            "--sandbox" if inline.is_none() => options.io.sandbox = true,
            io_flag if crate::cli_io::Policy::FLAGS.contains(&io_flag) => {
                options.io.set_flag(io_flag, &value(io_flag)?)?;
            }
            "--program" if resume => program = Some(value("--program")?),
            "--state-key" => options.state_key = Some(value("--state-key")?),
            "--seed" if !resume => {
                let text = value("--seed")?;
                options.seed = Some(text.replace('_', "").parse().map_err(|_| {
                    format!("`--seed` needs a number from 0 to 2^64 - 1, not `{text}`")
                })?);
            }
            "--max-heap" => {
                options.limits.max_heap_bytes =
                    crate::cli_io::parse_size("--max-heap", &value("--max-heap")?)?
                        .try_into()
                        .unwrap_or(usize::MAX)
            }
            "--max-depth" => {
                options.limits.max_call_depth = count("--max-depth", &value("--max-depth")?)?
            }
            "--max-tasks" => {
                options.limits.max_tasks = count("--max-tasks", &value("--max-tasks")?)?
            }
            "--max-instructions" => {
                options.max_instructions = match value("--max-instructions")?.as_str() {
                    "unlimited" => None,
                    text => Some(
                        count("--max-instructions", text)
                            .map_err(|why| format!("{why} (or `unlimited`)"))?
                            as u64,
                    ),
                }
            }
            _ if arg.starts_with('-') && arg != "-" => {
                return Err(format!("unknown option `{arg}`"))
            }
            _ if file.is_none() => file = Some(arg),
            _ => {
                return Err(format!(
                    "unexpected argument `{arg}` (script arguments go after `--`)"
                ))
            }
        }
    }
    options.io.check()?;
    if resume {
        let path = file.ok_or("`spool resume` needs the PATH of a saved run")?;
        return Ok(Command::Resume {
            path,
            send,
            program,
            options,
        });
    }
    let file = file.ok_or("`spool run` needs a FILE")?;
    if options.step && options.state.is_none() {
        return Err("`--step` needs `--state PATH` to save the run at each yield".into());
    }
    Ok(Command::Run {
        file,
        args: script_args,
        options,
    })
}

/// A positive count given to `flag`.
fn count(flag: &str, text: &str) -> Result<usize, String> {
    text.replace('_', "")
        .parse()
        .ok()
        .filter(|&n: &usize| n >= 1)
        .ok_or_else(|| format!("`{flag}` needs a positive number, not `{text}`"))
}

fn reject_flag(arg: &str) -> Result<(), String> {
    if arg.starts_with('-') && arg != "-" {
        return Err(format!("unknown option `{arg}`"));
    }
    Ok(())
}

/// Reads and compiles a file and the files it imports (read from beside
/// it, regular files of bounded size), printing what went wrong; `Err`
/// holds the exit code.
pub(crate) fn compile_file(path: &str) -> Result<spool::Program, i32> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("error: cannot read `{path}`: {error}");
            return Err(EXIT_USAGE);
        }
    };
    let engine = crate::engine();
    let load = spool::files::beside(path);
    let compiled = if main_stack_is_ample() {
        engine.compile_with_here(path, &bytes, load)
    } else {
        engine.compile_with(path, &bytes, load)
    };
    compiled.map_err(|error| {
        print_compile_error(&error);
        EXIT_USAGE
    })
}

/// Is this the main thread, with a stack that may grow to at least
/// [`MAIN_STACK`] bytes (its soft limit, as `ulimit -s` sets it)? Then a
/// small program is compiled on it ([`spool::Engine::compile_with_here`]).
fn main_stack_is_ample() -> bool {
    crate::process::is_main_thread()
        && crate::process::stack_limit().is_none_or(|bytes| bytes >= MAIN_STACK as u64)
}

/// The main thread's stack [`main_stack_is_ample`] asks for: Linux's usual
/// 8 MiB, twice what the front end may use on it
/// ([`spool::SMALL_PROGRAM_STACK`]).
const MAIN_STACK: usize = 8 << 20;

pub(crate) fn print_compile_error(error: &CompileError) {
    let text = if std::io::stderr().is_terminal() {
        error.render_colored()
    } else {
        error.render()
    };
    eprint!("{text}");
}

fn run_file(path: &str, args: Vec<String>, options: &RunOptions) -> i32 {
    let program = match compile_file(path) {
        Ok(program) => program,
        Err(code) => return code,
    };
    if let Some(state) = &options.state {
        if let Err(message) = crate::durable::check_fresh(state) {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    }
    let mut run = program.start(args);
    run.seed(options.seed.unwrap_or_else(crate::durable::random_u64));
    if options.step {
        run.set_host_note(STEP_NOTE, "1");
    }
    let code = drive_run(&mut run, options, options.state.clone());
    // The process ends next: freeing the run and the program one object at
    // a time would only add to a short script's time.
    std::mem::forget((run, program));
    code
}

/// The host note that marks a run started with `--step`.
const STEP_NOTE: &str = "spool.step";

/// `spool resume PATH`: continues a saved run where it stopped, issuing
/// again the I/O requests it was waiting for.
fn resume_file(
    path: &str,
    send: Option<&str>,
    program: Option<&str>,
    mut options: RunOptions,
) -> i32 {
    let mut run = match crate::durable::load(path) {
        Ok(run) => run,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    if let Some(file) = program {
        if let Err(message) = upgrade_to(&mut run, file) {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    }
    match run.status() {
        spool_vm::Status::Done(_) => {
            eprintln!("the run saved in `{path}` has already finished");
            return EXIT_OK;
        }
        spool_vm::Status::Failed(_) if run.exit_code().is_some() => {
            let code = run.exit_code().unwrap_or_default();
            eprintln!("the run saved in `{path}` has already finished with exit({code})");
            return code as i32;
        }
        spool_vm::Status::Failed(error) => {
            eprint!("{}", format_runtime_error(error));
            return EXIT_RUNTIME;
        }
        spool_vm::Status::Running => {}
    }
    if let Some(failure) = crate::durable::take_failure(&mut run) {
        let first = failure.lines().next().unwrap_or_default();
        eprintln!(
            "note: the last attempt of this run failed ({}); continuing from its last checkpoint",
            first.trim_start_matches("error: ")
        );
    }
    match (send, run.awaiting_send()) {
        (Some(text), true) => match spool::answer::from_json(&mut run, text) {
            Ok(answer) => run.send(answer),
            Err(message) => {
                eprintln!("error: {message}");
                return EXIT_USAGE;
            }
        },
        (Some(_), false) => {
            eprintln!("error: `--send`: the run saved in `{path}` is not waiting at a yield");
            return EXIT_USAGE;
        }
        (None, true) => match answer_yield(&mut run, &mut std::io::stdin().lock()) {
            Ok(answer) => run.send(answer),
            Err(message) => {
                eprintln!("error: {message}");
                return EXIT_RUNTIME;
            }
        },
        (None, false) => {}
    }
    options.step |= run.host_note(STEP_NOTE).is_some();
    drive_run(&mut run, &options, Some(path.to_string()))
}

/// `--program FILE`: continues the run on FILE's program when no function
/// the run is inside changed (see `upgrade.rs`).
fn upgrade_to(run: &mut Run, file: &str) -> Result<(), String> {
    let new = compile_file(file).map_err(|_| format!("`--program {file}` does not compile"))?;
    spool::upgrade::upgrade(run, &new).map_err(|why| format!("`--program {file}`: {why}"))
}

/// Drives `run` to its end (or, in step mode, to its next top-level
/// yield), saving it to `state` as [`Driver::run_to_end`] says.
fn drive_run(run: &mut Run, options: &RunOptions, state: Option<String>) -> i32 {
    let host = StdoutOutput::new();
    let mut driver = Driver::new(options.max_io, state, &options.io);
    driver.hooks.step = options.step;
    driver.hooks.max_instructions = options.max_instructions;
    run.set_limits(options.limits);
    driver.hooks.trace = options.trace.as_ref().map(|_| TraceRecorder::new());
    let outcome = driver.run_to_end(run, &host);
    host.flush();
    if let (Some(path), Some(trace)) = (&options.trace, &driver.hooks.trace) {
        if let Err(error) = std::fs::write(path, trace.to_json()) {
            eprintln!("error: cannot write the trace to `{path}`: {error}");
        }
    }
    match outcome {
        Ok(_) => run.exit_code().map_or(EXIT_OK, |code| code as i32),
        Err(message) if driver.hooks.paused_at_limit => {
            eprint!("{message}");
            EXIT_OK
        }
        Err(message) => {
            eprint!("{message}");
            EXIT_RUNTIME
        }
    }
}

/// Drives a run for the command line with the library's driver loop
/// ([`spool::drive_with`]): its I/O through the pool dispatcher, its
/// top-level yields through standard input, checkpoints and the trace in
/// [`CliHooks`].
pub(crate) struct Driver {
    dispatcher: spool::PoolDispatcher,
    hooks: CliHooks,
}

/// What the command line does at each point of a drive.
struct CliHooks {
    /// Where the run's output goes (shared with the run's host).
    output: StdoutOutput,
    trace: Option<TraceRecorder>,
    /// Where to save the run, if anywhere.
    state: Option<String>,
    /// Stop at the next top-level yield.
    step: bool,
    /// Set (by a Ctrl-C handler) to stop the run at its next pause.
    interrupt: Option<&'static std::sync::atomic::AtomicBool>,
    /// `--max-instructions`: most instructions to run in this invocation.
    max_instructions: Option<u64>,
    /// Instructions run so far (counted only with `max_instructions`).
    used: u64,
    /// The run stopped at `--max-instructions` and was saved there.
    paused_at_limit: bool,
}

/// The instructions a resume may run at most before the driver counts
/// them again (under `--max-instructions`).
const INSTRUCTION_SLICE: u64 = 1 << 20;

impl Driver {
    fn new(max_io: usize, state: Option<String>, policy: &crate::cli_io::Policy) -> Driver {
        Driver {
            dispatcher: crate::cli_io::dispatcher(max_io, policy),
            hooks: CliHooks {
                output: StdoutOutput::new(),
                trace: None,
                state,
                step: false,
                interrupt: None,
                max_instructions: None,
                used: 0,
                paused_at_limit: false,
            },
        }
    }

    /// A driver for the REPL: no checkpoints, no trace; a run stops with
    /// an `interrupted` error soon after `interrupt` is set, also while it
    /// waits on I/O.
    pub(crate) fn interactive(interrupt: &'static std::sync::atomic::AtomicBool) -> Driver {
        let mut driver = Driver::new(
            spool::dispatch::DEFAULT_MAX_IN_FLIGHT,
            None,
            &crate::cli_io::Policy::default(),
        );
        driver.hooks.interrupt = Some(interrupt);
        driver
    }

    /// Runs until the run ends (or stops at a yield in step mode, giving
    /// `None`); `Err` holds the text to print. `host` is where the run
    /// prints.
    ///
    /// With `--state`, a checkpoint is written when the run starts (or
    /// continues), at the end of every CPU phase *before* its batch of I/O
    /// is handed out (so the saved run records those requests in flight,
    /// with their timers' deadlines), at every top-level yield and when the
    /// run finishes; the output printed before each checkpoint is flushed
    /// first. An uncaught error leaves the last checkpoint in place,
    /// recording the failure in it.
    pub(crate) fn run_to_end(
        &mut self,
        run: &mut Run,
        host: &StdoutOutput,
    ) -> Result<Option<spool::Value>, String> {
        self.hooks.output = host.clone();
        self.hooks.checkpoint(run)?;
        self.hooks.budget(run)?;
        let mut output = host.clone();
        let outcome = spool::drive_with(run, &mut output, &mut self.dispatcher, &mut self.hooks);
        host.flush();
        match outcome {
            Ok(spool::Driven::Done(value)) => self.hooks.checkpoint(run).map(|()| Some(value)),
            Ok(spool::Driven::AtYield) => Ok(None),
            Err(spool::Stop::Host(message)) => Err(message),
            // `exit(N)` with N other than 0: the run finished as asked.
            Err(spool::Stop::Run(_)) if run.exit_code().is_some() => {
                self.hooks.checkpoint(run).map(|()| None)
            }
            Err(spool::Stop::Run(error)) => {
                let text = format_runtime_error(&error);
                if let Some(path) = &self.hooks.state {
                    crate::durable::record_failure(path, &text)
                        .map_err(|m| format!("{text}error: {m}\n"))?;
                }
                Err(text)
            }
        }
    }
}

impl CliHooks {
    /// `Err` when the user asked to stop the run (Ctrl-C at the prompt).
    fn check_interrupt(&self) -> Result<(), String> {
        match self.interrupt {
            Some(flag) if flag.swap(false, std::sync::atomic::Ordering::SeqCst) => {
                Err("interrupted\n".to_string())
            }
            _ => Ok(()),
        }
    }

    /// Under `--max-instructions`: gives the run the budget left (in
    /// slices), or stops it once it is spent: saved there with `--state`
    /// (`spool resume` continues it), a `Limit` error without.
    fn budget(&mut self, run: &mut Run) -> Result<(), String> {
        let Some(max) = self.max_instructions else {
            return Ok(());
        };
        let left = max.saturating_sub(self.used);
        if left == 0 {
            return match &self.state {
                Some(path) => {
                    self.checkpoint(run)?;
                    self.paused_at_limit = true;
                    Err(format!(
                        "paused after {max} instructions (`--max-instructions`); \
                         `spool resume {path}` continues the run\n"
                    ))
                }
                None => Err(format!(
                    "error: Limit: instruction limit exceeded ({max} instructions; \
                     `--max-instructions N` raises it, `--max-instructions unlimited` \
                     lifts it)\n"
                )),
            };
        }
        let mut limits = run.limits();
        limits.budget = Some(left.min(INSTRUCTION_SLICE));
        run.set_limits(limits);
        Ok(())
    }

    /// Saves the run when `--state` asked for it, after flushing what it
    /// printed.
    fn checkpoint(&self, run: &Run) -> Result<(), String> {
        self.output.flush();
        match &self.state {
            Some(path) => crate::durable::save(path, run).map_err(|m| format!("error: {m}\n")),
            None => Ok(()),
        }
    }
}

impl spool::Hooks for CliHooks {
    /// A `sleep` waits only for what is left of it.
    fn reissue(&mut self, run: &Run, pending: &mut [spool::IoRequest]) {
        if let Some(trace) = &mut self.trace {
            trace.batch(pending);
        }
        let now = unix_ms();
        for request in pending {
            if let Some(deadline) = run.io_deadline(request.id) {
                if &*request.op == "sleep" {
                    request.args = std::sync::Arc::new([spool::Data::Int(
                        deadline.saturating_sub(now).max(0),
                    )]);
                }
            }
        }
    }

    /// Write-ahead: the checkpoint records the batch as in flight (each
    /// `sleep` with its deadline) before any of it starts.
    fn before_io(&mut self, run: &mut Run, batch: &[spool::IoRequest]) -> Result<(), String> {
        self.budget(run)?;
        stamp_deadlines(run, batch);
        self.checkpoint(run)?;
        if let Some(trace) = &mut self.trace {
            trace.batch(batch);
        }
        Ok(())
    }

    /// LANGUAGE.md §6: print each top-level yield, save, and answer it
    /// from standard input (or stop there in step mode).
    fn answer(
        &mut self,
        run: &mut Run,
        value: spool::Value,
    ) -> Result<Option<spool::Value>, String> {
        self.output.print(&run.display(value));
        self.checkpoint(run)?;
        if self.step {
            return Ok(None);
        }
        self.budget(run)?;
        answer_yield(run, &mut std::io::stdin().lock())
            .map(Some)
            .map_err(|m| format!("error: {m}\n"))
    }

    fn paused(&mut self, run: &mut Run) -> Result<(), String> {
        self.budget(run)?;
        self.check_interrupt()
    }

    fn wait_slice(&self) -> Option<std::time::Duration> {
        self.interrupt.map(|_| std::time::Duration::from_millis(50))
    }

    fn waiting(&mut self, _run: &mut Run) -> Result<(), String> {
        self.check_interrupt()
    }

    fn completed(&mut self, completion: &spool::Completion) {
        if let Some(trace) = &mut self.trace {
            trace.completed(completion.id, completion.result.is_ok());
        }
    }

    fn phase_ended(&mut self, run: &Run, began: std::time::Instant, step: &Result<Step, RunError>) {
        if let (Some(_), Some(budget)) = (self.max_instructions, run.limits().budget) {
            self.used = self
                .used
                .saturating_add(budget - run.budget_left().min(budget));
        }
        if let Some(trace) = &mut self.trace {
            let outcome = match step {
                Ok(Step::Io(_)) => "io",
                Ok(Step::Yield(_)) => "yield",
                Ok(Step::Paused) => "paused",
                Ok(Step::Done(_)) => "done",
                Err(_) => "error",
            };
            trace.cpu_phase(trace.at(began), run.sched().live, outcome);
        }
    }
}

/// Milliseconds since the Unix epoch, by the system clock.
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Records in the run when each `sleep` of a new batch is due, so that the
/// checkpoint written before the batch starts carries the deadline: a
/// resumed run sleeps only for what is left.
fn stamp_deadlines(run: &mut Run, batch: &[spool::IoRequest]) {
    let now = unix_ms();
    for request in batch {
        if let ("sleep", [spool::Data::Int(ms)]) = (&*request.op, &request.args[..]) {
            if *ms >= 0 {
                run.set_io_deadline(request.id, now.saturating_add(*ms));
            }
        }
    }
}

/// The answer to a top-level `yield`: nothing for a script that receives
/// `nil`; otherwise one line of standard input, taken as it is for `str`
/// and parsed as JSON for every other type (`spool::answer`).
fn answer_yield(
    run: &mut spool::Run,
    stdin: &mut impl std::io::BufRead,
) -> Result<spool::Value, String> {
    if !spool::answer::needs_answer(run) {
        return Ok(spool::Value::Nil);
    }
    let mut line = String::new();
    match stdin.read_line(&mut line) {
        Ok(0) => {
            return Err(
                "standard input ended while the script waited for an answer to `yield`".into(),
            )
        }
        Ok(_) => {}
        Err(error) => return Err(format!("cannot read standard input: {error}")),
    }
    let line = line.trim_end_matches(['\n', '\r']);
    spool::answer::from_line(run, line)
}

/// An uncaught runtime error as the command line prints it: kind, message
/// and one `at function (file:line:col)` line per frame. A frame repeated
/// many times in a row (deep recursion) is shown once with a count, and a
/// very long trace keeps its innermost and outermost frames.
pub fn format_runtime_error(error: &RunError) -> String {
    const KEEP: usize = 20;
    let mut out = format!("error: {}: {}\n", error.kind, error.message);
    let mut lines: Vec<String> = Vec::new();
    let mut frames = error.trace.iter().peekable();
    while let Some(frame) = frames.next() {
        let mut repeats = 0;
        while frames.peek() == Some(&frame) {
            frames.next();
            repeats += 1;
        }
        lines.push(format!(
            "  at {} ({}:{}:{})",
            frame.function, frame.file, frame.line, frame.col
        ));
        if repeats > 0 {
            lines.push(format!("  ... repeated {repeats} more time(s)"));
        }
    }
    if lines.len() > 2 * KEEP {
        let hidden = lines.len() - 2 * KEEP;
        lines.splice(
            KEEP..lines.len() - KEEP,
            [format!("  ... {hidden} more line(s)")],
        );
    }
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Prints to standard output through a buffer, flushed when the run
/// stops or is saved; a closed pipe ends output quietly. Clones share the
/// buffer (the run prints through one, the driver flushes through another).
#[derive(Clone)]
pub(crate) struct StdoutOutput {
    out: std::rc::Rc<std::cell::RefCell<Buffered>>,
}

struct Buffered {
    /// What was printed and not yet written; it grows only as far as a
    /// run prints (a run that prints nothing allocates nothing).
    pending: Vec<u8>,
    broken: bool,
}

/// How much printed text [`Buffered`] holds before writing it.
const OUTPUT_BUFFER: usize = 1 << 16;

impl Buffered {
    /// Writes what is pending to standard output (unless it broke).
    fn write_pending(&mut self) {
        if !self.broken && !self.pending.is_empty() {
            self.broken = std::io::stdout().lock().write_all(&self.pending).is_err();
        }
        self.pending.clear();
    }
}

impl StdoutOutput {
    pub(crate) fn new() -> StdoutOutput {
        StdoutOutput {
            out: std::rc::Rc::new(std::cell::RefCell::new(Buffered {
                pending: Vec::new(),
                broken: false,
            })),
        }
    }

    pub(crate) fn flush(&self) {
        let mut out = self.out.borrow_mut();
        out.write_pending();
        if !out.broken && std::io::stdout().flush().is_err() {
            out.broken = true;
        }
    }
}

impl Drop for Buffered {
    fn drop(&mut self) {
        self.write_pending();
    }
}

impl Output for StdoutOutput {
    fn print(&mut self, text: &str) {
        let mut out = self.out.borrow_mut();
        if out.broken {
            return;
        }
        out.pending.extend_from_slice(text.as_bytes());
        out.pending.push(b'\n');
        if out.pending.len() >= OUTPUT_BUFFER {
            out.write_pending();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn long_traces_are_shortened() {
        let frame = |function: &str, line| spool::TraceFrame {
            function: function.into(),
            file: "f.spl".into(),
            line,
            col: 1,
        };
        let mut trace = vec![frame("depth", 3); 1000];
        trace.push(frame("main", 9));
        let error = RunError {
            kind: "Limit".into(),
            message: "deep".into(),
            trace,
        };
        let text = format_runtime_error(&error);
        assert_eq!(
            text,
            "error: Limit: deep\n  at depth (f.spl:3:1)\n  ... repeated 999 more time(s)\n  at main (f.spl:9:1)\n"
        );
        let trace: Vec<_> = (0..100).map(|i| frame("f", i)).collect();
        let error = RunError {
            kind: "K".into(),
            message: "m".into(),
            trace,
        };
        let text = format_runtime_error(&error);
        assert_eq!(text.lines().count(), 1 + 20 + 1 + 20);
        assert!(text.contains("  ... 60 more line(s)\n"));
    }

    #[test]
    fn parses_the_documented_forms() {
        let run = |file: &str, args: &[&str]| Command::Run {
            file: file.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            options: RunOptions::default(),
        };
        assert_eq!(parse(&["a.spl"]), Ok(run("a.spl", &[])));
        assert_eq!(parse(&["a.spl", "x", "y"]), Ok(run("a.spl", &["x", "y"])));
        assert_eq!(
            parse(&["run", "a.spl", "--", "x"]),
            Ok(run("a.spl", &["x"]))
        );
        assert_eq!(
            parse(&["check", "a.spl"]),
            Ok(Command::Check {
                file: "a.spl".into()
            })
        );
        assert_eq!(
            parse(&["disasm", "a.spl"]),
            Ok(Command::Disasm {
                file: "a.spl".into()
            })
        );
        assert_eq!(
            parse(&["run", "--max-io", "4", "a.spl", "--trace=t.json", "--", "x"]),
            Ok(Command::Run {
                file: "a.spl".into(),
                args: vec!["x".into()],
                options: RunOptions {
                    max_io: 4,
                    trace: Some("t.json".into()),
                    ..RunOptions::default()
                },
            })
        );
        assert_eq!(
            parse(&["resume", "f.run", "--send", "\"yes\"", "--step"]),
            Ok(Command::Resume {
                path: "f.run".into(),
                send: Some("\"yes\"".into()),
                program: None,
                options: RunOptions {
                    step: true,
                    ..RunOptions::default()
                },
            })
        );
        assert_eq!(
            parse(&["inspect", "f.run"]),
            Ok(Command::Inspect {
                path: "f.run".into(),
                key: None,
            })
        );
        assert!(
            parse(&["run", "a.spl", "--step"]).is_err(),
            "--step needs --state"
        );
        assert!(parse(&["run", "a.spl", "--send", "1"]).is_err());
        assert!(parse(&["resume", "f.run", "--", "x"]).is_err());
        assert!(parse(&["inspect"]).is_err());
        let instructions = |args: &[&str]| match parse(args) {
            Ok(Command::Run { options, .. }) => Ok(options.max_instructions),
            other => Err(format!("{other:?}")),
        };
        assert_eq!(
            instructions(&["run", "a.spl"]),
            Ok(Some(DEFAULT_MAX_INSTRUCTIONS))
        );
        assert_eq!(
            instructions(&["run", "a.spl", "--max-instructions", "1_000"]),
            Ok(Some(1000))
        );
        assert_eq!(
            instructions(&["run", "a.spl", "--max-instructions=unlimited"]),
            Ok(None)
        );
        assert!(parse(&["run", "a.spl", "--max-instructions", "none"]).is_err());
        assert!(parse(&["run", "a.spl", "--max-io", "0"]).is_err());
        assert!(parse(&["run", "a.spl", "--max-io"]).is_err());
        assert!(parse(&["run", "a.spl", "--bogus"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["check"]).is_err());
        assert_eq!(parse(&[]), Ok(Command::Repl));
        assert_eq!(parse(&["repl"]), Ok(Command::Repl));
        assert!(parse(&["repl", "x"]).is_err());
    }
}
