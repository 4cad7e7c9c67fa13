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
//! let mut host = spool::CaptureHost::default();
//! assert!(matches!(run.resume(&mut host), Ok(spool::Step::Done(_))));
//! assert_eq!(host.lines, ["hi 3"]);
//! ```
//!
//! With the default `cli` feature it also holds the `spool` command line.

pub mod answer;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod cli_io;
mod diagnostics;
pub mod dispatch;
#[cfg(feature = "cli")]
pub mod durable;
#[cfg(feature = "cli")]
pub mod editor;
#[cfg(feature = "cli")]
pub mod repl;
pub mod session;
pub mod snapshot;
#[cfg(feature = "cli")]
pub mod trace;
pub mod upgrade;

use std::sync::Arc;

use spool_lang::{ast, NativeSpec, SourceFile};

pub use diagnostics::CompileError;
pub use dispatch::{Completion, Dispatcher, FnDispatcher, PoolDispatcher};
pub use session::Session;
pub use snapshot::{
    restore, restore_with_program, snapshot, snapshot_without_program, RestoreError,
};
pub use spool_lang::Diagnostic;
pub use spool_vm::{
    CaptureHost, Data, Host, IoId, IoRequest, IoResult, Limits, Run, RunError, Status, Step,
    TraceFrame, Value,
};

/// Runs `run` to its end: answers its I/O with `dispatcher` (a batch per
/// I/O phase, results fed back as they finish) and its top-level `yield`s
/// with `answer` (given the yielded value; its result is sent back).
/// Returns the main program's result or the run's error. Requests the run
/// was already waiting for (a restored run's [`Run::pending_io`]) are
/// handed to the dispatcher first, with their ids.
///
/// # When to save a run
///
/// A host that keeps runs durable saves them ([`snapshot`]) when
/// [`Run::resume`] returns [`Step::Io`], *before* it hands the batch to
/// its dispatcher (write-ahead), as `spool run --state` does. The saved
/// run then records those requests as in flight; after a crash, the host
/// restores it and issues [`Run::pending_io`] again with the same ids
/// (at-least-once: a request may have been carried out already, and
/// results that arrived after the save are asked for again), and no script
/// code runs twice. A host with timers records each one's deadline with
/// [`Run::set_io_deadline`] before saving, so that a restored run waits
/// only for what is left ([`Run::io_deadline`]). Save at each
/// [`Step::Yield`] too, before answering it. Saving anywhere else is
/// allowed (any `Step`, or after [`Step::Paused`]) but a save taken after
/// results were delivered repeats less and costs one more write per phase.
pub fn drive(
    run: &mut Run,
    host: &mut dyn Host,
    dispatcher: &mut dyn Dispatcher,
    mut answer: impl FnMut(&mut Run, Value) -> Value,
) -> Result<Value, RunError> {
    let pending = run.pending_io();
    if !pending.is_empty() {
        dispatcher.submit(pending);
    }
    loop {
        match run.resume(host)? {
            Step::Done(value) => return Ok(value),
            Step::Paused => {}
            Step::Yield(value) => {
                let reply = answer(run, value);
                run.send(reply);
            }
            Step::Io(batch) => {
                if !batch.is_empty() {
                    dispatcher.submit(batch);
                }
                let finished = dispatcher.wait();
                if finished.is_empty() {
                    for request in run.pending_io() {
                        let message = "the dispatcher dropped this request".to_string();
                        run.complete(request.id, Err(message));
                    }
                }
                for completion in finished {
                    run.complete(completion.id, completion.result);
                }
            }
        }
    }
}

/// The file name the standard library's Spool part is compiled under.
pub const PRELUDE_NAME: &str = "prelude.spl";

/// Stack for the front end: it recurses over the tree, and the parser
/// bounds the tree's depth, so this much always suffices.
const FRONT_END_STACK: usize = 256 << 20;

/// Runs `work` on a thread with a stack deep enough for the front end;
/// `None` if it panicked (an internal error, reported as such).
pub(crate) fn on_front_end_stack<T: Send>(work: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("spool-compile".into())
            .stack_size(FRONT_END_STACK)
            .spawn_scoped(scope, work)
            .ok()?
            .join()
            .ok()
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
            Some(result) => result.map(|program| Program {
                inner: Arc::new(program),
                natives: self.natives.clone(),
            }),
            None => Err(CompileError::internal(name, &text)),
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

    /// An engine with the standard library and the command line's I/O
    /// operations (LANGUAGE.md §6): `read_file`, `write_file`, `list_dir`,
    /// `exec`, `http`, `http_get`, `sleep`, `now`, `env`, `input`.
    #[cfg(feature = "cli")]
    pub fn with_cli_io() -> Engine {
        let mut engine = Engine::new();
        for signature in cli_io::SIGNATURES {
            engine
                .register_io(signature)
                .expect("the command line's signatures parse");
        }
        engine
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
