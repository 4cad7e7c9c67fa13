//! Arithmetic helpers: `abs`, `min` and `max` for ints and floats, and
//! `floor`, `ceil`, `sqrt`, `pow`, `round` for floats, and `fixed`, a float
//! written with a fixed number of decimals. Int results that do not fit
//! raise `Overflow`, like the VM's own arithmetic; float results follow
//! IEEE 754 (`sqrt(-1.0)` is NaN).

use spool_vm::{ErrorKind, NativeCtx, Value, VmError};

use crate::param;
use crate::NativeDef;

/// The natives of this module.
pub const DEFS: &[NativeDef] = &[
    NativeDef {
        key: "int.abs",
        sig: "fn abs(x: int) -> int",
        func: int_abs,
    },
    NativeDef {
        key: "float.abs",
        sig: "fn abs(x: float) -> float",
        func: float_abs,
    },
    NativeDef {
        key: "int.min",
        sig: "fn min(a: int, b: int) -> int",
        func: int_min,
    },
    NativeDef {
        key: "float.min",
        sig: "fn min(a: float, b: float) -> float",
        func: float_min,
    },
    NativeDef {
        key: "int.max",
        sig: "fn max(a: int, b: int) -> int",
        func: int_max,
    },
    NativeDef {
        key: "float.max",
        sig: "fn max(a: float, b: float) -> float",
        func: float_max,
    },
    NativeDef {
        key: "float.floor",
        sig: "fn floor(x: float) -> float",
        func: floor,
    },
    NativeDef {
        key: "float.ceil",
        sig: "fn ceil(x: float) -> float",
        func: ceil,
    },
    NativeDef {
        key: "float.sqrt",
        sig: "fn sqrt(x: float) -> float",
        func: sqrt,
    },
    NativeDef {
        key: "float.pow",
        sig: "fn pow(x: float, y: float) -> float",
        func: pow,
    },
    NativeDef {
        key: "float.round",
        sig: "fn round(x: float) -> float",
        func: round,
    },
    NativeDef {
        key: "float.fixed",
        sig: "fn fixed(x: float, digits: int) -> str",
        func: fixed,
    },
];

/// `abs(x: int)`; `Overflow` for the one int whose negation does not fit.
pub fn int_abs(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let x = param::int(args, 0)?;
    x.checked_abs()
        .map(Value::Int)
        .ok_or_else(|| VmError::new(ErrorKind::Overflow, format!("abs({x}) overflows int")))
}

/// `abs(x: float)`.
pub fn float_abs(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    float_op(args, f64::abs)
}

/// `min(a: int, b: int)`.
pub fn int_min(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    Ok(Value::Int(param::int(args, 0)?.min(param::int(args, 1)?)))
}

/// `max(a: int, b: int)`.
pub fn int_max(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    Ok(Value::Int(param::int(args, 0)?.max(param::int(args, 1)?)))
}

/// `min(a: float, b: float)`: as Rust's `f64::min`, a NaN loses to a number.
pub fn float_min(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    float_op2(args, f64::min)
}

/// `max(a: float, b: float)`: as Rust's `f64::max`, a NaN loses to a number.
pub fn float_max(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    float_op2(args, f64::max)
}

/// `floor(x)`: the largest whole float `<= x`.
pub fn floor(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    float_op(args, f64::floor)
}

/// `ceil(x)`: the smallest whole float `>= x`.
pub fn ceil(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    float_op(args, f64::ceil)
}

/// `sqrt(x)`: NaN for negative `x`.
pub fn sqrt(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    float_op(args, f64::sqrt)
}

/// `pow(x, y)`: `x` to the power `y` ([`crate::pow`]: the same result on
/// every machine).
pub fn pow(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    float_op2(args, crate::pow::pow)
}

/// `round(x)`: the nearest whole float, halves away from zero (`round(2.5)`
/// is `3.0`, `round(-2.5)` is `-3.0`).
pub fn round(_ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    float_op(args, f64::round)
}

/// The most digits `fixed` writes after the point, a bound on the text it
/// builds (C's `printf` has none, but no float has more than 1 074
/// significant fraction digits).
pub const MAX_FIXED_DIGITS: i64 = 1_100;

/// `fixed(x, digits)`: `x` with exactly `digits` digits after the point,
/// rounded to the nearest (ties to even on the exact binary value, as C's
/// `%.*f`); `digits == 0` writes no point. NaN and the infinities are written
/// `NaN`, `inf` and `-inf`, as `str` writes them. `digits` below 0 or above
/// [`MAX_FIXED_DIGITS`] is a `Type` error.
pub fn fixed(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let x = param::float(args, 0)?;
    let digits = param::int(args, 1)?;
    if !(0..=MAX_FIXED_DIGITS).contains(&digits) {
        return Err(VmError::new(
            ErrorKind::Type,
            format!("fixed: digits must be between 0 and {MAX_FIXED_DIGITS}, got {digits}"),
        ));
    }
    let text = if x.is_nan() {
        "NaN".to_string()
    } else {
        format!("{x:.0$}", digits as usize)
    };
    Ok(ctx.heap.alloc_str(text))
}

/// Applies `op` to the one float argument.
fn float_op(args: &[Value], op: fn(f64) -> f64) -> Result<Value, VmError> {
    Ok(Value::Float(op(param::float(args, 0)?)))
}

/// Applies `op` to the two float arguments.
fn float_op2(args: &[Value], op: fn(f64, f64) -> f64) -> Result<Value, VmError> {
    Ok(Value::Float(op(
        param::float(args, 0)?,
        param::float(args, 1)?,
    )))
}
