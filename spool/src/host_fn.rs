//! Rust functions scripts call: [`HostFunction`], implemented for closures
//! of up to six arguments, derives the Spool signature from the Rust types
//! and converts the arguments and the result through serde
//! ([`crate::serde_data`]). See [`crate::Engine::register_fn`].

use std::any::Any;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use spool_vm::{Data, HostFn, NativeCtx, Value, VmError};

use spool_vm::serde_data::{self, SpoolShape};

/// The Spool signature of a Rust function: its parameters' and result's
/// types, and the declarations of the structs and enums they name.
#[derive(Clone, Debug, Default)]
pub struct Signature {
    /// The parameters' Spool types, in order.
    pub params: Vec<String>,
    /// The result's Spool type (of `T` when the function returns
    /// `Result<T, E>`).
    pub result: String,
    /// Whether the function returns a `Result` whose `Err` raises.
    pub fallible: bool,
    /// Declarations of every struct and enum the types name, by name.
    pub declarations: Vec<(String, String)>,
}

/// A Rust closure that can be registered with
/// [`Engine::register_fn`](crate::Engine::register_fn): any
/// `Fn(A1, …, An) -> R + Send + Sync + 'static` with n ≤ 6, whose
/// arguments are `DeserializeOwned` and whose result is `Serialize +
/// DeserializeOwned` (a `Result<T, E>` raises its `Err`; see
/// [`HostError`]). `Args` is the tuple of argument types; it is inferred.
pub trait HostFunction<Args>: Send + Sync + 'static {
    /// The Spool signature derived from the Rust types.
    fn signature() -> Result<Signature, String>;

    /// The closure as a native the VM calls; `fallible` says whether the
    /// result is a `Result` to unwrap.
    fn into_native(self, name: Arc<str>, fallible: bool) -> Arc<HostFn>;
}

/// An error a registered function raises in the script, of a kind the host
/// chooses: return `Err(HostError::new("NotFound", "no user 7"))` from a
/// function returning `Result<T, HostError>`, and the script can
/// `catch e` with `e.kind == "NotFound"`. Any other error type that
/// serializes (a `String`, say) raises an error of kind `Host` whose
/// message is the error printed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostError {
    /// The kind scripts see in `e.kind`.
    pub kind: String,
    /// The message scripts see in `e.message`.
    pub message: String,
}

impl HostError {
    /// An error of `kind` with `message`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> HostError {
        HostError {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for HostError {}

/// Reads argument `index` of a call as a `T`.
fn argument<T: DeserializeOwned + 'static>(
    ctx: &mut NativeCtx<'_>,
    args: &[Value],
    index: usize,
    name: &str,
) -> Result<T, VmError> {
    let value = args.get(index).copied().unwrap_or(Value::Nil);
    if let Some(scalar) = scalar_argument(value) {
        return Ok(scalar);
    }
    let data = Data::from_value(value, ctx.heap, ctx.program)
        .map_err(|why| host_fault(name, &format!("argument {}: {why}", index + 1)))?;
    ctx.work(data_size(&data));
    serde_data::from_data(data)
        .map_err(|why| host_fault(name, &format!("argument {}: {why}", index + 1)))
}

/// An `int`, `float` or `bool` argument taken as an `i64`, `f64` or
/// `bool` directly, without going through serde (the common case, and the
/// type checks fold away once `T` is known).
fn scalar_argument<T: 'static>(value: Value) -> Option<T> {
    fn take<S: 'static, T: 'static>(scalar: S) -> Option<T> {
        let mut slot = Some(scalar);
        (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<T>>()
            .and_then(Option::take)
    }
    match value {
        Value::Int(n) => take(n),
        Value::Float(x) => take(x),
        Value::Bool(b) => take(b),
        _ => None,
    }
}

/// An `i64`, `f64`, `bool` or `()` result as a value directly.
fn scalar_result<R: 'static>(value: &R) -> Option<Value> {
    let any = value as &dyn Any;
    if let Some(n) = any.downcast_ref::<i64>() {
        return Some(Value::Int(*n));
    }
    if let Some(x) = any.downcast_ref::<f64>() {
        return Some(Value::Float(*x));
    }
    if let Some(b) = any.downcast_ref::<bool>() {
        return Some(Value::Bool(*b));
    }
    any.downcast_ref::<()>().map(|()| Value::Nil)
}

/// Turns a function's result into a value, raising the `Err` of a
/// fallible one.
fn result<R: Serialize + 'static>(
    ctx: &mut NativeCtx<'_>,
    value: &R,
    name: &str,
    fallible: bool,
) -> Result<Value, VmError> {
    if let Some(scalar) = scalar_result(value) {
        return Ok(scalar);
    }
    let data = serde_data::to_data(value)
        .map_err(|why| host_fault(name, &format!("its result: {why}")))?;
    let data = if fallible { unwrap_result(data)? } else { data };
    ctx.work(data_size(&data));
    data.into_value(ctx.heap, ctx.program)
        .map_err(|why| host_fault(name, &format!("its result: {why}")))
}

/// The `Ok` payload of a serialized `Result`, or its `Err` raised.
fn unwrap_result(data: Data) -> Result<Data, VmError> {
    match data {
        Data::Variant {
            variant, fields, ..
        } => {
            let payload = fields.into_iter().next().unwrap_or(Data::Nil);
            if variant == "Ok" {
                return Ok(payload);
            }
            Err(raised(payload))
        }
        other => Ok(other),
    }
}

/// The error a serialized `Err` payload raises.
fn raised(payload: Data) -> VmError {
    if let (Some(kind), Some(message)) = (payload.field("kind"), payload.field("message")) {
        if let (Some(kind), Some(message)) = (kind.as_str(), message.as_str()) {
            return VmError::host(kind, message);
        }
    }
    match payload {
        Data::Str(message) => VmError::host("Host", message),
        other => VmError::host("Host", format!("{other:?}")),
    }
}

/// A conversion the host got wrong: a `Type` error naming the function.
fn host_fault(name: &str, why: &str) -> VmError {
    VmError::new(
        spool_vm::ErrorKind::Type,
        format!("host function `{name}`: {why}"),
    )
}

/// About how much work converting `data` is, in instructions' worth.
fn data_size(data: &Data) -> usize {
    match data {
        Data::Str(text) => 1 + text.len() / 16,
        Data::List(items) => 1 + items.iter().map(data_size).sum::<usize>(),
        Data::Map(pairs) => {
            1 + pairs
                .iter()
                .map(|(k, v)| data_size(k) + data_size(v))
                .sum::<usize>()
        }
        Data::Record { fields, .. } => 1 + fields.iter().map(|(_, v)| data_size(v)).sum::<usize>(),
        Data::Variant { fields, .. } => 1 + fields.iter().map(data_size).sum::<usize>(),
        _ => 1,
    }
}

/// The type of the `Ok` payload when `ty` is a `Result` (serde's form of
/// Rust's: an enum `Result` with variants `Ok(T)` and `Err(E)`).
fn result_payload(ty: &str, declarations: &[(String, String)]) -> Option<String> {
    if ty != "Result" {
        return None;
    }
    let (_, text) = declarations.iter().find(|(name, _)| name == "Result")?;
    let body = text
        .strip_prefix("enum Result {")?
        .trim()
        .strip_suffix('}')?;
    let ok = body.trim().strip_prefix("Ok(")?;
    // The payload runs to the `)` that closes `Ok(`.
    let mut depth = 1;
    for (at, c) in ok.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return Some(ok[..at].to_string());
        }
    }
    None
}

/// Adds the shape of `T` to `signature`'s declarations and gives its type.
fn shape_into<T: DeserializeOwned>(signature: &mut Signature) -> Result<String, String> {
    let SpoolShape { ty, declarations } = serde_data::describe::<T>().map_err(String::from)?;
    for declaration in declarations {
        if !signature
            .declarations
            .iter()
            .any(|(n, _)| *n == declaration.0)
        {
            signature.declarations.push(declaration);
        }
    }
    Ok(ty)
}

macro_rules! host_function {
    ($($arg:ident $index:tt),*) => {
        impl<F, R, $($arg),*> HostFunction<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> R + Send + Sync + 'static,
            R: Serialize + DeserializeOwned + 'static,
            $($arg: DeserializeOwned + 'static,)*
        {
            fn signature() -> Result<Signature, String> {
                let mut signature = Signature::default();
                $(
                    let ty = shape_into::<$arg>(&mut signature)?;
                    signature.params.push(ty);
                )*
                let SpoolShape { ty, declarations } =
                    serde_data::describe::<R>().map_err(String::from)?;
                match result_payload(&ty, &declarations) {
                    Some(ok) => {
                        signature.fallible = true;
                        signature.result = ok;
                        for declaration in declarations {
                            if declaration.0 != ty
                                && !signature.declarations.iter().any(|(n, _)| *n == declaration.0)
                            {
                                signature.declarations.push(declaration);
                            }
                        }
                    }
                    None => {
                        signature.result = shape_into::<R>(&mut signature)?;
                    }
                }
                Ok(signature)
            }

            #[allow(unused_variables, unused_mut)]
            fn into_native(self, name: Arc<str>, fallible: bool) -> Arc<HostFn> {
                Arc::new(move |ctx: &mut NativeCtx<'_>, args: &[Value]| {
                    let value = (self)($(argument::<$arg>(ctx, args, $index, &name)?),*);
                    result(ctx, &value, &name, fallible)
                })
            }
        }
    };
}

host_function!();
host_function!(A1 0);
host_function!(A1 0, A2 1);
host_function!(A1 0, A2 1, A3 2);
host_function!(A1 0, A2 1, A3 2, A4 3);
host_function!(A1 0, A2 1, A3 2, A4 3, A5 4);
host_function!(A1 0, A2 1, A3 2, A4 3, A5 4, A6 5);
