//! The plan of an upgrade: what the run holds (functions on stacks and in
//! closures, values of structs and variants, globals, requests in flight),
//! whether each has a sound counterpart in the new program, and the
//! translation of every index; or the reasons it has not, with where.

use super::*;

/// How every index of the old program translates to the new one.
pub(crate) struct Plan {
    /// Old function -> new function with the same identity.
    pub(super) funcs: Vec<Option<FuncIdx>>,
    /// Old native -> new native with the same key.
    pub(super) natives: Vec<Option<NativeIdx>>,
    /// New global -> the old global with the same name, if any.
    pub(super) globals: Vec<Option<usize>>,
    /// Old struct -> new struct, and for each new field the old field's
    /// position (`None` when the fields are the same).
    pub(super) structs: Vec<Option<(StructIdx, Option<Vec<usize>>)>>,
    /// Old enum -> new enum, and each old variant's new number (`None`
    /// when the new enum has no variant of that name and arity).
    pub(super) enums: Vec<Option<(EnumIdx, Vec<Option<u16>>)>>,
}

/// What the run refers to, gathered from everything it can reach.
#[derive(Default)]
pub(super) struct Uses {
    /// Functions with a frame on some stack, each with where (the first
    /// frame found).
    pub(super) frames: BTreeMap<usize, String>,
    /// Functions of closures.
    pub(super) closures: BTreeSet<usize>,
    /// Functions held as plain values.
    pub(super) values: BTreeSet<usize>,
    /// Natives held as values.
    pub(super) natives: BTreeSet<usize>,
    /// Natives of I/O requests in flight.
    pub(super) in_flight: BTreeSet<usize>,
    /// Structs with instances.
    pub(super) structs: BTreeSet<usize>,
    /// Enums with values, and the variants used.
    pub(super) variants: BTreeSet<(usize, u16)>,
}

impl Uses {
    pub(super) fn value(&mut self, value: Value) {
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

    pub(super) fn fiber(&mut self, fiber: &Fiber, program: &Program) {
        let trace = crate::exec::unwind::stack_trace(fiber, program);
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
pub(super) fn defined_at(program: &Program, ids: &Identities, func: usize) -> String {
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
pub(super) fn translation(
    old: &Program,
    old_ids: &Identities,
    new: &Program,
    new_ids: &Identities,
) -> Plan {
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
pub(super) fn uses(run: &Run) -> Uses {
    let program: &Program = &run.program;
    let mut uses = Uses::default();
    uses.fiber(&run.context.fiber, program);
    for resumer in &run.context.resumers {
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
