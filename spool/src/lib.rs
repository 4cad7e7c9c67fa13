//! Spool: an embeddable, statically typed scripting language with
//! coroutines, batched I/O and durable runs.
//!
//! A host compiles a script with an [`Engine`], starts a [`Run`] of the
//! [`Program`] and resumes it step by step ([`Run::resume`] returns a
//! [`Step`]), or hands it to a driver ([`drive`], [`drive_async`]) that
//! answers its I/O with a [`Dispatcher`]. A run is plain data: it can be
//! saved at any step ([`Engine::snapshot`]), restored in another process
//! ([`Engine::restore`]) and continued where it stopped.
//!
//! # Quick start
//!
//! ```
//! let engine = spool::Engine::new();
//! let program = engine.compile("hello.spl", "print(\"hi ${1 + 2}\")\nreturn 42").unwrap();
//! let mut run = program.start(vec![]);
//! let mut output = spool::CaptureOutput::default();
//! let spool::Step::Done(result) = run.resume(&mut output).unwrap() else { panic!() };
//! assert_eq!(output.lines, ["hi 3"]);
//! assert_eq!(run.get::<i64>(result).unwrap(), 42);
//! ```
//!
//! A top-level `return` ends the script with its value, which
//! [`Step::Done`] carries; without one a run finishes with `nil`.
//!
//! # Rust functions
//!
//! [`Engine::register_fn`] exposes a closure; its Spool signature comes
//! from the Rust types, calls are checked when scripts compile, and a
//! `Result`'s `Err` raises an error the script can catch:
//!
//! ```
//! let mut engine = spool::Engine::new();
//! engine.register_fn("div", |a: i64, b: i64| {
//!     if b == 0 {
//!         return Err(spool::HostError::new("DivByZero", "b is 0"));
//!     }
//!     Ok(a / b)
//! }).unwrap();
//! let source = "try { print(div(7, 0)) } catch e { print(\"${e.kind}: ${e.message}\") }";
//! let program = engine.compile("main.spl", source).unwrap();
//! let mut output = spool::CaptureOutput::default();
//! program.start(vec![]).resume(&mut output).unwrap();
//! assert_eq!(output.lines, ["DivByZero: b is 0"]);
//! ```
//!
//! # Rust types and serde
//!
//! A struct or enum deriving serde's `Serialize` and `Deserialize` is
//! declared to scripts with [`Engine::register_type`] (or on the way, by
//! naming it in a registered function) and converts both ways:
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct User { id: i64, name: String }
//!
//! let mut engine = spool::Engine::new();
//! engine.register_fn("load_user", |id: i64| User { id, name: format!("user {id}") }).unwrap();
//! let program = engine.compile("main.spl", "let u = load_user(7)\nreturn User(id: u.id + 1, name: u.name)").unwrap();
//! let mut run = program.start(vec![]);
//! let spool::Step::Done(result) = run.resume(&mut spool::CaptureOutput::default()).unwrap() else { panic!() };
//! assert_eq!(run.get::<User>(result).unwrap(), User { id: 8, name: "user 7".into() });
//! ```
//!
//! # I/O and dispatchers
//!
//! An I/O operation ([`Engine::register_io`]) suspends the calling task;
//! the requests of every task that is waiting reach the host together, as
//! one batch ([`Step::Io`]), and the host answers each
//! ([`Run::complete_with`]), in any order:
//!
//! ```
//! let mut engine = spool::Engine::new();
//! engine.register_io("fn fetch(id: int) -> str").unwrap();
//! let source = "let tasks = [1, 2, 3].map(fn(i: int) => spawn fetch(i))\nfor t in tasks { print(await t) }";
//! let program = engine.compile("main.spl", source).unwrap();
//! let mut run = program.start(vec![]);
//! let mut output = spool::CaptureOutput::default();
//! loop {
//!     match run.resume(&mut output).unwrap() {
//!         spool::Step::Io(batch) => {
//!             assert_eq!(batch.len(), 3); // one round trip for the three
//!             for request in batch {
//!                 let id: i64 = request.arg(0).unwrap();
//!                 run.complete_with(request.id, Ok(&format!("item {id}"))).unwrap();
//!             }
//!         }
//!         spool::Step::Done(_) => break,
//!         other => panic!("{other:?}"),
//!     }
//! }
//! assert_eq!(output.lines, ["item 1", "item 2", "item 3"]);
//! ```
//!
//! [`drive`] does this loop with a [`Dispatcher`] ([`PoolDispatcher`] runs
//! requests on threads); with the `tokio` feature, [`drive_async`] does it
//! from async code with an [`AsyncDispatcher`].
//!
//! # Limits
//!
//! [`Limits`] bound a run's heap (in bytes, checked before each
//! allocation, library functions included), call depth, tasks and
//! instructions per [`Run::resume`] (library functions charge for their
//! work). A spent budget pauses the run ([`Step::Paused`]) — it can be
//! saved there and continued — and an [`Interrupt`] stops it from another
//! thread:
//!
//! ```
//! let program = spool::Engine::new().compile("spin.spl", "while true {}").unwrap();
//! let mut run = program.start(vec![]);
//! run.set_limits(spool::Limits { budget: Some(10_000), ..spool::Limits::default() });
//! let step = run.resume(&mut spool::CaptureOutput::default()).unwrap();
//! assert!(matches!(step, spool::Step::Paused));
//! ```
//!
//! # Saving runs
//!
//! A run saved at any step restores in another process, with the Rust
//! functions of the engine bound again by name; with a state key
//! ([`Engine::set_state_key`]) saved runs are signed and a changed one is
//! refused:
//!
//! ```
//! let mut engine = spool::Engine::new();
//! engine.set_state_key(b"a secret of the host's");
//! let program = engine.compile("ask.spl", "let n: int = yield \"how many?\"\nprint(n * 2)").unwrap();
//! let mut run = program.start(vec![]);
//! let mut output = spool::CaptureOutput::default();
//! assert!(matches!(run.resume(&mut output), Ok(spool::Step::Yield(_))));
//! let mut saved = engine.snapshot(&run);
//!
//! let mut run = engine.restore(&saved).unwrap();
//! run.send_with(&21).unwrap();
//! run.resume(&mut output).unwrap();
//! assert_eq!(output.lines, ["42"]);
//!
//! let last = saved.len() - 1;
//! saved[last] ^= 1;
//! assert!(engine.restore(&saved).is_err());
//! ```
//!
//! The `spool` command line, its I/O operations and the REPL are the
//! `spool-cli` package, built on this one.

pub mod answer;
#[cfg(feature = "tokio")]
mod async_driver;
mod diagnostics;
pub mod dispatch;
pub mod driver;
mod error;
pub mod files;
mod host_fn;
#[cfg(test)]
mod library_tests;
mod register;
#[cfg(test)]
mod serde_data_tests;
pub mod session;
pub mod snapshot;
pub mod upgrade;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use spool_lang::{ast, NativeSpec, SourceFile};

#[cfg(feature = "tokio")]
pub use async_driver::{drive_async, AsyncDispatcher, AsyncDriven};
pub use diagnostics::CompileError;
pub use dispatch::{Completion, Dispatcher, FnDispatcher, PoolDispatcher};
pub use driver::{drive, drive_with, Driven, Hooks, Stop};
pub use error::Error;
pub use host_fn::{HostError, HostFunction, Signature};
/// The diagnostics crate compile errors implement
/// [`Diagnostic`](miette::Diagnostic) of.
pub use miette;
pub use session::Session;
pub use snapshot::{
    restore, restore_with_program, snapshot, snapshot_without_program, RestoreError,
};
pub use spool_lang::Diagnostic;
pub use spool_vm::serde_data;
pub use spool_vm::serde_data::{from_data, to_data, DataError, SpoolShape, SpoolType};
/// A compiled program's bytecode, functions and layouts (what
/// [`Program::bytecode`] gives and a saved run carries).
pub use spool_vm::Program as Bytecode;
pub use spool_vm::{
    CaptureOutput, Data, FuncIdx, Heap, Interrupt, IoId, IoRequest, IoResult, Limits, NativeSet,
    Output, Run, RunError, Sched, Status, Step, TraceFrame, Value, ValueError,
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

/// The largest main file [`Engine::compile_with_here`] compiles on the
/// calling thread. Nesting is bounded by the parser whatever the size; the
/// size bounds the chains of binary operators, along which passes recurse.
pub const SMALL_PROGRAM_BYTES: usize = 64 << 10;

/// The stack [`Engine::compile_with_here`] needs free on the calling
/// thread: the front end over any program it compiles there (a main file
/// of at most [`SMALL_PROGRAM_BYTES`], no imports) stays well within it.
pub const SMALL_PROGRAM_STACK: usize = 4 << 20;

/// Does [`Engine::compile_with_here`] compile the program whose main file
/// is `source` on the calling thread? When it is small and imports nothing
/// (judged by the word `import` anywhere, comments included).
fn is_small_program(source: &[u8]) -> bool {
    source.len() <= SMALL_PROGRAM_BYTES && !source.windows(6).any(|word| word == b"import")
}

/// Runs `work` on the calling thread, a panic reported as on the front
/// end's thread.
fn on_this_thread<T>(work: impl FnOnce() -> T) -> Result<T, FrontEndFailure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .map_err(|_| FrontEndFailure::Panicked)
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

/// Compiles scripts against the standard library and what the host
/// registered: Rust functions ([`Engine::register_fn`]), Rust types
/// ([`Engine::register_type`]) and I/O operations
/// ([`Engine::register_io`]).
///
/// The standard library comes compiled (at build time, [`library`]); an
/// engine whose host replaced none of its functions and declared no types
/// compiles a script without parsing or checking the library again.
#[derive(Clone)]
pub struct Engine {
    natives: spool_vm::NativeSet,
    /// The natives and I/O operations the host added, in order.
    host_specs: Vec<NativeSpec>,
    /// The keys of the library's natives that a host function of the same
    /// name replaced.
    replaced: Vec<String>,
    /// With host types: the standard library's Spool part followed by the
    /// declarations of the host's types, and its parse. `None`: the
    /// standard library's alone ([`library_prelude`]).
    prelude: Option<(Arc<str>, Arc<ast::File>)>,
    /// The host's type declarations, by name.
    host_types: Vec<(String, String)>,
    /// The key saved runs are signed with and checked against.
    state_key: Option<Arc<[u8]>>,
    /// Compile the library from source even when the compiled one would
    /// do (tests compare the two).
    #[cfg(test)]
    from_source: bool,
}

impl Default for Engine {
    fn default() -> Engine {
        Engine::new()
    }
}

// The names in the library compiled at build time (`build.rs`):
// `LIBRARY_TYPES`, `LIBRARY_NATIVES` (by name), `LIBRARY_NATIVE_KEYS`,
// `LIBRARY_FUNCTIONS` (all three sorted) and
// `LIBRARY_EXPR_COUNT`, so registering and parsing need no decoded library.
include!(concat!(env!("OUT_DIR"), "/library_names.rs"));

/// Has the library compiled at build time a function (native or written
/// in Spool) called `name`?
fn library_has_function(name: &str) -> bool {
    LIBRARY_FUNCTIONS.binary_search(&name).is_ok()
}

/// The standard library compiled when this crate was built (`build.rs`),
/// decoded.
fn decode_library() -> spool_lang::Library {
    let bytes = include_bytes!(concat!(env!("OUT_DIR"), "/library.bin"));
    spool_lang::Library::from_bytes(bytes).expect("the library compiled at build time decodes")
}

/// The library compiled at build time, decoded once per process and kept
/// for every compile and session that starts from a copy of it.
static LIBRARY: OnceLock<spool_lang::Library> = OnceLock::new();

/// Has a compile had a decoded library of its own ([`compile_from_library`])?
static FIRST_COMPILE_DONE: AtomicBool = AtomicBool::new(false);

/// The standard library compiled when this crate was built, decoded once
/// per process.
pub(crate) fn library() -> &'static spool_lang::Library {
    LIBRARY.get_or_init(decode_library)
}

/// Compiles `files` against the library compiled at build time and the
/// host's `natives`. The first compile of a process gets a decoded library
/// of its own and compiles from it without copying it, as a process that
/// compiles once (the command line running a script) needs nothing more;
/// the compiles after it start from copies of the library [`library`]
/// keeps (a second process-wide decode, paid once).
fn compile_from_library(
    files: &[SourceFile<'_>],
    natives: &[NativeSpec],
) -> Result<spool_vm::Program, Vec<spool_lang::Diagnostic>> {
    if LIBRARY.get().is_none() && !FIRST_COMPILE_DONE.swap(true, Ordering::Relaxed) {
        return decode_library().compile_once(files, natives);
    }
    spool_lang::compile_program_with(library(), files, natives)
}

/// The library compiled at build time, as [`LibraryIn::Compiled`] names
/// it: decoded (by [`library`]) only when it is looked at, since a compile
/// of it goes through [`compile_from_library`].
pub(crate) struct CompiledLibrary;

impl std::ops::Deref for CompiledLibrary {
    type Target = spool_lang::Library;

    fn deref(&self) -> &spool_lang::Library {
        library()
    }
}

/// The standard library's natives with their parsed signatures, parsed
/// once per process, when an engine compiles the whole library.
fn library_specs() -> &'static [NativeSpec] {
    static SPECS: OnceLock<Vec<NativeSpec>> = OnceLock::new();
    SPECS.get_or_init(|| {
        spool_stdlib::natives()
            .iter()
            .map(|native| NativeSpec {
                key: native.key.to_string(),
                decl: spool_lang::parse_native_sig(native.sig).expect("library signatures parse"),
                io: false,
            })
            .collect()
    })
}

/// The standard library's prelude, parsed once per process when needed.
fn library_prelude() -> &'static ast::File {
    static PRELUDE: OnceLock<ast::File> = OnceLock::new();
    PRELUDE.get_or_init(|| spool_lang::parse(spool_stdlib::PRELUDE, 0).expect("the prelude parses"))
}

/// The library's Spool part and the natives, to compile a program or start
/// a session from.
pub(crate) enum LibraryIn<'a> {
    /// The library compiled at build time, and the host's natives.
    Compiled(CompiledLibrary, &'a [NativeSpec]),
    /// The prelude to compile and every native (the host replaced a
    /// library function or declared types).
    Source(SourceFile<'a>, Vec<NativeSpec>),
}

impl Engine {
    /// An engine with the standard library.
    pub fn new() -> Engine {
        Engine {
            natives: spool_stdlib::native_set(),
            host_specs: Vec::new(),
            replaced: Vec::new(),
            prelude: None,
            host_types: Vec::new(),
            state_key: None,
            #[cfg(test)]
            from_source: false,
        }
    }

    /// Compiles a script. `name` is the file name shown in diagnostics and
    /// stack traces. A script that imports other files (LANGUAGE.md §11)
    /// needs [`Engine::compile_with`] or [`Engine::compile_path`]: here
    /// each of its imports is a compile error.
    pub fn compile(&self, name: &str, source: &str) -> Result<Program, CompileError> {
        self.compile_bytes(name, source.as_bytes())
    }

    /// Compiles a program of several files: the main file `name` with its
    /// text `source`, and every file its imports name, directly or through
    /// other imports, each loaded once by `load`. `load` is given a file's
    /// name in the program: its path relative to the main file's folder
    /// with `.` and `..` resolved (`steps/billing.spl`), as diagnostics
    /// and stack traces show it; it answers the file's bytes, or why it
    /// cannot (shown at the import). [`files::beside`] reads them from
    /// the file system; a map of texts in memory serves as well:
    ///
    /// ```
    /// use std::collections::HashMap;
    /// let files = HashMap::from([(
    ///     "lib/greet.spl".to_string(),
    ///     "fn greet(name: str) -> str { return \"hello, ${name}\" }".to_string(),
    /// )]);
    /// let main = "import \"lib/greet.spl\" as g\nprint(g.greet(\"you\"))";
    /// let program = spool::Engine::new()
    ///     .compile_with("main.spl", main.as_bytes(), |name: &str| {
    ///         files.get(name).map(|text| text.clone().into_bytes()).ok_or("no such file".to_string())
    ///     })
    ///     .unwrap();
    /// let mut output = spool::CaptureOutput::default();
    /// program.start(vec![]).resume(&mut output).unwrap();
    /// assert_eq!(output.lines, ["hello, you"]);
    /// ```
    pub fn compile_with(
        &self,
        name: &str,
        source: &[u8],
        load: impl FnMut(&str) -> Result<Vec<u8>, String> + Send,
    ) -> Result<Program, CompileError> {
        self.compile_program(false, name, source, load)
    }

    /// [`Engine::compile_with`] for a caller whose thread has at least
    /// [`SMALL_PROGRAM_STACK`] bytes of stack free, such as a command
    /// line's main thread: a main file of at most [`SMALL_PROGRAM_BYTES`]
    /// that imports nothing is compiled on the calling thread, which saves
    /// starting the front end's own thread (a fraction of a millisecond,
    /// much of a short script's start-up); any other program is compiled
    /// on that thread, as [`Engine::compile_with`] does. The outcome is
    /// the same either way.
    pub fn compile_with_here(
        &self,
        name: &str,
        source: &[u8],
        load: impl FnMut(&str) -> Result<Vec<u8>, String> + Send,
    ) -> Result<Program, CompileError> {
        self.compile_program(is_small_program(source), name, source, load)
    }

    /// Compiles the program of the main file `name` and its imports,
    /// `here` on the calling thread or else on the front end's.
    fn compile_program(
        &self,
        here: bool,
        name: &str,
        source: &[u8],
        mut load: impl FnMut(&str) -> Result<Vec<u8>, String> + Send,
    ) -> Result<Program, CompileError> {
        let work = || files::compile_program(self, name, source, &mut load);
        let outcome = if here {
            on_this_thread(work)
        } else {
            on_front_end_stack(work)
        };
        match outcome {
            Ok(Ok((program, texts))) => Ok(Program {
                inner: Arc::new(program),
                natives: self.natives.clone(),
                sources: texts.into(),
            }),
            Ok(Err(error)) => Err(error),
            Err(failure) => {
                let text = String::from_utf8_lossy(source);
                Err(CompileError::internal(name, &text, failure))
            }
        }
    }

    /// Compiles the program whose main file is at `path`, reading it and
    /// its imports from the file system ([`files::beside`]): regular files
    /// of at most [`files::MAX_FILE_BYTES`] each. The main file is named
    /// `path` as given; a main file that cannot be read is a compile error
    /// saying why.
    pub fn compile_path(&self, path: impl AsRef<std::path::Path>) -> Result<Program, CompileError> {
        let path = path.as_ref();
        let name = path.to_string_lossy();
        match files::read_regular(path) {
            Ok(bytes) => self.compile_with(&name, &bytes, files::beside(path)),
            Err(why) => Err(CompileError::new(
                &name,
                "",
                vec![spool_lang::Diagnostic::new(
                    spool_lang::diag::codes::IMPORT,
                    format!("cannot read `{name}`: {why}"),
                    spool_lang::ast::Span::default(),
                    "not read",
                )],
            )),
        }
    }

    /// Compiles a script given as bytes; invalid UTF-8 is a diagnostic.
    pub fn compile_bytes(&self, name: &str, source: &[u8]) -> Result<Program, CompileError> {
        let text = String::from_utf8_lossy(source).into_owned();
        match on_front_end_stack(|| self.compile_on_this_thread(name, source, &text)) {
            Ok(result) => result.map(|program| Program {
                inner: Arc::new(program),
                natives: self.natives.clone(),
                sources: Arc::from([(name.to_string(), text.clone())]),
            }),
            Err(failure) => Err(CompileError::internal(name, &text, failure)),
        }
    }

    /// The prelude's text: the library's and the host's declarations.
    pub(crate) fn prelude_text(&self) -> &str {
        match &self.prelude {
            Some((text, _)) => text,
            None => spool_stdlib::PRELUDE,
        }
    }

    /// The parsed prelude (the library's and the host's declarations).
    pub(crate) fn prelude(&self) -> &ast::File {
        match &self.prelude {
            Some((_, file)) => file,
            None => library_prelude(),
        }
    }

    /// The number of the prelude's expressions: a script's first
    /// expression id.
    pub(crate) fn first_expr(&self) -> u32 {
        match &self.prelude {
            Some((_, file)) => file.expr_count,
            None => LIBRARY_EXPR_COUNT,
        }
    }

    /// The natives and I/O operations scripts may call: the library's
    /// the host did not replace, then the host's.
    pub(crate) fn specs(&self) -> Vec<NativeSpec> {
        let library = library_specs().iter();
        let kept = library.filter(|spec| !self.replaced.contains(&spec.key));
        kept.chain(&self.host_specs).cloned().collect()
    }

    /// What to compile against: the library compiled at build time when
    /// the host changed nothing in it (no types of its own, no library
    /// function replaced, no function named as one of the library's), or
    /// else the whole library from source.
    pub(crate) fn library_in(&self) -> LibraryIn<'_> {
        let unchanged = self.prelude.is_none()
            && self.replaced.is_empty()
            && !self
                .host_specs
                .iter()
                .any(|spec| library_has_function(&spec.decl.name.name));
        #[cfg(test)]
        let unchanged = unchanged && !self.from_source;
        if unchanged {
            return LibraryIn::Compiled(CompiledLibrary, &self.host_specs);
        }
        let prelude = SourceFile {
            name: PRELUDE_NAME,
            text: self.prelude_text(),
            ast: self.prelude(),
        };
        LibraryIn::Source(prelude, self.specs())
    }

    fn compile_on_this_thread(
        &self,
        name: &str,
        source: &[u8],
        text: &str,
    ) -> Result<spool_vm::Program, CompileError> {
        let fail = |diagnostics| CompileError::new(name, text, diagnostics);
        let file = spool_lang::parser::parse_bytes(source, self.first_expr()).map_err(fail)?;
        let script = SourceFile {
            name,
            text,
            ast: &file,
        };
        self.library_in().compile(&[script]).map_err(fail)
    }

    /// The native functions runs of this engine's programs bind.
    pub fn natives(&self) -> &spool_vm::NativeSet {
        &self.natives
    }
}

impl LibraryIn<'_> {
    /// Compiles the program of `files` (the main file first).
    pub(crate) fn compile(
        &self,
        files: &[SourceFile<'_>],
    ) -> Result<spool_vm::Program, Vec<spool_lang::Diagnostic>> {
        match self {
            LibraryIn::Compiled(CompiledLibrary, natives) => compile_from_library(files, natives),
            LibraryIn::Source(prelude, natives) => {
                spool_lang::compile_program(*prelude, files, natives)
            }
        }
    }
}

/// A compiled program, ready to run any number of times.
#[derive(Clone, Debug)]
pub struct Program {
    inner: Arc<spool_vm::Program>,
    natives: spool_vm::NativeSet,
    /// The text of each of the program's files by name (the main file
    /// first), for showing the lines errors point at.
    sources: Arc<[(String, String)]>,
}

impl Program {
    /// The text of each of the program's files by name, the main file
    /// first, then the files it imports (named relative to the main file's
    /// folder), as they were compiled.
    pub fn sources(&self) -> &[(String, String)] {
        &self.sources
    }

    /// A run's error as the command line shows it — kind, message and
    /// trace with `file:line:column` — followed by the script's line the
    /// innermost script frame points at, with a caret under the column.
    ///
    /// ```
    /// let program = spool::Engine::new().compile("main.spl", "let xs = [1]\nprint(xs[3])").unwrap();
    /// let error = program.start(vec![]).resume(&mut spool::CaptureOutput::default()).unwrap_err();
    /// assert_eq!(
    ///     program.explain(&error),
    ///     "Index: index 3 out of range for list of length 1\n    \
    ///      at main (main.spl:2:7)\n\n   2 | print(xs[3])\n     |       ^\n"
    /// );
    /// ```
    pub fn explain(&self, error: &RunError) -> String {
        let mut text = format!("{error}\n");
        let source_of = |file: &str| {
            let found = self.sources.iter().find(|(name, _)| name == file);
            found.map(|(_, text)| text.as_str())
        };
        let frame = error.trace.iter().find(|f| source_of(&f.file).is_some());
        let line = frame.and_then(|f| {
            let number = usize::try_from(f.line).ok()?;
            let text = source_of(&f.file)?;
            Some((f, text.lines().nth(number.checked_sub(1)?)?))
        });
        if let Some((frame, line)) = line {
            let number = frame.line.to_string();
            let gutter = " ".repeat(number.len());
            let column = (frame.col as usize).saturating_sub(1);
            let shown: String = line.chars().take(200).collect();
            let pad: String = line
                .chars()
                .take(column.min(200))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            text.push_str(&format!("\n   {number} | {shown}\n   {gutter} | {pad}^\n"));
        }
        text
    }

    /// Starts a run with the script's arguments (`args()`).
    pub fn start(&self, args: Vec<String>) -> Run {
        Run::new(self.inner.clone(), &self.natives, args)
            .expect("the standard library binds every native")
    }

    /// Starts a run that calls the script's top-level function `name`
    /// (one the script declares, not the library's) with `args`.
    ///
    /// The run first runs the script's top level to its end, as
    /// [`Program::start`] would (with no script arguments): its globals
    /// are set and its defers run, and what it prints, yields
    /// ([`Step::Yield`]) and asks for ([`Step::Io`]) reaches the host as
    /// usual. A top-level `return` ends the top level early; its value is
    /// dropped. Then the function is called, and its result ends the run:
    /// [`Step::Done`] carries it ([`Run::get`] reads it). Tasks the top
    /// level spawned go on meanwhile, and the run finishes once every task
    /// has. An error in the top level ends the run as in any script.
    ///
    /// Each argument is checked, all the way down, against its
    /// parameter's type; functions sharing a name are told apart by their
    /// arguments. An unknown name, a wrong number of arguments and an
    /// argument that does not fit are refused with [`Error::Value`], whose
    /// message names the function, the parameter, the place inside the
    /// value and both types. A type parameter of a generic function takes
    /// any value.
    ///
    /// Answers to the function's `yield`s go through [`Run::send_with`],
    /// which checks them against the type the *top level's* `yield`s
    /// receive; when the function's receive another type (its
    /// [`spool_vm::program::FnSignature::receives`], in
    /// [`Program::bytecode`]'s `signatures`), answer with [`Run::send`].
    ///
    /// The signatures are known to programs compiled by an [`Engine`]; a
    /// run of a call saves and restores like any run.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Item { name: String, price: i64 }
    ///
    /// let engine = spool::Engine::new();
    /// let source = "let tax = 2\n\
    ///               fn total(items: [Item], extra: int) -> int {\n\
    ///                 return items.map(fn(i: Item) => i.price).fold(tax + extra, fn(a: int, b: int) => a + b)\n\
    ///               }\n\
    ///               struct Item { name: str, price: int }";
    /// let program = engine.compile("shop.spl", source).unwrap();
    ///
    /// let items = vec![Item { name: "tea".into(), price: 3 }, Item { name: "cake".into(), price: 5 }];
    /// let args = vec![spool::to_data(&items).unwrap(), spool::Data::Int(10)];
    /// let mut run = program.call("total", args).unwrap();
    /// let spool::Step::Done(total) = run.resume(&mut spool::CaptureOutput::default()).unwrap() else { panic!() };
    /// assert_eq!(run.get::<i64>(total).unwrap(), 20);
    ///
    /// let wrong = vec![spool::Data::List(vec![spool::Data::Int(3)]), spool::Data::Int(10)];
    /// let error = program.call("total", wrong).unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     "argument 1 of `total` (`items: [Item]`) does not fit: at [0]: expected `Item`, found the int 3"
    /// );
    /// ```
    pub fn call(&self, name: &str, args: Vec<Data>) -> Result<Run, Error> {
        let (signature, args) = self.checked_call(name, args)?;
        let mut run = self.start(vec![]);
        let values = args
            .iter()
            .map(|data| data.into_value(run.heap_mut(), &self.inner))
            .collect::<Result<Vec<_>, String>>()
            .map_err(Error::Value)?;
        run.call_after_main(signature.func, &values)
            .map_err(Error::Value)?;
        Ok(run)
    }

    /// The function `name` whose parameters `args` fit, and `args` as
    /// checked (records renamed to the script's types); or why none fits.
    fn checked_call(
        &self,
        name: &str,
        args: Vec<spool_vm::Data>,
    ) -> Result<(&spool_vm::program::FnSignature, Vec<spool_vm::Data>), Error> {
        let signatures = &self.inner.signatures;
        let named: Vec<_> = signatures.iter().filter(|s| s.name == name).collect();
        if named.is_empty() {
            let known: Vec<_> = signatures.iter().map(|s| format!("`{}`", s.name)).collect();
            return Err(Error::Value(format!(
                "the script has no top-level function `{name}` (it has {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        let counted: Vec<_> = named
            .iter()
            .filter(|s| s.params.len() == args.len())
            .collect();
        let mut first_mismatch = None;
        for signature in counted {
            match self.check_args(signature, args.clone()) {
                Ok(checked) => return Ok((signature, checked)),
                Err(why) => {
                    first_mismatch.get_or_insert(why);
                }
            }
        }
        Err(Error::Value(first_mismatch.unwrap_or_else(|| {
            arity_mismatch(name, &named, args.len())
        })))
    }

    /// `args` checked against the parameters of `signature`, which are as
    /// many.
    fn check_args(
        &self,
        signature: &spool_vm::program::FnSignature,
        mut args: Vec<spool_vm::Data>,
    ) -> Result<Vec<spool_vm::Data>, String> {
        for (index, (data, (param, ty))) in args.iter_mut().zip(&signature.params).enumerate() {
            spool_vm::tasks::check::check(data, ty, &self.inner).map_err(|why| {
                format!(
                    "argument {} of `{}` (`{param}: {ty}`) does not fit: {why}",
                    index + 1,
                    signature.name
                )
            })?;
        }
        Ok(args)
    }

    /// The compiled bytecode.
    pub fn bytecode(&self) -> &Arc<Bytecode> {
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

/// Why no function `name` takes `given` arguments: what each takes.
fn arity_mismatch(name: &str, named: &[&spool_vm::program::FnSignature], given: usize) -> String {
    let takes: Vec<String> = named
        .iter()
        .map(|signature| {
            let params: Vec<&str> = signature.params.iter().map(|(p, _)| p.as_str()).collect();
            match params.len() {
                0 => "no arguments".to_string(),
                1 => format!("1 argument ({})", params[0]),
                count => format!("{count} arguments ({})", params.join(", ")),
            }
        })
        .collect();
    format!("`{name}` takes {}, not {given}", takes.join(" or "))
}
