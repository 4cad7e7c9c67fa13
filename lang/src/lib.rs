//! spool-lang: the front end. Source text goes through the lexer
//! ([`lexer`]), the LR grammar ([`parser`]) into an [`ast::File`], then the
//! checker resolves names and types and the compiler emits a
//! [`spool_vm::Program`].
//!
//! Architecture invariant: `lang` never prints and never touches the file
//! system; every problem is returned as a [`Diagnostic`].

pub mod ast;
pub mod compile;
pub mod diag;
pub mod lexer;
pub mod parser;
pub mod suggest;
pub mod types;

pub use compile::{
    compile, compile_program, compile_program_with, import_name, is_builtin_type, Cell, Library,
    NativeSpec, Session, SourceFile,
};
pub use diag::{Diagnostic, Label};
pub use parser::{parse, parse_native_sig};
