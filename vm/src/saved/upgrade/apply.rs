//! Applying a plan: every index the run holds (frames, closures, function
//! values, natives, struct and enum layouts of heap objects, requests in
//! flight) rewritten to the new program's numbering.

use super::*;

/// Rewrites every index the (tidied) run holds from its program to `new`,
/// as `plan` says; the caller then installs `new` and its constants.
pub(crate) fn apply(run: &mut Run, plan: &Plan, new: &Program) {
    let map = Mapper { plan };
    map.fiber(&mut run.context.fiber);
    for resumer in &mut run.context.resumers {
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
pub(super) struct Mapper<'a> {
    pub(super) plan: &'a Plan,
}

impl Mapper<'_> {
    pub(super) fn func(&self, func: FuncIdx) -> FuncIdx {
        self.plan
            .funcs
            .get(func.index())
            .copied()
            .flatten()
            .unwrap_or(func)
    }

    pub(super) fn native(&self, native: NativeIdx) -> NativeIdx {
        self.plan
            .natives
            .get(native.index())
            .copied()
            .flatten()
            .unwrap_or(native)
    }

    pub(super) fn value(&self, value: Value) -> Value {
        match value {
            Value::Func(func) => Value::Func(self.func(func)),
            Value::Native(native) if value != Value::UNSET => Value::Native(self.native(native)),
            other => other,
        }
    }

    pub(super) fn values(&self, values: &mut [Value]) {
        for value in values {
            *value = self.value(*value);
        }
    }

    pub(super) fn fiber(&self, fiber: &mut Fiber) {
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

    pub(super) fn object(&self, object: &mut Object) {
        match object {
            Object::Str(_) | Object::Mutex(_) | Object::BoolList(_) => {}
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
                    crate::heap::objects::Wake::Nothing => {}
                    crate::heap::objects::Wake::Value(value) => *value = self.value(*value),
                    crate::heap::objects::Wake::Raise(error) => {
                        error.error = self.value(error.error)
                    }
                }
                if let crate::heap::objects::Blocked::Select { cases, .. } = &mut task.blocked {
                    for case in cases.iter_mut() {
                        if let crate::heap::objects::SelectCase::Send(_, value) = case {
                            *value = self.value(*value);
                        }
                    }
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
