//! Kinds of global values, as far as bytecode shows them: a global the
//! run holds an int in must not be one the new code stores a string in.

use super::*;

/// What kind of value something is, as far as bytecode shows it.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Kind {
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
    pub(super) fn describe(&self) -> String {
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
pub(super) fn kind_of_value(run: &Run, value: Value) -> Option<Kind> {
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
            Object::List(_) | Object::BoolList(_) => Kind::List,
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
pub(super) fn kind_written(
    program: &Program,
    op: &Op,
    dst: crate::heap::value::Reg,
) -> Option<Kind> {
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
        | DivIntConst { .. }
        | RemIntConst { .. }
        | AddRemIntConst { .. }
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
        NewList { .. } | NewBoolList { .. } => Kind::List,
        NewMap { .. } => Kind::Map,
        NewRecord { ty, .. } => Kind::Record(program.structs.get(ty.index())?.name.clone()),
        NewVariant { ty, .. } => Kind::Variant(program.enums.get(ty.index())?.name.clone()),
        LoadFunc { .. } | LoadNative { .. } | MakeClosure { .. } => Kind::Function,
        LoadConst { idx, .. } => match program.constants.get(idx.index())? {
            Constant::Int(_) => Kind::Int,
            Constant::Float(_) => Kind::Float,
            Constant::Str(_) => Kind::Str,
            Constant::Type(_) => Kind::Int,
        },
        _ => return None,
    })
}

/// The jump targets of a function's code.
pub(super) fn jump_targets(code: &[Op]) -> BTreeSet<u32> {
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
pub(super) fn conflicting_store(
    program: &Program,
    global: usize,
    held: &Kind,
) -> Option<(Kind, String)> {
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
