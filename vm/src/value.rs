//! Values held in registers, globals and heap objects, and the newtype
//! indices that address everything else in a run.
//!
//! Architecture invariant: a [`Value`] is 16 bytes, `Copy`, and owns nothing;
//! strings, lists and every other aggregate live in the heap and are reached
//! through an [`ObjRef`].

use serde::{Deserialize, Serialize};

macro_rules! index_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl $name {
            /// The index as a `usize`, for slicing.
            #[inline(always)]
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

index_type!(
    /// A register of the current frame, counted from the frame's base.
    Reg(u16)
);
index_type!(
    /// An entry of [`crate::Program::constants`].
    ConstIdx(u32)
);
index_type!(
    /// An entry of [`crate::Program::functions`].
    FuncIdx(u32)
);
index_type!(
    /// An entry of [`crate::Program::natives`]: a host or library function.
    NativeIdx(u32)
);
index_type!(
    /// An entry of [`crate::Program::globals`]: a top-level `let`.
    GlobalIdx(u32)
);
index_type!(
    /// An entry of [`crate::Program::structs`].
    StructIdx(u32)
);
index_type!(
    /// An entry of [`crate::Program::enums`].
    EnumIdx(u32)
);
index_type!(
    /// An instruction index within one function's code: a jump target.
    Pc(u32)
);
index_type!(
    /// A slot of the heap's arena.
    ObjRef(u32)
);
index_type!(
    /// An entry of [`crate::Program::files`].
    FileIdx(u32)
);

/// A Spool value as held in a register.
///
/// The compiler has proved every value's type, so typed instructions read the
/// payload they expect; a different variant there is an internal error that
/// becomes a clean `Type` runtime error, never undefined behaviour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// `nil`, also the absent case of every `T?`.
    #[default]
    Nil,
    /// A `bool`.
    Bool(bool),
    /// An `int`.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A heap object: string, list, map, record, variant, closure, cell.
    Obj(ObjRef),
    /// A top-level script function used as a value (no captures).
    Func(FuncIdx),
    /// A native function used as a value.
    Native(NativeIdx),
}

const _: () = assert!(std::mem::size_of::<Value>() <= 16);

impl Value {
    /// What a global holds until its `let` has run. No script value is
    /// this native index, so reading it is caught as an error.
    pub const UNSET: Value = Value::Native(NativeIdx(u32::MAX));

    /// The heap object this value refers to, if any.
    #[inline(always)]
    pub fn as_obj(self) -> Option<ObjRef> {
        match self {
            Value::Obj(obj) => Some(obj),
            _ => None,
        }
    }

    /// Is this `nil`?
    #[inline(always)]
    pub fn is_nil(self) -> bool {
        matches!(self, Value::Nil)
    }
}
