//! Programs of several files (LANGUAGE.md §11) as embedders compile them:
//! the main file's imports followed through a loader the host gives (a
//! closure, a map of texts in memory, or the file system), each file parsed
//! once, then the whole program compiled at once.
//!
//! Files are named as [`spool_lang::import_name`] names them: relative to
//! the main file's folder (`steps/billing.spl`). The loader is asked for
//! those names; a file it cannot give is a diagnostic at the import's
//! string in the importing file. The library touches the file system only
//! through [`beside`] and [`Engine::compile_path`], which read regular
//! files of at most [`MAX_FILE_BYTES`] each.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use spool_lang::{ast, Diagnostic, SourceFile};

use crate::{CompileError, Engine, PRELUDE_NAME};

/// The largest file [`Engine::compile_path`] reads.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The most files one program may have.
pub const MAX_FILES: usize = 10_000;

/// A file of a program being loaded.
struct Loaded {
    name: String,
    text: String,
    ast: Option<ast::File>,
}

/// Follows the imports of the main file `name` (whose text is `source`)
/// through `load` and compiles the program; runs on the front end's
/// thread.
pub(crate) fn compile_program(
    engine: &Engine,
    name: &str,
    source: &[u8],
    load: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
) -> Result<(spool_vm::Program, Vec<(String, String)>), CompileError> {
    let mut files: Vec<Loaded> = Vec::new();
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let mut next_expr = engine.prelude().expr_count;
    let main_key = name.rsplit('/').next().unwrap_or(name).to_string();
    let mut keys: HashMap<String, usize> = HashMap::from([(main_key, 0)]);
    let mut pending = vec![(name.to_string(), source.to_vec())];
    while let Some((file_name, bytes)) = pending.pop() {
        let index = files.len();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let label = (index > 0).then(|| file_name.clone());
        let ast = match spool_lang::parser::parse_bytes(&bytes, next_expr) {
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
        for import in ast.iter().flat_map(imports_of) {
            let target = spool_lang::import_name(&file_name, index == 0, &import.path);
            if keys.contains_key(&target) {
                continue;
            }
            let loaded = if keys.len() >= MAX_FILES {
                Err(format!("a program has at most {MAX_FILES} files"))
            } else {
                load(&target)
            };
            match loaded {
                Ok(bytes) => {
                    keys.insert(target.clone(), keys.len());
                    pending.insert(0, (target, bytes));
                }
                Err(why) => {
                    let mut diagnostic = Diagnostic::new(
                        spool_lang::diag::codes::IMPORT,
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
        files.push(Loaded {
            name: file_name,
            text,
            ast,
        });
    }
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| (f.name.clone(), f.text.clone()))
        .collect();
    if !diagnostics.is_empty() {
        return Err(CompileError::of_files(texts, diagnostics));
    }
    let sources: Vec<SourceFile<'_>> = files
        .iter()
        .filter_map(|file| {
            Some(SourceFile {
                name: &file.name,
                text: &file.text,
                ast: file.ast.as_ref()?,
            })
        })
        .collect();
    let prelude = SourceFile {
        name: PRELUDE_NAME,
        text: engine.prelude_text(),
        ast: engine.prelude(),
    };
    match spool_lang::compile_program(prelude, &sources, engine.specs()) {
        Ok(program) => Ok((program, texts)),
        Err(diagnostics) => Err(CompileError::of_files(texts, diagnostics)),
    }
}

/// The imports of a parsed file.
fn imports_of(file: &ast::File) -> impl Iterator<Item = &ast::ImportDecl> {
    file.items.iter().filter_map(|item| match item {
        ast::Item::Import(import) => Some(import),
        _ => None,
    })
}

/// A loader for [`Engine::compile_with`] that reads imported files from
/// the file system, relative to the folder of the main file `main`: each a
/// regular file of at most [`MAX_FILE_BYTES`].
///
/// ```no_run
/// let engine = spool::Engine::new();
/// let source = std::fs::read("flow.spl").unwrap();
/// let program = engine.compile_with("flow.spl", &source, spool::files::beside("flow.spl"));
/// ```
pub fn beside(main: impl AsRef<Path>) -> impl FnMut(&str) -> Result<Vec<u8>, String> + Send {
    let folder: PathBuf = main
        .as_ref()
        .parent()
        .map_or_else(PathBuf::new, Path::to_path_buf);
    move |name: &str| read_regular(&folder.join(name))
}

/// Reads a regular file of at most [`MAX_FILE_BYTES`], with the reason in
/// words when it cannot.
pub fn read_regular(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => error.to_string(),
    })?;
    let metadata = file.metadata().map_err(|error| error.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".to_string());
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(format!("larger than {} MiB", MAX_FILE_BYTES >> 20));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {} MiB", MAX_FILE_BYTES >> 20));
    }
    Ok(bytes)
}
