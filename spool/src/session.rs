//! Interactive sessions: inputs compiled one after another and run on one
//! [`Run`], so later inputs see earlier bindings, functions and types, the
//! heap and suspended coroutines. The REPL is built on this; an embedder
//! can build a notebook or a console on it the same way.
//!
//! A session saves to the snapshot format like any run (the program
//! embedded), with its inputs kept in a host note: loading compiles them
//! again, checks that this gives exactly the saved program, and continues
//! with the saved run.

use std::sync::Arc;

use spool_vm::Program;

use crate::{snapshot, CompileError, Engine, LibraryIn, Run, RunError, Value};

/// The host note that holds a saved session's inputs.
pub const INPUTS_NOTE: &str = "spool.repl.inputs";

/// An interactive session: a compiler that remembers declarations and a
/// run that keeps the values.
pub struct Session {
    engine: Engine,
    compiler: spool_lang::Session,
    run: Run,
    /// Every input that compiled, with its name, in order.
    inputs: Vec<(String, String)>,
    /// Reads the files inputs import ([`Session::set_loader`]).
    loader: Option<Loader>,
}

/// Gives an imported file's bytes by its name, or why it cannot.
pub type Loader = Box<dyn FnMut(&str) -> Result<Vec<u8>, String> + Send + Sync>;

/// One input, compiled and ready to run: drive [`Session::run`] to its
/// end.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The type of the input's final expression, if it ends with one whose
    /// type is not `nil`; the run's result is then its value.
    pub result: Option<String>,
}

impl Session {
    /// A new, empty session of `engine`'s language.
    pub fn new(engine: &Engine) -> Session {
        let compiler = new_compiler(engine);
        let mut compiler = compiler.expect("the standard library compiles");
        let start = crate::on_front_end_stack(|| compiler.add("<start>", ""));
        let cell = start
            .ok()
            .and_then(Result::ok)
            .expect("an empty input compiles");
        let program = Arc::new(cell.program);
        let mut run = Run::new(program, engine.natives(), Vec::new())
            .expect("the standard library binds every native");
        let _ = run.resume(&mut crate::CaptureOutput::default());
        Session {
            engine: engine.clone(),
            compiler,
            run,
            inputs: vec![("<start>".to_string(), String::new())],
            loader: None,
        }
    }

    /// Lets inputs import files (LANGUAGE.md §11): `loader` reads each by
    /// its name, the path the input wrote with `.` and `..` resolved
    /// (`crate::files::beside("input")` reads them relative to the current
    /// directory). Without a loader an `import` is a compile error.
    pub fn set_loader(&mut self, loader: Loader) {
        self.loader = Some(loader);
    }

    /// Compiles an input with the session's loader, keeping the texts of
    /// the files it read for diagnostics.
    fn compile_input(
        compiler: &mut spool_lang::Session,
        loader: &mut Option<Loader>,
        name: &str,
        text: &str,
    ) -> Result<spool_lang::Cell, CompileError> {
        let mut read: Vec<(String, String)> = vec![(name.to_string(), text.to_string())];
        let compiled = crate::on_front_end_stack(|| {
            let mut load = |file: &str| {
                let loaded = match loader.as_mut() {
                    Some(loader) => loader(file),
                    None => Err("this session reads no files".to_string()),
                };
                if let Ok(bytes) = &loaded {
                    read.push((
                        file.to_string(),
                        String::from_utf8_lossy(bytes).into_owned(),
                    ));
                }
                loaded
            };
            compiler.add_with(name, text, &mut load)
        });
        match compiled {
            Ok(Ok(cell)) => Ok(cell),
            Ok(Err(diagnostics)) => Err(CompileError::of_files(read, diagnostics)),
            Err(failure) => Err(CompileError::internal(name, text, failure)),
        }
    }

    /// Compiles `text` (named `name` in diagnostics and traces) and sets the
    /// run up to execute it. On a compile error nothing changes.
    pub fn prepare(&mut self, name: &str, text: &str) -> Result<Prepared, CompileError> {
        let cell = Session::compile_input(&mut self.compiler, &mut self.loader, name, text)?;
        // The fingerprint is computed when the session is saved.
        self.run
            .call_main(Arc::new(cell.program), cell.main)
            .map_err(|_| CompileError::internal(name, text, crate::FrontEndFailure::Panicked))?;
        self.inputs.push((name.to_string(), text.to_string()));
        Ok(Prepared {
            result: cell.result,
        })
    }

    /// The run the inputs execute on.
    pub fn run(&mut self) -> &mut Run {
        &mut self.run
    }

    /// The type of the expression `text`, without running it.
    pub fn type_of(&self, text: &str) -> Result<String, CompileError> {
        match crate::on_front_end_stack(|| self.compiler.type_of(text)) {
            Ok(Ok(ty)) => Ok(ty),
            Ok(Err(diagnostics)) => Err(CompileError::new("<type>", text, diagnostics)),
            Err(failure) => Err(CompileError::internal("<type>", text, failure)),
        }
    }

    /// Every name in scope, sorted.
    pub fn names(&self) -> Vec<String> {
        self.compiler.names()
    }

    /// Fields and methods of the value `text` denotes, or the variants of
    /// the enum it names.
    pub fn members(&self, text: &str) -> Vec<String> {
        crate::on_front_end_stack(|| self.compiler.members(text)).unwrap_or_default()
    }

    /// The disassembly of the session's functions called `name`; `None`
    /// when there is none.
    pub fn disassemble(&self, name: &str) -> Option<String> {
        let functions = self.compiler.functions_named(name);
        if functions.is_empty() {
            return None;
        }
        let program = self.run.program();
        let text = functions
            .into_iter()
            .map(|func| spool_vm::disassemble(program, func))
            .collect();
        Some(text)
    }

    /// `value` as the REPL shows a result: like `print`, but a string is
    /// quoted as it is inside a list.
    pub fn show(&self, value: Value) -> String {
        let text = self.run.display(value);
        match self.run.heap().str(value) {
            Some(_) => {
                let mut quoted = String::new();
                spool_vm::format::write_quoted(&mut quoted, &text);
                quoted
            }
            None => text,
        }
    }

    /// The whole session as bytes in the snapshot format.
    pub fn save(&mut self) -> Vec<u8> {
        if self.run.program().fingerprint == 0 {
            let mut program = Program::clone(&self.run.detach_program());
            program.fingerprint = snapshot::fingerprint(&program);
            self.run.attach_program(Arc::new(program));
        }
        let inputs = encode_inputs(&self.inputs);
        self.run.set_host_note(INPUTS_NOTE, inputs);
        snapshot::snapshot(&self.run)
    }

    /// A session saved by [`Session::save`], continued with `engine`'s
    /// language (which must be the one it was saved with).
    pub fn load(engine: &Engine, bytes: &[u8]) -> Result<Session, String> {
        Session::load_with(engine, bytes, None)
    }

    /// [`Session::load`] with a loader for the files the inputs import,
    /// read again (see [`Session::set_loader`]).
    pub fn load_with(
        engine: &Engine,
        bytes: &[u8],
        mut loader: Option<Loader>,
    ) -> Result<Session, String> {
        let run = snapshot::restore(bytes).map_err(|e| e.to_string())?;
        let note = run
            .host_note(INPUTS_NOTE)
            .ok_or("this is a saved run, not a saved REPL session (use `spool resume`)")?;
        let inputs = decode_inputs(note).ok_or("the session's inputs are damaged")?;
        let mut compiler = new_compiler(engine).map_err(|_| "the library does not compile")?;
        for (name, text) in &inputs {
            let added = Session::compile_input(&mut compiler, &mut loader, name, text);
            if added.is_err() {
                return Err(format!(
                    "the saved input {name} no longer compiles with this version of Spool"
                ));
            }
        }
        let mut program = compiler.program();
        program.fingerprint = snapshot::fingerprint(&program);
        if program.fingerprint != run.program().fingerprint {
            return Err(
                "the saved session was made by a different version of Spool or its library".into(),
            );
        }
        Ok(Session {
            engine: engine.clone(),
            compiler,
            run,
            inputs,
            loader,
        })
    }

    /// Forgets everything but the loader: a fresh session of the same
    /// language.
    pub fn reset(&mut self) {
        let loader = self.loader.take();
        *self = Session::new(&self.engine);
        self.loader = loader;
    }

    /// The number in the name of the last input, when inputs are named
    /// `[N]` as the REPL names them (0 when there is none).
    pub fn last_input_number(&self) -> usize {
        let last = self.inputs.last().map_or("", |(name, _)| name.as_str());
        let digits = last.trim_start_matches('[').trim_end_matches(']');
        digits.parse().unwrap_or(0)
    }

    /// The number of inputs that compiled (the empty start included).
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }
}

/// Formats the error of an input's run, as the command line does.
pub fn describe_error(error: &RunError) -> String {
    format!("{}: {}", error.kind, error.message)
}

fn new_compiler(engine: &Engine) -> Result<spool_lang::Session, Vec<spool_lang::Diagnostic>> {
    let library = engine.library_in();
    crate::on_front_end_stack(|| match &library {
        LibraryIn::Compiled(library, natives) => {
            spool_lang::Session::with_library(library, natives)
        }
        LibraryIn::Source(prelude, natives) => spool_lang::Session::new(*prelude, natives),
    })
    .unwrap_or_else(|_| Err(Vec::new()))
}

/// Inputs as one string: for each, the name's and the text's lengths in
/// bytes and then both, so any text survives.
fn encode_inputs(inputs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (name, text) in inputs {
        out.push_str(&format!("{}:{}:{name}{text}", name.len(), text.len()));
    }
    out
}

fn decode_inputs(mut encoded: &str) -> Option<Vec<(String, String)>> {
    let mut inputs = Vec::new();
    while !encoded.is_empty() {
        let (name_len, rest) = encoded.split_once(':')?;
        let (text_len, rest) = rest.split_once(':')?;
        let (name_len, text_len): (usize, usize) = (name_len.parse().ok()?, text_len.parse().ok()?);
        let name = rest.get(..name_len)?;
        let text = rest.get(name_len..name_len.checked_add(text_len)?)?;
        inputs.push((name.to_string(), text.to_string()));
        encoded = &rest[name_len + text_len..];
    }
    Some(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_survive_encoding() {
        let inputs = vec![
            ("[1]".to_string(), "let x = 1".to_string()),
            ("[2]".to_string(), "print(\"a:b\")\n12:3:".to_string()),
            ("[3]".to_string(), String::new()),
        ];
        assert_eq!(decode_inputs(&encode_inputs(&inputs)), Some(inputs));
        assert_eq!(decode_inputs("3:x"), None);
        assert_eq!(decode_inputs("99:1:ab"), None);
    }
}
