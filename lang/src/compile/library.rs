//! The standard library compiled once: the checker's state right after the
//! prelude's types, the library's natives and the prelude's functions are
//! declared and the prelude's bodies compiled. Every compile used to redo
//! that work; a [`Library`] is made once (the `spool` crate makes it at
//! build time and embeds its bytes) and each compile starts from a copy.
//!
//! A compile from a library first declares the host's natives, after the
//! prelude's functions instead of before them: they get the same native
//! indices as in [`super::compile_program`], and a host native whose name
//! no library function has is found by calls exactly as it would be there.
//! Hosts that replace a library function or declare types of their own
//! compile the whole library every time (the `spool` crate decides).

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use spool_vm::{Function, NativeDecl, Program};

use super::{Compiler, FnEntry, NativeSpec, SourceFile};
use crate::diag::Diagnostic;

/// The library's checked and compiled state, ready to compile scripts
/// against.
#[derive(Clone)]
pub struct Library {
    compiler: Compiler,
    /// The prelude's [`crate::ast::File::expr_count`]: scripts number
    /// their expressions from there.
    expr_count: u32,
    /// The library's functions as a program's fingerprint encodes them.
    functions: LibraryFunctions,
}

/// The library's functions and natives (a program's first ones) encoded
/// as [`spool_vm::snapshot::fingerprint`] encodes them (postcard, one
/// after another), so the fingerprint of a program compiled from the
/// library hashes these bytes instead of encoding them again.
#[derive(Clone, Default)]
pub(super) struct LibraryFunctions {
    /// How many functions the library has.
    count: usize,
    /// Their encodings, in order.
    bytes: Vec<u8>,
    /// How many natives the library declares.
    native_count: usize,
    /// Their encodings, in order.
    native_bytes: Vec<u8>,
}

/// What [`Library::to_bytes`] writes.
#[derive(Serialize, Deserialize)]
struct Image<'a> {
    compiler: Compiler,
    expr_count: u32,
    /// [`LibraryFunctions::bytes`], read without copying them byte by byte.
    #[serde(borrow)]
    function_bytes: Encoded<'a>,
    /// [`LibraryFunctions::native_bytes`], the same way.
    #[serde(borrow)]
    native_bytes: Encoded<'a>,
}

/// Bytes that postcard writes and reads as one block.
struct Encoded<'a>(&'a [u8]);

impl Serialize for Encoded<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Encoded<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'de [u8]>::deserialize(deserializer).map(Encoded)
    }
}

impl LibraryFunctions {
    /// The encodings of `functions` and `natives`.
    fn of(functions: &[Function], natives: &[NativeDecl]) -> LibraryFunctions {
        LibraryFunctions {
            count: functions.len(),
            bytes: encodings(functions),
            native_count: natives.len(),
            native_bytes: encodings(natives),
        }
    }

    /// [`spool_vm::snapshot::fingerprint`] of `program`, whose first
    /// functions and natives are these, with its own fingerprint still 0:
    /// FNV-1a over the program's encoding without that last field, fed in
    /// parts (the functions' count, these functions, the program's own
    /// functions, the fields up to the natives, the natives' count, these
    /// natives, the program's own natives, the fields after them), which
    /// gives the same hash.
    pub(super) fn fingerprint(&self, program: &mut Program) -> u64 {
        debug_assert_eq!(program.fingerprint, 0);
        let mut hash = Fnv1a::default();
        hash_each(&mut hash, &[program.functions.len() as u64]);
        hash.write(&self.bytes);
        hash_each(&mut hash, &program.functions[self.count..]);
        if program.natives.len() < self.native_count {
            // Not a program of this library's (it has fewer natives):
            // the rest encoded whole, less the empty list's count (0, one
            // byte) before it and its fingerprint (0, one byte) after it.
            let functions = std::mem::take(&mut program.functions);
            let rest = Hashing::new(&mut hash, 1, true);
            let last = postcard::serialize_with_flavor(&*program, rest);
            program.functions = functions;
            debug_assert_eq!(last.expect("a program serializes"), Some(0));
            return hash.0;
        }
        // The fields after the functions, in the order `Program` declares
        // them (postcard writes a struct as its fields one after another),
        // the library's natives from their encodings; the fingerprint
        // field, last, left out.
        let before_natives = (
            &program.main,
            &program.constants,
            &program.structs,
            &program.enums,
        );
        hash_each(&mut hash, std::slice::from_ref(&before_natives));
        hash_each(&mut hash, &[program.natives.len() as u64]);
        hash.write(&self.native_bytes);
        hash_each(&mut hash, &program.natives[self.native_count..]);
        let after_natives = (
            &program.globals,
            &program.files,
            &program.builtins,
            &program.main_receives,
        );
        hash_each(&mut hash, std::slice::from_ref(&after_natives));
        hash.0
    }
}

/// The encodings (postcard) of `items`, one after another.
fn encodings<T: Serialize>(items: &[T]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for item in items {
        bytes = postcard::to_extend(item, bytes).expect("the library serializes");
    }
    bytes
}

/// Feeds the encodings (postcard) of `items` to `hash`.
fn hash_each<T: Serialize>(hash: &mut Fnv1a, items: &[T]) {
    for item in items {
        let whole = Hashing::new(hash, 0, false);
        postcard::serialize_with_flavor(item, whole).expect("a program serializes");
    }
}

/// The checker's named functions (script, prelude and natives), by
/// entry index. Those of a decoded library stay encoded until a compile
/// first looks one up: a short script calls a few of the library's
/// hundred-odd functions, and decoding them all (each name, parameter
/// list and type an allocation) cost more than compiling it.
#[derive(Clone, Default)]
pub(super) struct FnEntries {
    /// Each entry, empty while it is still only encoded (boxed: the
    /// empty slots, all written at start-up, take 16 bytes each instead
    /// of an entry's size).
    entries: Vec<OnceLock<Box<FnEntry>>>,
    /// The encodings (postcard) of the decoded library's entries, one
    /// after another; entry `i` of them ends at `ends[i]`.
    encoded: Arc<[u8]>,
    ends: Arc<[u32]>,
}

impl FnEntries {
    /// How many entries there are.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds an entry after the others.
    pub(super) fn push(&mut self, entry: FnEntry) {
        self.entries.push(OnceLock::from(Box::new(entry)));
    }

    /// The encoding of entry `index`, which came from a decoded library.
    fn encoding(&self, index: usize) -> &[u8] {
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.encoded[start as usize..self.ends[index] as usize]
    }
}

impl std::ops::Index<usize> for FnEntries {
    type Output = FnEntry;

    fn index(&self, index: usize) -> &FnEntry {
        self.entries[index].get_or_init(|| {
            Box::new(
                postcard::from_bytes(self.encoding(index)).expect("the library's entries decode"),
            )
        })
    }
}

impl Serialize for FnEntries {
    /// The ends and the encodings of every entry (as [`FnEntries`] keeps
    /// a decoded library's).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut encoded = Vec::new();
        let mut ends = Vec::with_capacity(self.len());
        for index in 0..self.len() {
            encoded =
                postcard::to_extend(&self[index], encoded).map_err(serde::ser::Error::custom)?;
            ends.push(encoded.len() as u32);
        }
        (ends, Encoded(&encoded)).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for FnEntries {
    /// Every entry left encoded.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (ends, encoded): (Vec<u32>, Encoded<'de>) = Deserialize::deserialize(deserializer)?;
        let mut entries = Vec::with_capacity(ends.len() + ROOM);
        entries.extend(std::iter::repeat_with(OnceLock::new).take(ends.len()));
        Ok(FnEntries {
            entries,
            encoded: Arc::from(encoded.0),
            ends: Arc::from(ends),
        })
    }
}

/// Room a decoded library's growing lists keep past their entries: a
/// compile appends the host's natives and the script's functions to
/// them, and a full vector would be copied whole into a new one (a
/// start-up's largest writes to fresh memory). Room nobody uses is
/// never touched, so it costs no memory.
const ROOM: usize = 64;

/// Deserializes a list of the library's with [`ROOM`] to grow into.
pub(super) fn with_room<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Items<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Items<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            // The library's own bytes (trusted): the hint is the length;
            // capped all the same, as serde caps what it reserves.
            let hint = seq.size_hint().unwrap_or(0).min(1 << 16);
            let mut items = Vec::with_capacity(hint + ROOM);
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Items(std::marker::PhantomData))
}

/// FNV-1a, 64 bits, fed in parts: the hash of
/// [`spool_vm::snapshot::fingerprint`].
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// Hashes `bytes` after what came before.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A postcard output that hashes what is written to it instead of
/// keeping it, less its first `skip` bytes and, if asked, its last byte
/// (held back until the next comes, and the output's result).
struct Hashing<'h> {
    hash: &'h mut Fnv1a,
    skip: usize,
    hold_last: bool,
    held: Option<u8>,
}

impl<'h> Hashing<'h> {
    fn new(hash: &'h mut Fnv1a, skip: usize, hold_last: bool) -> Hashing<'h> {
        Hashing {
            hash,
            skip,
            hold_last,
            held: None,
        }
    }
}

impl postcard::ser_flavors::Flavor for Hashing<'_> {
    /// The last byte, when it was held back.
    type Output = Option<u8>;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.skip > 0 {
            self.skip -= 1;
        } else if !self.hold_last {
            self.hash.write(&[byte]);
        } else if let Some(before) = self.held.replace(byte) {
            self.hash.write(&[before]);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Option<u8>> {
        Ok(self.held)
    }
}

impl Library {
    /// Checks and compiles the library: the prelude and the natives' signatures.
    /// Fails with the prelude's mistakes.
    pub fn new(
        prelude: SourceFile<'_>,
        natives: &[NativeSpec],
    ) -> Result<Library, Vec<Diagnostic>> {
        let compiler = Compiler::with_library(prelude, natives);
        if !compiler.diags.is_empty() {
            return Err(compiler.diags);
        }
        Ok(Library {
            functions: LibraryFunctions::of(&compiler.functions, &compiler.natives),
            compiler,
            expr_count: prelude.ast.expr_count,
        })
    }

    /// The library as bytes (postcard), for [`Library::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        debug_assert!(self.compiler.builders.is_empty() && self.compiler.repl.is_none());
        let image = Image {
            compiler: self.compiler.clone(),
            expr_count: self.expr_count,
            function_bytes: Encoded(&self.functions.bytes),
            native_bytes: Encoded(&self.functions.native_bytes),
        };
        postcard::to_allocvec(&image).expect("a library serializes")
    }

    /// The library [`Library::to_bytes`] wrote. The bytes must come from
    /// the same build of this crate: they are trusted, not validated.
    ///
    /// The decoded library has no current file (no text, one line): every
    /// compile and every session's input makes its own file current before
    /// it emits any code, so the prelude's text is not needed here.
    pub fn from_bytes(bytes: &[u8]) -> Result<Library, postcard::Error> {
        let Image {
            mut compiler,
            expr_count,
            function_bytes,
            native_bytes,
        } = postcard::from_bytes(bytes)?;
        compiler.line_starts = vec![0];
        let functions = LibraryFunctions {
            count: compiler.functions.len(),
            bytes: function_bytes.0.to_vec(),
            native_count: compiler.natives.len(),
            native_bytes: native_bytes.0.to_vec(),
        };
        Ok(Library {
            compiler,
            expr_count,
            functions,
        })
    }

    /// The number of expressions of the prelude: a script's first
    /// expression id.
    pub fn expr_count(&self) -> u32 {
        self.expr_count
    }

    /// The names of the structs and enums the library declares.
    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        let structs = self.compiler.structs.iter().map(|s| s.name.as_str());
        structs.chain(self.compiler.enums.iter().map(|e| e.name.as_str()))
    }

    /// The library's natives, as `(key, name)`.
    pub fn natives(&self) -> impl Iterator<Item = (&str, &str)> {
        let natives = self.compiler.natives.iter();
        natives.map(|native| (native.key.as_str(), native.name.as_str()))
    }

    /// Does the library have a function (native or written in Spool)
    /// called `name`?
    pub fn has_function(&self, name: &str) -> bool {
        self.compiler.fn_names.contains_key(name)
    }

    /// The names of the library's functions (natives and those written in
    /// Spool), each once, in no particular order.
    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.compiler.fn_names.keys().map(String::as_str)
    }

    /// [`compile_program_with`] for a library used for one compile only:
    /// the compile starts from this library's state itself rather than
    /// from a copy of it (which costs about as much as the compile of a
    /// short script). What is left of the checker's state afterwards is
    /// not freed but kept to the process's end, like the library a
    /// process keeps once decoded: freeing it costs as much again. Meant
    /// for the first compile of a process only, so at most one is kept.
    pub fn compile_once(
        self,
        files: &[SourceFile<'_>],
        natives: &[NativeSpec],
    ) -> Result<Program, Vec<Diagnostic>> {
        let mut compiler = self.compiler;
        compiler.declare_natives(natives);
        let compiled = super::compile_files(&mut compiler, files, Some(&self.functions));
        std::mem::forget(compiler);
        compiled
    }

    /// A compiler with the library and the host's `natives` in scope.
    pub(super) fn compiler(&self, natives: &[NativeSpec]) -> Compiler {
        let mut compiler = self.compiler.clone();
        compiler.declare_natives(natives);
        compiler
    }
}

/// [`super::compile_program`] from a compiled library, with the host's
/// `natives` (none of them named as a library function is).
pub fn compile_program_with(
    library: &Library,
    files: &[SourceFile<'_>],
    natives: &[NativeSpec],
) -> Result<Program, Vec<Diagnostic>> {
    let compiler = &mut library.compiler(natives);
    super::compile_files(compiler, files, Some(&library.functions))
}
