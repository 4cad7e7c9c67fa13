//! Spool: an embeddable, statically typed scripting language with
//! coroutines, batched I/O and durable runs.
//!
//! This crate wires the front end (`spool-lang`), the VM (`spool-vm`) and
//! the standard library (`spool-stdlib`) into the API embedders use:
//!
//! ```
//! let engine = spool::Engine::new();
//! let program = engine.compile("hello.spl", "print(\"hi ${1 + 2}\")").unwrap();
//! let mut run = program.start(vec![]);
//! let mut host = spool::CaptureOutput::default();
//! assert!(matches!(run.resume(&mut host), Ok(spool::Step::Done(_))));
//! assert_eq!(host.lines, ["hi 3"]);
//! ```
//!
//! The `spool` command line, its I/O operations and the REPL are the
//! `spool-cli` package, built on this one.

pub mod answer;
mod diagnostics;
pub mod dispatch;
pub mod driver;
pub mod session;
pub mod snapshot;
pub mod upgrade;

use std::sync::Arc;

use spool_lang::{ast, NativeSpec, SourceFile};

pub use diagnostics::CompileError;
pub use dispatch::{Completion, Dispatcher, FnDispatcher, PoolDispatcher};
pub use driver::{drive, drive_with, Driven, Hooks, Stop};
pub use session::Session;
pub use snapshot::{
    restore, restore_with_program, snapshot, snapshot_without_program, RestoreError,
};
pub use spool_lang::Diagnostic;
pub use spool_vm::{
    CaptureOutput, Data, IoId, IoRequest, IoResult, Limits, Output, Run, RunError, Status, Step,
    TraceFrame, Value,
};

/// The file name the standard library's Spool part is compiled under.
pub const PRELUDE_NAME: &str = "prelude.spl";

/// Stack for the front end: it recurses over the tree, and the parser
/// bounds the tree's depth, so this much always suffices.
const FRONT_END_STACK: usize = 256 << 20;

/// Why the front end gave no answer.
#[derive(Debug)]
pub(crate) enum FrontEndFailure {
    /// It panicked: a bug, reported as an internal error.
    Panicked,
    /// Its thread could not start (no address space for its stack, as
    /// under a small `ulimit -v`).
    NoThread(String),
}

/// Runs `work` on a thread with a stack deep enough for the front end.
pub(crate) fn on_front_end_stack<T: Send>(
    work: impl FnOnce() -> T + Send,
) -> Result<T, FrontEndFailure> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("spool-compile".into())
            .stack_size(FRONT_END_STACK)
            .spawn_scoped(scope, work)
            .map_err(|error| FrontEndFailure::NoThread(error.to_string()))?
            .join()
            .map_err(|_| FrontEndFailure::Panicked)
    })
}

/// Compiles scripts against the standard library.
#[derive(Clone)]
pub struct Engine {
    natives: spool_vm::NativeSet,
    specs: Vec<NativeSpec>,
    prelude: ast::File,
}

impl Default for Engine {
    fn default() -> Engine {
        Engine::new()
    }
}

impl Engine {
    /// An engine with the standard library.
    pub fn new() -> Engine {
        let specs = spool_stdlib::natives()
            .iter()
            .map(|native| NativeSpec {
                key: native.key.to_string(),
                decl: spool_lang::parse_native_sig(native.sig).expect("library signatures parse"),
                io: false,
            })
            .collect();
        let prelude = spool_lang::parse(spool_stdlib::PRELUDE, 0).expect("the prelude parses");
        Engine {
            natives: spool_stdlib::native_set(),
            specs,
            prelude,
        }
    }

    /// Compiles a script. `name` is the file name shown in diagnostics and
    /// stack traces.
    pub fn compile(&self, name: &str, source: &str) -> Result<Program, CompileError> {
        self.compile_bytes(name, source.as_bytes())
    }

    /// Compiles a script given as bytes; invalid UTF-8 is a diagnostic.
    pub fn compile_bytes(&self, name: &str, source: &[u8]) -> Result<Program, CompileError> {
        let text = String::from_utf8_lossy(source).into_owned();
        match on_front_end_stack(|| self.compile_on_this_thread(name, source, &text)) {
            Ok(result) => result.map(|program| Program {
                inner: Arc::new(program),
                natives: self.natives.clone(),
            }),
            Err(failure) => Err(CompileError::internal(name, &text, failure)),
        }
    }

    /// The parsed prelude.
    pub(crate) fn prelude(&self) -> &ast::File {
        &self.prelude
    }

    /// The natives and I/O operations scripts may call.
    pub(crate) fn specs(&self) -> &[NativeSpec] {
        &self.specs
    }

    fn compile_on_this_thread(
        &self,
        name: &str,
        source: &[u8],
        text: &str,
    ) -> Result<spool_vm::Program, CompileError> {
        let fail = |diagnostics| CompileError::new(name, text, diagnostics);
        let file =
            spool_lang::parser::parse_bytes(source, self.prelude.expr_count).map_err(fail)?;
        let prelude = SourceFile {
            name: PRELUDE_NAME,
            text: spool_stdlib::PRELUDE,
            ast: &self.prelude,
        };
        let script = SourceFile {
            name,
            text,
            ast: &file,
        };
        spool_lang::compile(prelude, script, &self.specs).map_err(fail)
    }

    /// Declares a host I/O operation from its Spool signature, for example
    /// `"fn load_user(id: int) -> User"`: scripts compiled afterwards can
    /// call it, and each call suspends the calling task with an
    /// [`IoRequest`] whose `op` is the function's name. The host answers
    /// through [`Run::complete`] (or a [`Dispatcher`] and [`drive`]).
    /// Types in the signature must be built in or declared by the
    /// standard library (`Output`, `Request`, `Response`, `Json`, `Error`).
    pub fn register_io(&mut self, signature: &str) -> Result<(), String> {
        let decl = spool_lang::parse_native_sig(signature).map_err(|diagnostics| {
            let first = diagnostics.first().map(|d| d.message.clone());
            format!("bad signature `{signature}`: {}", first.unwrap_or_default())
        })?;
        let key = format!("io.{}", decl.name.name);
        self.specs.retain(|spec| spec.key != key);
        self.specs.push(NativeSpec {
            key,
            decl,
            io: true,
        });
        Ok(())
    }

    /// The native functions runs of this engine's programs bind.
    pub fn natives(&self) -> &spool_vm::NativeSet {
        &self.natives
    }
}

/// A compiled program, ready to run any number of times.
#[derive(Clone, Debug)]
pub struct Program {
    inner: Arc<spool_vm::Program>,
    natives: spool_vm::NativeSet,
}

impl Program {
    /// Starts a run with the script's arguments (`args()`).
    pub fn start(&self, args: Vec<String>) -> Run {
        Run::new(self.inner.clone(), &self.natives, args)
            .expect("the standard library binds every native")
    }

    /// The compiled bytecode.
    pub fn bytecode(&self) -> &Arc<spool_vm::Program> {
        &self.inner
    }

    /// The disassembly of the script's own functions (not the library's),
    /// one line per instruction with its source line.
    pub fn disassemble(&self) -> String {
        let script_file = self.inner.files.iter().position(|f| f != PRELUDE_NAME);
        let mut out = String::new();
        for (index, function) in self.inner.functions.iter().enumerate() {
            if Some(function.file.index()) == script_file {
                out.push_str(&spool_vm::disassemble(
                    &self.inner,
                    spool_vm::FuncIdx(index as u32),
                ));
            }
        }
        out
    }
}
