//! Types as the run needs them: a small, serializable description the
//! compiler emits wherever a check or a host needs a type at run time (the
//! result type of an I/O operation, the type a coroutine yields, the type
//! the top level receives from the host, the fields of a struct or a
//! variant). Runtime checks read this, never type names as text.
//!
//! A [`TypeDesc`] is flat: its nodes are a vector, each node naming its
//! parts by their position, always before it, and the type itself is the
//! last node. A description from untrusted bytes (a saved run) therefore
//! decodes without recursion, [`TypeDesc::check`] refuses one whose parts
//! do not come first, and everything that walks one is iterative or
//! bounded. Structs and enums are named, not numbered, so a description
//! means the same in a changed version of the program (upgrades).

use serde::{Deserialize, Serialize};

use crate::heap::value::Value;
use crate::heap::{Heap, Object};
use crate::program::Program;

/// A type: its nodes, parts first; the last node is the type itself. No
/// nodes at all means a type that is not known (every value fits it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeDesc {
    /// The nodes; each one's parts are positions before it.
    pub nodes: Vec<TypeNode>,
}

/// One node of a [`TypeDesc`]; `u32` operands are positions of other
/// nodes of the same description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TypeNode {
    /// Any value (a type the compiler left open, `any`).
    Any,
    /// `nil`.
    Nil,
    /// `bool`.
    Bool,
    /// `int`.
    Int,
    /// `float`.
    Float,
    /// `str`.
    Str,
    /// `[T]`.
    List(u32),
    /// `[K: V]`.
    Map(u32, u32),
    /// `T?`.
    Optional(u32),
    /// A function (parameters, result and yields not described), shown as
    /// written.
    Func(String),
    /// `Coro<Y, S>`.
    Coro(u32, u32),
    /// `Task<T>`.
    Task(u32),
    /// `Chan<T>`.
    Chan(u32),
    /// `Mutex`, `WaitGroup` or `ErrGroup`, by name.
    Handle(String),
    /// A struct, by name, with its type arguments.
    Struct(String, Vec<u32>),
    /// An enum, by name, with its type arguments.
    Enum(String, Vec<u32>),
    /// Type parameter `i` of the struct or enum whose layout holds this
    /// description (a field's type).
    Param(u16),
}

/// The most nodes a description may have.
pub const MAX_NODES: usize = 4096;

impl TypeDesc {
    /// A description of one node without parts (`int`, `str`, ...).
    pub fn leaf(node: TypeNode) -> TypeDesc {
        TypeDesc { nodes: vec![node] }
    }

    /// The type itself (the last node), or `None` when it is unknown.
    pub fn root(&self) -> Option<&TypeNode> {
        self.nodes.last()
    }

    /// The node at position `at`.
    pub fn node(&self, at: u32) -> Option<&TypeNode> {
        self.nodes.get(at as usize)
    }

    /// Is this the unknown type, which every value fits?
    pub fn is_unknown(&self) -> bool {
        matches!(self.root(), None | Some(TypeNode::Any))
    }

    /// Checks the shape of a description from untrusted bytes: not too
    /// many nodes, and every node's parts before it.
    pub fn check(&self) -> Result<(), String> {
        if self.nodes.len() > MAX_NODES {
            return Err("a type description is too large".into());
        }
        for (at, node) in self.nodes.iter().enumerate() {
            let mut parts_first = true;
            node.for_each_part(|part| parts_first &= (part as usize) < at);
            if !parts_first {
                return Err("a type description refers forward".into());
            }
        }
        Ok(())
    }

    /// Does `value` fit this type? Shallow: the outermost shape is checked
    /// (through optionals), not the elements; an unknown type, a type
    /// parameter and `any` take everything.
    pub fn fits(&self, value: Value, heap: &Heap, program: &Program) -> bool {
        let mut at = self.nodes.len();
        // Each step goes to an earlier node, so this ends.
        loop {
            let Some(node) = at.checked_sub(1).and_then(|i| self.nodes.get(i)) else {
                return true;
            };
            let object = heap.get_value(value);
            return match node {
                TypeNode::Optional(inner) if !value.is_nil() && (*inner as usize) < at - 1 => {
                    at = *inner as usize + 1;
                    continue;
                }
                TypeNode::Optional(_) => value.is_nil(),
                TypeNode::Any | TypeNode::Param(_) => true,
                TypeNode::Nil => value.is_nil(),
                TypeNode::Bool => matches!(value, Value::Bool(_)),
                TypeNode::Int => matches!(value, Value::Int(_)),
                TypeNode::Float => matches!(value, Value::Float(_)),
                TypeNode::Str => matches!(object, Some(Object::Str(_))),
                TypeNode::List(_) => {
                    matches!(object, Some(Object::List(_) | Object::BoolList(_)))
                }
                TypeNode::Map(..) => matches!(object, Some(Object::Map(_))),
                TypeNode::Func(_) => {
                    matches!(value, Value::Func(_) | Value::Native(_))
                        || matches!(object, Some(Object::Closure { .. }))
                }
                TypeNode::Coro(..) => matches!(object, Some(Object::Coro(_))),
                TypeNode::Task(_) => matches!(object, Some(Object::Task(_))),
                TypeNode::Chan(_) => matches!(object, Some(Object::Chan(_))),
                TypeNode::Handle(_) => matches!(object, Some(Object::Mutex(_) | Object::Group(_))),
                TypeNode::Struct(name, _) => match object {
                    Some(Object::Record { ty, .. }) => program
                        .structs
                        .get(ty.index())
                        .is_some_and(|s| s.name == *name),
                    _ => false,
                },
                TypeNode::Enum(name, _) => match object {
                    Some(Object::Variant { ty, .. }) => program
                        .enums
                        .get(ty.index())
                        .is_some_and(|e| e.name == *name),
                    _ => false,
                },
            };
        }
    }

    /// The type as Spool writes it (`[str: int?]`, `Box<int>`); `params`
    /// names type parameters (`T`). Unknown types show as `_`. Very large
    /// descriptions are cut short.
    pub fn display(&self, params: &[String]) -> String {
        const ENOUGH: usize = 200;
        let mut shown: Vec<String> = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let part = |at: &u32| shown.get(*at as usize).map_or("_", String::as_str);
            let args = |name: &str, args: &[u32]| {
                if args.is_empty() {
                    name.to_string()
                } else {
                    let list: Vec<&str> = args.iter().map(part).collect();
                    format!("{name}<{}>", list.join(", "))
                }
            };
            let mut text = match node {
                TypeNode::Any => "_".to_string(),
                TypeNode::Nil => "nil".to_string(),
                TypeNode::Bool => "bool".to_string(),
                TypeNode::Int => "int".to_string(),
                TypeNode::Float => "float".to_string(),
                TypeNode::Str => "str".to_string(),
                TypeNode::List(item) => format!("[{}]", part(item)),
                TypeNode::Map(key, value) => format!("[{}: {}]", part(key), part(value)),
                TypeNode::Optional(inner) => {
                    let inner = part(inner);
                    if inner.starts_with("fn") {
                        format!("({inner})?")
                    } else {
                        format!("{inner}?")
                    }
                }
                TypeNode::Func(written) => written.clone(),
                TypeNode::Coro(yields, receives) => {
                    format!("Coro<{}, {}>", part(yields), part(receives))
                }
                TypeNode::Task(result) => format!("Task<{}>", part(result)),
                TypeNode::Chan(item) => format!("Chan<{}>", part(item)),
                TypeNode::Handle(name) => name.clone(),
                TypeNode::Struct(name, list) | TypeNode::Enum(name, list) => args(name, list),
                TypeNode::Param(index) => params
                    .get(usize::from(*index))
                    .cloned()
                    .unwrap_or_else(|| "_".to_string()),
            };
            if text.chars().count() > ENOUGH {
                text = text.chars().take(ENOUGH).collect::<String>() + "...";
            }
            shown.push(text);
        }
        shown.pop().unwrap_or_else(|| "_".to_string())
    }
}

/// Shown as Spool writes it, type parameters as `_`.
impl std::fmt::Display for TypeDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display(&[]))
    }
}

impl TypeNode {
    /// Calls `visit` with the position of each part of this node.
    pub fn for_each_part(&self, mut visit: impl FnMut(u32)) {
        match self {
            TypeNode::List(part)
            | TypeNode::Optional(part)
            | TypeNode::Task(part)
            | TypeNode::Chan(part) => visit(*part),
            TypeNode::Map(a, b) | TypeNode::Coro(a, b) => {
                visit(*a);
                visit(*b);
            }
            TypeNode::Struct(_, args) | TypeNode::Enum(_, args) => {
                args.iter().for_each(|&part| visit(part))
            }
            _ => {}
        }
    }
}

/// A type inside a description: node `node` of `desc`, whose type
/// parameters (of the layout `desc` belongs to) stand for `args`. Walking
/// a value against a type (checking a host's data, converting an answer)
/// moves through these.
#[derive(Clone, Copy)]
pub struct TypeAt<'a> {
    /// The description.
    pub desc: &'a TypeDesc,
    /// The node of `desc` this is.
    pub node: u32,
    /// What the layout's type parameters stand for.
    pub args: &'a [TypeAt<'a>],
}

impl<'a> TypeAt<'a> {
    /// The whole type `desc` (its last node), with `args` for its layout's
    /// parameters; `None` for an empty description.
    pub fn root(desc: &'a TypeDesc, args: &'a [TypeAt<'a>]) -> Option<TypeAt<'a>> {
        let root = desc.nodes.len().checked_sub(1)?;
        Some(TypeAt {
            desc,
            node: root as u32,
            args,
        })
    }

    /// The node itself.
    pub fn node(&self) -> Option<&'a TypeNode> {
        self.desc.node(self.node)
    }

    /// A part of this type (a position in the same description).
    pub fn part(&self, node: u32) -> TypeAt<'a> {
        TypeAt { node, ..*self }
    }

    /// This type as Spool writes it, for messages.
    pub fn shown(&self) -> String {
        let end = (self.node as usize + 1).min(self.desc.nodes.len());
        TypeDesc {
            nodes: self.desc.nodes[..end].to_vec(),
        }
        .to_string()
    }
}
