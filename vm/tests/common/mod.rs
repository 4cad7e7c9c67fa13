//! The harness every VM test binary shares: a builder for hand-made
//! programs, the natives they call, and [`check`], which runs a program
//! directly, with an instruction budget of one, and with a budget whose
//! every pause serializes the run with postcard and restores it, and
//! asserts that all three agree.
//!
//! A top-level `yield` is answered by the host with the number of yields
//! so far (1, 2, ...), after a snapshot round trip in the snapshot mode.

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

use std::sync::Arc;

use spool_vm::{
    CaptureOutput, ConstIdx, Constant, ErrorKind, FileIdx, FuncIdx, Function, GlobalIdx, Limits,
    Loc, NativeCtx, NativeDecl, NativeIdx, NativeSet, Op, Pc, Program, Reg, Run, RunError, Step,
    StructIdx, StructLayout, Value, VmError,
};

// ---- building programs ----

/// Builds a program function by function. Instruction `i` of every function
/// is at line `i + 1`, column 1, which keeps trace expectations readable.
pub struct Builder {
    /// The program being built.
    pub program: Program,
}

impl Builder {
    pub fn new() -> Builder {
        let mut program = Program {
            files: vec!["test.spl".to_string()],
            ..Program::default()
        };
        program.structs.push(StructLayout {
            name: "Error".to_string(),
            fields: vec!["kind".to_string(), "message".to_string()],
            ..StructLayout::default()
        });
        program.builtins.error = StructIdx(0);
        let print = NativeDecl {
            key: "print".to_string(),
            name: "print".to_string(),
            io: None,
        };
        program.natives.push(print);
        Builder { program }
    }

    /// Reserves a function index, for calls written before the callee.
    pub fn declare(&mut self, name: &str) -> FuncIdx {
        let function = Function {
            name: name.to_string(),
            ..Function::default()
        };
        self.program.functions.push(function);
        FuncIdx(self.program.functions.len() as u32 - 1)
    }

    /// Defines `func`; code whose last instruction falls through gets a
    /// `ReturnNil` after it, as the compiler's always ends.
    pub fn define(&mut self, func: FuncIdx, arity: u16, registers: u16, mut code: Vec<Op>) {
        if code.last().is_none_or(Op::falls_through) {
            code.push(Op::ReturnNil);
        }
        let function = &mut self.program.functions[func.index()];
        function.arity = arity;
        function.register_count = registers;
        function.locs = (0..code.len())
            .map(|i| Loc {
                line: i as u32 + 1,
                col: 1,
            })
            .collect();
        function.code = code;
        function.file = FileIdx(0);
    }

    pub fn func(&mut self, name: &str, arity: u16, registers: u16, code: Vec<Op>) -> FuncIdx {
        let func = self.declare(name);
        self.define(func, arity, registers, code);
        func
    }

    pub fn constant(&mut self, constant: Constant) -> ConstIdx {
        self.program.constants.push(constant);
        ConstIdx(self.program.constants.len() as u32 - 1)
    }

    pub fn string(&mut self, text: &str) -> ConstIdx {
        self.constant(Constant::Str(text.to_string()))
    }

    pub fn native(&mut self, key: &str) -> NativeIdx {
        let decl = NativeDecl {
            key: key.to_string(),
            name: key.to_string(),
            io: None,
        };
        self.program.natives.push(decl);
        NativeIdx(self.program.natives.len() as u32 - 1)
    }

    pub fn global(&mut self, name: &str) -> GlobalIdx {
        self.program.globals.push(name.to_string());
        GlobalIdx(self.program.globals.len() as u32 - 1)
    }

    pub fn build(mut self, main: FuncIdx) -> Arc<Program> {
        self.program.main = main;
        Arc::new(self.program)
    }
}

pub fn r(index: u16) -> Reg {
    Reg(index)
}

pub fn pc(index: u32) -> Pc {
    Pc(index)
}

pub const PRINT: NativeIdx = NativeIdx(0);

/// `print(R[reg])`, using `scratch` as the call window.
pub fn print(reg: u16, scratch: u16) -> [Op; 2] {
    [
        Op::Move {
            dst: r(scratch),
            src: r(reg),
        },
        Op::CallNative {
            native: PRINT,
            base: r(scratch),
            argc: 1,
        },
    ]
}

// ---- natives ----

pub fn native_print(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let text = spool_vm::format::display(args[0], ctx.heap, ctx.program);
    ctx.output.print(&text);
    Ok(Value::Nil)
}

pub fn native_add(_: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    match (args[0], args[1]) {
        (Value::Int(a), Value::Int(b)) => Ok(Value::Int(a + b)),
        _ => Err(VmError::new(ErrorKind::Type, "add takes ints")),
    }
}

pub fn native_fail(_: &mut NativeCtx<'_>, _: &[Value]) -> Result<Value, VmError> {
    Err(VmError::new(ErrorKind::Io, "disk on fire"))
}

/// The natives every test program may bind: `print`, `add`, `fail` and the
/// standard library's coroutine methods.
pub fn natives() -> NativeSet {
    let mut set = NativeSet::new();
    set.insert("print", native_print);
    set.insert("add", native_add);
    set.insert("fail", native_fail);
    for def in spool_stdlib::coro::DEFS {
        set.insert(def.key, def.func);
    }
    set
}

// ---- running ----

/// How a run ended and what it printed.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    /// The final value as `print` shows it, or the uncaught error.
    pub result: Result<String, RunError>,
    /// Every line printed.
    pub printed: Vec<String>,
    /// Every value yielded to the host, as `print` shows it.
    pub yielded: Vec<String>,
}

/// Runs `program` to the end with `limits`, pausing as the budget says and,
/// if `snapshot`, replacing the run by a postcard round trip of itself at
/// every pause and every top-level yield.
pub fn run_with(program: &Arc<Program>, limits: Limits, snapshot: bool) -> (Outcome, Run) {
    let natives = natives();
    let mut run = Run::new(Arc::clone(program), &natives, Vec::new()).expect("natives bind");
    run.set_limits(limits);
    let mut output = CaptureOutput::default();
    let mut yielded = Vec::new();
    let round_trip = |run: &mut Run| {
        if snapshot {
            let bytes = postcard::to_allocvec(&*run).expect("run serializes");
            *run = postcard::from_bytes(&bytes).expect("run deserializes");
            run.bind_natives(&natives).expect("natives rebind");
        }
    };
    let result = loop {
        match run.resume(&mut output) {
            Ok(Step::Done(value)) => break Ok(run.display(value)),
            Ok(Step::Paused) => round_trip(&mut run),
            Ok(Step::Yield(value)) => {
                yielded.push(run.display(value));
                round_trip(&mut run);
                assert!(run.awaiting_send());
                run.send(Value::Int(yielded.len() as i64));
            }
            Ok(Step::Io(batch)) => panic!("no I/O in VM tests: {batch:?}"),
            Err(error) => break Err(error),
        }
    };
    let outcome = Outcome {
        result,
        printed: output.lines,
        yielded,
    };
    (outcome, run)
}

/// Runs `program` directly, with a budget of one instruction, and with
/// snapshots at every pause; asserts the three agree and returns the outcome.
#[track_caller]
pub fn check(program: &Arc<Program>) -> Outcome {
    check_with(program, Limits::default(), 3)
}

/// As [`check`], from `limits`, snapshotting every `snapshot_budget`
/// instructions (long runs snapshot less often to stay fast).
#[track_caller]
pub fn check_with(program: &Arc<Program>, limits: Limits, snapshot_budget: u64) -> Outcome {
    let (direct, _) = run_with(program, limits, false);
    let tiny = Limits {
        budget: Some(1),
        ..limits
    };
    let (sliced, _) = run_with(program, tiny, false);
    assert_eq!(direct, sliced, "budget 1 changed the outcome");
    let small = Limits {
        budget: Some(snapshot_budget),
        ..limits
    };
    let (restored, _) = run_with(program, small, true);
    assert_eq!(direct, restored, "snapshots changed the outcome");
    direct
}

#[track_caller]
pub fn check_value(program: &Arc<Program>, expected: &str) {
    let outcome = check(program);
    assert_eq!(
        outcome.result.as_deref(),
        Ok(expected),
        "printed {:?}",
        outcome.printed
    );
}

#[track_caller]
pub fn check_error(program: &Arc<Program>, kind: &str, message: &str) -> RunError {
    let error = check(program).result.expect_err("the run should fail");
    assert_eq!(
        (error.kind.as_str(), error.message.as_str()),
        (kind, message)
    );
    error
}
