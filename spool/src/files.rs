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

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{CompileError, Engine};

/// The largest file [`Engine::compile_path`] reads.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The most files one program may have.
pub const MAX_FILES: usize = spool_lang::compile::MAX_FILES;

/// Follows the imports of the main file `name` (whose text is `source`)
/// through `load` and compiles the program; runs on the front end's
/// thread.
pub(crate) fn compile_program(
    engine: &Engine,
    name: &str,
    source: &[u8],
    load: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
) -> Result<(spool_vm::Program, Vec<(String, String)>), CompileError> {
    let first_expr = engine.first_expr();
    let (files, diagnostics, _) =
        spool_lang::compile::load_program(name, source, first_expr, &Default::default(), load);
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| (f.name.clone(), f.text.clone()))
        .collect();
    if !diagnostics.is_empty() {
        return Err(CompileError::of_files(texts, diagnostics));
    }
    let sources = spool_lang::compile::LoadedFile::sources(&files);
    match engine.library_in().compile(&sources) {
        Ok(program) => Ok((program, texts)),
        Err(diagnostics) => Err(CompileError::of_files(texts, diagnostics)),
    }
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
pub fn beside(main: impl AsRef<Path>) -> impl FnMut(&str) -> Result<Vec<u8>, String> + Send + Sync {
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
