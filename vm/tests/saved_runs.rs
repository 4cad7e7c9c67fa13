//! A host that only resumes saved runs needs `spool-vm` alone: this test
//! uses nothing else. It builds a program by hand, runs it to a top-level
//! `yield`, saves it in the saved-run format (header, checksum, postcard),
//! and restores and finishes it with the VM's own `snapshot::restore`,
//! binding the one native function the program calls.

use std::sync::Arc;

use spool_vm::snapshot::{restore, snapshot, RestoreError};
use spool_vm::{
    CaptureOutput, Function, Loc, NativeCtx, NativeDecl, NativeIdx, NativeSet, Op, Program, Reg,
    Run, Step, StructIdx, StructLayout, Value, VmError,
};

fn print(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let text = spool_vm::format::display(args[0], ctx.heap, ctx.program);
    ctx.output.print(&text);
    Ok(Value::Nil)
}

/// `let answer = yield 41; print(answer + 41)`, by hand.
fn program() -> Arc<Program> {
    let code = vec![
        Op::LoadInt {
            dst: Reg(0),
            value: 41,
        },
        Op::Yield {
            dst: Reg(1),
            src: Reg(0),
        },
        Op::AddInt {
            dst: Reg(2),
            lhs: Reg(1),
            rhs: Reg(0),
        },
        Op::CallNative {
            native: NativeIdx(0),
            base: Reg(2),
            argc: 1,
        },
        Op::ReturnNil,
    ];
    let mut program = Program {
        files: vec!["by_hand.spl".into()],
        functions: vec![Function {
            name: "main".into(),
            register_count: 3,
            locs: vec![Loc { line: 1, col: 1 }; code.len()],
            code,
            ..Function::default()
        }],
        structs: vec![StructLayout {
            name: "Error".into(),
            fields: vec!["kind".into(), "message".into()],
            ..StructLayout::default()
        }],
        natives: vec![NativeDecl {
            key: "print".into(),
            name: "print".into(),
            io: None,
        }],
        ..Program::default()
    };
    program.builtins.error = StructIdx(0);
    program.fingerprint = spool_vm::snapshot::fingerprint(&program);
    Arc::new(program)
}

#[test]
fn the_vm_alone_saves_restores_and_finishes_a_run() {
    let mut natives = NativeSet::new();
    natives.insert("print", print);
    let mut run = Run::new(program(), &natives, Vec::new()).expect("natives bind");
    let mut output = CaptureOutput::default();
    assert_eq!(run.resume(&mut output), Ok(Step::Yield(Value::Int(41))));
    let bytes = snapshot(&run);
    drop(run);

    let mut run = restore(&bytes, &natives).expect("the saved run restores");
    run.send(Value::Int(1));
    assert_eq!(run.resume(&mut output), Ok(Step::Done(Value::Nil)));
    assert_eq!(output.lines, ["42"]);

    // Without the native its program calls, the run is refused by name.
    let refused: RestoreError = restore(&bytes, &NativeSet::new()).unwrap_err();
    assert!(refused.message.contains("print"), "{refused}");
}
