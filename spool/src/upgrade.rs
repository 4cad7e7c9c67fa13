//! Continuing a saved run on a changed program (LANGUAGE.md §7).
//!
//! A run may continue on a new version of its script when no function the
//! run is inside — on any stack, or held by a closure — changed. Anything
//! else may change: functions may be added, removed, edited or reordered
//! (prelude functions included), and globals, structs, enums and I/O
//! operations added. Every index the run holds is translated to the new
//! program's numbering by a stable identity (a function's file, name,
//! parameter count and rank among its overloads, or for a lambda the
//! function that creates it; a global's name; a type's name; a native's
//! key): see `spool_vm::upgrade`. A refusal names each reason and where: a
//! changed or removed live function with the place the run is suspended
//! in it, a struct with values in the run whose fields changed, an enum
//! variant the run holds that is gone, a global that the new code visibly
//! stores another kind of value in, an I/O operation with a request in
//! flight that the new program lacks.

use std::fmt::Write as _;
use std::sync::Arc;

use spool_vm::{Function, Op, Program, Run};

/// Continues `run` on `new` if that is sound; otherwise explains why not
/// (and leaves the run as it was).
pub fn upgrade(run: &mut Run, new: &crate::Program) -> Result<(), String> {
    let program = new.bytecode();
    if program.fingerprint != 0 && program.fingerprint == run.program().fingerprint {
        return Ok(());
    }
    run.upgrade(Arc::clone(program), &new.natives)
}

/// Why `run` cannot continue on `new`, one line per reason (a changed or
/// removed live function with where the run is suspended in it, and so
/// on); empty when it can.
pub fn check(run: &Run, new: &crate::Bytecode) -> Vec<String> {
    spool_vm::upgrade::check(run, new)
}

/// A function as text, for telling versions apart by eye: its name, shape
/// and instructions, with each index operand spelled as what it names
/// (constants by value, functions by name and arity, globals, natives and
/// types by name), so that renumbering alone does not show.
pub fn function_fingerprint(program: &Program, function: &Function) -> String {
    let mut text = format!(
        "{} {} {} {}\n",
        function.name, function.arity, function.register_count, function.capture_count
    );
    for op in &function.code {
        let _ = write!(text, "{op:?}");
        let named = match *op {
            Op::LoadConst { idx, .. } => format!("{:?}", program.constants.get(idx.index())),
            Op::LoadFunc { func, .. } | Op::MakeClosure { func, .. } | Op::Call { func, .. } => {
                program
                    .functions
                    .get(func.index())
                    .map_or("?".into(), |f| format!("{}/{}", f.name, f.arity))
            }
            Op::LoadNative { native, .. } | Op::CallNative { native, .. } => program
                .natives
                .get(native.index())
                .map_or("?".into(), |n| n.key.clone()),
            Op::LoadGlobal { global, .. } | Op::StoreGlobal { global, .. } => program
                .globals
                .get(global.index())
                .cloned()
                .unwrap_or_default(),
            Op::NewRecord { ty, .. } => program
                .structs
                .get(ty.index())
                .map_or("?".into(), |s| s.name.clone()),
            Op::NewVariant { ty, .. } => program
                .enums
                .get(ty.index())
                .map_or("?".into(), |e| e.name.clone()),
            _ => String::new(),
        };
        if !named.is_empty() {
            let _ = write!(text, " = {named}");
        }
        text.push('\n');
    }
    text
}
