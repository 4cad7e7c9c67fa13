//! Coroutine tests on hand-built programs: `CoroNext`, `Yield` and the
//! library's coroutine methods. Every program runs through the shared
//! [`check`] (directly, with a budget of one, and with a postcard round trip
//! at every pause), so each test also checks that switching fibers survives
//! a pause and a snapshot at any instruction.

mod common;

use std::sync::Arc;

use common::*;
use spool_vm::{
    CaptureOutput, CoroStatus, FuncIdx, Limits, NativeIdx, ObjRef, Object, Op, Program, Run, Step,
    Value,
};

// ---- building coroutine programs ----

/// The coroutine natives of a program under construction.
struct Coro {
    new: NativeIdx,
    recv: NativeIdx,
    send: NativeIdx,
    stop: NativeIdx,
    done: NativeIdx,
    status: NativeIdx,
}

fn coro_natives(b: &mut Builder) -> Coro {
    Coro {
        new: b.native("coro.new"),
        recv: b.native("coro.recv"),
        send: b.native("coro.send"),
        stop: b.native("coro.stop"),
        done: b.native("coro.done"),
        status: b.native("coro.status"),
    }
}

/// `R[base] := native(R[base .. base + argc])`
fn call(native: NativeIdx, base: u16, argc: u16) -> Op {
    Op::CallNative {
        native,
        base: r(base),
        argc,
    }
}

fn mov(dst: u16, src: u16) -> Op {
    Op::Move {
        dst: r(dst),
        src: r(src),
    }
}

fn int(dst: u16, value: i32) -> Op {
    Op::LoadInt { dst: r(dst), value }
}

fn next(dst: u16, coro: u16) -> Op {
    Op::CoroNext {
        dst: r(dst),
        coro: r(coro),
    }
}

fn yield_(dst: u16, src: u16) -> Op {
    Op::Yield {
        dst: r(dst),
        src: r(src),
    }
}

/// `R[dst] := coroutine(func)`
fn new_coro(c: &Coro, func: FuncIdx, dst: u16) -> [Op; 2] {
    [Op::LoadFunc { dst: r(dst), func }, call(c.new, dst, 1)]
}

/// Calls `native(R[coro])` in `scratch` and prints the result.
fn print_of(native: NativeIdx, coro: u16, scratch: u16) -> [Op; 3] {
    [
        mov(scratch, coro),
        call(native, scratch, 1),
        call(PRINT, scratch, 1),
    ]
}

/// `while R[coro].next() { print(R[coro].recv()) }`, starting at
/// instruction `at`, using `scratch` and `scratch + 1`. Six instructions.
fn print_all(c: &Coro, at: u32, coro: u16, scratch: u16) -> Vec<Op> {
    vec![
        next(scratch, coro),
        Op::JumpIfFalse {
            cond: r(scratch),
            target: pc(at + 6),
        },
        mov(scratch + 1, coro),
        call(c.recv, scratch + 1, 1),
        call(PRINT, scratch + 1, 1),
        Op::Jump { target: pc(at) },
    ]
}

/// `gen`: yields 0, 1, 2 and returns.
fn counter(b: &mut Builder, name: &str, count: i32) -> FuncIdx {
    b.func(
        name,
        0,
        4,
        vec![
            int(0, 0),
            int(1, count),
            Op::ForRangePrep {
                counter: r(0),
                exit: pc(5),
            },
            yield_(3, 2),
            Op::ForRangeLoop {
                counter: r(0),
                body: pc(3),
            },
            Op::ReturnNil,
        ],
    )
}

/// A function `name` that prints the string constant `text`.
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

fn lines(outcome: &Outcome) -> Vec<&str> {
    outcome.printed.iter().map(String::as_str).collect()
}

// ---- generators and sending ----

#[test]
fn a_generator_yields_each_value_to_next_and_recv() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let gen = counter(&mut b, "gen", 3);
    let mut code = vec![];
    code.extend(new_coro(&c, gen, 0));
    code.extend(print_of(c.status, 0, 1));
    code.extend(print_all(&c, 5, 0, 1));
    code.extend([mov(1, 0), call(c.status, 1, 1), Op::Return { src: r(1) }]);
    let main = b.func("main", 0, 4, code);
    let outcome = check(&b.build(main));
    assert_eq!(lines(&outcome), ["suspended", "0", "1", "2"]);
    assert_eq!(outcome.result.as_deref(), Ok("done"));
}

#[test]
fn sent_values_are_what_the_pending_yield_returns() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    // Yields the running total of what it is sent, until it is sent nil.
    let acc = b.func(
        "acc",
        0,
        3,
        vec![
            int(0, 0),
            yield_(1, 0),
            Op::JumpIfNil {
                src: r(1),
                target: pc(5),
            },
            Op::AddInt {
                dst: r(0),
                lhs: r(0),
                rhs: r(1),
            },
            Op::Jump { target: pc(1) },
            Op::Return { src: r(0) },
        ],
    );
    let mut code = vec![];
    code.extend(new_coro(&c, acc, 0));
    for sent in [5, 7] {
        code.extend([next(1, 0), mov(2, 0), int(3, sent), call(c.send, 2, 2)]);
    }
    code.extend([next(1, 0)]);
    code.extend(print_of(c.recv, 0, 2));
    // Nothing sent: the yield gives nil and the body returns.
    code.extend([next(1, 0)]);
    code.extend(print(1, 2));
    code.extend([mov(2, 0), call(c.recv, 2, 1), Op::Return { src: r(2) }]);
    let main = b.func("main", 0, 4, code);
    let outcome = check(&b.build(main));
    assert_eq!(lines(&outcome), ["12", "false"]);
    assert_eq!(outcome.result.as_deref(), Ok("12"));
}

#[test]
fn a_yield_three_calls_deep_suspends_the_whole_stack() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let level1 = b.declare("level1");
    let level2 = b.declare("level2");
    let level3 = b.declare("level3");
    let body = b.func(
        "body",
        0,
        2,
        vec![
            int(1, 1),
            Op::Call {
                func: level1,
                base: r(1),
                argc: 1,
            },
            Op::Return { src: r(1) },
        ],
    );
    // levelN(x) = level(N+1)(x + 10)
    for (func, callee) in [(level1, level2), (level2, level3)] {
        let code = vec![
            Op::AddIntImm {
                dst: r(1),
                lhs: r(0),
                imm: 10,
            },
            Op::Call {
                func: callee,
                base: r(1),
                argc: 1,
            },
            Op::Return { src: r(1) },
        ];
        b.define(func, 1, 2, code);
    }
    // level3(x): yield x; yield x + sent; return the second sent value.
    let code = vec![
        yield_(1, 0),
        Op::AddInt {
            dst: r(2),
            lhs: r(0),
            rhs: r(1),
        },
        yield_(1, 2),
        Op::Return { src: r(1) },
    ];
    b.define(level3, 1, 3, code);
    let mut code = vec![];
    code.extend(new_coro(&c, body, 0));
    for sent in [100, 5] {
        code.push(next(1, 0));
        code.extend(print_of(c.recv, 0, 2));
        code.extend([mov(2, 0), int(3, sent), call(c.send, 2, 2)]);
    }
    code.push(next(1, 0));
    code.extend(print(1, 2));
    code.push(Op::ReturnNil);
    let main = b.func("main", 0, 4, code);
    let outcome = check(&b.build(main));
    assert_eq!(lines(&outcome), ["21", "121", "false"]);
}

#[test]
fn a_coroutine_recursing_ten_thousand_deep_yields_at_the_bottom() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let down = b.declare("down");
    // down(n) = if n == 0 { yield 42; 0 } else { down(n - 1) + 1 }
    let code = vec![
        int(1, 0),
        Op::EqInt {
            dst: r(2),
            lhs: r(0),
            rhs: r(1),
        },
        Op::JumpIfFalse {
            cond: r(2),
            target: pc(6),
        },
        int(1, 42),
        yield_(2, 1),
        Op::Return { src: r(0) },
        Op::AddIntImm {
            dst: r(1),
            lhs: r(0),
            imm: -1,
        },
        Op::Call {
            func: down,
            base: r(1),
            argc: 1,
        },
        Op::AddIntImm {
            dst: r(1),
            lhs: r(1),
            imm: 1,
        },
        Op::Return { src: r(1) },
    ];
    b.define(down, 1, 3, code);
    let body = b.func(
        "body",
        0,
        2,
        vec![
            int(1, 10_000),
            Op::Call {
                func: down,
                base: r(1),
                argc: 1,
            },
            yield_(0, 1),
            Op::ReturnNil,
        ],
    );
    let mut code = vec![];
    code.extend(new_coro(&c, body, 0));
    code.extend(print_all(&c, 2, 0, 1));
    code.push(Op::ReturnNil);
    let main = b.func("main", 0, 4, code);
    let outcome = check_with(&b.build(main), Limits::default(), 5_000);
    assert_eq!(lines(&outcome), ["42", "10000"]);
}

/// Three coroutines, each relaying the one below with 100 added: main
/// drives `c3`, which drives `c2`, which drives the generator `c1`.
fn relay_program() -> Arc<Program> {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let gen = counter(&mut b, "gen", 3);
    let relay = b.func(
        "relay",
        0,
        4,
        vec![
            Op::LoadCapture {
                dst: r(0),
                index: 0,
            },
            next(1, 0),
            Op::JumpIfFalse {
                cond: r(1),
                target: pc(8),
            },
            mov(2, 0),
            call(c.recv, 2, 1),
            Op::AddIntImm {
                dst: r(2),
                lhs: r(2),
                imm: 100,
            },
            yield_(3, 2),
            Op::Jump { target: pc(1) },
            Op::ReturnNil,
        ],
    );
    let mut code = vec![];
    code.extend(new_coro(&c, gen, 1));
    for level in [2, 3] {
        code.push(Op::MakeClosure {
            dst: r(level),
            func: relay,
            start: r(level - 1),
            count: 1,
        });
        code.push(call(c.new, level, 1));
    }
    code.push(mov(0, 3));
    code.extend(print_all(&c, 7, 0, 4));
    code.extend(print_of(c.status, 1, 4));
    code.push(Op::ReturnNil);
    let main = b.func("main", 0, 6, code);
    b.build(main)
}

#[test]
fn coroutines_nest_three_deep() {
    let outcome = check(&relay_program());
    assert_eq!(lines(&outcome), ["200", "201", "202", "done"]);
}

#[test]
fn a_run_paused_three_coroutines_deep_survives_a_snapshot() {
    let program = relay_program();
    let (direct, _) = run_with(&program, Limits::default(), false);
    let natives = natives();
    let mut run = Run::new(Arc::clone(&program), &natives, Vec::new()).unwrap();
    run.set_limits(Limits {
        budget: Some(1),
        ..Limits::default()
    });
    let mut output = CaptureOutput::default();
    while run.resumers().len() < 3 {
        assert_eq!(run.resume(&mut output), Ok(Step::Paused));
    }
    let bytes = postcard::to_allocvec(&run).unwrap();
    let mut restored: Run = postcard::from_bytes(&bytes).unwrap();
    restored.bind_natives(&natives).unwrap();
    assert_eq!(restored.resumers().len(), 3);
    restored.set_limits(Limits::default());
    assert_eq!(restored.resume(&mut output), Ok(Step::Done(Value::Nil)));
    assert_eq!(output.lines, direct.printed);
}

// ---- stop and status ----

#[test]
fn stop_runs_the_defers_and_the_coroutine_is_done() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let global = b.global("c");
    let d1 = printer(&mut b, "d1", "d1");
    let d2 = printer(&mut b, "d2", "d2");
    let mut code = vec![Op::LoadGlobal { dst: r(0), global }];
    code.extend(print_of(c.status, 0, 1));
    code.extend([
        Op::LoadFunc {
            dst: r(1),
            func: d1,
        },
        Op::Defer { src: r(1) },
        Op::LoadFunc {
            dst: r(1),
            func: d2,
        },
        Op::Defer { src: r(1) },
        int(1, 1),
        yield_(2, 1),
        printer_call_missing(),
        Op::ReturnNil,
    ]);
    let body = b.func("body", 0, 3, code);
    let mut code = vec![];
    code.extend(new_coro(&c, body, 0));
    code.push(Op::StoreGlobal { global, src: r(0) });
    code.extend(print_of(c.status, 0, 1));
    code.push(next(1, 0));
    code.extend(print(1, 2));
    code.extend(print_of(c.status, 0, 1));
    code.extend([mov(1, 0), call(c.stop, 1, 1)]);
    code.extend(print_of(c.status, 0, 1));
    code.push(next(1, 0));
    code.extend(print(1, 2));
    code.extend(print_of(c.status, 0, 1));
    code.extend(print_of(c.done, 0, 1));
    // A further next() is an error, as for any finished coroutine (see
    // tests/scripts/coroutines/next_after_stop_is_type_error.spl).
    code.push(Op::ReturnNil);
    let main = b.func("main", 0, 4, code);
    let outcome = check(&b.build(main));
    let expected = [
        "suspended",
        "running",
        "true",
        "suspended",
        "suspended",
        "d2",
        "d1",
        "false",
        "done",
        "true",
    ];
    assert_eq!(lines(&outcome), expected);
}

/// An instruction the tests place where execution must never arrive.
fn printer_call_missing() -> Op {
    Op::Throw { src: r(0) }
}

/// A `yield` in a defer while the coroutine is being stopped raises an
/// ordinary `Stopped` error: it replaces the stop being unwound, the other
/// defers still run, and it comes out of the `next()` (uncaught here, so
/// the run fails with it, its trace starting at the `yield`).
#[test]
fn a_yield_while_stopping_raises_stopped_and_the_other_defers_still_run() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let d1 = printer(&mut b, "d1", "d1");
    let yielder = b.func(
        "yielder",
        0,
        2,
        vec![
            int(0, 9),
            yield_(1, 0),
            printer_call_missing(),
            Op::ReturnNil,
        ],
    );
    let body = b.func(
        "body",
        0,
        3,
        vec![
            Op::LoadFunc {
                dst: r(1),
                func: d1,
            },
            Op::Defer { src: r(1) },
            Op::LoadFunc {
                dst: r(1),
                func: yielder,
            },
            Op::Defer { src: r(1) },
            int(1, 1),
            yield_(2, 1),
            Op::ReturnNil,
        ],
    );
    let mut code = vec![];
    code.extend(new_coro(&c, body, 0));
    code.push(next(1, 0));
    code.extend([mov(1, 0), call(c.stop, 1, 1)]);
    code.push(next(1, 0));
    code.extend(print(1, 2));
    code.extend(print_of(c.status, 0, 1));
    code.extend(print_of(c.recv, 0, 1));
    code.push(Op::ReturnNil);
    let main = b.func("main", 0, 4, code);
    let outcome = check(&b.build(main));
    assert_eq!(lines(&outcome), ["d1"]);
    let error = outcome.result.expect_err("the next() raises");
    assert_eq!(
        (error.kind.as_str(), error.message.as_str()),
        (
            "Stopped",
            "cannot yield in a defer while the coroutine is being stopped"
        )
    );
    let functions: Vec<&str> = error.trace.iter().map(|f| f.function.as_str()).collect();
    assert_eq!(functions, ["yielder", "body", "main"]);
}

#[test]
fn a_body_that_catches_stopped_and_returns_is_done() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let body = b.func(
        "body",
        0,
        4,
        vec![
            Op::TryBegin {
                handler: pc(4),
                dst: r(2),
            },
            int(1, 1),
            yield_(0, 1),
            Op::TryEnd,
            Op::GetField {
                dst: r(3),
                obj: r(2),
                field: 0,
            },
            call(PRINT, 3, 1),
            int(1, 77),
            Op::Return { src: r(1) },
        ],
    );
    let never = printer(&mut b, "never", "never runs");
    let mut code = vec![];
    code.extend(new_coro(&c, body, 0));
    code.push(next(1, 0));
    code.extend([mov(1, 0), call(c.stop, 1, 1)]);
    code.push(next(1, 0));
    code.extend(print(1, 2));
    code.extend(print_of(c.status, 0, 1));
    // Stopping a coroutine that never started: done without running it.
    code.extend(new_coro(&c, never, 0));
    code.extend([mov(1, 0), call(c.stop, 1, 1)]);
    code.extend(print_of(c.done, 0, 1));
    code.push(next(1, 0));
    code.extend(print(1, 2));
    code.extend(print_of(c.status, 0, 1));
    code.push(Op::ReturnNil);
    let main = b.func("main", 0, 4, code);
    let outcome = check(&b.build(main));
    let expected = ["Stopped", "false", "done", "true", "false", "done"];
    assert_eq!(lines(&outcome), expected);
}

#[test]
fn a_coroutine_that_stops_itself_raises_stopped_at_its_next_yield() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let global = b.global("c");
    let mut code = vec![
        Op::LoadGlobal { dst: r(0), global },
        mov(1, 0),
        call(c.stop, 1, 1),
    ];
    code.extend(print_of(c.status, 0, 1));
    code.extend([
        int(1, 1),
        yield_(2, 1),
        printer_call_missing(),
        Op::ReturnNil,
    ]);
    let body = b.func("body", 0, 3, code);
    let mut code = vec![];
    code.extend(new_coro(&c, body, 0));
    code.push(Op::StoreGlobal { global, src: r(0) });
    code.push(next(1, 0));
    code.extend(print(1, 2));
    code.extend(print_of(c.status, 0, 1));
    code.push(Op::ReturnNil);
    let main = b.func("main", 0, 4, code);
    let outcome = check(&b.build(main));
    assert_eq!(lines(&outcome), ["running", "false", "done"]);
}

// ---- errors ----

/// A program whose coroutine body calls `divide(1, 0)`, driven by a main
/// that catches the error when `catch` is set.
fn failing_program(catch: bool) -> Arc<Program> {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let divide = b.func(
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
    );
    let body = b.func(
        "body",
        0,
        3,
        vec![
            int(1, 1),
            int(2, 0),
            Op::Call {
                func: divide,
                base: r(1),
                argc: 2,
            },
            Op::Return { src: r(1) },
        ],
    );
    let mut code = vec![];
    code.extend(new_coro(&c, body, 0));
    if catch {
        code.extend([
            Op::TryBegin {
                handler: pc(6),
                dst: r(2),
            },
            next(1, 0),
            Op::TryEnd,
            Op::ReturnNil,
            Op::GetField {
                dst: r(3),
                obj: r(2),
                field: 0,
            },
            call(PRINT, 3, 1),
        ]);
        code.extend(print_of(c.status, 0, 1));
        code.extend(print_of(c.done, 0, 1));
    }
    // Resuming it (again) is an uncaught error.
    code.push(next(1, 0));
    code.push(Op::ReturnNil);
    let main = b.func("main", 0, 4, code);
    b.build(main)
}

#[test]
fn an_error_in_a_coroutine_propagates_out_of_next_with_both_stacks() {
    let error = check_error(&failing_program(false), "DivByZero", "division by zero");
    let frames: Vec<(&str, u32)> = error
        .trace
        .iter()
        .map(|frame| (frame.function.as_str(), frame.line))
        .collect();
    assert_eq!(frames, [("divide", 1), ("body", 3), ("main", 3)]);
}

#[test]
fn an_error_out_of_next_is_caught_by_the_resumer_and_the_coroutine_failed() {
    let program = failing_program(true);
    let error = check_error(&program, "Type", "cannot resume a failed coroutine");
    assert_eq!(error.trace[0].function, "main");
    let outcome = check(&program);
    assert_eq!(lines(&outcome), ["DivByZero", "failed", "true"]);
}

#[test]
fn next_on_a_finished_coroutine_keeps_answering_false() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let gen = counter(&mut b, "gen", 1);
    let mut code = vec![];
    code.extend(new_coro(&c, gen, 0));
    code.extend(print_all(&c, 2, 0, 1));
    code.push(next(1, 0));
    code.extend(print(1, 2));
    code.push(Op::ReturnNil);
    let main = b.func("main", 0, 4, code);
    let outcome = check(&b.build(main));
    assert_eq!(lines(&outcome).last(), Some(&"false"));
}

#[test]
fn next_on_a_running_coroutine_is_a_type_error() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let global = b.global("outer");
    // The inner body resumes the outer coroutine, which is running.
    let inner = b.func(
        "inner",
        0,
        2,
        vec![
            Op::LoadGlobal { dst: r(0), global },
            next(1, 0),
            Op::ReturnNil,
        ],
    );
    let mut code = vec![];
    code.extend(new_coro(&c, inner, 0));
    code.extend([next(1, 0), Op::ReturnNil]);
    let outer = b.func("outer", 0, 2, code);
    let mut code = vec![];
    code.extend(new_coro(&c, outer, 0));
    code.extend([
        Op::StoreGlobal { global, src: r(0) },
        next(1, 0),
        Op::ReturnNil,
    ]);
    let main = b.func("main", 0, 2, code);
    let error = check_error(&b.build(main), "Type", "cannot resume a running coroutine");
    let functions: Vec<&str> = error.trace.iter().map(|f| f.function.as_str()).collect();
    assert_eq!(functions, ["inner", "outer", "main"]);
}

#[test]
fn recv_before_any_yield_is_a_type_error_and_a_native_body_runs_at_once() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let fail = b.native("fail");
    let mut code = vec![
        Op::LoadNative {
            dst: r(0),
            native: fail,
        },
        call(c.new, 0, 1),
        Op::TryBegin {
            handler: pc(5),
            dst: r(2),
        },
        next(1, 0),
        Op::TryEnd,
        Op::GetField {
            dst: r(3),
            obj: r(2),
            field: 0,
        },
        call(PRINT, 3, 1),
    ];
    code.extend(print_of(c.status, 0, 1));
    code.extend([mov(1, 0), call(c.recv, 1, 1), Op::ReturnNil]);
    let main = b.func("main", 0, 4, code);
    let program = b.build(main);
    check_error(&program, "Type", "nothing has been yielded yet");
    assert_eq!(lines(&check(&program)), ["Io", "failed"]);
}

// ---- the host ----

#[test]
fn a_top_level_yield_pauses_the_run_for_the_host() {
    let mut b = Builder::new();
    let mut code = vec![int(0, 7), yield_(1, 0)];
    code.extend(print(1, 2));
    code.extend([int(0, 8), yield_(1, 0)]);
    code.extend(print(1, 2));
    code.push(Op::Return { src: r(1) });
    let main = b.func("main", 0, 3, code);
    let program = b.build(main);
    // The harness answers the n-th yield with n.
    let outcome = check(&program);
    assert_eq!(outcome.yielded, ["7", "8"]);
    assert_eq!(lines(&outcome), ["1", "2"]);
    assert_eq!(outcome.result.as_deref(), Ok("2"));
    // Without `send`, a yield evaluates to nil.
    let mut run = Run::new(program, &natives(), Vec::new()).unwrap();
    let mut output = CaptureOutput::default();
    assert_eq!(run.resume(&mut output), Ok(Step::Yield(Value::Int(7))));
    assert!(run.awaiting_send());
    assert_eq!(run.resume(&mut output), Ok(Step::Yield(Value::Int(8))));
    run.send(Value::Bool(true));
    assert_eq!(run.resume(&mut output), Ok(Step::Done(Value::Bool(true))));
    assert_eq!(output.lines, ["nil", "true"]);
    assert!(!run.awaiting_send());
}

// ---- many coroutines, the collector and sizes ----

#[test]
fn ten_thousand_suspended_coroutines_at_once() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let gen = counter(&mut b, "gen", 1);
    let code = vec![
        // m := [:]; for i in 0..10000 { m[i] = coroutine(gen); m[i].next() }
        Op::NewMap {
            dst: r(0),
            start: r(1),
            count: 0,
        },
        int(1, 0),
        int(2, 10_000),
        Op::ForRangePrep {
            counter: r(1),
            exit: pc(9),
        },
        Op::LoadFunc {
            dst: r(4),
            func: gen,
        },
        call(c.new, 4, 1),
        next(5, 4),
        Op::MapSet {
            map: r(0),
            key: r(3),
            src: r(4),
        },
        Op::ForRangeLoop {
            counter: r(1),
            body: pc(4),
        },
        // for i in 0..10000 { if m[i].next() { return -1 }; n += 1 }
        int(6, 0),
        int(1, 0),
        int(2, 10_000),
        Op::ForRangePrep {
            counter: r(1),
            exit: pc(18),
        },
        Op::MapGet {
            dst: r(4),
            map: r(0),
            key: r(3),
        },
        next(5, 4),
        Op::JumpIfTrue {
            cond: r(5),
            target: pc(19),
        },
        Op::AddIntImm {
            dst: r(6),
            lhs: r(6),
            imm: 1,
        },
        Op::ForRangeLoop {
            counter: r(1),
            body: pc(13),
        },
        Op::Return { src: r(6) },
        int(6, -1),
        Op::Return { src: r(6) },
    ];
    let main = b.func("main", 0, 8, code);
    let program = b.build(main);
    let outcome = check_with(&program, Limits::default(), 25_000);
    assert_eq!(outcome.result.as_deref(), Ok("10000"));
    let (_, run) = run_with(&program, Limits::default(), false);
    let statuses: Vec<CoroStatus> = coroutines(&run).map(|(_, coro)| coro.status).collect();
    assert_eq!(statuses.len(), 10_000);
    assert!(statuses.iter().all(|&status| status == CoroStatus::Done));
}

/// Every coroutine in the run's heap.
fn coroutines(run: &Run) -> impl Iterator<Item = (ObjRef, &spool_vm::Coroutine)> {
    (0..run.heap().capacity() as u32).filter_map(|slot| match run.heap().get(ObjRef(slot)) {
        Some(Object::Coro(coro)) => Some((ObjRef(slot), &**coro)),
        _ => None,
    })
}

#[test]
fn collections_keep_what_suspended_coroutines_hold() {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let keep = b.string("keep");
    let x = b.string("x");
    // Holds a fresh string only in its register across a yield.
    let holder = b.func(
        "holder",
        0,
        3,
        vec![
            Op::LoadConst {
                dst: r(0),
                idx: keep,
            },
            Op::Concat {
                dst: r(0),
                lhs: r(0),
                rhs: r(0),
            },
            int(1, 1),
            yield_(2, 1),
            yield_(2, 0),
            Op::ReturnNil,
        ],
    );
    let mut code = vec![];
    code.extend(new_coro(&c, holder, 0));
    code.push(next(1, 0));
    // Churn: 3000 fresh strings, far beyond the heap limit below.
    code.extend([
        Op::LoadConst { dst: r(5), idx: x },
        int(2, 0),
        int(3, 3000),
        Op::ForRangePrep {
            counter: r(2),
            exit: pc(8),
        },
        Op::Concat {
            dst: r(6),
            lhs: r(5),
            rhs: r(5),
        },
        Op::ForRangeLoop {
            counter: r(2),
            body: pc(7),
        },
    ]);
    code.push(next(1, 0));
    code.extend(print_of(c.recv, 0, 1));
    code.push(Op::ReturnNil);
    let main = b.func("main", 0, 8, code);
    let program = b.build(main);
    let limits = Limits {
        max_heap_bytes: 8_000,
        ..Limits::default()
    };
    let outcome = check_with(&program, limits, 3);
    assert_eq!(lines(&outcome), ["keepkeep"]);
    let (_, run) = run_with(&program, limits, false);
    assert!(run.heap().len() < 100);
}

/// A generator suspended one call deep, as `coroutine(fn() { produce(n) })`
/// compiles: the body calls `produce`, which yields `0..n` in a counted
/// loop; main sums what it receives.
fn produce_program(n: i32) -> Arc<Program> {
    let mut b = Builder::new();
    let c = coro_natives(&mut b);
    let produce = b.func(
        "produce",
        1,
        5,
        vec![
            int(1, 0),
            mov(2, 0),
            Op::ForRangePrep {
                counter: r(1),
                exit: pc(5),
            },
            yield_(4, 3),
            Op::ForRangeLoop {
                counter: r(1),
                body: pc(3),
            },
            Op::ReturnNil,
        ],
    );
    let body = b.func(
        "body",
        0,
        2,
        vec![
            int(1, n),
            Op::Call {
                func: produce,
                base: r(1),
                argc: 1,
            },
            Op::ReturnNil,
        ],
    );
    let mut code = vec![];
    code.extend(new_coro(&c, body, 0));
    code.extend([
        int(1, 0),
        next(2, 0),
        Op::JumpIfFalse {
            cond: r(2),
            target: pc(9),
        },
        mov(3, 0),
        call(c.recv, 3, 1),
        Op::AddInt {
            dst: r(1),
            lhs: r(1),
            rhs: r(3),
        },
        Op::Jump { target: pc(3) },
        Op::Return { src: r(1) },
    ]);
    let main = b.func("main", 0, 4, code);
    b.build(main)
}

#[test]
fn a_generator_sums_its_values() {
    let outcome = check(&produce_program(100));
    assert_eq!(outcome.result.as_deref(), Ok("4950"));
}

/// Bytes of a suspended coroutine: postcard, and in memory (its heap slot,
/// the box and the fiber's vectors by capacity).
fn coroutine_sizes(coro: &spool_vm::Coroutine) -> (usize, usize) {
    use std::mem::size_of;
    let postcard = postcard::to_allocvec(&Object::Coro(Box::new(coro.clone())))
        .unwrap()
        .len();
    let fiber = &coro.fiber;
    let memory = size_of::<Option<Object>>()
        + size_of::<spool_vm::Coroutine>()
        + fiber.registers.capacity() * size_of::<Value>()
        + fiber.frames.capacity() * size_of::<spool_vm::Frame>()
        + fiber.handlers.capacity() * size_of::<spool_vm::Handler>()
        + fiber.defers.capacity() * size_of::<spool_vm::DeferEntry>()
        + fiber.unwinds.capacity() * size_of::<spool_vm::Unwind>();
    (postcard, memory)
}

#[test]
fn a_generator_suspended_one_call_deep_is_small() {
    let natives = natives();
    let mut run = Run::new(produce_program(1000), &natives, Vec::new()).unwrap();
    run.set_limits(Limits {
        budget: Some(1),
        ..Limits::default()
    });
    let mut output = CaptureOutput::default();
    let suspended = |run: &Run| {
        coroutines(run).any(|(_, coro)| coro.status == CoroStatus::Suspended && coro.started())
    };
    while !suspended(&run) {
        assert_eq!(run.resume(&mut output), Ok(Step::Paused));
    }
    let (_, coro) = coroutines(&run).next().unwrap();
    assert_eq!(coro.fiber.frames.len(), 2);
    let (postcard, memory) = coroutine_sizes(coro);
    println!("suspended generator: {postcard} bytes in postcard, about {memory} in memory");
    assert!(postcard <= 128, "{postcard} bytes in postcard");
    assert!(memory <= 512, "{memory} bytes in memory");
}

/// W6's shape: a million values yielded one call deep and summed by the
/// resumer. `cargo test --release -p spool-vm --test coro -- --ignored
/// --nocapture` prints the time per yield/resume round trip.
#[test]
#[ignore]
fn benchmark_a_million_round_trips() {
    let program = produce_program(1_000_000);
    let natives = natives();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut run = Run::new(Arc::clone(&program), &natives, Vec::new()).unwrap();
        let mut output = CaptureOutput::default();
        let start = std::time::Instant::now();
        let step = run.resume(&mut output);
        let elapsed = start.elapsed();
        assert_eq!(step, Ok(Step::Done(Value::Int(499_999_500_000))));
        best = best.min(elapsed.as_nanos() as f64 / 1e6);
    }
    println!("{best:.1} ns per yield/resume round trip (best of 5)");
}
