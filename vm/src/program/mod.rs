//! The compiled program: plain data the compiler produces and the VM runs.
//!
//! Architecture invariant: a `Program` holds no host closures and no
//! pointers; it round-trips through serde, so a saved run can embed it.

pub mod disasm;
pub mod op;
pub mod types;

use serde::{Deserialize, Serialize};

use crate::heap::value::{EnumIdx, FileIdx, FuncIdx, Reg, StructIdx};
use crate::program::op::Op;
pub use crate::program::types::{TypeDesc, TypeNode};

/// A whole compiled program: the script, its prelude and its layouts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Program {
    /// Every function; [`Program::main`] is the script's top level.
    pub functions: Vec<Function>,
    /// The function that runs the script's top-level statements.
    pub main: FuncIdx,
    /// Constants referenced by `LoadConst`.
    pub constants: Vec<Constant>,
    /// Struct layouts, indexed by [`StructIdx`].
    pub structs: Vec<StructLayout>,
    /// Enum layouts, indexed by [`crate::heap::value::EnumIdx`].
    pub enums: Vec<EnumLayout>,
    /// Native functions the program calls, bound by key when a run starts.
    pub natives: Vec<NativeDecl>,
    /// Names of the top-level `let`s, indexed by [`crate::heap::value::GlobalIdx`].
    pub globals: Vec<String>,
    /// Source file names, indexed by [`FileIdx`].
    pub files: Vec<String>,
    /// Layouts the VM itself needs to know.
    pub builtins: Builtins,
    /// The type the script's top-level `yield`s receive from the host, so
    /// a host can build its answer.
    #[serde(default)]
    pub main_receives: TypeDesc,
    /// The script's own top-level functions (not the library's) with
    /// their types, in declaration order, for a host that calls one
    /// (`spool::Program::call`). Set by the compiler and not saved: a
    /// program decoded from a saved run, or an interactive session's, has
    /// none (so it is no part of the format or the fingerprint).
    #[serde(skip)]
    pub signatures: Vec<FnSignature>,
    /// A hash identifying this program ([`crate::saved::snapshot::fingerprint`]),
    /// set by the compiler; 0 when unknown (an interactive session's
    /// program computes it when saved). Saved runs record it.
    #[serde(default)]
    pub fingerprint: u64,
}

/// A top-level function of the script as a host sees it: where its code
/// is and the types of what goes in and out, as the checker knows them
/// (type parameters of a generic function are unknown: any value fits).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FnSignature {
    /// The function's name; overloads share it (their first parameters'
    /// types differ).
    pub name: String,
    /// Its code.
    pub func: FuncIdx,
    /// Each parameter's name and type, in order.
    pub params: Vec<(String, TypeDesc)>,
    /// What it returns (`nil` without a written result type).
    pub result: TypeDesc,
    /// What its `yield`s outside any coroutine receive from the host
    /// (`nil` when nothing is received).
    pub receives: TypeDesc,
}

/// Types the VM constructs or inspects on its own.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Builtins {
    /// `struct Error { kind: str, message: str }`: what runtime errors become
    /// when caught.
    pub error: StructIdx,
    /// `enum Json`, built by `json_parse`.
    pub json: EnumIdx,
}

/// A constant operand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Constant {
    /// An int too large for `LoadInt`'s immediate.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string; the run allocates it once and every `LoadConst` shares it.
    Str(String),
    /// A type, for a native that checks values at run time (the yield
    /// type `coroutine` records); `LoadConst` gives the constant's index as
    /// an int, which the native looks up.
    Type(TypeDesc),
}

/// One compiled function.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Function {
    /// Name for traces and `<fn name>`; lambdas are named `<lambda>` or
    /// after the function that contains them.
    pub name: String,
    /// The file the function was written in.
    pub file: FileIdx,
    /// Number of parameters, which arrive in registers `0..arity`.
    pub arity: u16,
    /// Registers the frame needs, parameters included.
    pub register_count: u16,
    /// Number of captures a closure of this function carries.
    pub capture_count: u16,
    /// The instructions.
    pub code: Vec<Op>,
    /// Source position of each instruction (same length as `code`).
    pub locs: Vec<Loc>,
    /// Names of local variables and the registers that hold them, for
    /// inspection and debugging.
    pub locals: Vec<LocalInfo>,
}

/// A local variable's name and register.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocalInfo {
    /// The variable's name.
    pub name: String,
    /// Its register.
    pub reg: Reg,
    /// The first instruction at which it is in scope.
    #[serde(default)]
    pub start: u32,
    /// The first instruction past its scope.
    #[serde(default = "end_of_function")]
    pub end: u32,
}

fn end_of_function() -> u32 {
    u32::MAX
}

impl LocalInfo {
    /// Is the variable in scope at instruction `pc`?
    pub fn in_scope(&self, pc: u32) -> bool {
        self.start <= pc && pc < self.end
    }
}

/// A 1-based line and column in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loc {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in chars.
    pub col: u32,
}

/// The layout of a struct.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StructLayout {
    /// The struct's name.
    pub name: String,
    /// Field names in runtime order.
    pub fields: Vec<String>,
    /// The struct's type parameters, by name (`T` of `Box<T>`).
    pub params: Vec<String>,
    /// Each field's type, in the order of `fields` (type parameters as
    /// [`TypeNode::Param`] of `params`): what a host needs to build a value
    /// of the struct from outside data, such as JSON.
    pub field_types: Vec<TypeDesc>,
}

/// The layout of an enum.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EnumLayout {
    /// The enum's name.
    pub name: String,
    /// Variants in declaration order.
    pub variants: Vec<VariantLayout>,
    /// The enum's type parameters, by name.
    pub params: Vec<String>,
}

/// One variant of an enum.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VariantLayout {
    /// The variant's name.
    pub name: String,
    /// Number of payload fields.
    pub arity: u16,
    /// The payload's types (`arity` of them; type parameters as
    /// [`TypeNode::Param`] of the enum's `params`).
    pub field_types: Vec<TypeDesc>,
}

/// A native function the program calls.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NativeDecl {
    /// Unique key the host binds it by (for example `"str.len"`).
    pub key: String,
    /// Name shown in traces and `<fn name>`.
    pub name: String,
    /// For a host I/O operation, its declared result type: calling it
    /// suspends the task with an I/O request, and the host's answer is
    /// checked against this type.
    #[serde(default)]
    pub io: Option<TypeDesc>,
}
