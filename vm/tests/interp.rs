//! Interpreter tests on hand-built programs. Every program runs through one
//! helper, [`check`], which runs it directly, with an instruction budget of
//! one, and with a budget whose every pause serializes the run with
//! postcard and restores it, and asserts that all three agree.

mod common;

use std::sync::Arc;

use common::*;
use spool_vm::{
    disassemble, CaptureOutput, Constant, EnumIdx, EnumLayout, FuncIdx, Limits, Op, Program, Reg,
    Run, Step, StructIdx, StructLayout, Value, VariantLayout,
};

/// A main function computing `op` on two ints and returning the result.
fn binary(op: fn(Reg, Reg, Reg) -> Op, lhs: Constant, rhs: Constant) -> Arc<Program> {
    let mut b = Builder::new();
    let (lhs, rhs) = (b.constant(lhs), b.constant(rhs));
    let main = b.func(
        "main",
        0,
        3,
        vec![
            Op::LoadConst {
                dst: r(0),
                idx: lhs,
            },
            Op::LoadConst {
                dst: r(1),
                idx: rhs,
            },
            op(r(2), r(0), r(1)),
            Op::Return { src: r(2) },
        ],
    );
    b.build(main)
}

// ---- arithmetic ----

#[test]
fn int_arithmetic() {
    let mut b = Builder::new();
    let main = b.func(
        "main",
        0,
        4,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 2,
            },
            Op::LoadInt {
                dst: r(1),
                value: 3,
            },
            Op::AddInt {
                dst: r(2),
                lhs: r(0),
                rhs: r(1),
            },
            Op::LoadInt {
                dst: r(3),
                value: 7,
            },
            Op::MulInt {
                dst: r(2),
                lhs: r(2),
                rhs: r(3),
            },
            Op::AddIntImm {
                dst: r(2),
                lhs: r(2),
                imm: -1,
            },
            Op::NegInt {
                dst: r(2),
                src: r(2),
            },
            Op::Return { src: r(2) },
        ],
    );
    check_value(&b.build(main), "-34");
    let div = |dst, lhs, rhs| Op::DivInt { dst, lhs, rhs };
    let rem = |dst, lhs, rhs| Op::RemInt { dst, lhs, rhs };
    check_value(&binary(div, Constant::Int(-7), Constant::Int(2)), "-3");
    check_value(&binary(rem, Constant::Int(-7), Constant::Int(2)), "-1");
}

#[test]
fn int_traps() {
    let add = |dst, lhs, rhs| Op::AddInt { dst, lhs, rhs };
    let sub = |dst, lhs, rhs| Op::SubInt { dst, lhs, rhs };
    let mul = |dst, lhs, rhs| Op::MulInt { dst, lhs, rhs };
    let div = |dst, lhs, rhs| Op::DivInt { dst, lhs, rhs };
    let rem = |dst, lhs, rhs| Op::RemInt { dst, lhs, rhs };
    let (max, min) = (Constant::Int(i64::MAX), Constant::Int(i64::MIN));
    let overflow = "integer overflow";
    check_error(
        &binary(add, max.clone(), Constant::Int(1)),
        "Overflow",
        overflow,
    );
    check_error(
        &binary(sub, min.clone(), Constant::Int(1)),
        "Overflow",
        overflow,
    );
    check_error(&binary(mul, max, Constant::Int(2)), "Overflow", overflow);
    check_error(
        &binary(div, min.clone(), Constant::Int(-1)),
        "Overflow",
        overflow,
    );
    check_error(&binary(rem, min, Constant::Int(-1)), "Overflow", overflow);
    let by_zero = "division by zero";
    check_error(
        &binary(div, Constant::Int(1), Constant::Int(0)),
        "DivByZero",
        by_zero,
    );
    check_error(
        &binary(rem, Constant::Int(1), Constant::Int(0)),
        "DivByZero",
        by_zero,
    );
}

#[test]
fn float_arithmetic_never_traps() {
    let div = |dst, lhs, rhs| Op::DivFloat { dst, lhs, rhs };
    let rem = |dst, lhs, rhs| Op::RemFloat { dst, lhs, rhs };
    check_value(
        &binary(div, Constant::Float(1.0), Constant::Float(0.0)),
        "inf",
    );
    check_value(
        &binary(rem, Constant::Float(7.5), Constant::Float(2.0)),
        "1.5",
    );
}

#[test]
fn wrong_variant_is_a_type_error() {
    let mut b = Builder::new();
    let main = b.func(
        "main",
        0,
        3,
        vec![
            Op::LoadBool {
                dst: r(0),
                value: true,
            },
            Op::LoadInt {
                dst: r(1),
                value: 1,
            },
            Op::AddInt {
                dst: r(2),
                lhs: r(0),
                rhs: r(1),
            },
            Op::Return { src: r(2) },
        ],
    );
    let error = check(&b.build(main)).result.unwrap_err();
    assert_eq!(error.kind, "Type");
}

// ---- strings and comparisons ----

#[test]
fn strings_concat_tostr_and_compare() {
    let mut b = Builder::new();
    let (apple, banana) = (b.string("apple"), b.string("banana"));
    let main = b.func(
        "main",
        0,
        6,
        vec![
            Op::LoadConst {
                dst: r(0),
                idx: apple,
            },
            Op::LoadConst {
                dst: r(1),
                idx: banana,
            },
            Op::LtStr {
                dst: r(2),
                lhs: r(0),
                rhs: r(1),
            },
            Op::ToStr {
                dst: r(2),
                src: r(2),
            },
            Op::Concat {
                dst: r(3),
                lhs: r(0),
                rhs: r(2),
            },
            Op::LoadInt {
                dst: r(4),
                value: 42,
            },
            Op::ToStr {
                dst: r(4),
                src: r(4),
            },
            Op::Concat {
                dst: r(3),
                lhs: r(3),
                rhs: r(4),
            },
            Op::Eq {
                dst: r(5),
                lhs: r(3),
                rhs: r(3),
            },
            Op::Return { src: r(3) },
        ],
    );
    check_value(&b.build(main), "appletrue42");
}

// ---- calls ----

/// `fib(n)` by naive recursion, returned by main for `n`.
fn fib_program(n: i32) -> Arc<Program> {
    let mut b = Builder::new();
    let fib = b.declare("fib");
    b.define(
        fib,
        1,
        4,
        vec![
            Op::LoadInt {
                dst: r(1),
                value: 2,
            },
            Op::JumpIfNotLtInt {
                lhs: r(0),
                rhs: r(1),
                target: pc(3),
            },
            Op::Return { src: r(0) },
            Op::AddIntImm {
                dst: r(2),
                lhs: r(0),
                imm: -1,
            },
            Op::Call {
                func: fib,
                base: r(2),
                argc: 1,
            },
            Op::AddIntImm {
                dst: r(3),
                lhs: r(0),
                imm: -2,
            },
            Op::Call {
                func: fib,
                base: r(3),
                argc: 1,
            },
            Op::AddInt {
                dst: r(0),
                lhs: r(2),
                rhs: r(3),
            },
            Op::Return { src: r(0) },
        ],
    );
    let main = b.func(
        "main",
        0,
        2,
        vec![
            Op::LoadFunc {
                dst: r(0),
                func: fib,
            },
            Op::LoadInt {
                dst: r(1),
                value: n,
            },
            Op::CallValue {
                callee: r(0),
                base: r(1),
                argc: 1,
            },
            Op::Return { src: r(1) },
        ],
    );
    b.build(main)
}

#[test]
fn recursive_calls() {
    check_value(&fib_program(15), "610");
}

/// `sum(n) = n + sum(n - 1)`, `sum(0) = 0`: recursion `n` frames deep.
fn sum_program(n: i32) -> Arc<Program> {
    let mut b = Builder::new();
    let sum = b.declare("sum");
    b.define(
        sum,
        1,
        2,
        vec![
            Op::LoadInt {
                dst: r(1),
                value: 0,
            },
            Op::JumpIfNotLeInt {
                lhs: r(0),
                rhs: r(1),
                target: pc(3),
            },
            Op::Return { src: r(1) },
            Op::AddIntImm {
                dst: r(1),
                lhs: r(0),
                imm: -1,
            },
            Op::Call {
                func: sum,
                base: r(1),
                argc: 1,
            },
            Op::AddInt {
                dst: r(0),
                lhs: r(0),
                rhs: r(1),
            },
            Op::Return { src: r(0) },
        ],
    );
    let main = b.func(
        "main",
        0,
        1,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: n,
            },
            Op::Call {
                func: sum,
                base: r(0),
                argc: 1,
            },
            Op::Return { src: r(0) },
        ],
    );
    b.build(main)
}

#[test]
fn deep_recursion_within_the_default_limit() {
    let program = sum_program(100_000);
    let (outcome, _) = run_with(&program, Limits::default(), false);
    assert_eq!(outcome.result.as_deref(), Ok("5000050000"));
    let tiny = Limits {
        budget: Some(1),
        ..Limits::default()
    };
    let (sliced, _) = run_with(&program, tiny, false);
    assert_eq!(outcome, sliced);
}

#[test]
fn recursion_beyond_the_limit_is_a_limit_error() {
    let limits = Limits {
        max_call_depth: 1_000,
        ..Limits::default()
    };
    let (outcome, _) = run_with(&sum_program(5_000), limits, false);
    let error = outcome.result.unwrap_err();
    assert_eq!(error.kind, "Limit");
    assert_eq!(error.trace.len(), 1_000);
    let (deep, _) = run_with(&sum_program(10_000_000), Limits::default(), false);
    assert_eq!(deep.result.unwrap_err().kind, "Limit");
}

#[test]
fn natives_by_call_native_and_call_value() {
    let mut b = Builder::new();
    let add = b.native("add");
    let main = b.func(
        "main",
        0,
        4,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 40,
            },
            Op::LoadInt {
                dst: r(1),
                value: 2,
            },
            Op::CallNative {
                native: add,
                base: r(0),
                argc: 2,
            },
            Op::LoadNative {
                dst: r(3),
                native: add,
            },
            Op::LoadInt {
                dst: r(1),
                value: 100,
            },
            Op::CallValue {
                callee: r(3),
                base: r(0),
                argc: 2,
            },
            Op::Return { src: r(0) },
        ],
    );
    check_value(&b.build(main), "142");
}

#[test]
fn a_native_error_is_raised_and_unbound_natives_are_reported() {
    let mut b = Builder::new();
    let fail = b.native("fail");
    let main = b.func(
        "main",
        0,
        1,
        vec![Op::CallNative {
            native: fail,
            base: r(0),
            argc: 0,
        }],
    );
    let program = b.build(main);
    check_error(&program, "Io", "disk on fire");
    let mut missing = Builder::new();
    missing.native("nope");
    let main = missing.func("main", 0, 0, vec![Op::ReturnNil]);
    let error = Run::new(missing.build(main), &natives(), Vec::new()).unwrap_err();
    assert!(error.contains("nope"), "{error}");
}

// ---- globals, loops ----

#[test]
fn counted_loop_and_globals() {
    // total = 0; for i in 0..10 { total = total + i * i }; return total
    let mut b = Builder::new();
    let total = b.global("total");
    let main = b.func(
        "main",
        0,
        6,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 0,
            },
            Op::StoreGlobal {
                global: total,
                src: r(0),
            },
            Op::LoadInt {
                dst: r(1),
                value: 0,
            },
            Op::LoadInt {
                dst: r(2),
                value: 10,
            },
            Op::ForRangePrep {
                counter: r(1),
                exit: pc(10),
            },
            Op::MulInt {
                dst: r(4),
                lhs: r(3),
                rhs: r(3),
            },
            Op::LoadGlobal {
                dst: r(5),
                global: total,
            },
            Op::AddInt {
                dst: r(5),
                lhs: r(5),
                rhs: r(4),
            },
            Op::StoreGlobal {
                global: total,
                src: r(5),
            },
            Op::ForRangeLoop {
                counter: r(1),
                body: pc(5),
            },
            Op::LoadGlobal {
                dst: r(0),
                global: total,
            },
            Op::Return { src: r(0) },
        ],
    );
    check_value(&b.build(main), "285");
}

// ---- closures and cells ----

#[test]
fn closures_capture_values_and_cells() {
    let mut b = Builder::new();
    // bump(): cell += step; returns the cell's contents.
    let bump = b.func(
        "bump",
        0,
        3,
        vec![
            Op::CaptureGet {
                dst: r(0),
                index: 0,
            },
            Op::LoadCapture {
                dst: r(1),
                index: 1,
            },
            Op::AddInt {
                dst: r(0),
                lhs: r(0),
                rhs: r(1),
            },
            Op::CaptureSet {
                index: 0,
                src: r(0),
            },
            Op::Return { src: r(0) },
        ],
    );
    let main = b.func(
        "main",
        0,
        5,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 0,
            },
            Op::NewCell {
                dst: r(0),
                src: r(0),
            },
            Op::LoadInt {
                dst: r(1),
                value: 5,
            },
            Op::MakeClosure {
                dst: r(2),
                func: bump,
                start: r(0),
                count: 2,
            },
            Op::CallValue {
                callee: r(2),
                base: r(3),
                argc: 0,
            },
            Op::CallValue {
                callee: r(2),
                base: r(3),
                argc: 0,
            },
            Op::CallValue {
                callee: r(2),
                base: r(3),
                argc: 0,
            },
            Op::CellGet {
                dst: r(4),
                cell: r(0),
            },
            Op::LoadInt {
                dst: r(1),
                value: 1,
            },
            Op::AddInt {
                dst: r(4),
                lhs: r(4),
                rhs: r(1),
            },
            Op::CellSet {
                cell: r(0),
                src: r(4),
            },
            Op::CallValue {
                callee: r(2),
                base: r(3),
                argc: 0,
            },
            Op::Return { src: r(3) },
        ],
    );
    check_value(&b.build(main), "21");
}

// ---- lists and maps ----

#[test]
fn lists_get_set_len_and_index_errors() {
    let mut b = Builder::new();
    let main = b.func(
        "main",
        0,
        6,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 10,
            },
            Op::LoadInt {
                dst: r(1),
                value: 20,
            },
            Op::LoadInt {
                dst: r(2),
                value: 30,
            },
            Op::NewList {
                dst: r(3),
                start: r(0),
                count: 3,
            },
            Op::LoadInt {
                dst: r(4),
                value: 1,
            },
            Op::ListGet {
                dst: r(5),
                list: r(3),
                index: r(4),
            },
            Op::AddIntImm {
                dst: r(5),
                lhs: r(5),
                imm: 5,
            },
            Op::ListSet {
                list: r(3),
                index: r(4),
                src: r(5),
            },
            Op::ListLen {
                dst: r(4),
                list: r(3),
            },
            Op::ListSet {
                list: r(3),
                index: r(0),
                src: r(4),
            },
        ],
    );
    check_error(
        &b.build(main),
        "Index",
        "index 10 out of range for list of length 3",
    );
    let mut b = Builder::new();
    let main = b.func(
        "main",
        0,
        4,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 1,
            },
            Op::LoadInt {
                dst: r(1),
                value: 2,
            },
            Op::NewList {
                dst: r(2),
                start: r(0),
                count: 2,
            },
            Op::LoadInt {
                dst: r(3),
                value: -1,
            },
            Op::ListGet {
                dst: r(3),
                list: r(2),
                index: r(3),
            },
        ],
    );
    check_error(
        &b.build(main),
        "Index",
        "index -1 out of range for list of length 2",
    );
}

#[test]
fn maps_get_set_iterate_and_key_errors() {
    let mut b = Builder::new();
    let (a, x) = (b.string("a"), b.string("x"));
    let main = b.func(
        "main",
        0,
        8,
        vec![
            Op::LoadConst { dst: r(0), idx: a },
            Op::LoadInt {
                dst: r(1),
                value: 1,
            },
            Op::NewMap {
                dst: r(2),
                start: r(0),
                count: 1,
            },
            Op::LoadConst { dst: r(3), idx: x },
            Op::LoadInt {
                dst: r(4),
                value: 9,
            },
            Op::MapSet {
                map: r(2),
                key: r(3),
                src: r(4),
            },
            Op::MapGet {
                dst: r(5),
                map: r(2),
                key: r(0),
            },
            Op::MapLen {
                dst: r(6),
                map: r(2),
            },
            Op::AddIntImm {
                dst: r(6),
                lhs: r(6),
                imm: -1,
            },
            Op::MapKeyAt {
                dst: r(7),
                map: r(2),
                index: r(6),
            },
            Op::MapValueAt {
                dst: r(6),
                map: r(2),
                index: r(6),
            },
            Op::NewList {
                dst: r(0),
                start: r(5),
                count: 3,
            },
            Op::Return { src: r(0) },
        ],
    );
    check_value(&b.build(main), "[1, 9, \"x\"]");
    let mut b = Builder::new();
    let x = b.string("x");
    let main = b.func(
        "main",
        0,
        3,
        vec![
            Op::NewMap {
                dst: r(0),
                start: r(0),
                count: 0,
            },
            Op::LoadConst { dst: r(1), idx: x },
            Op::MapGet {
                dst: r(2),
                map: r(0),
                key: r(1),
            },
        ],
    );
    check_error(&b.build(main), "Key", "key \"x\" not found");
}

// ---- records and variants ----

#[test]
fn records_and_variants() {
    let mut b = Builder::new();
    b.program.structs.push(StructLayout {
        name: "Point".to_string(),
        fields: vec!["x".to_string(), "y".to_string()],
        ..StructLayout::default()
    });
    b.program.enums.push(EnumLayout {
        name: "Shape".to_string(),
        variants: vec![
            VariantLayout {
                name: "Empty".to_string(),
                arity: 0,
                ..VariantLayout::default()
            },
            VariantLayout {
                name: "Square".to_string(),
                arity: 1,
                ..VariantLayout::default()
            },
        ],
        ..EnumLayout::default()
    });
    let (point, shape) = (StructIdx(1), EnumIdx(0));
    let main = b.func(
        "main",
        0,
        6,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 3,
            },
            Op::LoadInt {
                dst: r(1),
                value: 4,
            },
            Op::NewRecord {
                dst: r(2),
                ty: point,
                start: r(0),
                count: 2,
            },
            Op::SetField {
                obj: r(2),
                field: 0,
                src: r(1),
            },
            Op::GetField {
                dst: r(3),
                obj: r(2),
                field: 0,
            },
            Op::NewVariant {
                dst: r(4),
                ty: shape,
                variant: 1,
                start: r(3),
                count: 1,
            },
            Op::JumpIfNotVariant {
                src: r(4),
                variant: 1,
                target: pc(9),
            },
            Op::GetVariantField {
                dst: r(5),
                src: r(4),
                index: 0,
            },
            Op::NewList {
                dst: r(0),
                start: r(2),
                count: 4,
            },
            Op::Return { src: r(0) },
        ],
    );
    check_value(&b.build(main), "[Point(x: 4, y: 4), 4, Square(4), 4]");
}

#[test]
fn unwrap_of_nil_traps() {
    let mut b = Builder::new();
    let main = b.func(
        "main",
        0,
        2,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 1,
            },
            Op::Unwrap {
                dst: r(1),
                src: r(0),
            },
            Op::LoadNil { dst: r(0) },
            Op::JumpIfNil {
                src: r(0),
                target: pc(5),
            },
            Op::Return { src: r(1) },
            Op::Unwrap {
                dst: r(1),
                src: r(0),
            },
        ],
    );
    check_error(&b.build(main), "NilUnwrap", "unwrapped a nil value");
}

// ---- errors, try, defer ----

/// A function `name` that prints the string constant `text` and returns nil.
fn printer(b: &mut Builder, name: &str, text: &str) -> FuncIdx {
    let text = b.string(text);
    let mut code = vec![Op::LoadConst {
        dst: r(0),
        idx: text,
    }];
    code.extend(print(0, 1));
    code.push(Op::ReturnNil);
    b.func(name, 0, 2, code)
}

/// `divide(a, b) = a / b`
fn divider(b: &mut Builder) -> FuncIdx {
    b.func(
        "divide",
        2,
        3,
        vec![
            Op::DivInt {
                dst: r(2),
                lhs: r(0),
                rhs: r(1),
            },
            Op::Return { src: r(2) },
        ],
    )
}

#[test]
fn try_catches_a_runtime_error_as_an_error_record() {
    let mut b = Builder::new();
    let divide = divider(&mut b);
    let mut code = vec![
        Op::TryBegin {
            handler: pc(5),
            dst: r(0),
        },
        Op::LoadInt {
            dst: r(1),
            value: 1,
        },
        Op::LoadInt {
            dst: r(2),
            value: 0,
        },
        Op::Call {
            func: divide,
            base: r(1),
            argc: 2,
        },
        Op::TryEnd,
        Op::GetField {
            dst: r(3),
            obj: r(0),
            field: 0,
        },
    ];
    code.extend(print(3, 4));
    code.extend([
        Op::GetField {
            dst: r(3),
            obj: r(0),
            field: 1,
        },
        Op::Return { src: r(3) },
    ]);
    let main = b.func("main", 0, 5, code);
    let outcome = check(&b.build(main));
    assert_eq!(outcome.printed, ["DivByZero"]);
    assert_eq!(outcome.result.as_deref(), Ok("division by zero"));
}

#[test]
fn throw_of_a_script_error_caught_and_uncaught() {
    let mut b = Builder::new();
    let (kind, message) = (b.string("Invalid"), b.string("bad input"));
    let thrower = b.func(
        "thrower",
        0,
        2,
        vec![
            Op::LoadConst {
                dst: r(0),
                idx: kind,
            },
            Op::LoadConst {
                dst: r(1),
                idx: message,
            },
            Op::NewRecord {
                dst: r(0),
                ty: StructIdx(0),
                start: r(0),
                count: 2,
            },
            Op::Throw { src: r(0) },
        ],
    );
    let main = b.func(
        "main",
        0,
        3,
        vec![
            Op::TryBegin {
                handler: pc(3),
                dst: r(0),
            },
            Op::Call {
                func: thrower,
                base: r(1),
                argc: 0,
            },
            Op::TryEnd,
            Op::GetField {
                dst: r(1),
                obj: r(0),
                field: 1,
            },
            Op::Call {
                func: thrower,
                base: r(2),
                argc: 0,
            },
        ],
    );
    let error = check_error(&b.build(main), "Invalid", "bad input");
    let lines: Vec<_> = error
        .trace
        .iter()
        .map(|f| (f.function.as_str(), f.line))
        .collect();
    assert_eq!(lines, [("thrower", 4), ("main", 5)]);
}

#[test]
fn an_uncaught_error_reports_the_stack() {
    let mut b = Builder::new();
    let divide = divider(&mut b);
    let middle = b.func(
        "middle",
        1,
        3,
        vec![
            Op::Move {
                dst: r(1),
                src: r(0),
            },
            Op::LoadInt {
                dst: r(2),
                value: 0,
            },
            Op::Call {
                func: divide,
                base: r(1),
                argc: 2,
            },
            Op::Return { src: r(1) },
        ],
    );
    let main = b.func(
        "main",
        0,
        1,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 7,
            },
            Op::LoadFunc {
                dst: r(0),
                func: middle,
            },
            Op::LoadInt {
                dst: r(0),
                value: 7,
            },
            Op::Call {
                func: middle,
                base: r(0),
                argc: 1,
            },
        ],
    );
    let error = check_error(&b.build(main), "DivByZero", "division by zero");
    let frames: Vec<_> = error
        .trace
        .iter()
        .map(|f| format!("{} {}:{}:{}", f.function, f.file, f.line, f.col))
        .collect();
    assert_eq!(
        frames,
        [
            "divide test.spl:1:1",
            "middle test.spl:3:1",
            "main test.spl:4:1"
        ]
    );
    assert_eq!(
        error.to_string(),
        "DivByZero: division by zero\n    at divide (test.spl:1:1)\n    \
         at middle (test.spl:3:1)\n    at main (test.spl:4:1)"
    );
}

#[test]
fn defers_run_lifo_on_return_and_keep_the_result() {
    let mut b = Builder::new();
    let first = printer(&mut b, "first", "first registered");
    let second = printer(&mut b, "second", "second registered");
    let body = b.string("body");
    let mut code = vec![
        Op::LoadFunc {
            dst: r(0),
            func: first,
        },
        Op::Defer { src: r(0) },
        Op::LoadFunc {
            dst: r(0),
            func: second,
        },
        Op::Defer { src: r(0) },
        Op::LoadConst {
            dst: r(1),
            idx: body,
        },
    ];
    code.extend(print(1, 2));
    code.extend([
        Op::LoadInt {
            dst: r(1),
            value: 99,
        },
        Op::Return { src: r(1) },
    ]);
    let work = b.func("work", 0, 3, code);
    let main = b.func(
        "main",
        0,
        2,
        vec![
            Op::Call {
                func: work,
                base: r(0),
                argc: 0,
            },
            Op::LoadFunc {
                dst: r(1),
                func: first,
            },
            Op::Defer { src: r(1) },
            Op::Return { src: r(0) },
        ],
    );
    let outcome = check(&b.build(main));
    assert_eq!(
        outcome.printed,
        [
            "body",
            "second registered",
            "first registered",
            "first registered"
        ]
    );
    assert_eq!(outcome.result.as_deref(), Ok("99"));
}

#[test]
fn defers_run_while_unwinding_innermost_first() {
    let mut b = Builder::new();
    let inner_defer = printer(&mut b, "inner_defer", "inner defer");
    let outer_a = printer(&mut b, "outer_a", "outer defer a");
    let outer_b = printer(&mut b, "outer_b", "outer defer b");
    let main_defer = printer(&mut b, "main_defer", "main defer");
    let divide = divider(&mut b);
    let inner = b.func(
        "inner",
        0,
        3,
        vec![
            Op::LoadFunc {
                dst: r(0),
                func: inner_defer,
            },
            Op::Defer { src: r(0) },
            Op::LoadInt {
                dst: r(1),
                value: 1,
            },
            Op::LoadInt {
                dst: r(2),
                value: 0,
            },
            Op::Call {
                func: divide,
                base: r(1),
                argc: 2,
            },
            Op::ReturnNil,
        ],
    );
    let outer = b.func(
        "outer",
        0,
        2,
        vec![
            Op::LoadFunc {
                dst: r(0),
                func: outer_a,
            },
            Op::Defer { src: r(0) },
            Op::LoadFunc {
                dst: r(0),
                func: outer_b,
            },
            Op::Defer { src: r(0) },
            Op::Call {
                func: inner,
                base: r(1),
                argc: 0,
            },
            Op::ReturnNil,
        ],
    );
    let caught = b.string("caught");
    let mut code = vec![
        Op::LoadFunc {
            dst: r(0),
            func: main_defer,
        },
        Op::Defer { src: r(0) },
        Op::TryBegin {
            handler: pc(5),
            dst: r(0),
        },
        Op::Call {
            func: outer,
            base: r(1),
            argc: 0,
        },
        Op::TryEnd,
        Op::LoadConst {
            dst: r(1),
            idx: caught,
        },
    ];
    code.extend(print(1, 2));
    code.push(Op::Return { src: r(0) });
    let main = b.func("main", 0, 3, code);
    let outcome = check(&b.build(main));
    assert_eq!(
        outcome.printed,
        [
            "inner defer",
            "outer defer b",
            "outer defer a",
            "caught",
            "main defer"
        ]
    );
    assert_eq!(
        outcome.result.as_deref(),
        Ok("Error(kind: \"DivByZero\", message: \"division by zero\")")
    );
}

#[test]
fn an_error_in_a_defer_replaces_the_error_being_unwound() {
    let mut b = Builder::new();
    let fail = b.native("fail");
    let failing_defer = b.func(
        "failing_defer",
        0,
        1,
        vec![Op::CallNative {
            native: fail,
            base: r(0),
            argc: 0,
        }],
    );
    let later = printer(&mut b, "later", "earlier defer still runs");
    let divide = divider(&mut b);
    let work = b.func(
        "work",
        0,
        3,
        vec![
            Op::LoadFunc {
                dst: r(0),
                func: later,
            },
            Op::Defer { src: r(0) },
            Op::LoadFunc {
                dst: r(0),
                func: failing_defer,
            },
            Op::Defer { src: r(0) },
            Op::LoadInt {
                dst: r(1),
                value: 1,
            },
            Op::LoadInt {
                dst: r(2),
                value: 0,
            },
            Op::Call {
                func: divide,
                base: r(1),
                argc: 2,
            },
            Op::ReturnNil,
        ],
    );
    let main = b.func(
        "main",
        0,
        1,
        vec![Op::Call {
            func: work,
            base: r(0),
            argc: 0,
        }],
    );
    let error = check_error(&b.build(main), "Io", "disk on fire");
    let names: Vec<_> = error.trace.iter().map(|f| f.function.as_str()).collect();
    assert_eq!(names, ["failing_defer", "work", "main"]);
    assert_eq!(
        check(&b_program_with_print_check()).printed,
        ["earlier defer still runs"]
    );

    /// The same program, caught in main, to see what the defers printed.
    fn b_program_with_print_check() -> Arc<Program> {
        let mut b = Builder::new();
        let fail = b.native("fail");
        let failing_defer = b.func(
            "failing_defer",
            0,
            1,
            vec![Op::CallNative {
                native: fail,
                base: r(0),
                argc: 0,
            }],
        );
        let later = printer(&mut b, "later", "earlier defer still runs");
        let work = b.func(
            "work",
            0,
            1,
            vec![
                Op::LoadFunc {
                    dst: r(0),
                    func: later,
                },
                Op::Defer { src: r(0) },
                Op::LoadFunc {
                    dst: r(0),
                    func: failing_defer,
                },
                Op::Defer { src: r(0) },
                Op::ReturnNil,
            ],
        );
        let main = b.func(
            "main",
            0,
            2,
            vec![
                Op::TryBegin {
                    handler: pc(3),
                    dst: r(0),
                },
                Op::Call {
                    func: work,
                    base: r(1),
                    argc: 0,
                },
                Op::TryEnd,
                Op::GetField {
                    dst: r(1),
                    obj: r(0),
                    field: 0,
                },
                Op::Return { src: r(1) },
            ],
        );
        b.build(main)
    }
}

#[test]
fn a_defer_of_a_closure_sees_its_captures() {
    let mut b = Builder::new();
    let show = b.func(
        "show",
        0,
        2,
        vec![
            Op::CaptureGet {
                dst: r(0),
                index: 0,
            },
            Op::CallNative {
                native: PRINT,
                base: r(0),
                argc: 1,
            },
            Op::ReturnNil,
        ],
    );
    let main = b.func(
        "main",
        0,
        3,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 1,
            },
            Op::NewCell {
                dst: r(0),
                src: r(0),
            },
            Op::MakeClosure {
                dst: r(1),
                func: show,
                start: r(0),
                count: 1,
            },
            Op::Defer { src: r(1) },
            Op::LoadInt {
                dst: r(2),
                value: 2,
            },
            Op::CellSet {
                cell: r(0),
                src: r(2),
            },
            Op::Return { src: r(2) },
        ],
    );
    let outcome = check(&b.build(main));
    assert_eq!(outcome.printed, ["2"]);
}

// ---- GC and limits ----

/// `for i in 0..n { s = str(i) }`, returning the last string.
fn string_churn(n: i32) -> Arc<Program> {
    let mut b = Builder::new();
    let main = b.func(
        "main",
        0,
        5,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 0,
            },
            Op::LoadInt {
                dst: r(1),
                value: n,
            },
            Op::ForRangePrep {
                counter: r(0),
                exit: pc(4),
            },
            Op::ToStr {
                dst: r(3),
                src: r(2),
            },
            Op::ForRangeLoop {
                counter: r(0),
                body: pc(3),
            },
            Op::Return { src: r(3) },
        ],
    );
    b.build(main)
}

#[test]
fn garbage_collection_keeps_memory_bounded() {
    let (outcome, run) = run_with(&string_churn(3_000_000), Limits::default(), false);
    assert_eq!(outcome.result.as_deref(), Ok("2999999"));
    assert!(
        run.heap().capacity() < 200_000,
        "heap grew to {} slots",
        run.heap().capacity()
    );
}

#[test]
fn the_heap_limit_is_a_limit_error() {
    // Builds a chain of cells, every one reachable from the last.
    let mut b = Builder::new();
    let main = b.func(
        "main",
        0,
        4,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 0,
            },
            Op::LoadInt {
                dst: r(1),
                value: 1_000_000,
            },
            Op::ForRangePrep {
                counter: r(0),
                exit: pc(4),
            },
            Op::NewCell {
                dst: r(3),
                src: r(3),
            },
            Op::ForRangeLoop {
                counter: r(0),
                body: pc(3),
            },
            Op::ReturnNil,
        ],
    );
    let limits = Limits {
        max_heap_bytes: 1_000_000,
        ..Limits::default()
    };
    let (outcome, run) = run_with(&b.build(main), limits, false);
    let error = outcome.result.unwrap_err();
    assert_eq!(error.kind, "Limit");
    assert!(run.heap().len() < 20_000);
}

// ---- the run as data ----

#[test]
fn a_finished_run_repeats_its_outcome() {
    let natives = natives();
    let mut run = Run::new(fib_program(10), &natives, Vec::new()).unwrap();
    let mut output = CaptureOutput::default();
    assert_eq!(run.resume(&mut output), Ok(Step::Done(Value::Int(55))));
    assert_eq!(run.resume(&mut output), Ok(Step::Done(Value::Int(55))));
    let mut failing = Run::new(sum_program(100), &natives, Vec::new()).unwrap();
    failing.set_limits(Limits {
        max_call_depth: 10,
        ..Limits::default()
    });
    let first = failing.resume(&mut output).unwrap_err();
    assert_eq!(failing.resume(&mut output).unwrap_err(), first);
}

#[test]
fn a_deserialized_run_needs_its_natives_bound() {
    let natives = natives();
    let mut run = Run::new(fib_program(10), &natives, Vec::new()).unwrap();
    run.set_limits(Limits {
        budget: Some(5),
        ..Limits::default()
    });
    let mut output = CaptureOutput::default();
    assert_eq!(run.resume(&mut output), Ok(Step::Paused));
    let bytes = postcard::to_allocvec(&run).unwrap();
    let mut restored: Run = postcard::from_bytes(&bytes).unwrap();
    assert!(restored.resume(&mut output).is_err());
    restored.bind_natives(&natives).unwrap();
    restored.set_limits(Limits::default());
    assert_eq!(restored.resume(&mut output), Ok(Step::Done(Value::Int(55))));
}

#[test]
fn call_main_runs_further_functions_on_the_same_globals() {
    let mut b = Builder::new();
    let counter = b.global("counter");
    let first = b.func(
        "line1",
        0,
        1,
        vec![
            Op::LoadInt {
                dst: r(0),
                value: 41,
            },
            Op::StoreGlobal {
                global: counter,
                src: r(0),
            },
            Op::ReturnNil,
        ],
    );
    let program = b.build(first);
    let natives = natives();
    let mut run = Run::new(Arc::clone(&program), &natives, Vec::new()).unwrap();
    let mut output = CaptureOutput::default();
    assert_eq!(run.resume(&mut output), Ok(Step::Done(Value::Nil)));

    let mut extended = Builder {
        program: (*program).clone(),
    };
    let greeting = extended.string("hello");
    let add = extended.native("add");
    let second = extended.func(
        "line2",
        0,
        3,
        vec![
            Op::LoadGlobal {
                dst: r(0),
                global: counter,
            },
            Op::LoadInt {
                dst: r(1),
                value: 1,
            },
            Op::CallNative {
                native: add,
                base: r(0),
                argc: 2,
            },
            Op::LoadConst {
                dst: r(1),
                idx: greeting,
            },
            Op::CallNative {
                native: PRINT,
                base: r(1),
                argc: 1,
            },
            Op::Return { src: r(0) },
        ],
    );
    run.call_main(extended.build(first), second).unwrap();
    assert_eq!(run.resume(&mut output), Ok(Step::Done(Value::Int(42))));
    assert_eq!(output.lines, ["hello"]);
    assert_eq!(run.globals(), [Value::Int(41)]);
}

// ---- the disassembler ----

#[test]
fn disassembly_names_operands() {
    let program = fib_program(3);
    let text = disassemble(&program, FuncIdx(0));
    let expected = "\
fn fib (arity 1, registers 4):
0000     1  LoadInt           r1, 2
0001     2  JumpIfNotLtInt    r0, r1, -> 0003
0002     3  Return            r0
0003     4  AddIntImm         r2, r0, -1
0004     5  Call              fib, r2..r3
0005     6  AddIntImm         r3, r0, -2
0006     7  Call              fib, r3..r4
0007     8  AddInt            r0, r2, r3
0008     9  Return            r0
";
    assert_eq!(text, expected);
    let all = spool_vm::disassemble_all(&program);
    assert!(
        all.contains("fn main (arity 0, registers 2):\n0000     1  LoadFunc          r0, fib\n")
    );
}

/// A jump to a function's end, where no instruction is, is refused before
/// the program runs (the interpreter jumps without comparing with the end;
/// the compiler ends a function with a return when a jump would lead
/// there), not run past the code.
#[test]
fn a_jump_to_the_end_of_a_function_is_refused_before_it_runs() {
    let mut b = Builder::new();
    let main = b.func(
        "main",
        0,
        1,
        vec![
            Op::Jump {
                target: spool_vm::Pc(2),
            },
            Op::ReturnNil,
        ],
    );
    let program = b.build(main);
    check_error(
        &program,
        "Type",
        "the program is inconsistent: function 0 (main): instruction 0: jump out of the function",
    );
}

/// `JumpIfListTrue` and `JumpIfListFalse` branch on an element of a list of
/// bools in every run mode; a missing element is an `Index` error and an
/// element that is not a bool (a malformed program) a `Type` error, never
/// a guess.
#[test]
fn list_element_jumps_branch_and_raise() {
    // A list of the two values `items` load; returns 1 when the jump on
    // element `element` is taken, else 0.
    let program = |element: i32, when: bool, items: [Op; 2]| {
        let mut b = Builder::new();
        let jump = |target| match when {
            true => Op::JumpIfListTrue {
                list: r(2),
                index: r(3),
                target,
            },
            false => Op::JumpIfListFalse {
                list: r(2),
                index: r(3),
                target,
            },
        };
        let [first, second] = items;
        let main = b.func(
            "main",
            0,
            5,
            vec![
                first,
                second,
                Op::NewList {
                    dst: r(2),
                    start: r(0),
                    count: 2,
                },
                Op::LoadInt {
                    dst: r(3),
                    value: element,
                },
                jump(spool_vm::Pc(7)),
                Op::LoadInt {
                    dst: r(4),
                    value: 0,
                },
                Op::Jump {
                    target: spool_vm::Pc(8),
                },
                Op::LoadInt {
                    dst: r(4),
                    value: 1,
                },
                Op::Return { src: r(4) },
            ],
        );
        b.build(main)
    };
    let bools = || {
        [
            Op::LoadBool {
                dst: r(0),
                value: true,
            },
            Op::LoadBool {
                dst: r(1),
                value: false,
            },
        ]
    };
    for (element, when, taken) in [
        (0, true, true),
        (1, true, false),
        (0, false, false),
        (1, false, true),
    ] {
        let result = check(&program(element, when, bools())).result;
        let expected = if taken { "1" } else { "0" };
        assert_eq!(
            result.expect("runs"),
            expected,
            "element {element}, jump when {when}"
        );
    }
    check_error(
        &program(2, true, bools()),
        "Index",
        "index 2 out of range for list of length 2",
    );
    check_error(
        &program(-1, false, bools()),
        "Index",
        "index -1 out of range for list of length 2",
    );
    let ints = [
        Op::LoadInt {
            dst: r(0),
            value: 1,
        },
        Op::LoadInt {
            dst: r(1),
            value: 0,
        },
    ];
    let error = check(&program(0, true, ints))
        .result
        .expect_err("not a bool");
    assert_eq!(error.kind, "Type");
}
