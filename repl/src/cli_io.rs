//! The I/O operations of the `spool` command line (LANGUAGE.md §6): files,
//! processes, HTTP, time, the environment and standard input.
//!
//! [`SIGNATURES`] declares them to the compiler; [`handle`] answers one
//! request; [`dispatcher`] runs many at once on a [`PoolDispatcher`], with
//! `sleep` served by its timer thread and `now`/`env` answered on the spot.
//!
//! Every failure is the message of the `Io` error the call raises: the
//! operation and its main argument, then the operating system's (or the
//! HTTP client's) message, as in
//! `read_file("x.txt"): No such file or directory (os error 2)`. Arguments
//! of the wrong shape cannot come from a checked script; they give
//! `internal: bad arguments for OP` rather than a panic.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spool_vm::{Data, IoRequest, IoResult};

use spool::dispatch::{self, PoolDispatcher, Route};

pub use crate::io_signatures::SIGNATURES;

/// How long one HTTP request may take in all (connecting, sending, and
/// reading the whole response) before it fails, unless `--http-timeout`
/// says otherwise.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest HTTP response body accepted, in bytes (64 MiB); a larger one
/// fails.
pub const HTTP_MAX_BODY: u64 = 64 << 20;

/// The largest file `read_file` reads unless `--max-read` says otherwise
/// (64 MiB).
pub const MAX_READ: u64 = 64 << 20;

/// The most output (standard output and error together) `exec` collects
/// unless `--max-exec-output` says otherwise (64 MiB).
pub const MAX_EXEC_OUTPUT: u64 = 64 << 20;

/// How long a program run by `exec` may take unless `--exec-timeout` says
/// otherwise (10 minutes).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(600);

/// What the command line's I/O operations may do: their caps and
/// timeouts and, under `--sandbox`, what is granted. It is the host's
/// policy, not part of a run: it is never saved, and `spool resume` takes
/// it from its own flags like `spool run`.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// `--max-read`: the largest file `read_file` reads, in bytes.
    pub max_read: u64,
    /// `--max-exec-output`: the most output `exec` collects, in bytes.
    pub max_exec_output: u64,
    /// `--exec-timeout`: how long a program run by `exec` may take.
    pub exec_timeout: Duration,
    /// `--http-timeout`: how long an HTTP request may take in all.
    pub http_timeout: Duration,
    /// `--sandbox`: every operation but `now`, `sleep` and `input` is
    /// denied unless one of `grants` allows it.
    pub sandbox: bool,
    /// `--allow` grants, in the order given.
    pub grants: Vec<Grant>,
}

/// One `--allow CATEGORY[=TARGET]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Grant {
    /// What the grant is about.
    pub category: Category,
    /// A path, program, host or variable name; `None` grants the whole
    /// category.
    pub target: Option<String>,
}

/// What a grant is about.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Category {
    /// `read_file` and `list_dir` of a file or anything under a directory.
    Read,
    /// `write_file` of a file or anything under a directory.
    Write,
    /// `exec` of a program.
    Exec,
    /// `http` and `http_get` to a host.
    Net,
    /// `env` of a variable.
    Env,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            max_read: MAX_READ,
            max_exec_output: MAX_EXEC_OUTPUT,
            exec_timeout: EXEC_TIMEOUT,
            http_timeout: HTTP_TIMEOUT,
            sandbox: false,
            grants: Vec::new(),
        }
    }
}

impl Policy {
    /// The flags [`Policy::set_flag`] reads, each followed by a value
    /// (`--sandbox`, which takes none, is set directly).
    pub const FLAGS: &'static [&'static str] = &[
        "--allow",
        "--max-read",
        "--max-exec-output",
        "--exec-timeout",
        "--http-timeout",
    ];

    /// Reads one of [`Policy::FLAGS`] and its value.
    pub fn set_flag(&mut self, flag: &str, value: &str) -> Result<(), String> {
        match flag {
            "--allow" => self.grants.push(Grant::parse(value)?),
            "--max-read" => self.max_read = parse_size(flag, value)?,
            "--max-exec-output" => self.max_exec_output = parse_size(flag, value)?,
            "--exec-timeout" => self.exec_timeout = parse_seconds(flag, value)?,
            "--http-timeout" => self.http_timeout = parse_seconds(flag, value)?,
            _ => return Err(format!("unknown option `{flag}`")),
        }
        Ok(())
    }

    /// Checks the flags together once all are read.
    pub fn check(&self) -> Result<(), String> {
        if !self.grants.is_empty() && !self.sandbox {
            return Err("`--allow` grants only make sense with `--sandbox`".into());
        }
        Ok(())
    }
}

impl Grant {
    /// `CATEGORY` or `CATEGORY=TARGET`.
    fn parse(text: &str) -> Result<Grant, String> {
        let (name, target) = match text.split_once('=') {
            Some((name, target)) => (name, Some(target.to_string())),
            None => (text, None),
        };
        let category = match name {
            "read" => Category::Read,
            "write" => Category::Write,
            "exec" => Category::Exec,
            "net" => Category::Net,
            "env" => Category::Env,
            _ => {
                return Err(format!(
                    "`--allow {text}`: the category is one of read, write, exec, net, env"
                ))
            }
        };
        if target.as_deref() == Some("") {
            return Err(format!("`--allow {text}`: nothing after `=`"));
        }
        Ok(Grant { category, target })
    }
}

impl Category {
    fn name(self) -> &'static str {
        match self {
            Category::Read => "read",
            Category::Write => "write",
            Category::Exec => "exec",
            Category::Net => "net",
            Category::Env => "env",
        }
    }
}

/// A byte count with an optional suffix `k`, `M` or `G` (powers of 1024).
pub(crate) fn parse_size(flag: &str, text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 1 << 10),
        Some((at, 'M')) => (&text[..at], 1 << 20),
        Some((at, 'G')) => (&text[..at], 1 << 30),
        _ => (text, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            format!(
                "`{flag}` needs a positive size in bytes (like 4096, 64k, 64M or 1G), not `{text}`"
            )
        })
}

/// A positive number of seconds, possibly fractional.
fn parse_seconds(flag: &str, text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|&s| s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("`{flag}` needs a positive number of seconds, not `{text}`"))
}

/// A size as messages show it: `64 MiB`, `4 KiB`, `1000 bytes`.
fn shown_size(bytes: u64) -> String {
    match bytes {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// A duration as messages show it: `600 s`, `0.5 s`.
fn shown_seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} s", duration.as_secs_f64())
    }
}

/// The command line's I/O operations under one [`Policy`]: the handler
/// a [`dispatcher`] runs on its workers.
pub struct Io {
    policy: Policy,
    /// Each grant with its path or program resolved (symbolic links and
    /// `..` followed) when the run started; `None` for other grants.
    grants: Vec<(Grant, Option<PathBuf>)>,
    /// The HTTP client every request shares (it pools connections).
    agent: ureq::Agent,
}

/// A [`PoolDispatcher`] for the command line: [`Io::handle`] under
/// `policy` on at most `max_in_flight` worker threads (`0` is taken as
/// `1`), `sleep` on the pool's timer thread, `now` and `env` answered
/// without a worker.
pub fn dispatcher(max_in_flight: usize, policy: &Policy) -> PoolDispatcher {
    let io = Arc::new(Io::new(policy.clone()));
    let router_io = Arc::clone(&io);
    PoolDispatcher::new(Arc::new(move |request: &IoRequest| io.handle(request)))
        .with_max_in_flight(max_in_flight)
        .with_router(move |request: &IoRequest| match &*request.op {
            "now" | "env" => Route::Done(router_io.handle(request)),
            _ => dispatch::sleep_route(request),
        })
}

/// Answers one request of an operation in [`SIGNATURES`] under the default
/// [`Policy`] (no sandbox), blocking until it is done. `sleep` blocks the
/// calling thread here; [`dispatcher`] serves it with a timer instead.
pub fn handle(request: &IoRequest) -> IoResult {
    static DEFAULT: OnceLock<Io> = OnceLock::new();
    DEFAULT
        .get_or_init(|| Io::new(Policy::default()))
        .handle(request)
}

impl Io {
    /// The operations under `policy`; grants' paths and programs are
    /// resolved now, against the current directory.
    pub fn new(policy: Policy) -> Io {
        let grants = policy
            .grants
            .iter()
            .map(|grant| {
                let resolved = match (grant.category, &grant.target) {
                    (Category::Read | Category::Write, Some(path)) => {
                        Some(resolve_path(Path::new(path)).unwrap_or_else(|| absolute(path)))
                    }
                    (Category::Exec, Some(program)) => resolve_program(program),
                    _ => None,
                };
                (grant.clone(), resolved)
            })
            .collect();
        // Under the sandbox a redirect is returned, not followed: it may
        // lead to a host that is not granted.
        let redirects = match policy.sandbox {
            true => 0,
            false => 10,
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(policy.http_timeout))
            .max_redirects(redirects)
            .allow_non_standard_methods(true)
            .build()
            .into();
        Io {
            policy,
            grants,
            agent,
        }
    }

    /// Answers one request of an operation in [`SIGNATURES`], blocking
    /// until it is done.
    pub fn handle(&self, request: &IoRequest) -> IoResult {
        let args = &request.args[..];
        match &*request.op {
            "read_file" => self.read_file(str_arg("read_file", args)?),
            "write_file" => self.write_file(args),
            "list_dir" => self.list_dir(str_arg("list_dir", args)?),
            "exec" => self.exec(args),
            "http" => self.http(args),
            "http_get" => self.send("GET", str_arg("http_get", args)?, &[], ""),
            "sleep" => sleep(args),
            "now" => now(args),
            "env" => self.env(str_arg("env", args)?),
            "input" => input(str_arg("input", args)?),
            other => Err(format!("internal: unknown operation {other}")),
        }
    }

    /// The path `op` may use for `path` under the sandbox: the path
    /// resolved (its parent, when it does not exist yet), inside a granted
    /// directory or equal to a granted file. Without the sandbox, `path`
    /// as given.
    fn allow_path(&self, op: &str, category: Category, path: &str) -> Result<PathBuf, String> {
        if !self.policy.sandbox {
            return Ok(PathBuf::from(path));
        }
        let resolved = resolve_path(Path::new(path));
        let granted = self.grants.iter().any(|(grant, granted)| {
            grant.category == category
                && match (granted, &resolved) {
                    _ if grant.target.is_none() => true,
                    (Some(granted), Some(resolved)) => resolved.starts_with(granted),
                    _ => false,
                }
        });
        match (granted, resolved) {
            (true, Some(resolved)) => Ok(resolved),
            (true, None) => Ok(PathBuf::from(path)),
            (false, _) => Err(denied(&format!("{op}({path:?})"), category, path)),
        }
    }

    /// `Err` unless the sandbox is off or a grant of `category` names
    /// `target` (compared by `same`, given the grant's text and what it
    /// resolved to) or the whole category.
    fn allow(
        &self,
        call: &str,
        category: Category,
        target: &str,
        same: impl Fn(&str, &Option<PathBuf>) -> bool,
    ) -> Result<(), String> {
        let granted = !self.policy.sandbox
            || self.grants.iter().any(|(grant, resolved)| {
                grant.category == category
                    && grant.target.as_ref().is_none_or(|t| same(t, resolved))
            });
        match granted {
            true => Ok(()),
            false => Err(denied(call, category, target)),
        }
    }

    /// Reads a whole file, at most [`Policy::max_read`] bytes of it.
    fn read_file(&self, path: &str) -> IoResult {
        use std::io::Read;
        let real = self.allow_path("read_file", Category::Read, path)?;
        let context = |e: std::io::Error| format!("read_file({path:?}): {e}");
        let cap = self.policy.max_read;
        let mut bytes = Vec::new();
        std::fs::File::open(&real)
            .and_then(|file| file.take(cap.saturating_add(1)).read_to_end(&mut bytes))
            .map_err(context)?;
        if bytes.len() as u64 > cap {
            return Err(format!(
                "read_file({path:?}): the file is larger than the {} cap (`--max-read` raises it)",
                shown_size(cap)
            ));
        }
        String::from_utf8(bytes).map(Data::Str).map_err(|e| {
            format!(
                "read_file({path:?}): the file is not valid UTF-8 (bad byte at offset {})",
                e.utf8_error().valid_up_to()
            )
        })
    }

    fn write_file(&self, args: &[Data]) -> IoResult {
        let [Data::Str(path), Data::Str(data)] = args else {
            return Err(bad_args("write_file"));
        };
        let real = self.allow_path("write_file", Category::Write, path)?;
        std::fs::write(real, data).map_err(|e| format!("write_file({path:?}): {e}"))?;
        Ok(Data::Nil)
    }

    /// The names of a directory's entries, sorted (by bytes). A name that
    /// is not valid UTF-8 is given with U+FFFD in place of the bad bytes.
    fn list_dir(&self, path: &str) -> IoResult {
        let real = self.allow_path("list_dir", Category::Read, path)?;
        let context = |e: std::io::Error| format!("list_dir({path:?}): {e}");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(real).map_err(context)? {
            let entry = entry.map_err(context)?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(Data::List(names.into_iter().map(Data::Str).collect()))
    }

    /// Runs a program without a shell, standard input closed, and collects
    /// its output (invalid UTF-8 in it becomes U+FFFD), at most
    /// [`Policy::max_exec_output`] bytes of it within
    /// [`Policy::exec_timeout`]; past either the program is killed and the
    /// call fails. A program killed by a signal has code 128 + the
    /// signal's number, as in a shell; on systems without signals an exit
    /// without a code is -1.
    fn exec(&self, args: &[Data]) -> IoResult {
        let [Data::Str(cmd), Data::List(items)] = args else {
            return Err(bad_args("exec"));
        };
        let argv = items
            .iter()
            .map(|item| item.as_str().ok_or_else(|| bad_args("exec")))
            .collect::<Result<Vec<_>, _>>()?;
        let resolved = resolve_program(cmd);
        self.allow(&format!("exec({cmd:?})"), Category::Exec, cmd, |t, r| {
            t == cmd || (r.is_some() && *r == resolved)
        })?;
        let mut command = program_command(cmd, resolved.filter(|_| self.policy.sandbox));
        command
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command.spawn().map_err(|e| format!("exec({cmd:?}): {e}"))?;
        let (status, stdout, stderr) = collect(child, &self.policy).map_err(|why| match why {
            Collect::TooMuch => format!(
                "exec({cmd:?}): the output is larger than the {} cap (`--max-exec-output` raises it)",
                shown_size(self.policy.max_exec_output)
            ),
            Collect::TimedOut => format!(
                "exec({cmd:?}): timed out after {} (`--exec-timeout` raises the limit)",
                shown_seconds(self.policy.exec_timeout)
            ),
            Collect::Io(e) => format!("exec({cmd:?}): {e}"),
        })?;
        Ok(Data::Record {
            name: "Output".to_string(),
            fields: vec![
                ("code".to_string(), Data::Int(exit_code(&status))),
                ("stdout".to_string(), lossy(&stdout)),
                ("stderr".to_string(), lossy(&stderr)),
            ],
        })
    }

    /// `http(req)`: the request's fields by name; headers are a map of
    /// strings to strings.
    fn http(&self, args: &[Data]) -> IoResult {
        let [request @ Data::Record { .. }] = args else {
            return Err(bad_args("http"));
        };
        let text = |name| request.field(name).and_then(Data::as_str);
        let (Some(method), Some(url), Some(body)) = (text("method"), text("url"), text("body"))
        else {
            return Err(bad_args("http"));
        };
        let headers = match request.field("headers") {
            Some(Data::Map(pairs)) => string_pairs(pairs).ok_or_else(|| bad_args("http"))?,
            _ => return Err(bad_args("http")),
        };
        self.send(method, url, &headers, body)
    }

    /// Sends one request and reads the whole response, whatever its
    /// status. An empty body is sent as no body at all, except for methods
    /// that normally carry one (`POST`, `PUT`, `PATCH`: `content-length:
    /// 0`).
    fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> IoResult {
        let context = |e: &dyn std::fmt::Display| format!("http({method} {url}): {e}");
        let host = url
            .parse::<ureq::http::Uri>()
            .ok()
            .and_then(|uri| uri.host().map(str::to_string))
            .unwrap_or_default();
        self.allow(
            &format!("http({method} {url})"),
            Category::Net,
            &host,
            |t, _| !host.is_empty() && t.eq_ignore_ascii_case(&host),
        )?;
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let sent = if body.is_empty() && !matches!(method, "POST" | "PUT" | "PATCH") {
            builder.body(()).map(|request| self.agent.run(request))
        } else {
            builder.body(body).map(|request| self.agent.run(request))
        };
        let response = sent
            .map_err(|e| context(&e))?
            .map_err(|e| context(&describe(e)))?;
        response_data(response).map_err(|e| context(&describe(e)))
    }

    /// An environment variable, or `nil` when it is not set. A name no
    /// variable can have (empty, or containing `=` or NUL) is not set
    /// either.
    fn env(&self, name: &str) -> IoResult {
        self.allow(&format!("env({name:?})"), Category::Env, name, |t, _| {
            t == name
        })?;
        if name.is_empty() || name.contains(['=', '\0']) {
            return Ok(Data::Nil);
        }
        match std::env::var(name) {
            Ok(value) => Ok(Data::Str(value)),
            Err(std::env::VarError::NotPresent) => Ok(Data::Nil),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("env({name:?}): the value is not valid UTF-8"))
            }
        }
    }
}

/// The message of an operation the sandbox denies, naming the flags that
/// would grant it.
fn denied(call: &str, category: Category, target: &str) -> String {
    let name = category.name();
    if target.is_empty() {
        return format!("{call}: denied by --sandbox (grant it with --allow {name})");
    }
    format!("{call}: denied by --sandbox (grant it with --allow {name}={target} or --allow {name})")
}

/// `path` with symbolic links and `..` resolved; for a path that does not
/// exist, its parent resolved and its name added. `None` when neither
/// resolves (or the path ends in `..`).
fn resolve_path(path: &Path) -> Option<PathBuf> {
    if let Ok(real) = std::fs::canonicalize(path) {
        return Some(real);
    }
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::canonicalize(parent).ok().map(|dir| dir.join(name))
}

/// `path` made absolute against the current directory, unresolved.
fn absolute(path: &str) -> PathBuf {
    std::env::current_dir().unwrap_or_default().join(path)
}

/// The file `exec` would run for `program`: a path resolved as it is, a
/// bare name looked up in `PATH`.
fn resolve_program(program: &str) -> Option<PathBuf> {
    if program.contains(std::path::MAIN_SEPARATOR) || program.contains('/') {
        return std::fs::canonicalize(program).ok();
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .and_then(|found| std::fs::canonicalize(found).ok())
}

/// A command for `program`. Given the file it was resolved to (under the
/// sandbox), that file is run, so the program checked is the one started;
/// on Unix it still sees `program` as its name.
fn program_command(program: &str, resolved: Option<PathBuf>) -> Command {
    match resolved {
        #[cfg(unix)]
        Some(file) => {
            use std::os::unix::process::CommandExt;
            let mut command = Command::new(file);
            command.arg0(program);
            command
        }
        #[cfg(not(unix))]
        Some(file) => Command::new(file),
        None => Command::new(program),
    }
}

/// Why [`collect`] gave up on a program.
enum Collect {
    TooMuch,
    TimedOut,
    Io(std::io::Error),
}

/// A pipe from a child process.
type Pipe = Box<dyn std::io::Read + Send>;

/// Waits for `child` and collects its standard output and error on two
/// threads, killing it when their total passes the policy's cap or the
/// timeout passes. A reader still blocked at the deadline (a grandchild
/// holds the pipe open) is left behind.
fn collect(
    mut child: std::process::Child,
    policy: &Policy,
) -> Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>), Collect> {
    let deadline = Instant::now() + policy.exec_timeout;
    let total = Arc::new(AtomicU64::new(0));
    let (done_tx, done) = mpsc::channel();
    let pipes: [Option<Pipe>; 2] = [
        child.stdout.take().map(|pipe| Box::new(pipe) as Pipe),
        child.stderr.take().map(|pipe| Box::new(pipe) as Pipe),
    ];
    for (which, pipe) in pipes.into_iter().enumerate() {
        let (total, done_tx, cap) = (Arc::clone(&total), done_tx.clone(), policy.max_exec_output);
        thread::spawn(move || {
            let captured = pipe.map_or(Ok(Vec::new()), |pipe| read_capped(pipe, &total, cap));
            let _ = done_tx.send((which, captured));
        });
    }
    drop(done_tx);
    let over = |total: &AtomicU64| total.load(Ordering::Relaxed) > policy.max_exec_output;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(Collect::Io)? {
            break status;
        }
        let why = match (over(&total), Instant::now() >= deadline) {
            (true, _) => Collect::TooMuch,
            (false, true) => Collect::TimedOut,
            (false, false) => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
                continue;
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        return Err(why);
    };
    let mut outputs = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let (which, captured) = done.recv_timeout(left).map_err(|_| Collect::TimedOut)?;
        outputs[which] = captured.map_err(Collect::Io)?;
    }
    if over(&total) {
        return Err(Collect::TooMuch);
    }
    let [stdout, stderr] = outputs;
    Ok((status, stdout, stderr))
}

/// Reads `pipe` to its end, counting what it reads into `total`; stops
/// once `total` passes `cap`.
fn read_capped(mut pipe: Pipe, total: &AtomicU64, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let read = match pipe.read(&mut chunk) {
            Ok(0) => return Ok(bytes),
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if total.fetch_add(read as u64, Ordering::Relaxed) + read as u64 > cap {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&chunk[..read]);
    }
}

fn bad_args(op: &str) -> String {
    format!("internal: bad arguments for {op}")
}

/// The single string argument of `op`.
fn str_arg<'a>(op: &str, args: &'a [Data]) -> Result<&'a str, String> {
    match args {
        [Data::Str(text)] => Ok(text),
        _ => Err(bad_args(op)),
    }
}

fn lossy(bytes: &[u8]) -> Data {
    Data::Str(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(unix)]
fn exit_code(status: &std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        (None, None) => -1,
    }
}

#[cfg(not(unix))]
fn exit_code(status: &std::process::ExitStatus) -> i64 {
    status.code().map_or(-1, i64::from)
}

fn string_pairs(pairs: &[(Data, Data)]) -> Option<Vec<(&str, &str)>> {
    pairs
        .iter()
        .map(|(name, value)| Some((name.as_str()?, value.as_str()?)))
        .collect()
}

/// The client's message for a failure; for an I/O failure, the operating
/// system's message alone (`Connection refused (os error 111)`).
fn describe(error: ureq::Error) -> String {
    match error {
        ureq::Error::Io(error) => error.to_string(),
        other => other.to_string(),
    }
}

/// A `Response` record: the status, the headers by lowercase name (values
/// of a repeated header joined with `, `), the body (invalid UTF-8 becomes
/// U+FFFD).
fn response_data(mut response: ureq::http::Response<ureq::Body>) -> Result<Data, ureq::Error> {
    let status = Data::Int(i64::from(response.status().as_u16()));
    let headers = header_map(response.headers());
    let body = response
        .body_mut()
        .with_config()
        .limit(HTTP_MAX_BODY)
        .read_to_vec()?;
    Ok(Data::Record {
        name: "Response".to_string(),
        fields: vec![
            ("status".to_string(), status),
            ("headers".to_string(), headers),
            ("body".to_string(), lossy(&body)),
        ],
    })
}

fn header_map(headers: &ureq::http::HeaderMap) -> Data {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match pairs.iter_mut().find(|(n, _)| n == name.as_str()) {
            Some((_, joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            None => pairs.push((name.as_str().to_string(), value.into_owned())),
        }
    }
    Data::Map(
        pairs
            .into_iter()
            .map(|(name, value)| (Data::Str(name), Data::Str(value)))
            .collect(),
    )
}

/// `sleep(ms)` on the calling thread (the fallback when no timer serves
/// it).
fn sleep(args: &[Data]) -> IoResult {
    let [Data::Int(ms)] = args else {
        return Err(bad_args("sleep"));
    };
    std::thread::sleep(dispatch::sleep_duration(*ms)?);
    Ok(Data::Nil)
}

/// Milliseconds since the Unix epoch.
fn now(args: &[Data]) -> IoResult {
    if !args.is_empty() {
        return Err(bad_args("now"));
    }
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "now(): the system clock is set before 1970".to_string())?;
    i64::try_from(since.as_millis())
        .map(Data::Int)
        .map_err(|_| "now(): the system clock is too far in the future".to_string())
}

/// Prints the prompt (no newline) and reads one line of standard input,
/// without its line ending. Concurrent calls take turns, each prompt
/// followed by its own line.
fn input(prompt: &str) -> IoResult {
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(prompt.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("input: cannot print the prompt: {e}"))?;
    drop(stdout);
    read_line(&mut std::io::stdin().lock())
}

/// One line without its `\n` or `\r\n`; the end of input is an error.
fn read_line(reader: &mut impl BufRead) -> IoResult {
    let mut line = String::new();
    let read = reader
        .read_line(&mut line)
        .map_err(|e| format!("input: {e}"))?;
    if read == 0 {
        return Err("end of input".to_string());
    }
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(Data::Str(line))
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Cursor, Read};
    use std::net::{TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::thread;

    use spool_vm::IoId;

    use super::*;
    use spool::dispatch::Dispatcher;

    fn call(op: &str, args: Vec<Data>) -> IoResult {
        handle(&IoRequest::new(IoId(1), op, args))
    }

    fn s(text: &str) -> Data {
        Data::str(text)
    }

    fn strs(items: &[&str]) -> Data {
        Data::List(items.iter().map(|item| s(item)).collect())
    }

    /// A fresh, empty directory under the system's temporary directory.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spool-cli-io-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        dir
    }

    fn path_str(path: &std::path::Path) -> Data {
        s(path.to_str().expect("temporary paths are UTF-8"))
    }

    #[test]
    fn files_round_trip_and_list_sorted() {
        let dir = temp_dir("files");
        let file = dir.join("b.txt");
        assert_eq!(
            call("write_file", vec![path_str(&file), s("héllo\n")]),
            Ok(Data::Nil)
        );
        assert_eq!(call("read_file", vec![path_str(&file)]), Ok(s("héllo\n")));
        std::fs::write(dir.join("a.txt"), "").unwrap();
        std::fs::create_dir(dir.join("c")).unwrap();
        assert_eq!(
            call("list_dir", vec![path_str(&dir)]),
            Ok(strs(&["a.txt", "b.txt", "c"]))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_errors_name_the_call_and_the_os_message() {
        let dir = temp_dir("errors");
        let missing = dir.join("x.txt");
        let shown = missing.to_str().unwrap();
        let message = call("read_file", vec![path_str(&missing)]).unwrap_err();
        assert_eq!(
            message,
            format!("read_file({shown:?}): No such file or directory (os error 2)")
        );
        let message = call("list_dir", vec![path_str(&missing)]).unwrap_err();
        assert!(
            message.starts_with(&format!("list_dir({shown:?}): ")),
            "{message}"
        );
        let nested = dir.join("no/such/dir.txt");
        let message = call("write_file", vec![path_str(&nested), s("x")]).unwrap_err();
        assert!(message.contains("os error 2"), "{message}");
        std::fs::write(&missing, b"ok\xff").unwrap();
        let message = call("read_file", vec![path_str(&missing)]).unwrap_err();
        assert!(
            message.ends_with("not valid UTF-8 (bad byte at offset 2)"),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn wrong_arguments_are_internal_errors() {
        let bad = |op: &str, args: Vec<Data>| {
            assert_eq!(
                call(op, args),
                Err(format!("internal: bad arguments for {op}"))
            );
        };
        bad("read_file", vec![]);
        bad("read_file", vec![Data::Int(1)]);
        bad("write_file", vec![s("p")]);
        bad("list_dir", vec![s("a"), s("b")]);
        bad("exec", vec![s("echo"), Data::List(vec![Data::Int(1)])]);
        bad("exec", vec![s("echo")]);
        bad("http", vec![s("http://x")]);
        bad(
            "http",
            vec![Data::Record {
                name: "Request".into(),
                fields: vec![("method".into(), s("GET"))],
            }],
        );
        bad("http_get", vec![]);
        bad("sleep", vec![s("1")]);
        bad("now", vec![Data::Nil]);
        bad("env", vec![]);
        bad("input", vec![Data::Nil]);
        assert_eq!(
            call("launch", vec![]),
            Err("internal: unknown operation launch".to_string())
        );
    }

    fn output(code: i64, stdout: &str, stderr: &str) -> Data {
        Data::Record {
            name: "Output".into(),
            fields: vec![
                ("code".into(), Data::Int(code)),
                ("stdout".into(), s(stdout)),
                ("stderr".into(), s(stderr)),
            ],
        }
    }

    #[test]
    fn exec_runs_programs_without_a_shell() {
        assert_eq!(
            call("exec", vec![s("echo"), strs(&["hi", "$HOME"])]),
            Ok(output(0, "hi $HOME\n", ""))
        );
        assert_eq!(
            call(
                "exec",
                vec![s("sh"), strs(&["-c", "echo out; echo err >&2; exit 3"])]
            ),
            Ok(output(3, "out\n", "err\n"))
        );
        // Standard input is closed, so `cat` ends at once.
        assert_eq!(
            call("exec", vec![s("cat"), strs(&[])]),
            Ok(output(0, "", ""))
        );
        assert_eq!(
            call("exec", vec![s("sh"), strs(&["-c", "kill -9 $$"])]),
            Ok(output(137, "", ""))
        );
    }

    #[test]
    fn exec_of_a_missing_program_fails() {
        let message = call("exec", vec![s("spool-no-such-program"), strs(&[])]).unwrap_err();
        assert_eq!(
            message,
            "exec(\"spool-no-such-program\"): No such file or directory (os error 2)"
        );
    }

    /// A one-thread HTTP/1.1 server on 127.0.0.1 answering `count`
    /// connections, then stopping. It sends each request it read (head and
    /// body) on the channel. `/missing` is a 404, everything else a 200.
    fn serve(count: usize) -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test port");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming().take(count) {
                let Ok(stream) = stream else { return };
                let _ = answer(stream, &tx);
            }
        });
        (base, rx)
    }

    fn answer(mut stream: TcpStream, seen: &mpsc::Sender<String>) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            head.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let missing = head.starts_with("GET /missing ");
        let _ = seen.send(head + &String::from_utf8_lossy(&body));
        let (status, text) = match missing {
            true => ("404 Not Found", "no such page"),
            false => ("200 OK", "hello"),
        };
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Custom: yes\r\nSet-Cookie: a=1\r\n\
             Set-Cookie: b=2\r\nConnection: close\r\n\r\n{text}",
            text.len()
        )?;
        stream.flush()
    }

    fn response(status: i64, body: &str) -> (i64, String) {
        (status, body.to_string())
    }

    fn status_and_body(data: &Data) -> (i64, String) {
        let status = data.field("status").and_then(Data::as_int).unwrap();
        let body = data.field("body").and_then(Data::as_str).unwrap();
        (status, body.to_string())
    }

    fn header<'a>(data: &'a Data, name: &str) -> Option<&'a str> {
        let Some(Data::Map(pairs)) = data.field("headers") else {
            panic!("no headers in {data:?}")
        };
        pairs
            .iter()
            .find(|(n, _)| n.as_str() == Some(name))
            .and_then(|(_, v)| v.as_str())
    }

    #[test]
    fn http_get_returns_the_response() {
        let (base, seen) = serve(1);
        let got = call("http_get", vec![s(&format!("{base}/hello?q=1"))]).unwrap();
        assert_eq!(status_and_body(&got), response(200, "hello"));
        assert_eq!(header(&got, "x-custom"), Some("yes"));
        assert_eq!(header(&got, "set-cookie"), Some("a=1, b=2"));
        assert_eq!(header(&got, "X-Custom"), None);
        let request = seen.recv().unwrap();
        assert!(
            request.starts_with("GET /hello?q=1 HTTP/1.1\r\n"),
            "{request}"
        );
    }

    #[test]
    fn http_sends_method_headers_and_body() {
        let (base, seen) = serve(1);
        let request = Data::Record {
            name: "Request".into(),
            fields: vec![
                ("method".into(), s("POST")),
                ("url".into(), s(&format!("{base}/submit"))),
                ("headers".into(), Data::Map(vec![(s("X-Token"), s("abc"))])),
                ("body".into(), s("payload")),
            ],
        };
        let got = call("http", vec![request]).unwrap();
        assert_eq!(status_and_body(&got), response(200, "hello"));
        let sent = seen.recv().unwrap().to_ascii_lowercase();
        assert!(sent.starts_with("post /submit http/1.1\r\n"), "{sent}");
        assert!(sent.contains("\r\nx-token: abc\r\n"), "{sent}");
        assert!(sent.contains("\r\ncontent-length: 7\r\n"), "{sent}");
        assert!(sent.ends_with("\r\n\r\npayload"), "{sent}");
    }

    #[test]
    fn http_error_statuses_are_responses() {
        let (base, _seen) = serve(1);
        let got = call("http_get", vec![s(&format!("{base}/missing"))]).unwrap();
        assert_eq!(status_and_body(&got), response(404, "no such page"));
    }

    #[test]
    fn http_connection_failures_are_errors() {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/");
        let message = call("http_get", vec![s(&url)]).unwrap_err();
        assert!(
            message.starts_with(&format!("http(GET {url}): ")),
            "{message}"
        );
        assert!(message.contains("(os error "), "{message}");
        let message = call("http_get", vec![s("not a url")]).unwrap_err();
        assert!(message.starts_with("http(GET not a url): "), "{message}");
    }

    #[test]
    fn env_reads_variables() {
        let path = call("env", vec![s("PATH")]).unwrap();
        assert_eq!(path, s(&std::env::var("PATH").unwrap()));
        assert_eq!(
            call("env", vec![s("SPOOL_TEST_SURELY_UNSET_VARIABLE")]),
            Ok(Data::Nil)
        );
        assert_eq!(call("env", vec![s("")]), Ok(Data::Nil));
        assert_eq!(call("env", vec![s("A=B")]), Ok(Data::Nil));
    }

    #[test]
    fn now_is_milliseconds_since_the_epoch() {
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        let before = ms(SystemTime::now());
        let got = call("now", vec![]).unwrap().as_int().unwrap();
        let after = ms(SystemTime::now());
        assert!(before <= got && got <= after, "{before} {got} {after}");
    }

    #[test]
    fn sleep_without_the_timer_blocks() {
        let start = std::time::Instant::now();
        assert_eq!(call("sleep", vec![Data::Int(20)]), Ok(Data::Nil));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(call("sleep", vec![Data::Int(-5)]).is_err());
    }

    #[test]
    fn lines_lose_their_ending() {
        let mut text = Cursor::new("first\r\nsecond\nlast");
        assert_eq!(read_line(&mut text), Ok(s("first")));
        assert_eq!(read_line(&mut text), Ok(s("second")));
        assert_eq!(read_line(&mut text), Ok(s("last")));
        assert_eq!(read_line(&mut text), Err("end of input".to_string()));
    }

    #[test]
    fn the_dispatcher_serves_every_operation() {
        let dir = temp_dir("dispatcher");
        let file = dir.join("f.txt");
        std::fs::write(&file, "data").unwrap();
        let mut pool = dispatcher(4, &Policy::default());
        let request = |id, op: &str, args| IoRequest::new(IoId(id), op, args);
        pool.submit(vec![
            request(1, "sleep", vec![Data::Int(30)]),
            request(2, "read_file", vec![path_str(&file)]),
            request(3, "now", vec![]),
            request(4, "sleep", vec![Data::Int(-1)]),
        ]);
        let mut done = Vec::new();
        while done.len() < 4 {
            done.extend(pool.wait());
        }
        done.sort_by_key(|c| c.id);
        assert_eq!(done[0].result, Ok(Data::Nil));
        assert_eq!(done[1].result, Ok(s("data")));
        assert!(done[2].result.as_ref().is_ok_and(|n| n.as_int().is_some()));
        assert!(done[3].result.is_err());
        assert!(pool.wait().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
