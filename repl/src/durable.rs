//! Durable runs on the command line (LANGUAGE.md §7): writing checkpoints
//! that survive a crash at any moment, loading them, answering a pending
//! `yield` with `--send JSON`, and `spool inspect`.
//!
//! A checkpoint is written to a new temporary file with a random name beside
//! `PATH` (created exclusively, so nothing planted there is followed),
//! flushed to the disk, renamed over `PATH` and the directory flushed too: a
//! crash leaves either the previous checkpoint or the new one, never a torn
//! file. A saved run is read only from a regular file, and at most
//! [`MAX_STATE_BYTES`] of it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use spool_vm::{Object, Run, Status, TaskState, Value};

use spool::snapshot;

/// Writes `run` to `path` atomically.
pub fn save(path: &str, run: &Run) -> Result<(), String> {
    let bytes = snapshot::snapshot(run);
    match state_key() {
        Some(key) => write_atomically(path, &snapshot::sign(&bytes, key)),
        None => write_atomically(path, &bytes),
    }
}

/// The host key saved runs are signed with (`--state-key FILE`), if any.
static STATE_KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Signs the saved runs this process writes, and requires the signature
/// on those it reads, with the key in `file` (at least 16 bytes).
pub fn use_state_key(file: &str) -> Result<(), String> {
    let key = std::fs::read(file).map_err(|e| format!("cannot read the key `{file}`: {e}"))?;
    if key.len() < 16 {
        return Err(format!(
            "the key `{file}` is too short: a host key has at least 16 bytes"
        ));
    }
    let _ = STATE_KEY.set(key);
    Ok(())
}

fn state_key() -> Option<&'static [u8]> {
    STATE_KEY.get().map(Vec::as_slice)
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one: a temporary file, flushed, renamed over `path`, the directory
/// flushed. The temporary has a random name in `path`'s directory and is
/// created exclusively, so a file or symbolic link planted there in
/// advance is never followed or overwritten; it is removed if anything
/// fails.
pub fn write_atomically(path: &str, bytes: &[u8]) -> Result<(), String> {
    let target = Path::new(path);
    let fail = |what: &str, error: std::io::Error| format!("cannot {what} `{path}`: {error}");
    let (temporary, mut file) =
        create_temporary(target).map_err(|e| fail("write the state file", e))?;
    let written = file
        .write_all(bytes)
        .map_err(|e| fail("write the state file", e))
        .and_then(|()| file.sync_all().map_err(|e| fail("flush the state file", e)));
    drop(file);
    let replaced = written.and_then(|()| {
        std::fs::rename(&temporary, target).map_err(|e| fail("replace the state file", e))
    });
    if let Err(message) = replaced {
        let _ = std::fs::remove_file(&temporary);
        return Err(message);
    }
    if let Ok(dir) = std::fs::File::open(directory_of(target)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The directory a file is in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Creates a new file `.NAME.RANDOM.tmp` beside `target`, refusing any
/// path that already exists (a symbolic link included); a few names are
/// tried before giving up.
fn create_temporary(target: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = target.file_name().map_or_else(
        || "state".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    let mut last_error = None;
    for _ in 0..8 {
        let temporary = directory_of(target).join(format!(".{name}.{:016x}.tmp", random_u64()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        match options.open(&temporary) {
            Ok(file) => return Ok((temporary, file)),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                last_error = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

/// 64 unpredictable bits: from the operating system's random source
/// ([`crate::process::entropy`]) or `/dev/urandom`, otherwise from the
/// standard library's randomly keyed hasher mixed with the time, the
/// process id and a counter.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::io::Read as _;
    if let Some(bits) = crate::process::entropy() {
        return bits;
    }
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .is_ok()
    {
        return u64::from_ne_bytes(bytes);
    }
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

/// The largest saved run `load` reads (1 GiB); a larger file is refused
/// before it is read.
pub const MAX_STATE_BYTES: u64 = 1 << 30;

/// Reads the run saved at `path`. Anything but a regular file (a FIFO, a
/// device such as `/dev/zero`, a directory) is refused before it is
/// opened, as is a file larger than [`MAX_STATE_BYTES`] or one that does
/// not begin with a saved run's magic bytes.
pub fn load(path: &str) -> Result<Run, String> {
    let bytes = read_state_file(path)?;
    let body = match state_key() {
        Some(key) => snapshot::verify(&bytes, key).map_err(|e| format!("`{path}`: {e}"))?,
        None => &bytes,
    };
    snapshot::restore(body).map_err(|e| format!("`{path}`: {e}"))
}

/// The bytes of a saved run, read as [`load`] says.
fn read_state_file(path: &str) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let fail = |e: std::io::Error| format!("cannot read `{path}`: {e}");
    let metadata = std::fs::metadata(path).map_err(fail)?;
    check_regular(path, &metadata)?;
    let mut file = std::fs::File::open(path).map_err(fail)?;
    // The path may have been replaced since it was checked: check the file
    // that was opened.
    let metadata = file.metadata().map_err(fail)?;
    check_regular(path, &metadata)?;
    let mut magic = [0u8; 8];
    if file.read_exact(&mut magic).is_err()
        || (&magic != snapshot::MAGIC && &magic != snapshot::SIGNED_MAGIC)
    {
        return Err(format!("`{path}`: not a saved Spool run"));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    bytes.extend_from_slice(&magic);
    file.take(MAX_STATE_BYTES - magic.len() as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(too_large(path));
    }
    Ok(bytes)
}

/// `Err` unless `metadata` is a regular file's, of at most
/// [`MAX_STATE_BYTES`].
fn check_regular(path: &str, metadata: &std::fs::Metadata) -> Result<(), String> {
    if !metadata.is_file() {
        return Err(format!(
            "`{path}` is not a regular file (a saved run is a file written by `--state`)"
        ));
    }
    if metadata.len() > MAX_STATE_BYTES {
        return Err(too_large(path));
    }
    Ok(())
}

fn too_large(path: &str) -> String {
    format!(
        "`{path}` is larger than {} GiB, more than a saved run may be",
        MAX_STATE_BYTES >> 30
    )
}

/// The host note in which the last checkpoint of a failed run records
/// the failure (the error as printed, with its trace).
pub const FAILURE_NOTE: &str = "spool.failure";

/// Checks that `spool run --state PATH` may write `path`: it does not
/// exist, is empty, or holds a finished run. An unfinished run is never
/// thrown away by starting over, nor is a file that is not a saved run
/// (or not a regular file) overwritten.
pub fn check_fresh(path: &str) -> Result<(), String> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(format!("cannot use `{path}` as the state file: {error}")),
    };
    if !metadata.is_file() {
        return Err(format!(
            "`{path}` is not a regular file; `--state` needs a file path"
        ));
    }
    if metadata.len() == 0 {
        return Ok(());
    }
    let mut magic = [0u8; 8];
    let is_saved_run = std::fs::File::open(path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut magic))
        .is_ok()
        && (&magic == snapshot::MAGIC || &magic == snapshot::SIGNED_MAGIC);
    if !is_saved_run {
        return Err(format!(
            "`{path}` exists and is not a saved run; `--state` will not overwrite it"
        ));
    }
    match load(path) {
        Ok(run) if matches!(run.status(), Status::Done(_)) => Ok(()),
        // A run that ended with `exit(N)` is finished too, whatever N.
        Ok(run) if run.exit_code().is_some() && matches!(run.status(), Status::Failed(_)) => Ok(()),
        Ok(run) => Err(format!(
            "`{path}` holds an unfinished run of {}; `spool resume {path}` continues it \
             (to start over, delete `{path}` first)",
            script_of(&run)
        )),
        Err(message) => Err(format!(
            "{message}; `--state` will not overwrite it (delete `{path}` first to start over)"
        )),
    }
}

/// Records that the run saved at `path` failed with `text` (the error as
/// printed): the last checkpoint stays as it was, resumable, and carries
/// the failure for `spool inspect`.
pub fn record_failure(path: &str, text: &str) -> Result<(), String> {
    let mut run = load(path)?;
    run.set_host_note(FAILURE_NOTE, text);
    save(path, &run)
}

/// Takes the failure recorded in a run's last checkpoint, if any (a
/// resumed run starts a new attempt).
pub fn take_failure(run: &mut Run) -> Option<String> {
    run.remove_host_note(FAILURE_NOTE)
}

/// The script a run belongs to (its first file other than the library's).
fn script_of(run: &Run) -> &str {
    run.program()
        .files
        .iter()
        .find(|f| f.as_str() != spool::PRELUDE_NAME)
        .map_or("?", String::as_str)
}

/// `spool inspect`: the saved run in words.
pub fn describe(path: &str, run: &Run) -> String {
    describe_with(path, run, &format!("spool resume {path} --send JSON"))
}

/// The run saved at `path` (a file, or `run N` in a store) in words, as
/// `spool inspect` prints it; a run waiting at a top-level `yield` is
/// answered with the command `send` (a file's `spool resume FILE --send
/// JSON`, a stored run's `spool send RUN JSON`).
pub fn describe_with(path: &str, run: &Run, send: &str) -> String {
    let mut out = String::new();
    let program = run.program();
    let _ = writeln!(out, "{path}: a saved run of {}", script_of(run));
    let _ = writeln!(
        out,
        "program: fingerprint {:016x}, {} functions",
        program.fingerprint,
        program.functions.len()
    );
    let status = match run.status() {
        Status::Done(_) | Status::Failed(_) if run.exit_code().is_some() => {
            format!(
                "finished with exit({})",
                run.exit_code().unwrap_or_default()
            )
        }
        Status::Running if run.exit_code().is_some() => format!(
            "exiting with exit({}): its tasks are unwinding",
            run.exit_code().unwrap_or_default()
        ),
        Status::Done(_) => "finished".to_string(),
        Status::Failed(error) => {
            format!(
                "failed\n{}",
                indent(&crate::cli::format_runtime_error(error))
            )
        }
        Status::Running if run.host_note(FAILURE_NOTE).is_some() => format!(
            "failed; what follows is its last checkpoint, which `spool resume {path}` continues \
             (`--program FILE` to continue on a fixed script)\n{}",
            indent(run.host_note(FAILURE_NOTE).unwrap_or_default())
        ),
        Status::Running if run.awaiting_send() => format!(
            "waiting for the answer to a top-level yield (it receives `{}`; give it with `{send}`)",
            spool::answer::receive_type(run)
        ),
        Status::Running => "running".to_string(),
    };
    let _ = writeln!(out, "status: {status}");
    let _ = writeln!(out, "heap: {} objects", run.heap().len());
    describe_tasks(&mut out, run);
    describe_io(&mut out, run);
    describe_coroutines(&mut out, run);
    out
}

fn describe_tasks(out: &mut String, run: &Run) {
    let sched = run.sched();
    let _ = writeln!(out, "tasks: {} not finished", sched.live);
    let mut stack: Vec<spool_vm::ObjRef> = sched.main.into_iter().collect();
    while let Some(obj) = stack.pop() {
        let Some(task) = run.heap().task(Value::Obj(obj)) else {
            continue;
        };
        stack.extend(task.children.list.iter().rev().copied());
        if task.finished() {
            continue;
        }
        let name = if task.id == 0 {
            "task 0 (main)".to_string()
        } else {
            format!("task {}", task.id)
        };
        let state = match task.state {
            TaskState::Ready => "ready to run".to_string(),
            TaskState::Running => "running".to_string(),
            TaskState::Joining => "waiting for its children".to_string(),
            TaskState::Blocked => describe_wait(run, &task.blocked),
            TaskState::Done | TaskState::Failed => "finished".to_string(),
        };
        let _ = writeln!(out, "  {name}: {state}");
        let running = sched.current == Some(obj);
        let context = task.context.unpacked();
        let fibers: Vec<&spool_vm::Fiber> = if running {
            std::iter::once(run.fiber())
                .chain(run.resumers().iter().rev().map(|r| &r.fiber))
                .collect()
        } else {
            std::iter::once(&context.fiber)
                .chain(context.resumers.iter().rev().map(|r| &r.fiber))
                .collect()
        };
        for fiber in fibers {
            describe_stack(out, run, fiber);
        }
    }
}

/// What a blocked task waits for; an I/O call by its name and arguments.
fn describe_wait(run: &Run, blocked: &spool_vm::Blocked) -> String {
    if let spool_vm::Blocked::Io(id) = blocked {
        if let Some(request) = run.request_in_flight(*id) {
            let args: Vec<String> = request.args.iter().map(data_text).collect();
            let mut call = format!("{}({})", request.op, args.join(", "));
            if call.chars().count() > 60 {
                call = call.chars().take(57).collect::<String>() + "...";
            }
            return format!("waits for {call} (I/O request #{})", id.0);
        }
    }
    spool_vm::sched::describe(run.heap(), blocked)
}

/// One fiber's frames, innermost first, with their local variables.
fn describe_stack(out: &mut String, run: &Run, fiber: &spool_vm::Fiber) {
    let program = run.program();
    let trace = spool_vm::stack_trace(fiber, program);
    for (frame, at) in fiber.frames.iter().rev().zip(&trace) {
        let _ = writeln!(
            out,
            "    at {} ({}:{}:{})",
            at.function, at.file, at.line, at.col
        );
        let Some(function) = program.functions.get(frame.func.index()) else {
            continue;
        };
        let at_pc = frame.pc.saturating_sub(1);
        let locals: Vec<String> = function
            .locals
            .iter()
            .filter(|local| local.in_scope(at_pc))
            .filter_map(|local| {
                let value = *fiber
                    .registers
                    .get(frame.base as usize + local.reg.index())?;
                let mut shown = shown_value(run, value);
                if shown.chars().count() > 60 {
                    shown = shown.chars().take(57).collect::<String>() + "...";
                }
                Some(format!("{} = {shown}", local.name))
            })
            .collect();
        if !locals.is_empty() {
            let _ = writeln!(out, "      {}", locals.join(", "));
        }
    }
}

fn describe_io(out: &mut String, run: &Run) {
    let pending = run.requests_in_flight();
    let _ = writeln!(out, "pending I/O: {}", pending.len());
    for request in pending {
        let args: Vec<String> = request.args.iter().map(data_text).collect();
        let task = request.task;
        let mut line = format!("  #{} {}({})", request.id.0, request.op, args.join(", "));
        if line.chars().count() > 100 {
            line = line.chars().take(97).collect::<String>() + "...";
        }
        let due = match run.io_deadline(request.id) {
            Some(at) => format!(", due {}", due_in(at)),
            None => String::new(),
        };
        let _ = writeln!(out, "{line} for task {task}{due}");
    }
}

/// When a deadline (ms since the Unix epoch) comes, relative to now.
fn due_in(at: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let left = at.saturating_sub(now);
    if left <= 0 {
        "now (the deadline has passed)".to_string()
    } else {
        format!("in {:.1} s", left as f64 / 1000.0)
    }
}

/// Every line of `text`, indented for the status block.
fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}\n"))
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// A value as inspection shows it: strings quoted and escaped, so that a
/// multi-line string stays on its line.
fn shown_value(run: &Run, value: Value) -> String {
    let text = run.display(value);
    if run.heap().str(value).is_some() {
        let mut quoted = String::new();
        spool_vm::format::write_quoted(&mut quoted, &text);
        quoted
    } else {
        text.replace('\n', "\\n")
    }
}

/// An I/O argument as Spool writes the value (`1500`, `"a.txt"`,
/// `["-l"]`), cut short after a couple hundred characters.
pub fn data_text(data: &spool_vm::Data) -> String {
    let mut out = String::new();
    write_data(&mut out, data);
    out
}

/// How long an argument's text grows before it is cut short.
const ENOUGH: usize = 200;

fn write_data(out: &mut String, data: &spool_vm::Data) {
    use spool_vm::Data;
    if out.len() > ENOUGH {
        return;
    }
    match data {
        Data::Nil => out.push_str("nil"),
        Data::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Data::Int(n) => out.push_str(&n.to_string()),
        Data::Float(x) => out.push_str(&format!("{x:?}")),
        Data::Str(text) => spool_vm::format::write_quoted(out, text),
        Data::List(items) => {
            out.push('[');
            write_separated(out, items.iter(), write_data);
            out.push(']');
        }
        Data::Map(pairs) if pairs.is_empty() => out.push_str("[:]"),
        Data::Map(pairs) => {
            out.push('[');
            write_separated(out, pairs.iter(), |out, (key, value)| {
                write_data(out, key);
                out.push_str(": ");
                write_data(out, value);
            });
            out.push(']');
        }
        Data::Record { name, fields } => {
            out.push_str(name);
            out.push('(');
            write_separated(out, fields.iter(), |out, (field, value)| {
                out.push_str(field);
                out.push_str(": ");
                write_data(out, value);
            });
            out.push(')');
        }
        Data::Variant {
            variant, fields, ..
        } => {
            out.push_str(variant);
            if !fields.is_empty() {
                out.push('(');
                write_separated(out, fields.iter(), write_data);
                out.push(')');
            }
        }
    }
}

/// Writes `items` separated by commas, each with `write_one`, and stops
/// with `...` once the text is long enough.
fn write_separated<T>(
    out: &mut String,
    items: impl Iterator<Item = T>,
    mut write_one: impl FnMut(&mut String, T),
) {
    for (index, item) in items.enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        write_one(out, item);
        if out.len() > ENOUGH {
            out.push_str("...");
            return;
        }
    }
}

fn describe_coroutines(out: &mut String, run: &Run) {
    let mut counts = std::collections::BTreeMap::new();
    for index in 0..run.heap().capacity() {
        if let Some(Object::Coro(coro)) = run.heap().get(spool_vm::ObjRef(index as u32)) {
            *counts.entry(coro.status.as_str()).or_insert(0) += 1;
        }
    }
    let shown: Vec<String> = counts
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect();
    let total: usize = counts.values().sum();
    let _ = writeln!(
        out,
        "coroutines: {total}{}",
        if shown.is_empty() {
            String::new()
        } else {
            format!(" ({})", shown.join(", "))
        }
    );
    describe_suspended_coroutines(out, run);
}

/// The stacks of suspended coroutines (those that have started: a
/// coroutine that never ran has no frames yet), the first few of them.
fn describe_suspended_coroutines(out: &mut String, run: &Run) {
    const SHOWN: usize = 20;
    let mut shown = 0;
    let mut more = 0;
    for index in 0..run.heap().capacity() {
        let Some(Object::Coro(coro)) = run.heap().get(spool_vm::ObjRef(index as u32)) else {
            continue;
        };
        if coro.status.as_str() != "suspended" || coro.fiber.frames.is_empty() {
            continue;
        }
        if shown == SHOWN {
            more += 1;
            continue;
        }
        shown += 1;
        let _ = writeln!(out, "  coroutine of {}: suspended", run.display(coro.func));
        describe_stack(out, run, &coro.fiber);
    }
    if more > 0 {
        let _ = writeln!(out, "  ... and {more} more suspended coroutine(s)");
    }
}
