//! Durable runs on the command line (LANGUAGE.md §7): writing checkpoints
//! that survive a crash at any moment, loading them, answering a pending
//! `yield` with `--send JSON`, and `spool inspect`.
//!
//! A checkpoint is written to `PATH.tmp`, flushed to the disk, renamed over
//! `PATH` and the directory flushed too: a crash leaves either the previous
//! checkpoint or the new one, never a torn file.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use spool_vm::{Object, Run, Status, TaskState, Value};

use crate::snapshot;

/// Writes `run` to `path` atomically.
pub fn save(path: &str, run: &Run) -> Result<(), String> {
    write_atomically(path, &snapshot::snapshot(run))
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one: a temporary file, flushed, renamed over `path`, the directory
/// flushed.
pub fn write_atomically(path: &str, bytes: &[u8]) -> Result<(), String> {
    let target = Path::new(path);
    let temporary = target.with_extension(match target.extension() {
        Some(ext) => format!("{}.tmp", ext.to_string_lossy()),
        None => "tmp".to_string(),
    });
    let fail = |what: &str, error: std::io::Error| format!("cannot {what} `{path}`: {error}");
    let mut file =
        std::fs::File::create(&temporary).map_err(|e| fail("write the state file", e))?;
    file.write_all(bytes)
        .map_err(|e| fail("write the state file", e))?;
    file.sync_all()
        .map_err(|e| fail("flush the state file", e))?;
    drop(file);
    std::fs::rename(&temporary, target).map_err(|e| fail("replace the state file", e))?;
    let directory = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Ok(dir) = std::fs::File::open(directory) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Reads the run saved at `path`.
pub fn load(path: &str) -> Result<Run, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    snapshot::restore(&bytes).map_err(|e| format!("`{path}`: {e}"))
}

/// The value `--send JSON` gives a `yield` that receives `receives`.
pub fn answer_from_json(run: &mut Run, text: &str) -> Result<Value, String> {
    let receives = run.program().main_receives.clone();
    let program = std::sync::Arc::clone(run.program());
    let json = spool_stdlib::parse_json(run.heap_mut(), &program, text)
        .map_err(|e| format!("`--send {text}` is not valid JSON: {}", e.message))?;
    let (variant, payload) = match run.heap().get(json.as_obj().ok_or("bad JSON value")?) {
        Some(Object::Variant {
            variant, fields, ..
        }) => {
            let layout = program.enums.get(program.builtins.json.index());
            let name = layout
                .and_then(|l| l.variants.get(usize::from(*variant)))
                .map_or("", |v| v.name.as_str());
            (name.to_string(), fields.first().copied())
        }
        _ => return Err("bad JSON value".into()),
    };
    let wrong = || format!("`{text}` is not a `{receives}`, which the pending `yield` receives");
    match (receives.as_str(), variant.as_str(), payload) {
        ("nil" | "", _, _) => Ok(Value::Nil),
        ("Json", _, _) => Ok(json),
        ("str", "Str", Some(value)) | ("bool", "Bool", Some(value)) => Ok(value),
        ("float", "Num", Some(Value::Float(x))) => Ok(Value::Float(x)),
        ("int", "Num", Some(Value::Float(x))) if x.fract() == 0.0 && x.abs() < 9.0e15 => {
            Ok(Value::Int(x as i64))
        }
        (other, _, _) if other.ends_with('?') && variant == "Null" => Ok(Value::Nil),
        _ => Err(wrong()),
    }
}

/// `spool inspect`: the saved run in words.
pub fn describe(path: &str, run: &Run) -> String {
    let mut out = String::new();
    let program = run.program();
    let script = program
        .files
        .iter()
        .find(|f| f.as_str() != crate::PRELUDE_NAME)
        .map_or("?", String::as_str);
    let _ = writeln!(out, "{path}: a saved run of {script}");
    let _ = writeln!(
        out,
        "program: fingerprint {:016x}, {} functions",
        program.fingerprint,
        program.functions.len()
    );
    let status = match run.status() {
        Status::Done(_) => "finished".to_string(),
        Status::Failed(error) => format!("failed: {}: {}", error.kind, error.message),
        Status::Running if run.awaiting_send() => format!(
            "waiting for the answer to a top-level yield (it receives `{}`; give it with `spool resume {path} --send JSON`)",
            program.main_receives
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
            TaskState::Blocked => spool_vm::sched::describe(run.heap(), &task.blocked),
            TaskState::Done | TaskState::Failed => "finished".to_string(),
        };
        let _ = writeln!(out, "  {name}: {state}");
        let running = sched.current == Some(obj);
        let fibers: Vec<&spool_vm::Fiber> = if running {
            std::iter::once(run.fiber())
                .chain(run.resumers().iter().rev().map(|r| &r.fiber))
                .collect()
        } else {
            std::iter::once(&task.context.fiber)
                .chain(task.context.resumers.iter().rev().map(|r| &r.fiber))
                .collect()
        };
        for fiber in fibers {
            describe_stack(out, run, fiber);
        }
    }
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
                let mut shown = run.display(value);
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
    let pending: Vec<_> = run.sched().in_flight.values().collect();
    let _ = writeln!(out, "pending I/O: {}", pending.len());
    for in_flight in pending {
        let request = &in_flight.request;
        let args: Vec<String> = request.args.iter().map(|a| format!("{a:?}")).collect();
        let task = run
            .heap()
            .task(Value::Obj(in_flight.task))
            .map_or(0, |t| t.id);
        let mut line = format!("  #{} {}({})", request.id.0, request.op, args.join(", "));
        if line.chars().count() > 100 {
            line = line.chars().take(97).collect::<String>() + "...";
        }
        let _ = writeln!(out, "{line} for task {task}");
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
}
