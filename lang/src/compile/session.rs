//! Interactive sessions: inputs compiled one after another against what the
//! earlier ones declared (the REPL).
//!
//! Each input becomes a new `main` function appended to a growing program,
//! so a run continues on it with `Run::call_main` and keeps its heap and
//! globals. Every top-level `let` is a global. A later `let`, `fn`, `struct`
//! or `enum` of the same name replaces the earlier one for the inputs that
//! follow; code compiled earlier keeps what it was compiled against (as in
//! the ML and Swift toplevels), since calls are bound when compiled. An
//! input that does not compile changes nothing: it is compiled on a copy of
//! the session's state, which is kept only on success.

use std::collections::HashSet;

use spool_vm::{FuncIdx, Op, Program};

use super::{Compiler, NativeSpec, SourceFile, TypeName};
use crate::ast;
use crate::diag::Diagnostic;
use crate::types::Type;

/// What earlier inputs of a session declared.
#[derive(Clone, Debug, Default)]
pub(super) struct Earlier {
    /// Struct and enum names a later input may declare again.
    types: HashSet<String>,
    /// The first entry of the compiler's function table that the current
    /// input declared: entries before it may be replaced.
    first_fn: usize,
}

/// An interactive session's compiler state.
#[derive(Clone)]
pub struct Session {
    compiler: Compiler,
    next_expr: u32,
}

/// One compiled input of a session.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The session's whole program so far, this input's `main` included.
    pub program: Program,
    /// The function that runs the input's top-level statements.
    pub main: FuncIdx,
    /// The type of the input's final expression, when it ends with an
    /// expression whose type is not `nil`: `main` returns its value.
    pub result: Option<String>,
}

impl Session {
    /// A session with the library `prelude` and `natives` in scope.
    pub fn new(
        prelude: SourceFile<'_>,
        natives: &[NativeSpec],
    ) -> Result<Session, Vec<Diagnostic>> {
        Session::start(
            Compiler::with_library(prelude, natives),
            prelude.ast.expr_count,
        )
    }

    /// A session with a compiled library and the host's `natives` in scope
    /// (none of them named as a library function is).
    pub fn with_library(
        library: &super::Library,
        natives: &[NativeSpec],
    ) -> Result<Session, Vec<Diagnostic>> {
        Session::start(library.compiler(natives), library.expr_count())
    }

    /// A session whose first input comes after what `compiler` has
    /// compiled, the library, whose expressions end at `next_expr`.
    fn start(mut compiler: Compiler, next_expr: u32) -> Result<Session, Vec<Diagnostic>> {
        compiler.settle_types();
        if !compiler.diags.is_empty() {
            return Err(compiler.diags);
        }
        compiler.all_globals = true;
        compiler.repl = Some(Earlier::default());
        Ok(Session {
            compiler,
            next_expr,
        })
    }

    /// Compiles one input named `name` (shown in traces). On error the
    /// session is unchanged. An `import` in it is an error: see
    /// [`Session::add_with`].
    pub fn add(&mut self, name: &str, text: &str) -> Result<Cell, Vec<Diagnostic>> {
        self.add_with(name, text, &mut |_| {
            Err("this session does not read files".to_string())
        })
    }

    /// Compiles one input that may import files (LANGUAGE.md §11): `load`
    /// gives a file's bytes by its name ([`super::import_name`], relative
    /// to the input, which has no folder: the host decides what that is
    /// relative to). The imported declarations stay in scope for later
    /// inputs, `as` names too. On error the session is unchanged.
    pub fn add_with(
        &mut self,
        name: &str,
        text: &str,
        load: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
    ) -> Result<Cell, Vec<Diagnostic>> {
        // A file earlier inputs imported is not read again: imports of it
        // name the declarations compiled then.
        let loaded = self.compiler.imported_names();
        let (files, diagnostics, next_expr) =
            super::load_program(name, text.as_bytes(), self.next_expr, &loaded, load);
        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }
        let sources = super::imports::LoadedFile::sources(&files);
        let mut compiler = self.compiler.clone();
        let result = compiler.add_cell_files(&sources);
        if !compiler.diags.is_empty() {
            return Err(compiler.diags);
        }
        let result = result
            .map(|ty| compiler.show(&ty))
            .filter(|shown| shown != "nil");
        let cell = Cell {
            program: compiler.finish(),
            main: compiler.main,
            result,
        };
        self.compiler = compiler;
        self.next_expr = next_expr;
        Ok(cell)
    }

    /// The type of the expression `text` (`nil` for a statement), without
    /// running it or changing the session.
    pub fn type_of(&self, text: &str) -> Result<String, Vec<Diagnostic>> {
        let mut copy = self.clone();
        copy.add("<type>", text)
            .map(|cell| cell.result.unwrap_or_else(|| "nil".to_string()))
    }

    /// Every name in scope: variables, functions (not the library's
    /// internal `__` helpers) and types, sorted.
    pub fn names(&self) -> Vec<String> {
        let c = &self.compiler;
        let mut names: Vec<String> = c
            .global_names
            .keys()
            .chain(c.fn_names.keys().filter(|name| !name.starts_with("__")))
            .chain(c.type_names.keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// What may follow `text.`: the fields of a struct value and the
    /// functions that take the value as their first argument (methods), or
    /// the variants of the enum `text` names. Empty when `text` does not
    /// compile.
    pub fn members(&self, text: &str) -> Vec<String> {
        let mut copy = self.clone();
        if let Some(TypeName::Enum(id)) = copy.compiler.type_names.get(text.trim()) {
            let variants = &copy.compiler.enums[id.index()].variants;
            return variants.iter().map(|(name, _)| name.clone()).collect();
        }
        let Ok(ast) = crate::parser::parse(text, copy.next_expr) else {
            return Vec::new();
        };
        let compiler = &mut copy.compiler;
        let file = SourceFile {
            name: "<members>",
            text,
            ast: &ast,
        };
        let Some(ty) = compiler
            .add_cell(file)
            .filter(|_| compiler.diags.is_empty())
        else {
            return Vec::new();
        };
        let mut members = compiler.fields_of(&ty);
        members.extend(compiler.methods_of(&ty));
        members.sort();
        members.dedup();
        members
    }

    /// The visible script functions called `name` (one per overload), for
    /// `:disasm`, with the program they are in.
    pub fn functions_named(&self, name: &str) -> Vec<FuncIdx> {
        let c = &self.compiler;
        let entries = c.fn_names.get(name).map_or(&[][..], Vec::as_slice);
        entries
            .iter()
            .filter(|&&entry| c.fns[entry].user)
            .filter_map(|&entry| match c.fns[entry].callee {
                super::Callee::Script(func) => Some(func),
                super::Callee::Native(_) => None,
            })
            .collect()
    }

    /// The session's program so far.
    pub fn program(&self) -> Program {
        self.compiler.finish()
    }
}

impl Compiler {
    /// Declares and compiles one input of a session; returns the type of
    /// its final expression.
    fn add_cell(&mut self, file: SourceFile<'_>) -> Option<Type> {
        self.add_cell_files(&[file])
    }

    /// Declares and compiles an input and the files it imports
    /// (`files[0]` the input); returns the type of its final expression.
    fn add_cell_files(&mut self, files: &[SourceFile<'_>]) -> Option<Type> {
        let first_fn = self.fns.len();
        if let Some(earlier) = &mut self.repl {
            earlier.first_fn = first_fn;
        }
        let result = match files {
            [file] if !super::imports::has_imports(file.ast) => self.add_script(*file, true),
            _ => self.add_program(files, true),
        };
        self.settle_types();
        let items = files.iter().flat_map(|file| &file.ast.items);
        let declared = items.filter_map(|item| match item {
            ast::Item::Struct(decl) => Some(decl.name.name.clone()),
            ast::Item::Enum(decl) => Some(decl.name.name.clone()),
            _ => None,
        });
        let declared: Vec<String> = declared.collect();
        if let Some(earlier) = &mut self.repl {
            earlier.types.extend(declared);
        }
        result
    }

    /// The last top-level statement of an input: an expression's value is
    /// returned from `main` (a `match` stays a statement, whose arms need
    /// not agree).
    pub(super) fn result_stmt(&mut self, stmt: &ast::Stmt) -> Option<Type> {
        let ast::StmtKind::Expr(expr) = &stmt.kind else {
            self.stmt(stmt);
            return None;
        };
        if matches!(expr.kind, ast::ExprKind::Match(..)) {
            self.stmt(stmt);
            return None;
        }
        let dst = self.alloc();
        let ty = self.expr_into(expr, dst, None);
        self.emit(Op::Return { src: dst }, stmt.span);
        Some(ty)
    }

    /// May the current input declare the type `name` again? (Yes when an
    /// earlier input declared it; the permission is used up.)
    pub(super) fn replaces_type(&mut self, name: &str) -> bool {
        self.repl
            .as_mut()
            .is_some_and(|earlier| earlier.types.remove(name))
    }

    /// May the current input declare a function that clashes with entry
    /// `entry` of the function table? (Yes when an earlier input declared it.)
    pub(super) fn replaces_fn(&self, entry: usize) -> bool {
        self.repl
            .as_ref()
            .is_some_and(|earlier| entry < earlier.first_fn && self.fns[entry].user)
    }

    /// Hides function entry `entry` from calls compiled from now on.
    pub(super) fn forget_fn(&mut self, name: &str, entry: usize) {
        if let Some(entries) = self.fn_names.get_mut(name) {
            entries.retain(|&other| other != entry);
        }
    }

    fn fields_of(&self, ty: &Type) -> Vec<String> {
        match self.unifier.resolve(ty) {
            Type::Struct(id, _) => self.structs[id.index()]
                .fields
                .iter()
                .map(|(name, _)| name.clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Names of the functions whose first parameter accepts `ty`.
    fn methods_of(&mut self, ty: &Type) -> Vec<String> {
        let ty = self.unifier.resolve(ty);
        let mut names = Vec::new();
        let mut candidates: Vec<(String, Vec<usize>)> = self
            .fn_names
            .iter()
            .filter(|(name, _)| !name.starts_with("__"))
            .map(|(name, entries)| (name.clone(), entries.clone()))
            .collect();
        candidates.sort();
        for (name, entries) in candidates {
            if entries
                .into_iter()
                .any(|entry| self.first_param_accepts(entry, &ty))
            {
                names.push(name);
            }
        }
        names
    }
}
