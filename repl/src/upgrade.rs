//! Continuing a saved run on a changed program (LANGUAGE.md §7).
//!
//! A run may continue on a new version of its script when no function the
//! run is inside — on any stack, or held by a closure — changed. What this
//! version supports: the new program must have the same functions in the
//! same order (bodies of functions the run is not inside may change freely,
//! string and number constants included), the same globals, natives and
//! type layouts. A change to a live function is refused with its name and
//! where the run is suspended in it; a change of shape (functions added or
//! removed) is refused with a message saying so.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use spool_vm::{Function, Object, Program, Run};

/// Continues `run` on `new` if that is sound; otherwise explains why not.
pub fn continue_on(run: &mut Run, new: &crate::Program) -> Result<(), String> {
    let program = new.bytecode();
    if program.fingerprint == run.program().fingerprint {
        return Ok(());
    }
    let changed = changed_live_functions(run, program);
    if !changed.is_empty() {
        return Err(format!(
            "the new program changes functions the run is inside, so it cannot continue on it:\n{}",
            changed.join("\n")
        ));
    }
    run.switch_program(Arc::clone(program), &new.natives)
}

/// The functions the run is inside (on a stack, or held by a closure or a
/// function value) that `new` defines differently or not at all, each with
/// where the run is in it.
pub fn changed_live_functions(run: &Run, new: &spool_vm::Program) -> Vec<String> {
    let old = run.program();
    let mut live: BTreeMap<u32, String> = BTreeMap::new();
    let note_fiber = |fiber: &spool_vm::Fiber, live: &mut BTreeMap<u32, String>| {
        let trace = spool_vm::stack_trace(fiber, old);
        for (frame, at) in fiber.frames.iter().rev().zip(trace) {
            live.entry(frame.func.0)
                .or_insert_with(|| format!("suspended at {}:{}:{}", at.file, at.line, at.col));
        }
    };
    note_fiber(run.fiber(), &mut live);
    for resumer in run.resumers() {
        note_fiber(&resumer.fiber, &mut live);
    }
    for index in 0..run.heap().capacity() {
        match run.heap().get(spool_vm::ObjRef(index as u32)) {
            Some(Object::Task(task)) => {
                note_fiber(&task.context.fiber, &mut live);
                for resumer in &task.context.resumers {
                    note_fiber(&resumer.fiber, &mut live);
                }
            }
            Some(Object::Coro(coro)) => note_fiber(&coro.fiber, &mut live),
            Some(Object::Closure { func, .. }) => {
                live.entry(func.0)
                    .or_insert_with(|| "held by a closure".to_string());
            }
            _ => {}
        }
    }
    let mut changed = Vec::new();
    for (func, place) in live {
        let Some(function) = old.functions.get(func as usize) else {
            continue;
        };
        let mine = function_fingerprint(old, function);
        let same = new
            .functions
            .iter()
            .any(|f| f.name == function.name && function_fingerprint(new, f) == mine);
        if !same {
            changed.push(format!("  `{}` ({place})", function.name));
        }
    }
    changed
}

/// What a function is, for deciding whether a new program changed it: its
/// name, shape and instructions, with the constants they load spelled out.
/// Indices of other functions, globals and types count as they are, so a
/// renumbering counts as a change (a refusal, never a wrong resume).
pub fn function_fingerprint(program: &Program, function: &Function) -> String {
    let mut text = format!(
        "{} {} {} {}\n",
        function.name, function.arity, function.register_count, function.capture_count
    );
    for op in &function.code {
        let _ = write!(text, "{op:?}");
        if let spool_vm::Op::LoadConst { idx, .. } = op {
            let _ = write!(text, " = {:?}", program.constants.get(idx.index()));
        }
        text.push('\n');
    }
    text
}
