//! Moving a run to a changed version of its program ([`Run::upgrade`]).
//!
//! A run refers into its program by index: frames and closures name
//! functions, values name functions and natives, records and variants name
//! their struct or enum (and variant), the globals are a vector in the
//! program's order, in-flight I/O requests name their operation. A new
//! version of the script numbers all of these differently as soon as a
//! function is added, removed or moved. So each of them gets a *stable
//! identity* that does not depend on numbering, and every index the run
//! holds is translated from the old program to the new one by identity:
//!
//! - a declared function: its file (the main script, or the library or an
//!   imported file by name), name, number of
//!   parameters, and its rank among functions of that file, name and arity
//!   (overloads that take as many parameters are told apart by declaration
//!   order); the script's top level: itself;
//! - a lambda, a `defer` body or a nested `fn`: the function whose code
//!   creates it, its name, and its rank among that function's creations of
//!   the same name (so a lambda keeps its identity when other functions
//!   move or gain lambdas);
//! - a global: its name (and rank, for a name declared twice); a native:
//!   its key; a struct or an enum: its name, a variant: its name.
//!
//! What the run is *inside* must not change: a function with a frame on any
//! stack (the main fiber, a task's, a coroutine's), the function of every
//! closure in the heap, and a lambda held as a plain function value (its
//! identity is positional, so only identical code proves it is the same
//! one) must have identical code in the new program, compared instruction
//! by instruction with every index operand compared by what it names
//! (constants by value, functions, globals, natives and types by
//! identity). The frames' positions, registers, handlers and defers then
//! mean the same in the new code. A declared function held as a value may
//! change (calling it runs the new code) as long as it still exists with
//! as many parameters. Records and enum values in the heap keep their
//! contents when their type keeps its fields (possibly reordered: the
//! fields are permuted) and their variant keeps its arity. A global whose
//! new code visibly stores another kind of value than the run holds is
//! refused (the program records no types, so this is the best evidence
//! there is). Everything else (functions that nothing in the run refers
//! to, new globals, types and natives) is free to change.
//!
//! Everything is decided on a copy of the run, first tidied so that
//! leftovers do not count as references: registers above each fiber's
//! frames are dropped, registers inside them that their frame can no
//! longer read (`liveness.rs`; named locals in scope stay) are cleared, and
//! garbage is collected. Only when nothing is refused is the copy
//! translated, given the new program, its constants and natives, checked
//! with [`crate::saved::validate()`] and put in the run's place.
//!
//! The files: `identities.rs` (stable identities), `plan.rs` (what the run
//! holds and its translation, or the reasons there is none), `compare.rs`
//! (code compared modulo numbering), `kinds.rs` (kinds of global values),
//! `apply.rs` (rewriting the run); this file checks and tidies.

use std::collections::{BTreeMap, BTreeSet, HashMap};

mod apply;
mod compare;
mod identities;
mod kinds;
mod plan;

pub(crate) use apply::apply;
use compare::*;
use identities::*;
use kinds::*;
pub(crate) use plan::{plan, Plan};

use crate::exec::fiber::{Fiber, Frame};
use crate::heap::value::{EnumIdx, FuncIdx, NativeIdx, ObjRef, StructIdx, Value};
use crate::heap::{Object, ValueMap};
use crate::program::op::{Op, Operand};
use crate::program::{Constant, Program};
use crate::run::{Run, Status};
use crate::saved::liveness::Liveness;

/// The reasons the run cannot continue on `new`, one line each (naming what
/// and where); empty when it can.
pub fn check(run: &Run, new: &Program) -> Vec<String> {
    let mut tidy = run.clone();
    tidy_up(&mut tidy);
    match plan(&tidy, new) {
        Ok(_) => Vec::new(),
        Err(reasons) => reasons,
    }
}

/// Clears what the run can no longer read and collects garbage, so that
/// only what the run still holds refers into the program: registers above
/// every fiber's frames are dropped, and registers inside them that no
/// path of their frame reads before writing (see `liveness.rs`), other
/// than named locals in scope, are set to nil.
pub(crate) fn tidy_up(run: &mut Run) {
    run.unpack_contexts();
    let program = std::sync::Arc::clone(&run.program);
    let mut analysed = HashMap::new();
    let mut tidy = |fiber: &mut Fiber| {
        fiber.truncate_dead_registers(&program);
        clear_dead_registers(fiber, &program, &mut analysed);
    };
    tidy(&mut run.context.fiber);
    for resumer in &mut run.context.resumers {
        tidy(&mut resumer.fiber);
    }
    for index in 0..run.heap.capacity() {
        match run.heap.get_mut(ObjRef(index as u32)) {
            Some(Object::Coro(coro)) => tidy(&mut coro.fiber),
            Some(Object::Task(task)) => {
                tidy(&mut task.context.fiber);
                for resumer in &mut task.context.resumers {
                    tidy(&mut resumer.fiber);
                }
            }
            _ => {}
        }
    }
    let roots = run.gc_roots();
    run.heap.collect(roots);
}

/// Sets to nil every register of `fiber` that none of its frames may read
/// again: for each frame, the registers live at its position (below the
/// window of the call it waits for, which the frame above covers) and the
/// named locals in scope there are kept.
fn clear_dead_registers(
    fiber: &mut Fiber,
    program: &Program,
    analysed: &mut HashMap<usize, Option<Liveness>>,
) {
    let mut keep = vec![false; fiber.registers.len()];
    for (depth, frame) in fiber.frames.iter().enumerate() {
        let Some(function) = program.functions.get(frame.func.index()) else {
            return;
        };
        let count = usize::from(function.register_count);
        let limit = match fiber.frames.get(depth + 1) {
            Some(above) if above.ret != Frame::DISCARD => {
                (above.base.saturating_sub(frame.base) as usize).min(count)
            }
            _ => count,
        };
        let live = analysed
            .entry(frame.func.index())
            .or_insert_with(|| Liveness::of(function));
        let pc = frame.pc as usize;
        let base = frame.base as usize;
        for reg in 0..limit {
            let kept = live.as_ref().is_none_or(|live| live.live(pc, reg))
                || function
                    .locals
                    .iter()
                    .any(|local| local.reg.index() == reg && local.in_scope(frame.pc));
            if kept {
                if let Some(slot) = keep.get_mut(base + reg) {
                    *slot = true;
                }
            }
        }
    }
    for (value, kept) in fiber.registers.iter_mut().zip(keep) {
        if !kept {
            *value = Value::Nil;
        }
    }
}
