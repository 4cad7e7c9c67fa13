//! The functions that belong to no one type: `print`, `str`, the numeric
//! conversions `int` and `float`, `assert`, `random`, `args` and `exit`.

use spool_vm::{format, ErrorKind, NativeCtx, Value, VmError};

use crate::param;
use crate::NativeDef;

/// The natives of this module.
pub const DEFS: &[NativeDef] = &[
    NativeDef {
        key: "core.print",
        sig: "fn print(v: any)",
        func: print,
    },
    NativeDef {
        key: "core.str",
        sig: "fn str(v: any) -> str",
        func: to_str,
    },
    NativeDef {
        key: "float.int",
        sig: "fn int(x: float) -> int",
        func: float_to_int,
    },
    NativeDef {
        key: "int.int",
        sig: "fn int(x: int) -> int",
        func: int_to_int,
    },
    NativeDef {
        key: "int.float",
        sig: "fn float(x: int) -> float",
        func: int_to_float,
    },
    NativeDef {
        key: "float.float",
        sig: "fn float(x: float) -> float",
        func: float_to_float,
    },
    NativeDef {
        key: "core.assert",
        sig: "fn assert(cond: bool, msg: str)",
        func: assert,
    },
    NativeDef {
        key: "core.random",
        sig: "fn random() -> float",
        func: random,
    },
    NativeDef {
        key: "core.args",
        sig: "fn args() -> [str]",
        func: script_args,
    },
    NativeDef {
        key: "core.exit",
        sig: "fn exit(code: int)",
        func: exit,
    },
];

/// `print(v)`: one line of `str(v)` to the host.
pub fn print(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let text = format::display_checked(param::arg(args, 0)?, ctx.heap, ctx.program)?;
    ctx.output.print(&text);
    Ok(Value::Nil)
}

/// `str(v)`: the value as `print` shows it (LANGUAGE.md §8).
pub fn to_str(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let value = param::arg(args, 0)?;
    // Strings are immutable, so a string is its own `str`: no copy needed.
    if ctx.heap.str(value).is_some() {
        return Ok(value);
    }
    let text = format::display_checked(value, ctx.heap, ctx.program)?;
    Ok(ctx.heap.alloc_str(text))
}

/// `int(x: float)`: truncates toward zero; NaN and values outside the `int`
/// range raise `Overflow` rather than saturating silently.
pub fn float_to_int(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let x = param::float(args, 0)?;
    let truncated = x.trunc();
    // 2^63 is exactly representable; every float in [-2^63, 2^63) fits.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if (-LIMIT..LIMIT).contains(&truncated) {
        Ok(Value::Int(truncated as i64))
    } else {
        Err(VmError::new(
            ErrorKind::Overflow,
            format!("int({x:?}) is out of the int range"),
        ))
    }
}

/// `int(x: int)`: the identity, so generic-looking code may convert freely.
pub fn int_to_int(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    Ok(Value::Int(param::int(args, 0)?))
}

/// `float(x: int)`: the nearest float (large ints round).
pub fn int_to_float(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    Ok(Value::Float(param::int(args, 0)? as f64))
}

/// `float(x: float)`: the identity.
pub fn float_to_float(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    Ok(Value::Float(param::float(args, 0)?))
}

/// `assert(cond, msg)`: raises `Assert` with `msg` when `cond` is false.
pub fn assert(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    if param::bool(args, 0)? {
        return Ok(Value::Nil);
    }
    let message = param::str(ctx.heap, args, 1)?;
    Err(VmError::new(ErrorKind::Assert, message))
}

/// `random()`: a float in `[0, 1)` from the run's generator state.
pub fn random(ctx: &mut NativeCtx<'_>, _args: &[Value]) -> Result<Value, VmError> {
    let bits = splitmix64(ctx.rng);
    // The top 53 bits fill a float's mantissa exactly, so the result is
    // uniform over multiples of 2^-53 and never reaches 1.0.
    Ok(Value::Float(
        (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64),
    ))
}

/// `args()`: the script's arguments as a new list.
pub fn script_args(ctx: &mut NativeCtx<'_>, _args: &[Value]) -> Result<Value, VmError> {
    let items = ctx
        .args
        .iter()
        .map(|arg| ctx.heap.alloc_str(arg.as_str()))
        .collect();
    Ok(ctx.heap.alloc_list(items))
}

/// `exit(code)`: ends the run with status `code` (0 to 255, else a `Type`
/// error). Every other task is cancelled as by `t.cancel()`, and the
/// calling task unwinds with an `Exit` error; while the run exits, `try`
/// lets `Exit` and `Cancelled` pass, so every task ends and runs its
/// defers. The first `exit` decides the status; one called by a defer
/// while the run exits only ends that defer.
pub fn exit(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let code = param::int(args, 0)?;
    if !(0..=255).contains(&code) {
        return Err(VmError::new(
            ErrorKind::Type,
            format!("exit status must be between 0 and 255, got {code}"),
        ));
    }
    if ctx.exit.is_none() {
        *ctx.exit = Some(code);
        let current = ctx.sched.current;
        spool_vm::run::cancel_tasks(ctx.heap, ctx.sched, current);
    }
    let code = ctx.exit.unwrap_or(code);
    Err(VmError::new(ErrorKind::Exit, format!("exit({code})")))
}

/// Advances SplitMix64 and returns its next output. Chosen because its whole
/// state is one `u64` (so it saves with the run) and every state, zero
/// included, is a good seed.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
