//! Programs of several files (LANGUAGE.md §11): each file's scope, the
//! names its imports bring in, and the checks on imported files.
//!
//! Every file of a program is declared before any body is compiled: first
//! the struct and enum names of all files (a field may name a type of an
//! imported file), then their fields, then every function signature, each
//! file with its own scope installed in the compiler's `type_names` and
//! `fn_names`. A file sees the library, its own declarations and those of
//! the files it imports without `as` (not transitively); the files it
//! imports `as NAME` are reached through `NAME.` ([`Extra::spaces`]), and
//! method syntax finds their functions too ([`Extra::methods`]). Struct and
//! enum names are unique in the whole program, since layouts, type
//! descriptions and saved runs name types by name. The main file's
//! top-level statements become `main`; an imported file holds declarations
//! only, and its top-level `let`s of literals are constants of that file.

use std::collections::{HashMap, HashSet};

use spool_vm::FileIdx;

use super::{Compiler, PendingFn, SourceFile, TypeName};
use crate::ast::{self, ExprKind, Span, StmtKind, StrPart, UnaryOp};
use crate::diag::{codes, Diagnostic};
use crate::types::Type;

/// What the file being compiled sees beyond `type_names` and `fn_names`.
#[derive(Clone, Debug, Default)]
pub(super) struct Extra {
    /// `as NAME` imports: the program file (an index into
    /// `Compiler::program_files`) each name stands for.
    pub(super) spaces: HashMap<String, usize>,
    /// Functions method syntax finds beyond `fn_names`: those of the files
    /// imported `as NAME`.
    pub(super) methods: HashMap<String, Vec<usize>>,
    /// The file's constants (an imported file's top-level `let`s): the
    /// literal and its written type.
    pub(super) constants: HashMap<String, (ast::Expr, Option<ast::TypeExpr>)>,
}

/// One file of a program: what it declares and what it sees.
#[derive(Clone, Debug, Default)]
pub(super) struct FileScope {
    /// Its name in the program (`steps/billing.spl`).
    name: String,
    /// Its index among the program's files.
    index: FileIdx,
    /// Its text, for line numbers.
    text: String,
    /// The main file: its diagnostics carry no file name.
    main: bool,
    /// The structs and enums it declares.
    own_types: HashMap<String, TypeName>,
    /// The functions it declares, as entries of `Compiler::fns`.
    own_fns: HashMap<String, Vec<usize>>,
    /// The types it sees by plain name.
    types: HashMap<String, TypeName>,
    /// The functions it sees by plain name.
    fns: HashMap<String, Vec<usize>>,
    /// Its `as` imports, method candidates and constants.
    extra: Extra,
}

impl FileScope {
    /// The name imports know the file by: the main file's own name
    /// without its folder (imports are relative to that folder).
    fn key(&self) -> &str {
        if self.main {
            self.name.rsplit('/').next().unwrap_or(&self.name)
        } else {
            &self.name
        }
    }
}

/// The name a program gives the file `path` imported by the file named
/// `importer` (`main` when that is the program's main file): the path
/// joined to the importer's folder, relative to the main file's folder,
/// with `.` and `..` resolved (`steps/billing.spl`, `../lib/x.spl`). An
/// absolute path stays absolute. Names are independent of where the main
/// file lies, so a saved run matches the files of a changed program by
/// name.
pub fn import_name(importer: &str, main: bool, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    if !main && !absolute {
        let folder = importer.rsplit_once('/').map_or("", |(folder, _)| folder);
        parts.extend(folder.split('/'));
    }
    parts.extend(path.split('/'));
    let mut normal: Vec<&str> = Vec::new();
    for part in parts {
        match part {
            "" | "." => {}
            ".." if normal.last().is_some_and(|last| *last != "..") => {
                normal.pop();
            }
            ".." if absolute => {}
            part => normal.push(part),
        }
    }
    let joined = normal.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// The most files one program may have.
pub const MAX_FILES: usize = 10_000;

/// A file of a program, as [`load_program`] read it.
#[derive(Clone, Debug)]
pub struct LoadedFile {
    /// Its name in the program.
    pub name: String,
    /// Its text (invalid UTF-8 replaced; the parse reported it).
    pub text: String,
    /// Its tree; `None` when it does not parse.
    pub ast: Option<ast::File>,
}

impl LoadedFile {
    /// The files of `files` that parsed, as the compiler takes them.
    pub fn sources(files: &[LoadedFile]) -> Vec<super::SourceFile<'_>> {
        files
            .iter()
            .filter_map(|file| {
                Some(super::SourceFile {
                    name: &file.name,
                    text: &file.text,
                    ast: file.ast.as_ref()?,
                })
            })
            .collect()
    }
}

/// Reads a program's files: the main file `name` with the bytes `source`,
/// then every file its imports name, directly or through other imports,
/// each once, asking `load` for it by its name in the program
/// ([`import_name`]), except those named in `loaded` (files a session
/// has already read). Expression ids start at `first_expr` and continue
/// from file to file. Gives the files (the main one first), the
/// diagnostics of parsing and loading (a file `load` cannot give is a
/// diagnostic at the import's string), and the next expression id. `lang`
/// itself never reads a file: `load` is the host's.
pub fn load_program(
    name: &str,
    source: &[u8],
    first_expr: u32,
    loaded: &HashSet<String>,
    load: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
) -> (Vec<LoadedFile>, Vec<Diagnostic>, u32) {
    let mut files: Vec<LoadedFile> = Vec::new();
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let mut next_expr = first_expr;
    let main_key = name.rsplit('/').next().unwrap_or(name).to_string();
    let mut known: HashSet<String> = loaded.clone();
    known.insert(main_key);
    let mut queue = std::collections::VecDeque::from([(name.to_string(), source.to_vec())]);
    while let Some((file_name, bytes)) = queue.pop_front() {
        let main = files.is_empty();
        let label = (!main).then(|| file_name.clone());
        let ast = match crate::parser::parse_bytes(&bytes, next_expr) {
            Ok(ast) => {
                next_expr = ast.expr_count;
                Some(ast)
            }
            Err(errors) => {
                diagnostics.extend(errors.into_iter().map(|mut d| {
                    d.file = label.clone();
                    d
                }));
                None
            }
        };
        let imports = ast
            .iter()
            .flat_map(|file| &file.items)
            .filter_map(|item| match item {
                ast::Item::Import(import) => Some(import),
                _ => None,
            });
        for import in imports {
            let target = import_name(&file_name, main, &import.path);
            if known.contains(&target) {
                continue;
            }
            let loaded = if known.len() >= MAX_FILES {
                Err(format!("a program has at most {MAX_FILES} files"))
            } else {
                load(&target)
            };
            match loaded {
                Ok(bytes) => {
                    known.insert(target.clone());
                    queue.push_back((target, bytes));
                }
                Err(why) => {
                    let mut diagnostic = Diagnostic::new(
                        codes::IMPORT,
                        format!("cannot import `{}`: {why}", import.path),
                        import.path_span,
                        "this file cannot be read",
                    )
                    .with_help(format!(
                        "the path is relative to the importing file's folder (here `{target}`)"
                    ));
                    diagnostic.file = label.clone();
                    diagnostics.push(diagnostic);
                }
            }
        }
        files.push(LoadedFile {
            name: file_name,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            ast,
        });
    }
    (files, diagnostics, next_expr)
}

/// Does `file` import anything?
pub(super) fn has_imports(file: &ast::File) -> bool {
    file.items
        .iter()
        .any(|item| matches!(item, ast::Item::Import(_)))
}

/// Is `value` a literal an imported file's `let` may hold?
fn is_constant_literal(value: &ast::Expr) -> bool {
    match &value.kind {
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Nil => true,
        ExprKind::Str(parts) => parts.iter().all(|part| matches!(part, StrPart::Lit(_))),
        ExprKind::Unary(UnaryOp::Neg, inner) => {
            matches!(inner.kind, ExprKind::Int(_) | ExprKind::Float(_))
        }
        _ => false,
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: u32) -> usize {
    let end = (offset as usize).min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Compiler {
    /// Declares and compiles the files of a program; `files[0]` is the
    /// main file. With `keep_result`, as [`Compiler::add_script`]. The
    /// files are added to `program_files` after those of earlier inputs of
    /// a session, whose `as` names stay in scope.
    pub(super) fn add_program(
        &mut self,
        files: &[SourceFile<'_>],
        keep_result: bool,
    ) -> Option<Type> {
        if files.is_empty() {
            return None;
        }
        let base = self.program_files.len();
        let earlier_spaces = self.scope.spaces.clone();
        let lib_types = self.type_names.clone();
        let lib_fns = self.fn_names.clone();
        let first = self.files.len();
        self.program_files
            .extend(files.iter().enumerate().map(|(i, file)| FileScope {
                name: file.name.to_string(),
                index: FileIdx((first + i) as u32),
                text: file.text.to_string(),
                main: i == 0,
                ..FileScope::default()
            }));
        self.files.extend(files.iter().map(|f| f.name.to_string()));
        let mut plain: Vec<Vec<(usize, Span)>> = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let i = base + i;
            self.enter(i);
            plain.push(self.link_imports(i, file.ast));
            if i > base {
                self.program_files[i].extra.constants = self.declarations_only(file.ast);
            }
        }
        for (name, file) in earlier_spaces {
            let spaces = &mut self.program_files[base].extra.spaces;
            spaces.entry(name).or_insert(file);
        }
        let mut declared = Vec::new();
        let mut origins: HashMap<String, (usize, Span)> = HashMap::new();
        for (i, file) in files.iter().enumerate() {
            let i = base + i;
            self.enter(i);
            self.type_names = lib_types.clone();
            let names = self.declare_type_names(file.ast);
            for (item, kind) in &names {
                let name = match item {
                    ast::Item::Struct(decl) => &decl.name,
                    ast::Item::Enum(decl) => &decl.name,
                    _ => continue,
                };
                match origins.get(&name.name) {
                    Some(&(other, span)) if other != i => {
                        let message =
                            self.declared_twice(&name.name, (i, name.span), (other, span));
                        self.error(message.with_help(
                            "struct and enum names are unique in a program; rename one of them",
                        ));
                    }
                    Some(_) => continue,
                    None => {
                        origins.insert(name.name.clone(), (i, name.span));
                    }
                }
                self.program_files[i]
                    .own_types
                    .insert(name.name.clone(), *kind);
            }
            declared.push(names);
        }
        for i in base..self.program_files.len() {
            let mut types = lib_types.clone();
            types.extend(self.program_files[i].own_types.clone());
            for &(j, _) in &plain[i - base] {
                for (name, kind) in self.program_files[j].own_types.clone() {
                    types.entry(name).or_insert(kind);
                }
            }
            self.program_files[i].types = types;
        }
        for (i, names) in declared.into_iter().enumerate() {
            self.install(base + i);
            self.define_types(names);
        }
        let mut pending: Vec<Vec<PendingFn<'_>>> = Vec::new();
        let mut spans: HashMap<usize, (usize, Span)> = HashMap::new();
        for (i, file) in files.iter().enumerate() {
            let i = base + i;
            self.install(i);
            self.fn_names = lib_fns.clone();
            let signatures = self.script_fns.len();
            let declared = self.declare_functions(file.ast, true);
            if i > base {
                // A host calls the main file's functions (`Program::call`).
                self.script_fns.truncate(signatures);
            }
            for item in &declared {
                spans.insert(item.entry, (i, item.decl.name.span));
                let name = self.fns[item.entry].name.clone();
                self.program_files[i]
                    .own_fns
                    .entry(name)
                    .or_default()
                    .push(item.entry);
            }
            pending.push(declared);
        }
        self.scope_functions(base, &lib_fns, &plain, &spans);
        let mut pending = pending.into_iter();
        self.install(base);
        self.shared_names = super::captures::names_used_in_functions(files[0].ast);
        let result = self.compile_top_level(files[0].ast, keep_result);
        self.compile_bodies(pending.next().unwrap_or_default());
        // Imported files see none of the main file's globals.
        let main_globals = std::mem::take(&mut self.global_names);
        for (i, bodies) in pending.enumerate() {
            self.install(base + i + 1);
            self.compile_bodies(bodies);
        }
        self.global_names = main_globals;
        self.install(base);
        self.file_label = None;
        result
    }

    /// The names of the imported files compiled so far (by earlier inputs
    /// of a session).
    pub(super) fn imported_names(&self) -> HashSet<String> {
        let files = self.program_files.iter().filter(|f| !f.main);
        files.map(|f| f.name.clone()).collect()
    }

    /// Makes file `i` of the program the one spans and diagnostics belong
    /// to.
    fn enter(&mut self, i: usize) {
        let file = &self.program_files[i];
        let (index, text) = (file.index, file.text.clone());
        self.file_label = (!file.main).then(|| file.name.clone());
        self.switch_file(index, &text);
    }

    /// Enters file `i` with its scope installed.
    fn install(&mut self, i: usize) {
        self.enter(i);
        let file = &self.program_files[i];
        self.type_names = file.types.clone();
        self.fn_names = file.fns.clone();
        self.scope = file.extra.clone();
    }

    /// Resolves the imports of file `i`: records its `as` names and gives
    /// the files it imports by plain name, with the place of each import.
    fn link_imports(&mut self, i: usize, file: &ast::File) -> Vec<(usize, Span)> {
        let mut plain = Vec::new();
        let importer = self.program_files[i].name.clone();
        for item in &file.items {
            let ast::Item::Import(import) = item else {
                continue;
            };
            let name = import_name(&importer, self.program_files[i].main, &import.path);
            // The newest file of that name: a session's earlier inputs may
            // have imported it too.
            let Some(target) = self.program_files.iter().rposition(|f| f.key() == name) else {
                self.error(missing_import(import, &name));
                continue;
            };
            match &import.alias {
                Some(alias) => {
                    let spaces = &mut self.program_files[i].extra.spaces;
                    if spaces.insert(alias.name.clone(), target).is_some() {
                        self.error(super::duplicate(alias));
                    }
                }
                None if target != i => plain.push((target, import.path_span)),
                None => {}
            }
        }
        plain
    }

    /// Checks that an imported file holds declarations only and gives its
    /// constants (top-level `let`s of literals).
    fn declarations_only(
        &mut self,
        file: &ast::File,
    ) -> HashMap<String, (ast::Expr, Option<ast::TypeExpr>)> {
        let mut constants = HashMap::new();
        for item in &file.items {
            let ast::Item::Stmt(stmt) = item else {
                continue;
            };
            match &stmt.kind {
                StmtKind::Let { name, ty, value } if is_constant_literal(value) => {
                    if constants
                        .insert(name.name.clone(), (value.clone(), ty.clone()))
                        .is_some()
                    {
                        self.error(super::duplicate(name));
                    }
                }
                _ => self.error(
                    Diagnostic::new(
                        codes::IMPORT,
                        "a statement in an imported file",
                        stmt.span,
                        "an imported file holds declarations only",
                    )
                    .with_help(
                        "keep `fn`, `struct`, `enum`, `import` and `let NAME = LITERAL` here; \
                         move statements into a function or the main file",
                    ),
                ),
            }
        }
        constants
    }

    /// Builds each file's function scope: the library, its own functions
    /// and those of its plain imports, reporting a function two files
    /// declare with the same first parameter.
    fn scope_functions(
        &mut self,
        base: usize,
        lib_fns: &HashMap<String, Vec<usize>>,
        plain: &[Vec<(usize, Span)>],
        spans: &HashMap<usize, (usize, Span)>,
    ) {
        let mut reported: HashSet<(usize, usize)> = HashSet::new();
        for i in base..self.program_files.len() {
            self.enter(i);
            let mut fns = lib_fns.clone();
            for (name, entries) in self.program_files[i].own_fns.clone() {
                let list = fns.entry(name).or_default();
                // At a session's prompt, a function declared again
                // replaces the earlier one for later inputs.
                list.retain(|&earlier| {
                    !self.fns[earlier].user
                        || !entries.iter().any(|&e| self.same_first_param(earlier, e))
                });
                list.extend(entries);
            }
            for &(j, import_span) in &plain[i - base] {
                for (name, entries) in self.program_files[j].own_fns.clone() {
                    let seen = fns.entry(name).or_default();
                    for entry in entries {
                        if seen.contains(&entry) {
                            continue;
                        }
                        let clash = seen.iter().copied().find(|&other| {
                            spans.contains_key(&other) && self.same_first_param(other, entry)
                        });
                        if let Some(other) = clash {
                            let pair = (other.min(entry), other.max(entry));
                            if reported.insert(pair) {
                                let (file, span) = spans[&other];
                                let here = if file == i {
                                    (i, span)
                                } else {
                                    (i, import_span)
                                };
                                let name = self.fns[entry].name.clone();
                                let diag = self.declared_twice(&name, here, spans[&entry]);
                                self.error(diag.with_help(
                                    "functions may share a name only when their first \
                                     parameters' types differ; rename one, or import one \
                                     file `as NAME`",
                                ));
                            }
                            continue;
                        }
                        seen.push(entry);
                    }
                }
            }
            let mut methods: HashMap<String, Vec<usize>> = HashMap::new();
            let spaces: Vec<usize> = self.program_files[i]
                .extra
                .spaces
                .values()
                .copied()
                .collect();
            for j in spaces {
                for (name, entries) in &self.program_files[j].own_fns {
                    let seen = fns.get(name);
                    let list = methods.entry(name.clone()).or_default();
                    for &entry in entries {
                        if !seen.is_some_and(|s| s.contains(&entry)) && !list.contains(&entry) {
                            list.push(entry);
                        }
                    }
                }
            }
            self.program_files[i].fns = fns;
            self.program_files[i].extra.methods = methods;
        }
    }

    /// Do two functions' first parameters select the same calls?
    fn same_first_param(&self, a: usize, b: usize) -> bool {
        match (self.fns[a].params.first(), self.fns[b].params.first()) {
            (Some(x), Some(y)) => super::same_shape(x, y),
            (x, y) => x.is_none() && y.is_none(),
        }
    }

    /// `name` declared in two files: the diagnostic at `here` (a place in
    /// the file being compiled), naming both places.
    fn declared_twice(&self, name: &str, here: (usize, Span), there: (usize, Span)) -> Diagnostic {
        let place = |(file, span): (usize, Span)| {
            let file = &self.program_files[file];
            format!("{}:{}", file.name, line_of(&file.text, span.start))
        };
        let mut places = [place(here), place(there)];
        places.sort();
        Diagnostic::new(
            codes::DUPLICATE,
            format!(
                "`{name}` is declared in two files: `{}` and `{}`",
                places[0], places[1]
            ),
            here.1,
            format!("`{name}` is also declared in `{}`", place(there)),
        )
    }

    /// The type `name` names: a plain name in scope, or `NAME.Type` for a
    /// type of a file imported `as NAME`.
    pub(super) fn type_named(&self, name: &str) -> Option<TypeName> {
        match name.split_once('.') {
            Some((space, name)) => {
                let file = *self.scope.spaces.get(space)?;
                self.program_files[file].own_types.get(name).copied()
            }
            None => self.type_names.get(name).copied(),
        }
    }

    /// The imported file an expression names, when it is a name given
    /// with `as` and not a variable.
    pub(super) fn space_named_by(&mut self, expr: &ast::Expr) -> Option<usize> {
        let ExprKind::Name(name) = &expr.kind else {
            return None;
        };
        let file = *self.scope.spaces.get(&name.name)?;
        self.lookup_var(&name.name).is_none().then_some(file)
    }

    /// The types and functions file `file` declares under `name`.
    pub(super) fn declared_in(&self, file: usize, name: &str) -> (Option<TypeName>, Vec<usize>) {
        let file = &self.program_files[file];
        let fns = file.own_fns.get(name).cloned().unwrap_or_default();
        (file.own_types.get(name).copied(), fns)
    }

    /// The name of program file `file`, for messages.
    pub(super) fn file_name(&self, file: usize) -> &str {
        &self.program_files[file].name
    }

    /// Runs `work` with `name` standing for the function entries
    /// `entries` (a qualified call, or method syntax that also finds
    /// functions of files imported `as NAME`), then restores the scope.
    pub(super) fn with_fns<T>(
        &mut self,
        name: &str,
        entries: Vec<usize>,
        work: impl FnOnce(&mut Compiler) -> T,
    ) -> T {
        let saved = self.fn_names.insert(name.to_string(), entries);
        let result = work(self);
        match saved {
            Some(saved) => self.fn_names.insert(name.to_string(), saved),
            None => self.fn_names.remove(name),
        };
        result
    }

    /// A constant of the file being compiled, read: its literal compiled
    /// in place.
    pub(super) fn file_constant(
        &mut self,
        name: &str,
        dst: spool_vm::Reg,
        expected: Option<&Type>,
    ) -> Option<Type> {
        let (value, ty) = self.scope.constants.get(name).cloned()?;
        Some(match ty {
            Some(ty) => {
                let ty = self.resolve_type(&ty, &HashMap::new());
                self.check_into(&value, dst, &ty);
                ty
            }
            None => self.expr_into(&value, dst, expected),
        })
    }
}

/// An import whose file is not part of the program.
fn missing_import(import: &ast::ImportDecl, name: &str) -> Diagnostic {
    Diagnostic::new(
        codes::IMPORT,
        format!("cannot find the imported file `{name}`"),
        import.path_span,
        "no such file",
    )
    .with_help("the path is relative to the importing file's folder")
}
