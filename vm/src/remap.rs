//! Moving a run to a changed version of its program ([`Run::switch_program`]).
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
//! - a declared function: its file (prelude or script), name, number of
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
//! with [`crate::validate()`] and put in the run's place.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::fiber::{Fiber, Frame};
use crate::heap::{Object, ValueMap};
use crate::liveness::Liveness;
use crate::op::{Op, Operand};
use crate::program::{Constant, Program};
use crate::run::{Run, Status};
use crate::value::{EnumIdx, FuncIdx, NativeIdx, ObjRef, StructIdx, Value};

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
    let program = std::sync::Arc::clone(&run.program);
    let mut analysed = HashMap::new();
    let mut tidy = |fiber: &mut Fiber| {
        fiber.truncate_dead_registers(&program);
        clear_dead_registers(fiber, &program, &mut analysed);
    };
    tidy(&mut run.fiber);
    for resumer in &mut run.resumers {
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
    let mut roots: Vec<Value> = run.resumers.iter().map(|r| Value::Obj(r.coro)).collect();
    run.sched.for_each_value(|value| roots.push(value));
    run.fiber.for_each_value(|value| roots.push(value));
    for resumer in &run.resumers {
        resumer.fiber.for_each_value(|value| roots.push(value));
    }
    roots.extend_from_slice(&run.globals);
    roots.extend_from_slice(&run.const_values);
    if let Status::Done(value) = run.status {
        roots.push(value);
    }
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

// ---- identities ----

/// The identity of a function, independent of numbering. Nested
/// functions name their parent by its interned identity.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Shape {
    /// The script's top level.
    Main,
    /// A declared function: file, name, arity, rank.
    Declared(u32, String, u16, u32),
    /// A function created by another: parent, name, rank.
    Nested(u32, String, u32),
    /// A nested function no other function creates: file, name, rank.
    Orphan(u32, String, u32),
}

/// Interns identities shared by two programs: equal identities get equal
/// numbers, whichever program they come from.
#[derive(Default)]
struct Interner {
    ids: HashMap<Shape, u32>,
}

impl Interner {
    fn id(&mut self, shape: Shape) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry(shape).or_insert(next)
    }
}

/// The identities of one program's functions and globals.
struct Identities {
    /// Per function, its interned identity.
    functions: Vec<u32>,
    /// Per function, the function that creates it, for a nested one.
    parent: Vec<Option<usize>>,
    /// Per function: declared, and the only one of its file, name and
    /// arity, so that its identity does not depend on any order.
    unique: Vec<bool>,
    /// Per global, its name and rank among globals of that name.
    globals: Vec<(String, u32)>,
}

impl Identities {
    fn of(program: &Program, interner: &mut Interner) -> Identities {
        let count = program.functions.len();
        let main = program.main.index();
        let script = program.functions.get(main).map(|f| f.file);
        let mut made_as_closure = vec![false; count];
        for function in &program.functions {
            for op in &function.code {
                if let Op::MakeClosure { func, .. } = op {
                    if let Some(flag) = made_as_closure.get_mut(func.index()) {
                        *flag = true;
                    }
                }
            }
        }
        let nested: Vec<bool> = (0..count)
            .map(|index| {
                let function = &program.functions[index];
                if index == main {
                    false
                } else if Some(function.file) == script {
                    // The script's declared functions are numbered before
                    // its top level, everything its bodies create after.
                    index > main
                } else {
                    matches!(function.name.as_str(), "lambda" | "defer") || made_as_closure[index]
                }
            })
            .collect();
        // A nested function's parent: the first function before it that
        // creates it (functions are numbered as the compiler meets them,
        // so a body's lambdas come after the body's own function).
        let mut parent: Vec<Option<usize>> = vec![None; count];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (index, function) in program.functions.iter().enumerate() {
            for op in &function.code {
                let (Op::MakeClosure { func, .. } | Op::LoadFunc { func, .. }) = op else {
                    continue;
                };
                let child = func.index();
                if child > index && child < count && nested[child] && parent[child].is_none() {
                    parent[child] = Some(index);
                    children[index].push(child);
                }
            }
        }
        let mut rank: Vec<u32> = vec![0; count];
        for list in &children {
            let mut seen: HashMap<&str, u32> = HashMap::new();
            for &child in list {
                let slot = seen
                    .entry(program.functions[child].name.as_str())
                    .or_default();
                rank[child] = *slot;
                *slot += 1;
            }
        }
        let mut declared: HashMap<(u32, &str, u16), u32> = HashMap::new();
        let mut orphans: HashMap<(u32, &str), u32> = HashMap::new();
        for (index, function) in program.functions.iter().enumerate() {
            if index == main {
                continue;
            }
            if !nested[index] {
                let key = (function.file.0, function.name.as_str(), function.arity);
                let slot = declared.entry(key).or_default();
                rank[index] = *slot;
                *slot += 1;
            } else if parent[index].is_none() {
                let slot = orphans
                    .entry((function.file.0, function.name.as_str()))
                    .or_default();
                rank[index] = *slot;
                *slot += 1;
            }
        }
        let mut functions = Vec::with_capacity(count);
        for (index, function) in program.functions.iter().enumerate() {
            let name = function.name.clone();
            let shape = if index == main {
                Shape::Main
            } else if !nested[index] {
                Shape::Declared(function.file.0, name, function.arity, rank[index])
            } else if let Some(parent) = parent[index] {
                Shape::Nested(functions[parent], name, rank[index])
            } else {
                Shape::Orphan(function.file.0, name, rank[index])
            };
            functions.push(interner.id(shape));
        }
        let unique = (0..count)
            .map(|index| {
                let function = &program.functions[index];
                let key = (function.file.0, function.name.as_str(), function.arity);
                index != main && !nested[index] && declared.get(&key) == Some(&1)
            })
            .collect();
        let mut seen: HashMap<&str, u32> = HashMap::new();
        let globals = program
            .globals
            .iter()
            .map(|name| {
                let slot = seen.entry(name.as_str()).or_default();
                *slot += 1;
                (name.clone(), *slot - 1)
            })
            .collect();
        Identities {
            functions,
            parent,
            unique,
            globals,
        }
    }
}

/// How a function is named in a message: `` `greet` ``, or for a nested
/// one `` `lambda` in `main` `` (at most three levels).
fn display(program: &Program, ids: &Identities, func: usize) -> String {
    let name = |index: usize| {
        program
            .functions
            .get(index)
            .map_or("?", |f| f.name.as_str())
    };
    let mut text = format!("`{}`", name(func));
    let mut at = func;
    for _ in 0..3 {
        match ids.parent.get(at).copied().flatten() {
            Some(parent) => {
                text.push_str(&format!(" in `{}`", name(parent)));
                at = parent;
            }
            None => break,
        }
    }
    text
}

// ---- the plan ----

/// How every index of the old program translates to the new one.
pub(crate) struct Plan {
    /// Old function -> new function with the same identity.
    funcs: Vec<Option<FuncIdx>>,
    /// Old native -> new native with the same key.
    natives: Vec<Option<NativeIdx>>,
    /// New global -> the old global with the same name, if any.
    globals: Vec<Option<usize>>,
    /// Old struct -> new struct, and for each new field the old field's
    /// position (`None` when the fields are the same).
    structs: Vec<Option<(StructIdx, Option<Vec<usize>>)>>,
    /// Old enum -> new enum, and each old variant's new number (`None`
    /// when the new enum has no variant of that name and arity).
    enums: Vec<Option<(EnumIdx, Vec<Option<u16>>)>>,
}

/// What the run refers to, gathered from everything it can reach.
#[derive(Default)]
struct Uses {
    /// Functions with a frame on some stack, each with where (the first
    /// frame found).
    frames: BTreeMap<usize, String>,
    /// Functions of closures.
    closures: BTreeSet<usize>,
    /// Functions held as plain values.
    values: BTreeSet<usize>,
    /// Natives held as values.
    natives: BTreeSet<usize>,
    /// Natives of I/O requests in flight.
    in_flight: BTreeSet<usize>,
    /// Structs with instances.
    structs: BTreeSet<usize>,
    /// Enums with values, and the variants used.
    variants: BTreeSet<(usize, u16)>,
}

impl Uses {
    fn value(&mut self, value: Value) {
        match value {
            Value::Func(func) => {
                self.values.insert(func.index());
            }
            Value::Native(native) if value != Value::UNSET => {
                self.natives.insert(native.index());
            }
            _ => {}
        }
    }

    fn fiber(&mut self, fiber: &Fiber, program: &Program) {
        let trace = crate::interp::stack_trace(fiber, program);
        for (frame, at) in fiber.frames.iter().rev().zip(trace) {
            self.frames
                .entry(frame.func.index())
                .or_insert_with(|| format!("suspended at {}:{}:{}", at.file, at.line, at.col));
        }
        fiber.for_each_value(|value| self.value(value));
    }
}

/// Decides how `run` (already tidied) moves to `new`, or why it cannot.
pub(crate) fn plan(run: &Run, new: &Program) -> Result<Plan, Vec<String>> {
    let old: &Program = &run.program;
    let mut interner = Interner::default();
    let old_ids = Identities::of(old, &mut interner);
    let new_ids = Identities::of(new, &mut interner);
    let plan = translation(old, &old_ids, new, &new_ids);
    let uses = uses(run);
    let mut reasons = Vec::new();
    let compare = Compare {
        old,
        new,
        old_ids: &old_ids,
        new_ids: &new_ids,
    };

    // Functions the run is inside, closures and lambdas held as values:
    // identical code. Declared functions held as values: present.
    let mut strict: BTreeMap<usize, String> = uses.frames.clone();
    for &func in &uses.closures {
        strict.entry(func).or_insert_with(|| {
            format!(
                "held by a closure, defined at {}",
                defined_at(old, &old_ids, func)
            )
        });
    }
    for &func in &uses.values {
        if func >= old.functions.len() {
            continue;
        }
        match plan.funcs[func] {
            None => reasons.push(format!(
                "  {} (held as a function value) is not in the new program with {} parameter(s)",
                display(old, &old_ids, func),
                old.functions[func].arity
            )),
            // A declared function, the only one of its name and arity in
            // both programs: calling it runs its new code.
            Some(to) if old_ids.unique[func] && new_ids.unique[to.index()] => {}
            Some(_) => {
                strict.entry(func).or_insert_with(|| {
                    format!(
                        "held as a function value, defined at {}",
                        defined_at(old, &old_ids, func)
                    )
                });
            }
        }
    }
    for (&func, place) in &strict {
        if func >= old.functions.len() {
            continue;
        }
        let what = display(old, &old_ids, func);
        match plan.funcs[func] {
            None => reasons.push(format!("  {what} ({place}) is not in the new program")),
            Some(to) => {
                if !compare.same_function(func, to.index()) {
                    reasons.push(format!("  {what} ({place}) changed"));
                }
            }
        }
    }
    if uses.frames.contains_key(&old.main.index()) && old.main_receives != new.main_receives {
        reasons.push(format!(
            "  the top level's yields receive `{}` in the new program, not `{}`",
            new.main_receives, old.main_receives
        ));
    }

    // Natives held as values and I/O operations with requests in flight.
    for &native in uses.natives.iter().chain(&uses.in_flight) {
        let Some(decl) = old.natives.get(native) else {
            continue;
        };
        let same = plan.natives[native].is_some_and(|to| new.natives[to.index()].io == decl.io);
        if !same {
            let why = if uses.in_flight.contains(&native) {
                "has a request in flight"
            } else {
                "is held as a function value"
            };
            let line = format!(
                "  the operation `{}` {why}, and the new program does not declare it the same way",
                decl.name
            );
            if !reasons.contains(&line) {
                reasons.push(line);
            }
        }
    }

    // Types with instances.
    for &ty in &uses.structs {
        let Some(layout) = old.structs.get(ty) else {
            continue;
        };
        match plan.structs[ty].as_ref() {
            Some(_) => {}
            None => {
                let now = new.structs.iter().find(|s| s.name == layout.name);
                let why = match now {
                    None => "the new program does not declare it".to_string(),
                    Some(now) => format!(
                        "the new program changes its fields from ({}) to ({})",
                        layout.fields.join(", "),
                        now.fields.join(", ")
                    ),
                };
                reasons.push(format!(
                    "  struct `{}` has values in the run, and {why}",
                    layout.name
                ));
            }
        }
    }
    for &(ty, variant) in &uses.variants {
        let Some(layout) = old.enums.get(ty) else {
            continue;
        };
        let mapped = plan.enums[ty]
            .as_ref()
            .and_then(|(_, variants)| variants.get(usize::from(variant)).copied().flatten());
        if mapped.is_none() {
            let shape = layout.variants.get(usize::from(variant));
            let (name, arity) = shape.map_or(("?", 0), |v| (v.name.as_str(), v.arity));
            reasons.push(format!(
                "  enum `{}` has `{name}` values ({arity} field(s)) in the run, which the new program does not declare",
                layout.name
            ));
        }
    }

    // Globals the run has set: the new program must not store another
    // kind of value in them.
    for (to, from) in plan.globals.iter().enumerate() {
        let Some(from) = *from else { continue };
        let value = run.globals.get(from).copied().unwrap_or(Value::UNSET);
        let Some(held) = kind_of_value(run, value) else {
            continue;
        };
        if let Some((stored, at)) = conflicting_store(new, to, &held) {
            reasons.push(format!(
                "  global `{}` holds {}, and the new program stores {} in it ({at})",
                new.globals[to],
                held.describe(),
                stored.describe()
            ));
        }
    }

    if reasons.is_empty() {
        Ok(plan)
    } else {
        Err(reasons)
    }
}

/// `file:line:col` where a function is defined: for a nested one, where
/// the function around it creates it; otherwise its first instruction.
fn defined_at(program: &Program, ids: &Identities, func: usize) -> String {
    let created = ids.parent.get(func).copied().flatten().and_then(|parent| {
        let code = &program.functions[parent];
        let pc = code.code.iter().position(|op| {
            matches!(op, Op::MakeClosure { func: f, .. } | Op::LoadFunc { func: f, .. } if f.index() == func)
        })?;
        Some((code, pc))
    });
    let (function, pc) = match created {
        Some(at) => at,
        None => match program.functions.get(func) {
            Some(function) => (function, 0),
            None => return "?".into(),
        },
    };
    let file = program
        .files
        .get(function.file.index())
        .map_or("?", String::as_str);
    let loc = function.locs.get(pc).copied().unwrap_or_default();
    format!("{file}:{}:{}", loc.line, loc.col)
}

/// Builds the translation of every index by identity.
fn translation(old: &Program, old_ids: &Identities, new: &Program, new_ids: &Identities) -> Plan {
    let by_identity: HashMap<u32, usize> = new_ids
        .functions
        .iter()
        .enumerate()
        .map(|(index, id)| (*id, index))
        .collect();
    let funcs = old_ids
        .functions
        .iter()
        .map(|id| by_identity.get(id).map(|&index| FuncIdx(index as u32)))
        .collect();
    let native_keys: HashMap<&str, usize> = new
        .natives
        .iter()
        .enumerate()
        .map(|(index, decl)| (decl.key.as_str(), index))
        .collect();
    let natives = old
        .natives
        .iter()
        .map(|decl| {
            native_keys
                .get(decl.key.as_str())
                .map(|&index| NativeIdx(index as u32))
        })
        .collect();
    let old_globals: HashMap<&(String, u32), usize> = old_ids
        .globals
        .iter()
        .enumerate()
        .map(|(index, key)| (key, index))
        .collect();
    let globals = new_ids
        .globals
        .iter()
        .map(|key| old_globals.get(key).copied())
        .collect();
    let structs = old
        .structs
        .iter()
        .map(|layout| {
            let (to, now) = new
                .structs
                .iter()
                .enumerate()
                .find(|(_, s)| s.name == layout.name)?;
            if now.fields == layout.fields {
                return Some((StructIdx(to as u32), None));
            }
            let distinct: BTreeSet<&String> = layout.fields.iter().collect();
            if now.fields.len() != layout.fields.len() || distinct.len() != layout.fields.len() {
                return None;
            }
            let order = now
                .fields
                .iter()
                .map(|field| layout.fields.iter().position(|f| f == field))
                .collect::<Option<Vec<usize>>>()?;
            Some((StructIdx(to as u32), Some(order)))
        })
        .collect();
    let enums = old
        .enums
        .iter()
        .map(|layout| {
            let (to, now) = new
                .enums
                .iter()
                .enumerate()
                .find(|(_, e)| e.name == layout.name)?;
            let variants = layout
                .variants
                .iter()
                .map(|variant| {
                    now.variants
                        .iter()
                        .position(|v| v.name == variant.name && v.arity == variant.arity)
                        .map(|index| index as u16)
                })
                .collect();
            Some((EnumIdx(to as u32), variants))
        })
        .collect();
    Plan {
        funcs,
        natives,
        globals,
        structs,
        enums,
    }
}

/// Everything the (tidied) run refers to.
fn uses(run: &Run) -> Uses {
    let program: &Program = &run.program;
    let mut uses = Uses::default();
    uses.fiber(&run.fiber, program);
    for resumer in &run.resumers {
        uses.fiber(&resumer.fiber, program);
    }
    for index in 0..run.heap.capacity() {
        let Some(object) = run.heap.get(ObjRef(index as u32)) else {
            continue;
        };
        match object {
            Object::Coro(coro) => {
                uses.fiber(&coro.fiber, program);
                uses.value(coro.func);
                coro.last.into_iter().for_each(|v| uses.value(v));
                uses.value(coro.sent);
                continue;
            }
            Object::Task(task) => {
                uses.fiber(&task.context.fiber, program);
                for resumer in &task.context.resumers {
                    uses.fiber(&resumer.fiber, program);
                }
            }
            Object::Closure { func, .. } => {
                uses.closures.insert(func.index());
            }
            Object::Record { ty, .. } => {
                uses.structs.insert(ty.index());
            }
            Object::Variant { ty, variant, .. } => {
                uses.variants.insert((ty.index(), *variant));
            }
            _ => {}
        }
        object.for_each_value(|value| uses.value(value));
    }
    for &global in &run.globals {
        uses.value(global);
    }
    if let Status::Done(value) = run.status {
        uses.value(value);
    }
    for in_flight in run.sched.in_flight.values() {
        uses.in_flight.insert(in_flight.native.index());
    }
    uses
}

// ---- comparing code ----

/// Compares functions of two programs modulo numbering.
struct Compare<'a> {
    old: &'a Program,
    new: &'a Program,
    old_ids: &'a Identities,
    new_ids: &'a Identities,
}

impl Compare<'_> {
    /// Is old function `a` the same code as new function `b`: the same
    /// shape, and the same instructions with every index operand naming
    /// the same thing?
    fn same_function(&self, a: usize, b: usize) -> bool {
        let (Some(f), Some(g)) = (self.old.functions.get(a), self.new.functions.get(b)) else {
            return false;
        };
        f.name == g.name
            && f.arity == g.arity
            && f.register_count == g.register_count
            && f.capture_count == g.capture_count
            && f.code.len() == g.code.len()
            && f.code.iter().zip(&g.code).all(|(x, y)| self.same_op(x, y))
    }

    /// The same instruction with the same operands, index operands naming
    /// the same thing.
    fn same_op(&self, x: &Op, y: &Op) -> bool {
        let (mut p, mut q) = (Vec::with_capacity(4), Vec::with_capacity(4));
        x.for_each_operand(|operand| p.push(operand));
        y.for_each_operand(|operand| q.push(operand));
        x.name() == y.name()
            && p.len() == q.len()
            && p.iter().zip(&q).all(|(&p, &q)| {
                if p.is_index() {
                    self.same_operand(p, q)
                } else {
                    p == q
                }
            })
    }

    fn same_operand(&self, p: Operand, q: Operand) -> bool {
        let (old, new) = (self.old, self.new);
        match (p, q) {
            (Operand::Const(p), Operand::Const(q)) => {
                match (old.constants.get(p.index()), new.constants.get(q.index())) {
                    (Some(Constant::Int(a)), Some(Constant::Int(b))) => a == b,
                    (Some(Constant::Float(a)), Some(Constant::Float(b))) => {
                        a.to_bits() == b.to_bits()
                    }
                    (Some(Constant::Str(a)), Some(Constant::Str(b))) => a == b,
                    _ => false,
                }
            }
            (Operand::Func(p), Operand::Func(q)) => {
                let a = self.old_ids.functions.get(p.index());
                a.is_some() && a == self.new_ids.functions.get(q.index())
            }
            (Operand::Native(p), Operand::Native(q)) => {
                match (old.natives.get(p.index()), new.natives.get(q.index())) {
                    (Some(a), Some(b)) => a.key == b.key && a.io == b.io,
                    _ => false,
                }
            }
            (Operand::Global(p), Operand::Global(q)) => {
                let a = self.old_ids.globals.get(p.index());
                a.is_some() && a == self.new_ids.globals.get(q.index())
            }
            (Operand::Struct { ty: p, fields: m }, Operand::Struct { ty: q, fields: n }) => {
                match (old.structs.get(p.index()), new.structs.get(q.index())) {
                    (Some(a), Some(b)) => a.name == b.name && m == n,
                    _ => false,
                }
            }
            (
                Operand::Variant {
                    ty: p,
                    variant: v,
                    fields: m,
                },
                Operand::Variant {
                    ty: q,
                    variant: w,
                    fields: n,
                },
            ) => match (old.enums.get(p.index()), new.enums.get(q.index())) {
                (Some(a), Some(b)) => a.name == b.name && v == w && m == n,
                _ => false,
            },
            _ => false,
        }
    }
}

// ---- kinds of global values ----

/// What kind of value something is, as far as bytecode shows it.
#[derive(Clone, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Bool,
    Str,
    List,
    Map,
    Record(String),
    Variant(String),
    Function,
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::Int => "an int".into(),
            Kind::Float => "a float".into(),
            Kind::Bool => "a bool".into(),
            Kind::Str => "a str".into(),
            Kind::List => "a list".into(),
            Kind::Map => "a map".into(),
            Kind::Record(name) => format!("a `{name}`"),
            Kind::Variant(name) => format!("a `{name}`"),
            Kind::Function => "a function".into(),
        }
    }
}

/// The kind of a value the run holds (`None` for nil, unset and kinds the
/// bytecode cannot show).
fn kind_of_value(run: &Run, value: Value) -> Option<Kind> {
    let program: &Program = &run.program;
    Some(match value {
        Value::Nil => return None,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Func(_) => Kind::Function,
        Value::Native(_) if value == Value::UNSET => return None,
        Value::Native(_) => Kind::Function,
        Value::Obj(obj) => match run.heap.get(obj)? {
            Object::Str(_) => Kind::Str,
            Object::List(_) => Kind::List,
            Object::Map(_) => Kind::Map,
            Object::Record { ty, .. } => {
                Kind::Record(program.structs.get(ty.index())?.name.clone())
            }
            Object::Variant { ty, .. } => {
                Kind::Variant(program.enums.get(ty.index())?.name.clone())
            }
            Object::Closure { .. } => Kind::Function,
            _ => return None,
        },
    })
}

/// The kind of value `op` writes to its destination `dst`, when it is
/// evident from the instruction alone.
fn kind_written(program: &Program, op: &Op, dst: crate::value::Reg) -> Option<Kind> {
    use Op::*;
    let mut writes_dst = false;
    op.for_each_operand(|operand| writes_dst |= operand == Operand::Write(dst));
    if !writes_dst {
        return None;
    }
    Some(match *op {
        LoadInt { .. }
        | AddInt { .. }
        | SubInt { .. }
        | MulInt { .. }
        | DivInt { .. }
        | RemInt { .. }
        | AddIntImm { .. }
        | NegInt { .. }
        | MulIntImm { .. }
        | RemIntImm { .. }
        | ListLen { .. }
        | MapLen { .. } => Kind::Int,
        AddFloat { .. }
        | SubFloat { .. }
        | MulFloat { .. }
        | DivFloat { .. }
        | RemFloat { .. }
        | NegFloat { .. } => Kind::Float,
        Concat { .. } | ToStr { .. } => Kind::Str,
        LoadBool { .. }
        | EqInt { .. }
        | LtInt { .. }
        | LeInt { .. }
        | EqFloat { .. }
        | LtFloat { .. }
        | LeFloat { .. }
        | LtStr { .. }
        | LeStr { .. }
        | Eq { .. }
        | Not { .. } => Kind::Bool,
        NewList { .. } => Kind::List,
        NewMap { .. } => Kind::Map,
        NewRecord { ty, .. } => Kind::Record(program.structs.get(ty.index())?.name.clone()),
        NewVariant { ty, .. } => Kind::Variant(program.enums.get(ty.index())?.name.clone()),
        LoadFunc { .. } | LoadNative { .. } | MakeClosure { .. } => Kind::Function,
        LoadConst { idx, .. } => match program.constants.get(idx.index())? {
            Constant::Int(_) => Kind::Int,
            Constant::Float(_) => Kind::Float,
            Constant::Str(_) => Kind::Str,
        },
        _ => return None,
    })
}

/// The jump targets of a function's code.
fn jump_targets(code: &[Op]) -> BTreeSet<u32> {
    let mut targets = BTreeSet::new();
    for op in code {
        op.for_each_operand(|operand| {
            if let Operand::Jump(target) = operand {
                targets.insert(target.0);
            }
        });
    }
    targets
}

/// A place where `program` stores into global `global` a value of an
/// evidently different kind than `held`, with its `file:line:col`.
fn conflicting_store(program: &Program, global: usize, held: &Kind) -> Option<(Kind, String)> {
    for function in &program.functions {
        let stores = function.code.iter().enumerate().filter(
            |(_, op)| matches!(op, Op::StoreGlobal { global: g, .. } if g.index() == global),
        );
        let mut targets = None;
        for (pc, op) in stores {
            let Op::StoreGlobal { src, .. } = *op else {
                continue;
            };
            if pc == 0 {
                continue;
            }
            let targets = targets.get_or_insert_with(|| jump_targets(&function.code));
            if targets.contains(&(pc as u32)) {
                continue;
            }
            let Some(stored) = kind_written(program, &function.code[pc - 1], src) else {
                continue;
            };
            if stored != *held {
                let file = program
                    .files
                    .get(function.file.index())
                    .map_or("?", String::as_str);
                let loc = function.locs.get(pc).copied().unwrap_or_default();
                return Some((stored, format!("{file}:{}:{}", loc.line, loc.col)));
            }
        }
    }
    None
}

// ---- applying the plan ----

/// Rewrites every index the (tidied) run holds from its program to `new`,
/// as `plan` says; the caller then installs `new` and its constants.
pub(crate) fn apply(run: &mut Run, plan: &Plan, new: &Program) {
    let map = Mapper { plan };
    map.fiber(&mut run.fiber);
    for resumer in &mut run.resumers {
        map.fiber(&mut resumer.fiber);
    }
    for index in 0..run.heap.capacity() {
        if let Some(object) = run.heap.get_mut(ObjRef(index as u32)) {
            map.object(object);
        }
    }
    let old_globals = std::mem::take(&mut run.globals);
    run.globals = plan
        .globals
        .iter()
        .map(|from| match from.and_then(|from| old_globals.get(from)) {
            Some(&value) => map.value(value),
            None => Value::UNSET,
        })
        .collect();
    debug_assert_eq!(run.globals.len(), new.globals.len());
    if let Status::Done(value) = &mut run.status {
        *value = map.value(*value);
    }
    // In place: the table's window of ids must keep ending at the next id.
    for in_flight in run.sched.in_flight.values_mut() {
        in_flight.native = map.native(in_flight.native);
    }
}

/// Translates indices by a plan; an index the plan has no translation for
/// is kept (the validator then refuses the run rather than misreading it).
struct Mapper<'a> {
    plan: &'a Plan,
}

impl Mapper<'_> {
    fn func(&self, func: FuncIdx) -> FuncIdx {
        self.plan
            .funcs
            .get(func.index())
            .copied()
            .flatten()
            .unwrap_or(func)
    }

    fn native(&self, native: NativeIdx) -> NativeIdx {
        self.plan
            .natives
            .get(native.index())
            .copied()
            .flatten()
            .unwrap_or(native)
    }

    fn value(&self, value: Value) -> Value {
        match value {
            Value::Func(func) => Value::Func(self.func(func)),
            Value::Native(native) if value != Value::UNSET => Value::Native(self.native(native)),
            other => other,
        }
    }

    fn values(&self, values: &mut [Value]) {
        for value in values {
            *value = self.value(*value);
        }
    }

    fn fiber(&self, fiber: &mut Fiber) {
        self.values(&mut fiber.registers);
        for frame in &mut fiber.frames {
            frame.func = self.func(frame.func);
        }
        for entry in &mut fiber.defers {
            entry.func = self.value(entry.func);
        }
        for unwind in &mut fiber.unwinds {
            unwind.error = self.value(unwind.error);
        }
    }

    fn object(&self, object: &mut Object) {
        match object {
            Object::Str(_) | Object::Mutex(_) => {}
            Object::List(items) => self.values(items),
            Object::Map(map) => {
                if map.values().any(|v| self.value(v) != v) {
                    let mut remapped = ValueMap::with_capacity(map.len());
                    for (key, value) in map.iter() {
                        remapped.insert(key, self.value(value));
                    }
                    *map = remapped;
                }
            }
            Object::Record { ty, fields } => {
                if let Some(Some((to, order))) = self.plan.structs.get(ty.index()) {
                    *ty = *to;
                    if let Some(order) = order {
                        let old = std::mem::take(fields);
                        *fields = order
                            .iter()
                            .map(|&from| old.get(from).copied().unwrap_or(Value::Nil))
                            .collect();
                    }
                }
                self.values(fields);
            }
            Object::Variant {
                ty,
                variant,
                fields,
            } => {
                if let Some(Some((to, variants))) = self.plan.enums.get(ty.index()) {
                    if let Some(Some(now)) = variants.get(usize::from(*variant)) {
                        *ty = *to;
                        *variant = *now;
                    }
                }
                self.values(fields);
            }
            Object::Closure { func, captures } => {
                *func = self.func(*func);
                self.values(captures);
            }
            Object::Cell(value) => *value = self.value(*value),
            Object::Coro(coro) => {
                coro.func = self.value(coro.func);
                coro.last = coro.last.map(|v| self.value(v));
                coro.sent = self.value(coro.sent);
                self.fiber(&mut coro.fiber);
            }
            Object::Task(task) => {
                self.fiber(&mut task.context.fiber);
                for resumer in &mut task.context.resumers {
                    self.fiber(&mut resumer.fiber);
                }
                if let Some(start) = &mut task.start {
                    start.0 = self.value(start.0);
                    self.values(&mut start.1);
                }
                match &mut task.wake {
                    crate::task::Wake::Nothing => {}
                    crate::task::Wake::Value(value) => *value = self.value(*value),
                    crate::task::Wake::Raise(error) => error.error = self.value(error.error),
                }
                task.result = self.value(task.result);
                if let Some(error) = &mut task.error {
                    error.error = self.value(error.error);
                }
            }
            Object::Chan(chan) => {
                for value in &mut chan.buffer {
                    *value = self.value(*value);
                }
                for (_, value) in &mut chan.senders {
                    *value = self.value(*value);
                }
            }
            Object::Group(group) => {
                group.first_error = group.first_error.map(|v| self.value(v));
            }
        }
    }
}
