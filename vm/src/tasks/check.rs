//! Checks a host's [`Data`] against a Spool type, all the way down, before
//! it enters a run: an answer to an I/O request or a value sent to a
//! `yield` that does not fit is refused with the place inside it and both
//! types (`at [3].name: expected str, found int`), blamed on the host
//! instead of failing later in the script.

use crate::program::types::{TypeAt as At, TypeDesc, TypeNode};
use crate::program::Program;
use crate::tasks::io::Data;

/// How deep a check goes before refusing the data.
const MAX_DEPTH: usize = 1000;

/// Whether `data` is a value of the type `desc`; the error says where it
/// is not and why.
///
/// Structs and enums are matched by shape: a record or variant named
/// otherwise on the host's side (a Rust `UserRow` for the script's `User`)
/// that has the expected fields is renamed to the script's type.
pub fn check(data: &mut Data, desc: &TypeDesc, program: &Program) -> Result<(), String> {
    let Some(at) = At::root(desc, &[]) else {
        return Ok(());
    };
    check_at(data, at, program, 0).map_err(|(path, why)| {
        if path.is_empty() {
            why
        } else {
            format!("at {path}: {why}")
        }
    })
}

/// A mismatch: the path to it and what was wrong.
type Mismatch = (String, String);

fn inside(step: String) -> impl FnOnce(Mismatch) -> Mismatch {
    move |(path, why)| (format!("{step}{path}"), why)
}

fn check_at(data: &mut Data, ty: At<'_>, program: &Program, depth: usize) -> Result<(), Mismatch> {
    if depth > MAX_DEPTH {
        return Err((String::new(), "the value is nested too deeply".into()));
    }
    // `T??…?` holding a value: the innermost `T` decides, however many
    // optionals wrap it (each points to an earlier node, so this ends).
    let mut ty = ty;
    while let (Some(TypeNode::Optional(inner)), false) = (ty.node(), matches!(data, Data::Nil)) {
        if *inner >= ty.node {
            break;
        }
        ty = ty.part(*inner);
    }
    let Some(node) = ty.node() else {
        return Ok(());
    };
    let outcome = match (node, &mut *data) {
        (TypeNode::Any, _) => Some(Ok(())),
        (TypeNode::Param(index), data) => Some(match ty.args.get(usize::from(*index)) {
            Some(&arg) => check_at(data, arg, program, depth + 1),
            None => Ok(()),
        }),
        (TypeNode::Optional(_), Data::Nil) | (TypeNode::Nil, Data::Nil) => Some(Ok(())),
        (TypeNode::Optional(inner), data) => {
            Some(check_at(data, ty.part(*inner), program, depth + 1))
        }
        (TypeNode::Bool, Data::Bool(_))
        | (TypeNode::Int, Data::Int(_))
        | (TypeNode::Float, Data::Float(_))
        | (TypeNode::Str, Data::Str(_)) => Some(Ok(())),
        (TypeNode::List(element), Data::List(items)) => {
            Some(list(items, ty.part(*element), program, depth))
        }
        (TypeNode::Map(key, value), Data::Map(pairs)) => {
            Some(map(pairs, ty.part(*key), ty.part(*value), program, depth))
        }
        (
            TypeNode::Struct(name, args),
            Data::Record {
                name: given,
                fields,
            },
        ) => {
            let args: Vec<At<'_>> = args.iter().map(|&arg| ty.part(arg)).collect();
            let checked = record(name, fields, &args, program, depth);
            if checked.is_ok() {
                given.clone_from(name);
            }
            Some(checked)
        }
        (
            TypeNode::Enum(name, args),
            Data::Variant {
                name: given,
                variant,
                fields,
            },
        ) => {
            let args: Vec<At<'_>> = args.iter().map(|&arg| ty.part(arg)).collect();
            let checked = payload(name, variant, fields, &args, program, depth);
            if checked.is_ok() {
                given.clone_from(name);
            }
            Some(checked)
        }
        _ => None,
    };
    outcome.unwrap_or_else(|| {
        Err((
            String::new(),
            format!("expected `{}`, found {}", ty.shown(), kind(data)),
        ))
    })
}

fn list(
    items: &mut [Data],
    element: At<'_>,
    program: &Program,
    depth: usize,
) -> Result<(), Mismatch> {
    for (index, item) in items.iter_mut().enumerate() {
        check_at(item, element, program, depth + 1).map_err(inside(format!("[{index}]")))?;
    }
    Ok(())
}

fn map(
    pairs: &mut [(Data, Data)],
    key: At<'_>,
    value: At<'_>,
    program: &Program,
    depth: usize,
) -> Result<(), Mismatch> {
    for (k, v) in pairs {
        let step = format!("[{}]", short(k));
        check_at(k, key, program, depth + 1).map_err(inside(step.clone()))?;
        check_at(v, value, program, depth + 1).map_err(inside(step))?;
    }
    Ok(())
}

fn record(
    name: &str,
    fields: &mut [(String, Data)],
    args: &[At<'_>],
    program: &Program,
    depth: usize,
) -> Result<(), Mismatch> {
    let Some(layout) = program.structs.iter().find(|s| s.name == name) else {
        return Err((String::new(), format!("the program has no struct `{name}`")));
    };
    for (field_name, _) in fields.iter() {
        if !layout.fields.contains(field_name) {
            return Err((
                String::new(),
                format!("`{name}` has no field `{field_name}`"),
            ));
        }
    }
    for (index, field_name) in layout.fields.iter().enumerate() {
        let Some((_, value)) = fields.iter_mut().find(|(n, _)| n == field_name) else {
            return Err((
                String::new(),
                format!("the field `{field_name}` of `{name}` is missing"),
            ));
        };
        if let Some(ty) = layout
            .field_types
            .get(index)
            .and_then(|d| At::root(d, args))
        {
            check_at(value, ty, program, depth + 1).map_err(inside(format!(".{field_name}")))?;
        }
    }
    Ok(())
}

fn payload(
    name: &str,
    variant: &str,
    fields: &mut [Data],
    args: &[At<'_>],
    program: &Program,
    depth: usize,
) -> Result<(), Mismatch> {
    let Some(layout) = program.enums.iter().find(|e| e.name == name) else {
        return Err((String::new(), format!("the program has no enum `{name}`")));
    };
    let Some(which) = layout.variants.iter().find(|v| v.name == variant) else {
        return Err((
            String::new(),
            format!("`{name}` has no variant `{variant}`"),
        ));
    };
    if usize::from(which.arity) != fields.len() {
        return Err((
            String::new(),
            format!(
                "`{name}.{variant}` holds {} values, not {}",
                which.arity,
                fields.len()
            ),
        ));
    }
    for (index, value) in fields.iter_mut().enumerate() {
        if let Some(ty) = which.field_types.get(index).and_then(|d| At::root(d, args)) {
            check_at(value, ty, program, depth + 1)
                .map_err(inside(format!(".{variant}[{index}]")))?;
        }
    }
    Ok(())
}

/// What `data` is, for messages.
fn kind(data: &Data) -> String {
    match data {
        Data::Nil => "nil".into(),
        Data::Bool(b) => format!("the bool {b}"),
        Data::Int(n) => format!("the int {n}"),
        Data::Float(x) => format!("the float {x}"),
        Data::Str(text) => format!("the str {}", short(&Data::Str(text.clone()))),
        Data::List(_) => "a list".into(),
        Data::Map(_) => "a map".into(),
        Data::Record { name, .. } => format!("a `{name}`"),
        Data::Variant { name, variant, .. } => format!("`{name}.{variant}`"),
    }
}

/// A map key or string as a path step shows it, cut when long.
fn short(data: &Data) -> String {
    match data {
        Data::Str(text) if text.chars().count() > 30 => {
            let head: String = text.chars().take(30).collect();
            format!("{head:?}…")
        }
        Data::Str(text) => format!("{text:?}"),
        Data::Int(n) => n.to_string(),
        Data::Bool(b) => b.to_string(),
        other => kind(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_of_int() -> TypeDesc {
        TypeDesc {
            nodes: vec![TypeNode::Int, TypeNode::List(0)],
        }
    }

    #[test]
    fn a_wrong_element_deep_inside_is_named_with_its_place() {
        let program = Program::default();
        let mut good = Data::List(vec![Data::Int(1), Data::Int(2)]);
        assert_eq!(check(&mut good, &list_of_int(), &program), Ok(()));
        let mut bad = Data::List(vec![Data::Int(1), Data::str("2")]);
        assert_eq!(
            check(&mut bad, &list_of_int(), &program),
            Err("at [1]: expected `int`, found the str \"2\"".to_string())
        );
    }
}
