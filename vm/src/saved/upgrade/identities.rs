//! Stable identities: what a function, global, native or type of a
//! program is called independently of its numbering (a declared function
//! by file, name, arity and rank; a lambda by the function that creates it
//! and its rank there; the rest by name), so two programs can be matched.

use super::*;
use crate::FileIdx;

/// The identity of a function, independent of numbering. Nested
/// functions name their parent by its interned identity.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) enum Shape {
    /// The script's top level.
    Main,
    /// A declared function: file (see [`file_key`]), name, arity, rank.
    Declared(String, String, u16, u32),
    /// A function created by another: parent, name, rank.
    Nested(u32, String, u32),
    /// A nested function no other function creates: file, name, rank.
    Orphan(String, String, u32),
}

/// Interns identities shared by two programs: equal identities get equal
/// numbers, whichever program they come from.
#[derive(Default)]
pub(super) struct Interner {
    pub(super) ids: HashMap<Shape, u32>,
}

impl Interner {
    pub(super) fn id(&mut self, shape: Shape) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry(shape).or_insert(next)
    }
}

/// The identities of one program's functions and globals.
pub(super) struct Identities {
    /// Per function, its interned identity.
    pub(super) functions: Vec<u32>,
    /// Per function, the function that creates it, for a nested one.
    pub(super) parent: Vec<Option<usize>>,
    /// Per function: declared, and the only one of its file, name and
    /// arity, so that its identity does not depend on any order.
    pub(super) unique: Vec<bool>,
    /// Per global, its name and rank among globals of that name.
    pub(super) globals: Vec<(String, u32)>,
}

impl Identities {
    pub(super) fn of(program: &Program, interner: &mut Interner) -> Identities {
        let count = program.functions.len();
        let main = program.main.index();
        let script = program.functions.get(main).map(|f| f.file);
        let mut made_as_closure = vec![false; count];
        for function in &program.functions {
            for op in &function.code {
                if let Op::MakeClosure { func, .. } = op {
                    if let Some(flag) = made_as_closure.get_mut(func.index()) {
                        *flag = true;
                    }
                }
            }
        }
        let nested: Vec<bool> = (0..count)
            .map(|index| {
                let function = &program.functions[index];
                if index == main {
                    false
                } else if script.is_some_and(|script| function.file.0 >= script.0) {
                    // The declared functions of the script and of the files
                    // it imports (listed after it) are numbered before its
                    // top level, everything their bodies create after.
                    index > main
                } else {
                    matches!(function.name.as_str(), "lambda" | "defer") || made_as_closure[index]
                }
            })
            .collect();
        // A nested function's parent: the first function before it that
        // creates it (functions are numbered as the compiler meets them,
        // so a body's lambdas come after the body's own function).
        let mut parent: Vec<Option<usize>> = vec![None; count];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (index, function) in program.functions.iter().enumerate() {
            for op in &function.code {
                let (Op::MakeClosure { func, .. } | Op::LoadFunc { func, .. }) = op else {
                    continue;
                };
                let child = func.index();
                if child > index && child < count && nested[child] && parent[child].is_none() {
                    parent[child] = Some(index);
                    children[index].push(child);
                }
            }
        }
        let mut rank: Vec<u32> = vec![0; count];
        for list in &children {
            let mut seen: HashMap<&str, u32> = HashMap::new();
            for &child in list {
                let slot = seen
                    .entry(program.functions[child].name.as_str())
                    .or_default();
                rank[child] = *slot;
                *slot += 1;
            }
        }
        let file_of =
            |function: &crate::program::Function| file_key(program, script, function.file);
        let mut declared: HashMap<(String, &str, u16), u32> = HashMap::new();
        let mut orphans: HashMap<(String, &str), u32> = HashMap::new();
        for (index, function) in program.functions.iter().enumerate() {
            if index == main {
                continue;
            }
            if !nested[index] {
                let key = (file_of(function), function.name.as_str(), function.arity);
                let slot = declared.entry(key).or_default();
                rank[index] = *slot;
                *slot += 1;
            } else if parent[index].is_none() {
                let slot = orphans
                    .entry((file_of(function), function.name.as_str()))
                    .or_default();
                rank[index] = *slot;
                *slot += 1;
            }
        }
        let mut functions = Vec::with_capacity(count);
        for (index, function) in program.functions.iter().enumerate() {
            let name = function.name.clone();
            let shape = if index == main {
                Shape::Main
            } else if !nested[index] {
                Shape::Declared(file_of(function), name, function.arity, rank[index])
            } else if let Some(parent) = parent[index] {
                Shape::Nested(functions[parent], name, rank[index])
            } else {
                Shape::Orphan(file_of(function), name, rank[index])
            };
            functions.push(interner.id(shape));
        }
        let unique = (0..count)
            .map(|index| {
                let function = &program.functions[index];
                let key = (file_of(function), function.name.as_str(), function.arity);
                index != main && !nested[index] && declared.get(&key) == Some(&1)
            })
            .collect();
        let mut seen: HashMap<&str, u32> = HashMap::new();
        let globals = program
            .globals
            .iter()
            .map(|name| {
                let slot = seen.entry(name.as_str()).or_default();
                *slot += 1;
                (name.clone(), *slot - 1)
            })
            .collect();
        Identities {
            functions,
            parent,
            unique,
            globals,
        }
    }
}

/// How identities name a function's file: the main script (whatever its
/// name: `--program` may give a changed script another path) is `""`;
/// the library and imported files go by their names, which are relative
/// to the main script's folder and so the same in both programs. A file
/// outside the list (a hand-built program) goes by its index.
fn file_key(program: &Program, script: Option<FileIdx>, file: FileIdx) -> String {
    if Some(file) == script {
        return String::new();
    }
    match program.files.get(file.index()) {
        Some(name) => name.clone(),
        None => format!("#{}", file.0),
    }
}

/// How a function is named in a message: `` `greet` ``, or for a nested
/// one `` `lambda` in `main` `` (at most three levels).
pub(super) fn display(program: &Program, ids: &Identities, func: usize) -> String {
    let name = |index: usize| {
        program
            .functions
            .get(index)
            .map_or("?", |f| f.name.as_str())
    };
    let mut text = format!("`{}`", name(func));
    let mut at = func;
    for _ in 0..3 {
        match ids.parent.get(at).copied().flatten() {
            Some(parent) => {
                text.push_str(&format!(" in `{}`", name(parent)));
                at = parent;
            }
            None => break,
        }
    }
    text
}
