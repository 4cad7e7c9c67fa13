//! The checker and code generator: one typed pass from the AST to a
//! [`Program`].
//!
//! Declarations come first (every struct, enum and function signature of
//! every file, so order in the file does not matter); then each body is
//! checked and compiled in a single walk. Every type an instruction depends
//! on (int or float arithmetic, which kind of loop) is known by the time the
//! instruction is emitted, so no separate typed tree is built. Errors are
//! collected, never thrown: after a mistake the expression gets
//! [`Type::Error`], which fits everywhere, and checking goes on.

mod builder;
mod call;
mod captures;
mod defaults;
mod expr;
mod hoist;
mod imports;
mod library;
mod pattern;
mod session;
mod stmt;
mod tasks;
mod workflow;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use spool_vm::program::FnSignature;
use spool_vm::serde_data::BUILTIN_TYPES;
use spool_vm::{
    Builtins, ConstIdx, Constant, EnumIdx, EnumLayout, FileIdx, FuncIdx, Function, GlobalIdx,
    NativeDecl, NativeIdx, Program, StructIdx, StructLayout, TypeDesc, TypeNode, VariantLayout,
};

use crate::ast::{self, Span, TypeExpr, TypeExprKind};
use crate::diag::{codes, Diagnostic};
use crate::types::{ParamId, Type, TypeNames, Unifier};
use builder::FnBuilder;
pub use imports::{import_name, load_program, LoadedFile, MAX_FILES};
pub use library::{compile_program_with, Library};
pub use session::{Cell, Session};

/// One source file to compile: its name, text and parsed tree.
#[derive(Clone, Copy)]
pub struct SourceFile<'a> {
    /// The name used in traces (`flow.spl`).
    pub name: &'a str,
    /// The text, for line and column numbers.
    pub text: &'a str,
    /// The parsed file.
    pub ast: &'a ast::File,
}

/// A native function the compiled program may call.
#[derive(Clone, Debug)]
pub struct NativeSpec {
    /// The key the run binds it by.
    pub key: String,
    /// Its signature, parsed from the library's declaration.
    pub decl: ast::FnDecl,
    /// Is it a host I/O operation (calling it suspends the task with an
    /// I/O request) rather than a native function?
    pub io: bool,
}

/// Compiles `script` together with the library `prelude` and `natives`.
/// The program carries its fingerprint
/// ([`spool_vm::snapshot::fingerprint`]).
pub fn compile(
    prelude: SourceFile<'_>,
    script: SourceFile<'_>,
    natives: &[NativeSpec],
) -> Result<Program, Vec<Diagnostic>> {
    compile_program(prelude, &[script], natives)
}

/// Compiles a program of several files (LANGUAGE.md §11) together with the
/// library: `files[0]` is the main file, whose top-level statements run;
/// the others are the files its imports name, directly or through other
/// imports, each once, named as [`import_name`] names them. A diagnostic
/// about a file other than the main one names it in
/// [`Diagnostic::file`].
pub fn compile_program(
    prelude: SourceFile<'_>,
    files: &[SourceFile<'_>],
    natives: &[NativeSpec],
) -> Result<Program, Vec<Diagnostic>> {
    compile_files(&mut Compiler::with_library(prelude, natives), files, None)
}

/// Compiles `files` (as [`compile_program`] does) with `compiler`, which
/// has the library in scope. The compiler is spent: the program takes its
/// functions and constants. With `library`, the encoded functions of the
/// compiled library `compiler` started from, for the fingerprint.
fn compile_files(
    compiler: &mut Compiler,
    files: &[SourceFile<'_>],
    library: Option<&library::LibraryFunctions>,
) -> Result<Program, Vec<Diagnostic>> {
    match files {
        [script] if !imports::has_imports(script.ast) => {
            compiler.add_script(*script, false);
        }
        _ => {
            compiler.add_program(files, false);
        }
    }
    compiler.settle_types();
    if !compiler.diags.is_empty() {
        return Err(std::mem::take(&mut compiler.diags));
    }
    let signatures = compiler.signatures();
    let mut program = compiler.take_program();
    program.signatures = signatures;
    program.fingerprint = match library {
        Some(functions) => {
            let fingerprint = functions.fingerprint(&mut program);
            debug_assert_eq!(fingerprint, spool_vm::snapshot::fingerprint(&program));
            fingerprint
        }
        None => spool_vm::snapshot::fingerprint(&program),
    };
    Ok(program)
}

/// The block size of [`Compiler::chars_before`]'s index.
const CHAR_BLOCK: usize = 256;

/// How many chars start in `bytes` (the bytes that are not UTF-8
/// continuation bytes).
fn char_starts(bytes: &[u8]) -> u32 {
    bytes.iter().filter(|&&b| (b as i8) >= -0x40).count() as u32
}

/// A struct as the checker knows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StructDef {
    name: String,
    generics: Vec<ParamId>,
    fields: Vec<(String, Type)>,
    /// Each field's checked default (`attempts: int = 3`), if it has one.
    defaults: Vec<Option<ast::Expr>>,
}

/// An enum as the checker knows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct EnumDef {
    name: String,
    generics: Vec<ParamId>,
    variants: Vec<(String, Vec<Type>)>,
}

/// What a call to a named function compiles to.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum Callee {
    Script(FuncIdx),
    Native(NativeIdx),
}

/// A named function (script, prelude or native) and its signature.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct FnEntry {
    name: String,
    generics: Vec<ParamId>,
    params: Vec<Type>,
    ret: Type,
    callee: Callee,
    /// Declared by the script itself (wins over library functions).
    user: bool,
    /// What the function yields and receives (for a non-generic script
    /// function; `None` for natives and generic functions, whose calls are
    /// not linked to their callers' yields).
    effects: Option<(Type, Type)>,
}

/// A top-level variable.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct GlobalInfo {
    ty: Type,
}

/// A top-level function whose body is still to be compiled.
struct PendingFn<'a> {
    decl: &'a ast::FnDecl,
    func: FuncIdx,
    entry: usize,
    generics: HashMap<String, ParamId>,
}

/// The whole compilation's state.
#[derive(Clone, Serialize, Deserialize)]
struct Compiler {
    #[serde(deserialize_with = "library::with_room")]
    functions: Vec<Function>,
    constants: Vec<Constant>,
    const_index: HashMap<ConstKey, ConstIdx>,
    structs: Vec<StructDef>,
    enums: Vec<EnumDef>,
    type_names: HashMap<String, TypeName>,
    fns: library::FnEntries,
    fn_names: HashMap<String, Vec<usize>>,
    #[serde(deserialize_with = "library::with_room")]
    natives: Vec<NativeDecl>,
    globals: Vec<GlobalInfo>,
    global_names: HashMap<String, GlobalIdx>,
    global_order: Vec<String>,
    files: Vec<String>,
    param_names: Vec<String>,
    unifier: Unifier,
    #[serde(skip)]
    diags: Vec<Diagnostic>,
    #[serde(skip)]
    builders: Vec<FnBuilder>,
    file: FileIdx,
    #[serde(skip)]
    line_starts: Vec<u32>,
    #[serde(skip)]
    text: String,
    /// For a text that is not all ASCII, the number of chars before each
    /// [`CHAR_BLOCK`]-byte block of it, so a column costs at most one
    /// block's scan (empty for ASCII, where a column is a byte count).
    #[serde(skip)]
    chars_before_block: Vec<u32>,
    /// Top-level `let`s that some function reads, so they must be globals.
    shared_names: HashSet<String>,
    main: FuncIdx,
    /// Every top-level `let` is a global (the REPL, where later lines
    /// refer to earlier ones).
    all_globals: bool,
    /// Variables whose types may still be unresolved, checked when the
    /// outermost function under compilation is done.
    /// With the name of the file they are in, for diagnostics.
    uninferred: Vec<(ast::Ident, Type, Option<String>)>,
    /// Every yield and receive type variable, defaulted to `nil` at the end.
    effect_vars: Vec<Type>,
    /// What the script's top level yields to the host and receives back.
    main_effects: (Type, Type),
    /// The receive type of the top level, as written (`nil`, `str`, ...).
    main_receives: TypeDesc,
    /// String constants to fill with a type's name once types are settled.
    late_type_names: Vec<(ConstIdx, Type)>,
    /// `any` is accepted: only while declaring library signatures.
    allow_any: bool,
    /// The call being compiled is the operand of `spawn`: it starts a task
    /// instead of calling. Taken by the first call that sees it.
    spawning: bool,
    /// The yield types of spawned functions, with the spawn's place and the
    /// function's name: each must turn out `nil` (checked once every body
    /// has been checked, so the order of bodies does not matter).
    /// (With the name of the file the spawn is in, for diagnostics.)
    spawn_checks: Vec<(Type, Option<String>, Span, Option<String>)>,
    /// In an interactive session: what earlier inputs declared, which a
    /// later input may replace.
    #[serde(skip)]
    repl: Option<session::Earlier>,
    /// The script's own top-level functions with bodies, as their entry in
    /// `fns` and their parameters' names: the program's signatures.
    script_fns: Vec<(usize, Vec<String>)>,
    /// The name diagnostics give the file being compiled: `None` for the
    /// main file (or a session's input), the file's name for an imported
    /// one.
    file_label: Option<String>,
    /// What the file being compiled sees beyond `type_names` and
    /// `fn_names`: its `as` imports and constants (LANGUAGE.md §11).
    #[serde(skip)]
    scope: imports::Extra,
    /// Each file of a program of several files: what it declares and sees.
    #[serde(skip)]
    program_files: Vec<imports::FileScope>,
}

/// A named type.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum TypeName {
    Struct(StructIdx),
    Enum(EnumIdx),
}

/// Constants are deduplicated by value (floats by bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum ConstKey {
    Int(i64),
    Float(u64),
    Str(String),
}

impl TypeNames for Compiler {
    fn struct_name(&self, id: StructIdx) -> &str {
        self.structs
            .get(id.index())
            .map_or("?", |s| s.name.as_str())
    }
    fn enum_name(&self, id: EnumIdx) -> &str {
        self.enums.get(id.index()).map_or("?", |e| e.name.as_str())
    }
    fn param_name(&self, id: ParamId) -> &str {
        self.param_names.get(id.index()).map_or("?", |n| n.as_str())
    }
}

impl Compiler {
    /// A compiler with the library in scope and compiled: the prelude's
    /// types first (native signatures mention them: `Json`), then the
    /// natives, then the prelude's functions. Its mistakes are left in
    /// `diags`; its types are not settled yet.
    fn with_library(prelude: SourceFile<'_>, natives: &[NativeSpec]) -> Compiler {
        let mut compiler = Compiler::new();
        compiler.set_file(prelude);
        compiler.declare_types(prelude.ast);
        compiler.declare_natives(natives);
        let pending = compiler.declare_functions(prelude.ast, false);
        compiler.compile_bodies(pending);
        compiler
    }

    fn new() -> Compiler {
        Compiler {
            functions: Vec::new(),
            constants: Vec::new(),
            const_index: HashMap::new(),
            structs: Vec::new(),
            enums: Vec::new(),
            type_names: HashMap::new(),
            fns: library::FnEntries::default(),
            fn_names: HashMap::new(),
            natives: Vec::new(),
            globals: Vec::new(),
            global_names: HashMap::new(),
            global_order: Vec::new(),
            files: Vec::new(),
            param_names: Vec::new(),
            unifier: Unifier::default(),
            diags: Vec::new(),
            builders: Vec::new(),
            file: FileIdx(0),
            line_starts: vec![0],
            text: String::new(),
            chars_before_block: Vec::new(),
            shared_names: HashSet::new(),
            main: FuncIdx(0),
            all_globals: false,
            uninferred: Vec::new(),
            effect_vars: Vec::new(),
            main_effects: (Type::Nil, Type::Nil),
            main_receives: TypeDesc::default(),
            late_type_names: Vec::new(),
            allow_any: false,
            spawning: false,
            spawn_checks: Vec::new(),
            repl: None,
            script_fns: Vec::new(),
            file_label: None,
            scope: imports::Extra::default(),
            program_files: Vec::new(),
        }
    }

    /// The finished program.
    fn finish(&self) -> Program {
        self.program_of(
            self.functions.clone(),
            self.constants.clone(),
            self.natives.clone(),
            self.global_order.clone(),
            self.files.clone(),
        )
    }

    /// The finished program, the compiler's functions, constants and names
    /// moved into it rather than copied (the library's make up most of
    /// them); the compiler is left without them.
    fn take_program(&mut self) -> Program {
        let functions = std::mem::take(&mut self.functions);
        let constants = std::mem::take(&mut self.constants);
        let natives = std::mem::take(&mut self.natives);
        let globals = std::mem::take(&mut self.global_order);
        let files = std::mem::take(&mut self.files);
        self.program_of(functions, constants, natives, globals, files)
    }

    /// The program of these parts and the compiler's types.
    fn program_of(
        &self,
        functions: Vec<Function>,
        constants: Vec<Constant>,
        natives: Vec<NativeDecl>,
        globals: Vec<String>,
        files: Vec<String>,
    ) -> Program {
        let error = self.type_names.get("Error").and_then(|t| match t {
            TypeName::Struct(id) => Some(*id),
            TypeName::Enum(_) => None,
        });
        let json = self.type_names.get("Json").and_then(|t| match t {
            TypeName::Enum(id) => Some(*id),
            TypeName::Struct(_) => None,
        });
        Program {
            functions,
            main: self.main,
            constants,
            structs: self
                .structs
                .iter()
                .map(|s| StructLayout {
                    name: s.name.clone(),
                    fields: s.fields.iter().map(|(name, _)| name.clone()).collect(),
                    params: self.param_list(&s.generics),
                    field_types: s
                        .fields
                        .iter()
                        .map(|(_, ty)| self.type_desc(ty, &s.generics))
                        .collect(),
                })
                .collect(),
            enums: self
                .enums
                .iter()
                .map(|e| EnumLayout {
                    name: e.name.clone(),
                    variants: e
                        .variants
                        .iter()
                        .map(|(name, fields)| VariantLayout {
                            name: name.clone(),
                            arity: fields.len() as u16,
                            field_types: fields
                                .iter()
                                .map(|ty| self.type_desc(ty, &e.generics))
                                .collect(),
                        })
                        .collect(),
                    params: self.param_list(&e.generics),
                })
                .collect(),
            natives,
            globals,
            files,
            builtins: Builtins {
                error: error.unwrap_or_default(),
                json: json.unwrap_or_default(),
            },
            main_receives: self.main_receives.clone(),
            signatures: Vec::new(),
            fingerprint: 0,
        }
    }

    /// The script's top-level functions as a host may call them; their
    /// yield and receive types are settled by now.
    fn signatures(&self) -> Vec<FnSignature> {
        let describe = |ty: &Type| self.type_desc(ty, &[]);
        let signature = |(entry, names): &(usize, Vec<String>)| {
            let entry = &self.fns[*entry];
            let Callee::Script(func) = entry.callee else {
                return None;
            };
            Some(FnSignature {
                name: entry.name.clone(),
                func,
                params: names
                    .iter()
                    .cloned()
                    .zip(entry.params.iter().map(describe))
                    .collect(),
                result: describe(&entry.ret),
                receives: entry
                    .effects
                    .as_ref()
                    .map_or_else(TypeDesc::default, |(_, receives)| describe(receives)),
            })
        };
        self.script_fns.iter().filter_map(signature).collect()
    }

    /// `ty` as the run describes types ([`TypeDesc`]): inference variables
    /// resolved (those still open, and parameters other than `params`,
    /// become unknown); `params` are the type parameters of the layout the
    /// description belongs to, described by position.
    fn type_desc(&self, ty: &Type, params: &[ParamId]) -> TypeDesc {
        let mut desc = TypeDesc::default();
        let resolved = self.unifier.resolve(ty);
        self.describe_into(&resolved, params, &mut desc);
        desc
    }

    /// Appends the nodes of `ty` (parts first) and gives the position of
    /// its own node. Recursion is bounded by the depth of written types,
    /// which the parser bounds.
    fn describe_into(&self, ty: &Type, params: &[ParamId], desc: &mut TypeDesc) -> u32 {
        let part = |ty: &Type, desc: &mut TypeDesc| self.describe_into(ty, params, desc);
        let node = match ty {
            Type::Int => TypeNode::Int,
            Type::Float => TypeNode::Float,
            Type::Bool => TypeNode::Bool,
            Type::Str => TypeNode::Str,
            Type::Nil => TypeNode::Nil,
            Type::Any | Type::Never | Type::Error | Type::Var(_) => TypeNode::Any,
            Type::List(item) => TypeNode::List(part(item, desc)),
            Type::Map(key, value) => {
                let key = part(key, desc);
                TypeNode::Map(key, part(value, desc))
            }
            Type::Opt(inner) => TypeNode::Optional(part(inner, desc)),
            Type::Fn(_) => TypeNode::Func(self.show(ty)),
            Type::Struct(id, args) => {
                let args = args.iter().map(|arg| part(arg, desc)).collect();
                TypeNode::Struct(self.struct_name(*id).to_string(), args)
            }
            Type::Enum(id, args) => {
                let args = args.iter().map(|arg| part(arg, desc)).collect();
                TypeNode::Enum(self.enum_name(*id).to_string(), args)
            }
            Type::Coro(yields, receives) => {
                let yields = part(yields, desc);
                TypeNode::Coro(yields, part(receives, desc))
            }
            Type::Task(result) => TypeNode::Task(part(result, desc)),
            Type::Chan(item) => TypeNode::Chan(part(item, desc)),
            Type::Handle(handle) => TypeNode::Handle(handle.name().to_string()),
            Type::Param(id) => match params.iter().position(|p| p == id) {
                Some(index) => TypeNode::Param(index as u16),
                None => TypeNode::Any,
            },
        };
        desc.nodes.push(node);
        desc.nodes.len() as u32 - 1
    }

    /// The names of type parameters, as layouts record them.
    fn param_list(&self, generics: &[ParamId]) -> Vec<String> {
        generics
            .iter()
            .map(|&id| self.param_name(id).to_string())
            .collect()
    }

    // ---- diagnostics ----

    fn error(&mut self, mut diag: Diagnostic) {
        if diag.file.is_none() {
            diag.file = self.file_label.clone();
        }
        self.diags.push(diag);
    }

    fn show(&self, ty: &Type) -> String {
        let resolved = self.unifier.resolve(ty);
        resolved.display(self).to_string()
    }

    fn mismatch(&mut self, span: Span, expected: &Type, found: &Type) {
        let (expected, found) = (self.show(expected), self.show(found));
        self.error(Diagnostic::new(
            codes::MISMATCH,
            format!("mismatched types: expected `{expected}`, found `{found}`"),
            span,
            format!("expected `{expected}`, found `{found}`"),
        ));
    }

    /// Reports a mismatch unless `actual` fits `expected`.
    fn expect_type(&mut self, span: Span, expected: &Type, actual: &Type) {
        if !self.unifier.coerce(expected, actual) {
            self.mismatch(span, expected, actual);
        }
    }

    // ---- files ----

    fn set_file(&mut self, file: SourceFile<'_>) {
        self.files.push(file.name.to_string());
        self.switch_file(FileIdx(self.files.len() as u32 - 1), file.text);
    }

    /// Makes `file`, whose text is `text`, the one spans point into.
    fn switch_file(&mut self, file: FileIdx, text: &str) {
        self.file = file;
        self.text = text.to_string();
        self.line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at as u32 + 1))
            .collect();
        self.chars_before_block = if text.is_ascii() {
            Vec::new()
        } else {
            // One entry per block start, including one at the very end.
            let mut before = 0;
            let mut index = vec![0];
            for block in text.as_bytes().chunks(CHAR_BLOCK) {
                before += char_starts(block);
                index.push(before);
            }
            index
        };
    }

    /// 1-based line and column (in chars) of a byte offset in the current
    /// file: a binary search over the line starts, and a char count that
    /// never scans more than a block.
    fn loc(&self, offset: u32) -> spool_vm::Loc {
        let line = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .max(1);
        let start = self.line_starts[line - 1] as usize;
        let end = (offset as usize).min(self.text.len());
        let col = self.chars_before(end) - self.chars_before(start.min(end));
        spool_vm::Loc {
            line: line as u32,
            col: col as u32 + 1,
        }
    }

    /// How many chars of the current file start before byte `offset`.
    fn chars_before(&self, offset: usize) -> usize {
        if self.chars_before_block.is_empty() {
            return offset;
        }
        let block = offset / CHAR_BLOCK;
        let block_start = block * CHAR_BLOCK;
        self.chars_before_block[block] as usize
            + char_starts(&self.text.as_bytes()[block_start..offset]) as usize
    }

    /// Declares everything in a script (or a session's input), compiles
    /// its top-level statements as a new `main`, then its functions' bodies.
    /// With `keep_result`, a final expression statement's value is `main`'s
    /// result, and its type is returned.
    fn add_script(&mut self, file: SourceFile<'_>, keep_result: bool) -> Option<Type> {
        self.set_file(file);
        self.declare_types(file.ast);
        let pending = self.declare_functions(file.ast, true);
        self.shared_names = captures::names_used_in_functions(file.ast);
        let result = self.compile_top_level(file.ast, keep_result);
        self.compile_bodies(pending);
        result
    }

    /// Compiles the bodies of declared functions.
    fn compile_bodies(&mut self, pending: Vec<PendingFn<'_>>) {
        for item in pending {
            self.compile_fn_body(item);
        }
    }

    // ---- declarations ----

    fn declare_types(&mut self, file: &ast::File) {
        let declared = self.declare_type_names(file);
        self.define_types(declared);
    }

    /// Registers the structs and enums of `file` under their names (their
    /// fields are defined by [`Compiler::define_types`], once every name a
    /// field may mention is known).
    fn declare_type_names<'a>(&mut self, file: &'a ast::File) -> Vec<(&'a ast::Item, TypeName)> {
        let mut declared = Vec::new();
        for item in &file.items {
            let (name, kind) = match item {
                ast::Item::Struct(decl) => {
                    let id = StructIdx(self.structs.len() as u32);
                    let generics = self.new_params(&decl.generics);
                    self.structs.push(StructDef {
                        name: decl.name.name.clone(),
                        generics,
                        fields: Vec::new(),
                        defaults: Vec::new(),
                    });
                    (&decl.name, TypeName::Struct(id))
                }
                ast::Item::Enum(decl) => {
                    let id = EnumIdx(self.enums.len() as u32);
                    let generics = self.new_params(&decl.generics);
                    self.enums.push(EnumDef {
                        name: decl.name.name.clone(),
                        generics,
                        variants: Vec::new(),
                    });
                    (&decl.name, TypeName::Enum(id))
                }
                _ => continue,
            };
            let taken = self.type_names.contains_key(&name.name) && !self.replaces_type(&name.name);
            if taken || is_builtin_type(&name.name) {
                self.error(duplicate(name));
            } else {
                self.type_names.insert(name.name.clone(), kind);
            }
            declared.push((item, kind));
        }
        declared
    }

    /// Defines the fields and variants of types [`Compiler::declare_type_names`]
    /// registered.
    fn define_types(&mut self, declared: Vec<(&ast::Item, TypeName)>) {
        for (item, kind) in declared {
            match (item, kind) {
                (ast::Item::Struct(decl), TypeName::Struct(id)) => self.define_struct(decl, id),
                (ast::Item::Enum(decl), TypeName::Enum(id)) => self.define_enum(decl, id),
                _ => {}
            }
        }
    }

    fn new_params(&mut self, names: &[ast::Ident]) -> Vec<ParamId> {
        names
            .iter()
            .map(|name| {
                self.param_names.push(name.name.clone());
                ParamId(self.param_names.len() as u32 - 1)
            })
            .collect()
    }

    fn generic_scope(&self, names: &[ast::Ident], ids: &[ParamId]) -> HashMap<String, ParamId> {
        names
            .iter()
            .zip(ids)
            .map(|(name, id)| (name.name.clone(), *id))
            .collect()
    }

    fn define_struct(&mut self, decl: &ast::StructDecl, id: StructIdx) {
        let scope = self.generic_scope(&decl.generics, &self.structs[id.index()].generics.clone());
        let mut fields: Vec<(String, Type)> = Vec::new();
        let mut defaults = Vec::new();
        for field in &decl.fields {
            if fields.iter().any(|(name, _)| *name == field.name.name) {
                self.error(duplicate(&field.name));
                continue;
            }
            let ty = self.resolve_type(&field.ty, &scope);
            defaults.push(self.field_default(field, &ty));
            fields.push((field.name.name.clone(), ty));
        }
        self.structs[id.index()].fields = fields;
        self.structs[id.index()].defaults = defaults;
    }

    fn define_enum(&mut self, decl: &ast::EnumDecl, id: EnumIdx) {
        let scope = self.generic_scope(&decl.generics, &self.enums[id.index()].generics.clone());
        let mut variants: Vec<(String, Vec<Type>)> = Vec::new();
        for variant in &decl.variants {
            if variants.iter().any(|(name, _)| *name == variant.name.name) {
                self.error(duplicate(&variant.name));
                continue;
            }
            let fields = variant
                .fields
                .iter()
                .map(|ty| self.resolve_type(ty, &scope))
                .collect();
            variants.push((variant.name.name.clone(), fields));
        }
        self.enums[id.index()].variants = variants;
    }

    fn declare_natives(&mut self, natives: &[NativeSpec]) {
        self.allow_any = true;
        for native in natives {
            let index = NativeIdx(self.natives.len() as u32);
            self.natives.push(NativeDecl {
                key: native.key.clone(),
                name: native.decl.name.name.clone(),
                io: None,
            });
            let generics = self.new_params(&native.decl.generics);
            let scope = self.generic_scope(&native.decl.generics, &generics);
            let entry =
                self.signature(&native.decl, generics, &scope, Callee::Native(index), false);
            if native.io {
                self.natives[index.index()].io = Some(self.type_desc(&entry.ret, &[]));
            }
            self.add_fn(entry);
        }
        self.allow_any = false;
    }

    fn signature(
        &mut self,
        decl: &ast::FnDecl,
        generics: Vec<ParamId>,
        scope: &HashMap<String, ParamId>,
        callee: Callee,
        user: bool,
    ) -> FnEntry {
        let params = decl
            .params
            .iter()
            .map(|param| match &param.ty {
                Some(ty) => self.resolve_type(ty, scope),
                None => Type::Error,
            })
            .collect();
        let ret = decl
            .ret
            .as_ref()
            .map_or(Type::Nil, |ty| self.resolve_type(ty, scope));
        let effects = match callee {
            Callee::Script(_) if decl.generics.is_empty() => Some(self.fresh_effects()),
            _ => None,
        };
        FnEntry {
            name: decl.name.name.clone(),
            generics,
            params,
            ret,
            callee,
            user,
            effects,
        }
    }

    fn add_fn(&mut self, entry: FnEntry) -> usize {
        let index = self.fns.len();
        self.fn_names
            .entry(entry.name.clone())
            .or_default()
            .push(index);
        self.fns.push(entry);
        index
    }

    /// Reserves a function slot to fill in once its body is compiled.
    fn reserve_function(&mut self, name: &str) -> FuncIdx {
        self.functions.push(Function {
            name: name.to_string(),
            file: self.file,
            ..Function::default()
        });
        FuncIdx(self.functions.len() as u32 - 1)
    }

    fn declare_functions<'a>(&mut self, file: &'a ast::File, user: bool) -> Vec<PendingFn<'a>> {
        let mut pending = Vec::new();
        for item in &file.items {
            let ast::Item::Fn(decl) = item else { continue };
            let generics = self.new_params(&decl.generics);
            let scope = self.generic_scope(&decl.generics, &generics);
            let func = self.reserve_function(&decl.name.name);
            let entry = self.signature(decl, generics, &scope, Callee::Script(func), user);
            self.check_overload_clash(decl, &entry);
            let entry = self.add_fn(entry);
            if user && decl.body.is_some() {
                let names = decl.params.iter().map(|p| p.name.name.clone()).collect();
                self.script_fns.push((entry, names));
            }
            pending.push(PendingFn {
                decl,
                func,
                entry,
                generics: scope,
            });
        }
        pending
    }

    /// Two script functions of one name must differ in their first
    /// parameter's type, or calls could not choose between them.
    fn check_overload_clash(&mut self, decl: &ast::FnDecl, entry: &FnEntry) {
        let Some(existing) = self.fn_names.get(&entry.name) else {
            return;
        };
        let clash = existing.iter().copied().find(|&other| {
            let other = &self.fns[other];
            other.user == entry.user && matches!(other.callee, Callee::Script(_)) && {
                match (other.params.first(), entry.params.first()) {
                    (Some(a), Some(b)) => same_shape(a, b),
                    (a, b) => a.is_none() && b.is_none(),
                }
            }
        });
        let Some(clash) = clash else { return };
        if self.replaces_fn(clash) {
            self.forget_fn(&entry.name, clash);
        } else {
            self.error(duplicate(&decl.name).with_help(
                "functions may share a name only when their first parameters' types differ",
            ));
        }
    }

    // ---- types as written ----

    /// The type a written type denotes, reporting unknown names.
    fn resolve_type(&mut self, texpr: &TypeExpr, generics: &HashMap<String, ParamId>) -> Type {
        match &texpr.kind {
            TypeExprKind::Nil => Type::Nil,
            TypeExprKind::List(inner) => Type::List(Box::new(self.resolve_type(inner, generics))),
            TypeExprKind::Map(key, value) => {
                let key_type = self.resolve_type(key, generics);
                if !key_type.is_key() && !matches!(key_type, Type::Param(_)) {
                    self.error(Diagnostic::new(
                        codes::MISMATCH,
                        "map keys must be `int`, `str` or `bool`",
                        key.span,
                        "not a key type",
                    ));
                }
                Type::Map(
                    Box::new(key_type),
                    Box::new(self.resolve_type(value, generics)),
                )
            }
            TypeExprKind::Optional(inner) => Type::optional(self.resolve_type(inner, generics)),
            TypeExprKind::Fn {
                params,
                ret,
                yields,
                receives,
            } => {
                let params = params
                    .iter()
                    .map(|p| self.resolve_type(p, generics))
                    .collect();
                let ret = ret
                    .as_ref()
                    .map_or(Type::Nil, |r| self.resolve_type(r, generics));
                let yields = yields.as_ref().map(|y| self.resolve_type(y, generics));
                // `fn() yields Y` receives nil, as `Coro<Y>` means `Coro<Y, nil>`.
                let receives = match receives {
                    Some(r) => Some(self.resolve_type(r, generics)),
                    None => yields.as_ref().map(|_| Type::Nil),
                };
                Type::Fn(Box::new(crate::types::FnType {
                    params,
                    ret,
                    yields,
                    receives,
                }))
            }
            TypeExprKind::Named(name, args) => {
                self.resolve_named_type(texpr.span, name, args, generics)
            }
        }
    }

    fn resolve_named_type(
        &mut self,
        span: Span,
        name: &ast::Ident,
        args: &[TypeExpr],
        generics: &HashMap<String, ParamId>,
    ) -> Type {
        let args: Vec<Type> = args
            .iter()
            .map(|a| self.resolve_type(a, generics))
            .collect();
        let simple = match name.name.as_str() {
            "int" => Some(Type::Int),
            "float" => Some(Type::Float),
            "bool" => Some(Type::Bool),
            "str" => Some(Type::Str),
            "any" if self.allow_any => Some(Type::Any),
            "any" => {
                self.error(
                    Diagnostic::new(
                        codes::UNKNOWN_TYPE,
                        "`any` cannot be used in scripts",
                        name.span,
                        "only library signatures take `any`",
                    )
                    .with_help("write the type, or make the function generic: `fn f<T>(x: T)`"),
                );
                Some(Type::Error)
            }
            _ => None,
        };
        if let Some(ty) = simple {
            return self.check_type_args(span, &name.name, args, 0, |_| ty.clone());
        }
        if let Some(id) = generics.get(&name.name) {
            let id = *id;
            return self.check_type_args(span, &name.name, args, 0, |_| Type::Param(id));
        }
        match name.name.as_str() {
            "Coro" => {
                if args.len() == 1 {
                    return Type::Coro(Box::new(args[0].clone()), Box::new(Type::Nil));
                }
                return self.check_type_args(span, "Coro", args, 2, |a| {
                    Type::Coro(Box::new(a[0].clone()), Box::new(a[1].clone()))
                });
            }
            "Task" => {
                return self.check_type_args(span, "Task", args, 1, |a| {
                    Type::Task(Box::new(a[0].clone()))
                })
            }
            "Chan" => {
                return self.check_type_args(span, "Chan", args, 1, |a| {
                    Type::Chan(Box::new(a[0].clone()))
                })
            }
            other => {
                if let Some(handle) = crate::types::Handle::named(other) {
                    return self.check_type_args(span, other, args, 0, |_| Type::Handle(handle));
                }
            }
        }
        match self.type_named(&name.name) {
            Some(TypeName::Struct(id)) => {
                let count = self.structs[id.index()].generics.len();
                self.check_type_args(span, &name.name, args, count, |a| {
                    Type::Struct(id, a.to_vec())
                })
            }
            Some(TypeName::Enum(id)) => {
                let count = self.enums[id.index()].generics.len();
                self.check_type_args(span, &name.name, args, count, |a| {
                    Type::Enum(id, a.to_vec())
                })
            }
            None => {
                let help = self.similar_type(&name.name, generics).unwrap_or_else(|| {
                    "types are int, float, bool, str, nil, [T], [K: V], T?, fn(...) -> T, and declared structs and enums".to_string()
                });
                self.error(
                    Diagnostic::new(
                        codes::UNKNOWN_TYPE,
                        format!("unknown type `{}`", name.name),
                        name.span,
                        "not a type in scope",
                    )
                    .with_help(help),
                );
                Type::Error
            }
        }
    }

    /// The hint for an unknown type `name`: the closest of the built-in
    /// types, the declared ones and the type parameters in scope.
    fn similar_type(&self, name: &str, generics: &HashMap<String, ParamId>) -> Option<String> {
        let names = BUILTIN_TYPES
            .iter()
            .copied()
            .filter(|ty| *ty != "any")
            .chain(self.type_names.keys().map(String::as_str))
            .chain(generics.keys().map(String::as_str));
        crate::suggest::did_you_mean(name, names)
    }

    fn check_type_args(
        &mut self,
        span: Span,
        name: &str,
        args: Vec<Type>,
        expected: usize,
        make: impl FnOnce(&[Type]) -> Type,
    ) -> Type {
        if args.len() != expected {
            self.error(Diagnostic::new(
                codes::GENERIC,
                format!(
                    "`{name}` takes {expected} type argument(s), found {}",
                    args.len()
                ),
                span,
                "wrong number of type arguments",
            ));
            return Type::Error;
        }
        make(&args)
    }

    /// The native bound to `key` (one the standard library always has).
    fn native_by_key(&self, key: &str) -> NativeIdx {
        let index = self.natives.iter().position(|native| native.key == key);
        NativeIdx(index.unwrap_or_default() as u32)
    }

    /// Fresh yield and receive types for a function body; any left unbound
    /// when compilation ends become `nil` (the function never yields, or
    /// nothing is ever sent).
    fn fresh_effects(&mut self) -> (Type, Type) {
        let effects = (self.unifier.fresh(), self.unifier.fresh());
        self.effect_vars.push(effects.0.clone());
        self.effect_vars.push(effects.1.clone());
        effects
    }

    /// Ends compilation: unbound yield/receive types become `nil`, then
    /// every variable's type must be known.
    fn settle_types(&mut self) {
        // A yield type nothing constrained is unknown, not `nil`: yields the
        // checker could not see (through callbacks) are then unchecked.
        for (idx, ty) in std::mem::take(&mut self.late_type_names) {
            let desc = if self.unifier.has_unbound(&ty) {
                TypeDesc::default()
            } else {
                self.type_desc(&ty, &[])
            };
            self.constants[idx.index()] = Constant::Type(desc);
        }
        for var in std::mem::take(&mut self.effect_vars) {
            if self.unifier.has_unbound(&var) {
                self.unifier.unify(&var, &Type::Nil);
            }
        }
        let label = self.file_label.take();
        for (yields, name, span, file) in std::mem::take(&mut self.spawn_checks) {
            self.file_label = file;
            self.check_spawned_yields(&yields, name.as_deref(), span);
        }
        for (name, ty, file) in std::mem::take(&mut self.uninferred) {
            if self.unifier.has_unbound(&ty) {
                self.file_label = file;
                self.cannot_infer(&name, &ty);
            }
        }
        self.file_label = label;
        let receives = self.main_effects.1.clone();
        self.main_receives = self.type_desc(&receives, &[]);
    }

    // ---- constants ----

    fn constant(&mut self, key: ConstKey) -> ConstIdx {
        if let Some(index) = self.const_index.get(&key) {
            return *index;
        }
        let constant = match &key {
            ConstKey::Int(n) => Constant::Int(*n),
            ConstKey::Float(bits) => Constant::Float(f64::from_bits(*bits)),
            ConstKey::Str(text) => Constant::Str(text.clone()),
        };
        let index = ConstIdx(self.constants.len() as u32);
        self.constants.push(constant);
        self.const_index.insert(key, index);
        index
    }

    // ---- globals ----

    fn declare_global(&mut self, name: &str, ty: Type) -> GlobalIdx {
        let index = GlobalIdx(self.globals.len() as u32);
        self.globals.push(GlobalInfo { ty });
        self.global_order.push(name.to_string());
        self.global_names.insert(name.to_string(), index);
        index
    }

    // ---- function bodies ----

    /// Compiles the file's top-level statements as a new `main`. With
    /// `keep_result`, a final expression statement's value is `main`'s
    /// result, and its type is returned (the REPL shows both). A top-level
    /// `return` ends it early (`script_return`).
    fn compile_top_level(&mut self, file: &ast::File, keep_result: bool) -> Option<Type> {
        let func = self.reserve_function("main");
        self.main = func;
        let stmts: Vec<&ast::Stmt> = file
            .items
            .iter()
            .filter_map(|item| match item {
                ast::Item::Stmt(stmt) => Some(stmt),
                _ => None,
            })
            .collect();
        // The `T` of the script's result `T?`, bound by its first `return`
        // with a value; the end of the script gives nil.
        let result_type = self.unifier.fresh();
        let mut builder = FnBuilder::new(func, result_type, false);
        builder.is_main = true;
        self.main_effects = self.fresh_effects();
        builder.effects = self.main_effects.clone();
        builder.cells = captures::cell_names_in_stmts(stmts.iter().copied());
        self.builders.push(builder);
        let result = match stmts.split_last() {
            Some((last, before)) if keep_result => {
                for stmt in before {
                    self.stmt(stmt);
                }
                self.result_stmt(last)
            }
            _ => {
                for stmt in &stmts {
                    self.stmt(stmt);
                }
                None
            }
        };
        let end = stmts.last().map_or(Span::default(), |s| Span {
            start: s.span.end,
            end: s.span.end,
        });
        self.emit(spool_vm::Op::ReturnNil, end);
        self.finish_builder(0);
        result
    }

    fn compile_fn_body(&mut self, pending: PendingFn<'_>) {
        let entry = self.fns[pending.entry].clone();
        let decl = pending.decl;
        let Some(body) = &decl.body else { return };
        let mut builder = FnBuilder::new(pending.func, entry.ret.clone(), false);
        builder.effects = match &entry.effects {
            Some(effects) => effects.clone(),
            None => self.fresh_effects(),
        };
        builder.generics = pending.generics;
        builder.cells = captures::cell_names_in_fn(&decl.params, body);
        self.builders.push(builder);
        for (param, ty) in decl.params.iter().zip(&entry.params) {
            self.declare_param(&param.name, ty.clone());
        }
        self.block_stmts(body);
        self.finish_body(body, &entry.ret, decl.name.span, &decl.name.name);
        self.finish_builder(decl.params.len() as u16);
    }

    /// Ends a function body: a reachable end is a `return nil`, which is
    /// an error when the function promises a value.
    fn finish_body(&mut self, body: &ast::Block, ret: &Type, name_span: Span, name: &str) {
        let end = Span {
            start: body.span.end.saturating_sub(1),
            end: body.span.end,
        };
        if !stmt::block_terminates(body) {
            let ret = self.unifier.shallow(ret);
            if !matches!(
                ret,
                Type::Nil | Type::Error | Type::Opt(_) | Type::Var(_) | Type::Any
            ) {
                let shown = self.show(&ret);
                self.error(
                    Diagnostic::new(
                        codes::MISSING_RETURN,
                        format!("missing return in `{name}`, which returns `{shown}`"),
                        end,
                        "the end of the function can be reached",
                    )
                    .with_label(name_span, format!("declared to return `{shown}`"))
                    .with_help("add a `return` at the end, or cover every path with one"),
                );
            }
            self.emit(spool_vm::Op::ReturnNil, end);
        } else if self.b().code.is_empty() || self.control_can_pass_the_end() {
            // Every path returns or throws, but the code does not end with
            // such an instruction, or a jump (one never taken) leads past
            // it: the interpreter relies on control never going on past
            // the last instruction and jumps without comparing with the
            // end (`check_function`).
            self.emit(spool_vm::Op::ReturnNil, end);
        }
    }

    /// Can control go on past the last instruction of the function being
    /// compiled, by falling through it or by a jump to its end?
    fn control_can_pass_the_end(&mut self) -> bool {
        let code = &self.b().code;
        code.last().is_some_and(spool_vm::Op::falls_through) || builder::jumps_to(code, code.len())
    }

    /// Pops the innermost builder and stores its function.
    fn finish_builder(&mut self, arity: u16) -> builder::FnBuilder {
        let builder = self.builders.pop().expect("a function is being compiled");
        if builder.too_many_registers {
            let name = self.functions[builder.func.index()].name.clone();
            self.error(
                Diagnostic::new(
                    codes::TOO_DEEP,
                    format!(
                        "`{name}` needs more than {} registers",
                        builder::MAX_REGISTERS
                    ),
                    Span::default(),
                    "in this file",
                )
                .with_help("split the function, or build large lists in a loop"),
            );
        }
        let function = &mut self.functions[builder.func.index()];
        function.arity = arity;
        function.register_count = builder.max_reg.max(arity).max(1);
        function.capture_count = builder.captures.len() as u16;
        function.code = builder.code.clone();
        function.locs = builder.locs.clone();
        function.locals = builder.local_info.clone();
        let file = &self.file_label;
        let uninferred = builder.uninferred.iter().cloned();
        self.uninferred
            .extend(uninferred.map(|(name, ty)| (name, ty, file.clone())));
        builder
    }
}

fn duplicate(name: &ast::Ident) -> Diagnostic {
    Diagnostic::new(
        codes::DUPLICATE,
        format!("duplicate definition of `{}`", name.name),
        name.span,
        "defined again here",
    )
}

/// Whether `name` is a type the language itself provides (`int`, `Chan`, ...).
pub fn is_builtin_type(name: &str) -> bool {
    BUILTIN_TYPES.contains(&name)
}

/// Do two first-parameter types select the same calls? Generic parameters
/// count as alike.
fn same_shape(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Param(_), Type::Param(_)) | (Type::Fn(_), Type::Fn(_)) => true,
        (Type::List(x), Type::List(y))
        | (Type::Opt(x), Type::Opt(y))
        | (Type::Task(x), Type::Task(y))
        | (Type::Chan(x), Type::Chan(y)) => same_shape(x, y),
        (Type::Map(k1, v1), Type::Map(k2, v2)) | (Type::Coro(k1, v1), Type::Coro(k2, v2)) => {
            same_shape(k1, k2) && same_shape(v1, v2)
        }
        (Type::Struct(i, _), Type::Struct(j, _)) => i == j,
        (Type::Enum(i, _), Type::Enum(j, _)) => i == j,
        _ => a == b,
    }
}
