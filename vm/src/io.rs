//! I/O requests: what a task hands to the host when it calls an I/O
//! operation, and the owned data that crosses the boundary.
//!
//! A request's arguments and its result are [`Data`]: owned, heap-free
//! values a host can move to another thread, serialize, or keep across a
//! restart. The VM converts arguments from heap values when a task calls an
//! operation, and converts the host's result back (checking it against the
//! operation's declared result type) when the host completes the request.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::format;
use crate::heap::{Heap, Key, Object, ValueMap};
use crate::program::Program;
use crate::value::{EnumIdx, StructIdx, Value};

/// Identifies one I/O request within a run. Ids start at 1, increase and
/// are never reused, so a host may deduplicate a request issued again
/// after a restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IoId(pub u64);

/// One call of a host I/O operation by a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IoRequest {
    /// The request's id; answer it with `Run::complete(id, ...)`.
    pub id: IoId,
    /// The operation's name, as scripts call it (`read_file`); shared by
    /// every request of the operation.
    pub op: Arc<str>,
    /// The arguments, in order.
    pub args: Vec<Data>,
}

/// What the host answers a request with: the result, or the message of an
/// `Io` error raised at the call site.
pub type IoResult = Result<Data, String>;

/// An owned value crossing the host boundary.
///
/// Deserializing refuses data nested deeper than conversions from the heap
/// make (the requests of a saved run are untrusted input, and decoding,
/// dropping and converting nested data all recurse).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub enum Data {
    /// `nil`.
    Nil,
    /// A `bool`.
    Bool(bool),
    /// An `int`.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A list.
    List(#[serde(deserialize_with = "grown")] Vec<Data>),
    /// A map, in insertion order; keys are `Int`, `Str` or `Bool`.
    Map(#[serde(deserialize_with = "grown")] Vec<(Data, Data)>),
    /// A struct value: the struct's name and its fields by name.
    Record {
        /// The struct's name (`Response`).
        name: String,
        /// Field names and values; the order does not matter.
        #[serde(deserialize_with = "grown")]
        fields: Vec<(String, Data)>,
    },
    /// An enum value: the enum's and the variant's names and the payload.
    Variant {
        /// The enum's name (`Json`).
        name: String,
        /// The variant's name (`Num`).
        variant: String,
        /// The payload, in order.
        #[serde(deserialize_with = "grown")]
        fields: Vec<Data>,
    },
}

impl Data {
    /// A string.
    pub fn str(text: impl Into<String>) -> Data {
        Data::Str(text.into())
    }

    /// The string inside, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Data::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The int inside, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Data::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The field `name` of a record.
    pub fn field(&self, name: &str) -> Option<&Data> {
        match self {
            Data::Record { fields, .. } => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Copies a heap value out. Functions, coroutines, tasks and other
    /// handles cannot cross the boundary; values nested deeper than 1000
    /// levels (or inside themselves) are refused too.
    pub fn from_value(value: Value, heap: &Heap, program: &Program) -> Result<Data, String> {
        from_value(value, heap, program, 0)
    }

    /// Builds the heap value for this data. Records and variants are looked
    /// up by name in the program's layouts.
    pub fn into_value(&self, heap: &mut Heap, program: &Program) -> Result<Value, String> {
        into_value(self, heap, program, 0)
    }
}

/// How deep [`Data`] conversions go before refusing a value.
const MAX_DEPTH: usize = 1000;

/// Deserializes the elements of nested data without reserving room for the
/// count the input claims: serde reserves up to 1 MiB for a sequence, and
/// data nests a thousand levels deep, each reserving. The vector grows as
/// elements arrive instead.
fn grown<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Grown<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Grown<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Grown(std::marker::PhantomData))
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Data::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Data, D::Error> {
        thread_local! {
            static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        }
        /// Leaves one level when dropped, also on errors.
        struct Level;
        impl Drop for Level {
            fn drop(&mut self) {
                DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
            }
        }
        let depth = DEPTH.with(|depth| {
            depth.set(depth.get() + 1);
            depth.get()
        });
        let _level = Level;
        if depth > MAX_DEPTH + 1 {
            return Err(serde::de::Error::custom("data nested too deeply"));
        }
        Data::deserialize(deserializer)
    }
}

fn from_value(value: Value, heap: &Heap, program: &Program, depth: usize) -> Result<Data, String> {
    if depth > MAX_DEPTH {
        return Err("value nested too deeply to pass to the host".to_string());
    }
    let inner = |v: Value| from_value(v, heap, program, depth + 1);
    let obj = match value {
        Value::Nil => return Ok(Data::Nil),
        Value::Bool(b) => return Ok(Data::Bool(b)),
        Value::Int(n) => return Ok(Data::Int(n)),
        Value::Float(x) => return Ok(Data::Float(x)),
        Value::Obj(obj) => obj,
        Value::Func(_) | Value::Native(_) => return Err(cannot_pass(value, heap, program)),
    };
    match heap.get(obj) {
        Some(Object::Str(text)) => Ok(Data::Str(text.clone())),
        Some(Object::List(items)) => items
            .iter()
            .map(|&v| inner(v))
            .collect::<Result<_, _>>()
            .map(Data::List),
        Some(Object::Map(map)) => map
            .iter()
            .map(|(key, v)| Ok((key_data(&key), inner(v)?)))
            .collect::<Result<_, String>>()
            .map(Data::Map),
        Some(Object::Record { ty, fields }) => {
            let layout = program.structs.get(ty.index()).ok_or("unknown struct")?;
            let fields = layout
                .fields
                .iter()
                .zip(fields)
                .map(|(name, &v)| Ok((name.clone(), inner(v)?)))
                .collect::<Result<_, String>>()?;
            Ok(Data::Record {
                name: layout.name.clone(),
                fields,
            })
        }
        Some(Object::Variant {
            ty,
            variant,
            fields,
        }) => {
            let layout = program.enums.get(ty.index()).ok_or("unknown enum")?;
            let name = layout
                .variants
                .get(*variant as usize)
                .ok_or("unknown variant")?;
            Ok(Data::Variant {
                name: layout.name.clone(),
                variant: name.name.clone(),
                fields: fields.iter().map(|&v| inner(v)).collect::<Result<_, _>>()?,
            })
        }
        _ => Err(cannot_pass(value, heap, program)),
    }
}

fn cannot_pass(value: Value, heap: &Heap, program: &Program) -> String {
    format!(
        "a value of type {} cannot be passed to the host",
        format::kind_of(value, heap, program)
    )
}

fn key_data(key: &Key) -> Data {
    match key {
        Key::Int(n) => Data::Int(*n),
        Key::Str(text) => Data::Str(text.to_string()),
        Key::Bool(b) => Data::Bool(*b),
    }
}

fn into_value(
    data: &Data,
    heap: &mut Heap,
    program: &Program,
    depth: usize,
) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("host value nested too deeply".to_string());
    }
    Ok(match data {
        Data::Nil => Value::Nil,
        Data::Bool(b) => Value::Bool(*b),
        Data::Int(n) => Value::Int(*n),
        Data::Float(x) => Value::Float(*x),
        Data::Str(text) => heap.alloc_str(text.as_str()),
        Data::List(items) => {
            let values = items
                .iter()
                .map(|item| into_value(item, heap, program, depth + 1))
                .collect::<Result<_, _>>()?;
            heap.alloc_list(values)
        }
        Data::Map(pairs) => {
            let mut map = ValueMap::with_capacity(pairs.len());
            for (key, value) in pairs {
                let key = match key {
                    Data::Int(n) => Key::Int(*n),
                    Data::Str(text) => Key::Str(text.as_str().into()),
                    Data::Bool(b) => Key::Bool(*b),
                    _ => return Err("map keys from the host must be int, str or bool".to_string()),
                };
                let value = into_value(value, heap, program, depth + 1)?;
                map.insert(key, value);
            }
            Value::Obj(heap.alloc(Object::Map(map)))
        }
        Data::Record { name, fields } => record_value(name, fields, heap, program, depth)?,
        Data::Variant {
            name,
            variant,
            fields,
        } => {
            let index = program
                .enums
                .iter()
                .position(|layout| layout.name == *name)
                .ok_or_else(|| format!("no enum `{name}` in the program"))?;
            let layout = &program.enums[index];
            let which = layout
                .variants
                .iter()
                .position(|v| v.name == *variant)
                .ok_or_else(|| format!("no variant `{variant}` in enum `{name}`"))?;
            if layout.variants[which].arity as usize != fields.len() {
                return Err(format!("wrong number of fields for `{name}.{variant}`"));
            }
            let values = fields
                .iter()
                .map(|item| into_value(item, heap, program, depth + 1))
                .collect::<Result<_, _>>()?;
            Value::Obj(heap.alloc(Object::Variant {
                ty: EnumIdx(index as u32),
                variant: which as u16,
                fields: values,
            }))
        }
    })
}

fn record_value(
    name: &str,
    fields: &[(String, Data)],
    heap: &mut Heap,
    program: &Program,
    depth: usize,
) -> Result<Value, String> {
    let index = program
        .structs
        .iter()
        .position(|layout| layout.name == name)
        .ok_or_else(|| format!("no struct `{name}` in the program"))?;
    let layout = &program.structs[index];
    let mut values = Vec::with_capacity(layout.fields.len());
    for field in &layout.fields {
        let (_, data) = fields
            .iter()
            .find(|(n, _)| n == field)
            .ok_or_else(|| format!("field `{field}` of `{name}` is missing"))?;
        values.push(into_value(data, heap, program, depth + 1)?);
    }
    Ok(Value::Obj(heap.alloc(Object::Record {
        ty: StructIdx(index as u32),
        fields: values,
    })))
}
