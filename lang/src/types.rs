//! Types as the checker sees them, and unification with inference variables.
//!
//! Generic parameters are rigid [`Type::Param`]s with program-unique ids;
//! calling a generic function or constructing a generic struct replaces them
//! with fresh inference variables ([`Type::Var`]) that unification binds.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use spool_vm::{EnumIdx, StructIdx};

/// Identity of a generic parameter: unique in the whole program, so a
/// [`Type::Param`] names one declaration's parameter wherever it appears.
/// The VM has no counterpart (programs carry no types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParamId(pub u32);

impl ParamId {
    /// The id as a `usize`, for indexing the table of parameter names.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Type {
    /// `int`.
    Int,
    /// `float`.
    Float,
    /// `bool`.
    Bool,
    /// `str`.
    Str,
    /// `nil`: the type of statements and of the `nil` literal.
    Nil,
    /// `any`: only in native signatures; accepts every value.
    Any,
    /// The type of an expression that never produces a value (a block
    /// ending in `return` or `throw`); fits every expected type.
    Never,
    /// The type of an expression that already failed to check; fits
    /// everything, so one mistake is reported once.
    Error,
    /// `[T]`.
    List(Box<Type>),
    /// `[K: V]`.
    Map(Box<Type>, Box<Type>),
    /// `T?` (never nested: `T??` is `T?`).
    Opt(Box<Type>),
    /// A function type.
    Fn(Box<FnType>),
    /// An instance of a struct with its type arguments.
    Struct(StructIdx, Vec<Type>),
    /// An instance of an enum with its type arguments.
    Enum(EnumIdx, Vec<Type>),
    /// `Coro<Y, S>`.
    Coro(Box<Type>, Box<Type>),
    /// `Task<T>`.
    Task(Box<Type>),
    /// `Chan<T>`.
    Chan(Box<Type>),
    /// `Mutex`, `WaitGroup` or `ErrGroup`.
    Handle(Handle),
    /// An inference variable, bound by unification.
    Var(u32),
    /// A generic parameter (rigid inside its declaration).
    Param(ParamId),
}

/// The synchronization types of LANGUAGE.md §5 without type arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handle {
    /// `Mutex`.
    Mutex,
    /// `WaitGroup`.
    WaitGroup,
    /// `ErrGroup`.
    ErrGroup,
}

impl Handle {
    /// The type's name.
    pub fn name(self) -> &'static str {
        match self {
            Handle::Mutex => "Mutex",
            Handle::WaitGroup => "WaitGroup",
            Handle::ErrGroup => "ErrGroup",
        }
    }

    /// The handle type called `name`.
    pub fn named(name: &str) -> Option<Handle> {
        match name {
            "Mutex" => Some(Handle::Mutex),
            "WaitGroup" => Some(Handle::WaitGroup),
            "ErrGroup" => Some(Handle::ErrGroup),
            _ => None,
        }
    }
}

/// A function's type: parameters, result, and what it yields and receives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FnType {
    /// Parameter types.
    pub params: Vec<Type>,
    /// Result type.
    pub ret: Type,
    /// Type of the values it yields, when it yields.
    pub yields: Option<Type>,
    /// Type of the values its yields receive.
    pub receives: Option<Type>,
}

impl Type {
    /// `T?`, without nesting optionals.
    pub fn optional(inner: Type) -> Type {
        match inner {
            Type::Opt(_) | Type::Nil | Type::Error => inner,
            other => Type::Opt(Box::new(other)),
        }
    }

    /// A function type without yields.
    pub fn func(params: Vec<Type>, ret: Type) -> Type {
        Type::Fn(Box::new(FnType {
            params,
            ret,
            yields: None,
            receives: None,
        }))
    }

    /// Is this a type whose values can be map keys?
    pub fn is_key(&self) -> bool {
        matches!(self, Type::Int | Type::Str | Type::Bool | Type::Error)
    }

    /// Replaces generic parameters by `map`.
    pub fn subst(&self, map: &HashMap<ParamId, Type>) -> Type {
        if map.is_empty() {
            return self.clone();
        }
        self.map_children(&mut |ty| match ty {
            Type::Param(id) => map.get(id).cloned(),
            _ => None,
        })
    }

    /// Rebuilds the type bottom-up, replacing any node for which `f`
    /// returns `Some`.
    fn map_children(&self, f: &mut impl FnMut(&Type) -> Option<Type>) -> Type {
        if let Some(replaced) = f(self) {
            return replaced;
        }
        let mut go = |ty: &Type| ty.map_children(f);
        match self {
            Type::List(inner) => Type::List(Box::new(go(inner))),
            Type::Map(key, value) => Type::Map(Box::new(go(key)), Box::new(go(value))),
            Type::Opt(inner) => Type::optional(go(inner)),
            Type::Fn(fn_type) => Type::Fn(Box::new(FnType {
                params: fn_type.params.iter().map(&mut go).collect(),
                ret: go(&fn_type.ret),
                yields: fn_type.yields.as_ref().map(&mut go),
                receives: fn_type.receives.as_ref().map(&mut go),
            })),
            Type::Struct(id, args) => Type::Struct(*id, args.iter().map(go).collect()),
            Type::Enum(id, args) => Type::Enum(*id, args.iter().map(go).collect()),
            Type::Coro(y, s) => Type::Coro(Box::new(go(y)), Box::new(go(s))),
            Type::Task(inner) => Type::Task(Box::new(go(inner))),
            Type::Chan(inner) => Type::Chan(Box::new(go(inner))),
            other => other.clone(),
        }
    }
}

/// Names of structs and enums, for printing types.
pub trait TypeNames {
    /// The struct's name.
    fn struct_name(&self, id: StructIdx) -> &str;
    /// The enum's name.
    fn enum_name(&self, id: EnumIdx) -> &str;
    /// A generic parameter's name.
    fn param_name(&self, id: ParamId) -> &str;
}

/// A type ready to print with names resolved.
pub struct Display<'a> {
    ty: &'a Type,
    names: &'a dyn TypeNames,
}

impl Type {
    /// Prints the type as a programmer writes it (`[str: int]`, `fn(int) -> str`).
    pub fn display<'a>(&'a self, names: &'a dyn TypeNames) -> Display<'a> {
        Display { ty: self, names }
    }
}

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |ty: &'_ Type| {
            Display {
                ty,
                names: self.names,
            }
            .to_string()
        };
        let args = |args: &[Type]| args.iter().map(show).collect::<Vec<_>>().join(", ");
        match self.ty {
            Type::Int => f.write_str("int"),
            Type::Float => f.write_str("float"),
            Type::Bool => f.write_str("bool"),
            Type::Str => f.write_str("str"),
            Type::Nil => f.write_str("nil"),
            Type::Any => f.write_str("any"),
            Type::Never => f.write_str("never"),
            Type::Error | Type::Var(_) => f.write_str("_"),
            Type::List(inner) => write!(f, "[{}]", show(inner)),
            Type::Map(key, value) => write!(f, "[{}: {}]", show(key), show(value)),
            Type::Opt(inner) if matches!(**inner, Type::Fn(_)) => write!(f, "({})?", show(inner)),
            Type::Opt(inner) => write!(f, "{}?", show(inner)),
            Type::Fn(fn_type) => {
                write!(f, "fn({})", args(&fn_type.params))?;
                if fn_type.ret != Type::Nil {
                    write!(f, " -> {}", show(&fn_type.ret))?;
                }
                // `yields nil` and `receives nil` say nothing: left out.
                let effects = [("yields", &fn_type.yields), ("receives", &fn_type.receives)];
                for (word, effect) in effects {
                    let shown = effect.as_ref().map(show);
                    if let Some(shown) = shown.filter(|shown| shown != "nil") {
                        write!(f, " {word} {shown}")?;
                    }
                }
                Ok(())
            }
            Type::Struct(id, type_args) => {
                f.write_str(self.names.struct_name(*id))?;
                if !type_args.is_empty() {
                    write!(f, "<{}>", args(type_args))?;
                }
                Ok(())
            }
            Type::Enum(id, type_args) => {
                f.write_str(self.names.enum_name(*id))?;
                if !type_args.is_empty() {
                    write!(f, "<{}>", args(type_args))?;
                }
                Ok(())
            }
            Type::Coro(y, s) if **s == Type::Nil => write!(f, "Coro<{}>", show(y)),
            Type::Coro(y, s) => write!(f, "Coro<{}, {}>", show(y), show(s)),
            Type::Task(inner) => write!(f, "Task<{}>", show(inner)),
            Type::Chan(inner) => write!(f, "Chan<{}>", show(inner)),
            Type::Handle(handle) => f.write_str(handle.name()),
            Type::Param(id) => f.write_str(self.names.param_name(*id)),
        }
    }
}

/// The inference variables of one compilation and their bindings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Unifier {
    bindings: Vec<Option<Type>>,
}

impl Unifier {
    /// A fresh, unbound inference variable.
    pub fn fresh(&mut self) -> Type {
        self.bindings.push(None);
        Type::Var(self.bindings.len() as u32 - 1)
    }

    /// Follows variable bindings at the top of `ty` only.
    pub fn shallow(&self, ty: &Type) -> Type {
        let mut current = ty.clone();
        while let Type::Var(var) = current {
            match &self.bindings[var as usize] {
                Some(bound) => current = bound.clone(),
                None => return Type::Var(var),
            }
        }
        current
    }

    /// Replaces every bound variable in `ty` by its binding, deeply.
    pub fn resolve(&self, ty: &Type) -> Type {
        ty.map_children(&mut |node| match node {
            Type::Var(var) => match &self.bindings[*var as usize] {
                Some(bound) => Some(self.resolve(bound)),
                None => Some(node.clone()),
            },
            _ => None,
        })
    }

    /// Does `ty` still contain an unbound variable?
    pub fn has_unbound(&self, ty: &Type) -> bool {
        let mut found = false;
        self.resolve(ty).map_children(&mut |node| {
            found |= matches!(node, Type::Var(_));
            None
        });
        found
    }

    /// A copy of the current bindings, to undo a trial unification.
    pub fn snapshot(&self) -> Vec<Option<Type>> {
        self.bindings.clone()
    }

    /// Undoes everything bound since `snapshot`.
    pub fn rollback(&mut self, snapshot: Vec<Option<Type>>) {
        self.bindings = snapshot;
    }

    /// Makes `a` and `b` the same type, binding variables; false when they
    /// cannot be.
    pub fn unify(&mut self, a: &Type, b: &Type) -> bool {
        let (a, b) = (self.shallow(a), self.shallow(b));
        match (&a, &b) {
            (Type::Error | Type::Never, _) | (_, Type::Error | Type::Never) => true,
            (Type::Var(x), Type::Var(y)) if x == y => true,
            // `any` accepts a value without saying what it is: it binds nothing.
            (Type::Any, _) | (_, Type::Any) => true,
            (Type::Var(var), other) | (other, Type::Var(var)) => self.bind(*var, other),
            (Type::List(x), Type::List(y))
            | (Type::Opt(x), Type::Opt(y))
            | (Type::Task(x), Type::Task(y))
            | (Type::Chan(x), Type::Chan(y)) => self.unify(x, y),
            (Type::Map(k1, v1), Type::Map(k2, v2)) | (Type::Coro(k1, v1), Type::Coro(k2, v2)) => {
                self.unify(k1, k2) && self.unify(v1, v2)
            }
            (Type::Fn(f1), Type::Fn(f2)) => self.unify_fns(f1, f2),
            (Type::Struct(i, xs), Type::Struct(j, ys)) => i == j && self.unify_all(xs, ys),
            (Type::Enum(i, xs), Type::Enum(j, ys)) => i == j && self.unify_all(xs, ys),
            _ => a == b,
        }
    }

    /// Unifies two lists of types pairwise; false when their lengths differ.
    fn unify_all(&mut self, xs: &[Type], ys: &[Type]) -> bool {
        xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| self.unify(x, y))
    }

    fn unify_fns(&mut self, f1: &FnType, f2: &FnType) -> bool {
        let optional = |unifier: &mut Unifier, x: &Option<Type>, y: &Option<Type>| match (x, y) {
            (Some(x), Some(y)) => unifier.unify(x, y),
            _ => true,
        };
        self.unify_all(&f1.params, &f2.params)
            && self.unify(&f1.ret, &f2.ret)
            && optional(self, &f1.yields, &f2.yields)
            && optional(self, &f1.receives, &f2.receives)
    }

    fn bind(&mut self, var: u32, ty: &Type) -> bool {
        if self.occurs(var, ty) {
            return false;
        }
        self.bindings[var as usize] = Some(ty.clone());
        true
    }

    fn occurs(&self, var: u32, ty: &Type) -> bool {
        let mut found = false;
        self.resolve(ty).map_children(&mut |node| {
            found |= *node == Type::Var(var);
            None
        });
        found
    }

    /// Checks that a value of type `actual` may be used where `expected` is
    /// wanted: the same type, or `T`/`nil` where `T?` is expected.
    pub fn coerce(&mut self, expected: &Type, actual: &Type) -> bool {
        let (expected, actual) = (self.shallow(expected), self.shallow(actual));
        if let Type::Opt(inner) = &expected {
            return match &actual {
                Type::Nil => true,
                Type::Opt(actual_inner) => self.unify(inner, actual_inner),
                Type::Var(_) => self.unify(&expected, &actual),
                _ => self.unify(inner, &actual),
            };
        }
        self.unify(&expected, &actual)
    }
}
