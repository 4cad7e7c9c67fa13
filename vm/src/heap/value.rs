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

/// Identifies one I/O request within a run. Ids start at 1, increase and
/// are never reused, so a host may deduplicate a request issued again
/// after a restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IoId(pub u64);

/// A Spool value as held in a register.
///
/// The compiler has proved every value's type, so typed instructions read the
/// payload they expect; a different variant there is an internal error that
/// becomes a clean `Type` runtime error, never undefined behaviour.
///
/// Laid out as a tag byte followed, at byte 8, by the payload
/// (`repr(C, u8)`), so that the interpreter can write a whole register
/// with one 16-byte store (`exec/interp.rs`, `store`): a register written
/// as a tag byte and a payload apart and then copied whole stalls the
/// copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[repr(C, u8)]
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

/// A compact encoding of value slices for saved runs: register files and
/// lists are most of a saved run, and decoding them as one byte string is
/// several times faster than one serde value at a time. Each value is a tag
/// byte and a LEB128 payload (zigzag for ints, the bits for floats); a
/// malformed encoding is a decoding error.
pub mod compact {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{FuncIdx, NativeIdx, ObjRef, Value};

    const NIL: u8 = 0;
    const FALSE: u8 = 1;
    const TRUE: u8 = 2;
    const INT: u8 = 3;
    const FLOAT: u8 = 4;
    const OBJ: u8 = 5;
    const FUNC: u8 = 6;
    const NATIVE: u8 = 7;

    fn put(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push(n as u8 | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    /// A LEB128 number: at most ten bytes, bits past the 64th dropped.
    /// Inlined everywhere (a saved run is mostly these): the position
    /// stays in a register and a one-byte number costs a compare.
    #[inline(always)]
    fn get(bytes: &[u8], at: &mut usize) -> Option<u64> {
        let mut pos = *at;
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let byte = *bytes.get(pos)?;
            pos += 1;
            n |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                *at = pos;
                return Some(n);
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    }

    /// Encodes `values`.
    pub fn encode(values: &[Value]) -> Vec<u8> {
        let mut out = Vec::with_capacity(values.len() * 2);
        for value in values {
            match *value {
                Value::Nil => out.push(NIL),
                Value::Bool(false) => out.push(FALSE),
                Value::Bool(true) => out.push(TRUE),
                Value::Int(n) => {
                    out.push(INT);
                    put(&mut out, ((n << 1) ^ (n >> 63)) as u64);
                }
                Value::Float(x) => {
                    out.push(FLOAT);
                    out.extend_from_slice(&x.to_bits().to_le_bytes());
                }
                Value::Obj(obj) => {
                    out.push(OBJ);
                    put(&mut out, u64::from(obj.0));
                }
                Value::Func(func) => {
                    out.push(FUNC);
                    put(&mut out, u64::from(func.0));
                }
                Value::Native(native) => {
                    out.push(NATIVE);
                    put(&mut out, u64::from(native.0));
                }
            }
        }
        out
    }

    /// Decodes what [`encode`] made; `None` for malformed bytes.
    pub fn decode(bytes: &[u8]) -> Option<Vec<Value>> {
        let mut values = Vec::with_capacity(bytes.len() / 2);
        let mut at = 0;
        while at < bytes.len() {
            values.push(decode_one(bytes, &mut at)?);
        }
        Some(values)
    }

    /// Appends the encoding of `values` to `out`: the same bytes as
    /// [`encode`], without a buffer of its own (saved fibers put several
    /// parts in one byte string).
    pub fn encode_into(values: &[Value], out: &mut Vec<u8>) {
        // At most a tag and ten bytes of payload per value: written into
        // room made once, at a local position, then cut to what was used.
        let start = out.len();
        out.resize(start + values.len() * 11, 0);
        let buf = &mut out[..];
        let mut at = start;
        for &value in values {
            at = write_one(value, buf, at);
        }
        out.truncate(at);
    }

    /// Writes one value at `buf[at..]`, which has room for 11 bytes;
    /// returns the position after it.
    #[inline(always)]
    fn write_one(value: Value, buf: &mut [u8], at: usize) -> usize {
        let (tag, payload) = match value {
            Value::Nil => (NIL, None),
            Value::Bool(false) => (FALSE, None),
            Value::Bool(true) => (TRUE, None),
            Value::Int(n) => (INT, Some(((n << 1) ^ (n >> 63)) as u64)),
            Value::Float(x) => {
                buf[at] = FLOAT;
                buf[at + 1..at + 9].copy_from_slice(&x.to_bits().to_le_bytes());
                return at + 9;
            }
            Value::Obj(obj) => (OBJ, Some(u64::from(obj.0))),
            Value::Func(func) => (FUNC, Some(u64::from(func.0))),
            Value::Native(native) => (NATIVE, Some(u64::from(native.0))),
        };
        buf[at] = tag;
        let mut at = at + 1;
        if let Some(mut n) = payload {
            while n >= 0x80 {
                buf[at] = n as u8 | 0x80;
                n >>= 7;
                at += 1;
            }
            buf[at] = n as u8;
            at += 1;
        }
        at
    }

    /// Appends the encoding of one value to `out`.
    #[inline]
    pub fn encode_one(value: Value, out: &mut Vec<u8>) {
        match value {
            Value::Nil => out.push(NIL),
            Value::Bool(false) => out.push(FALSE),
            Value::Bool(true) => out.push(TRUE),
            Value::Int(n) => {
                out.push(INT);
                put(out, ((n << 1) ^ (n >> 63)) as u64);
            }
            Value::Float(x) => {
                out.push(FLOAT);
                out.extend_from_slice(&x.to_bits().to_le_bytes());
            }
            Value::Obj(obj) => {
                out.push(OBJ);
                put(out, u64::from(obj.0));
            }
            Value::Func(func) => {
                out.push(FUNC);
                put(out, u64::from(func.0));
            }
            Value::Native(native) => {
                out.push(NATIVE);
                put(out, u64::from(native.0));
            }
        }
    }

    /// Decodes one value of [`encode_one`]'s at `*at`, moving `*at` past
    /// it; `None` for malformed or missing bytes. Every value takes at
    /// least one byte.
    #[inline(always)]
    pub fn decode_one(bytes: &[u8], at: &mut usize) -> Option<Value> {
        let index =
            |bytes: &[u8], at: &mut usize| get(bytes, at).and_then(|n| u32::try_from(n).ok());
        let tag = *bytes.get(*at)?;
        *at += 1;
        Some(match tag {
            NIL => Value::Nil,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT => {
                let z = get(bytes, at)?;
                Value::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            FLOAT => {
                let raw = bytes.get(*at..at.checked_add(8)?)?;
                *at += 8;
                Value::Float(f64::from_bits(u64::from_le_bytes(raw.try_into().ok()?)))
            }
            OBJ => Value::Obj(ObjRef(index(bytes, at)?)),
            FUNC => Value::Func(FuncIdx(index(bytes, at)?)),
            NATIVE => Value::Native(NativeIdx(index(bytes, at)?)),
            _ => return None,
        })
    }

    /// Decodes `count` values of [`encode_one`]'s from `*at` on, moving
    /// `*at` past them; `None` for malformed or missing bytes. The same as
    /// [`decode_one`] per value, in one tight loop: a register file is most
    /// of a saved task. The caller bounds `count` by the bytes left (every
    /// value takes at least one byte), so the vector is reserved once.
    ///
    /// Most registers are nil or an int of one or two payload bytes
    /// (-8192..=8191): those are read from a window of four bytes, with
    /// one bounds check; anything else, and the last values of the input,
    /// through [`decode_one`].
    pub fn decode_values(bytes: &[u8], at: &mut usize, count: usize) -> Option<Vec<Value>> {
        let mut values = Vec::new();
        decode_values_into(bytes, at, count, &mut values)?;
        Some(values)
    }

    /// [`decode_values`] into `values`, whose contents are replaced and
    /// whose room is reused: a saved task's registers are decoded into one
    /// scratch file to be checked, task after task.
    pub fn decode_values_into(
        bytes: &[u8],
        at: &mut usize,
        count: usize,
        values: &mut Vec<Value>,
    ) -> Option<()> {
        values.clear();
        values.resize(count, Value::Nil);
        let mut pos = *at;
        // The last position a window starts at (none when the input is
        // shorter than one).
        let last_window = bytes.len().wrapping_sub(4);
        let zigzag = |z: u32| {
            let z = i64::from(z);
            Value::Int((z >> 1) ^ -(z & 1))
        };
        for slot in values.iter_mut() {
            if bytes.len() >= 4 && pos <= last_window {
                let word = u32::from_le_bytes([
                    bytes[pos],
                    bytes[pos + 1],
                    bytes[pos + 2],
                    bytes[pos + 3],
                ]);
                let tag = word as u8;
                if tag == NIL {
                    // The slot is nil already.
                    pos += 1;
                    continue;
                }
                if tag == INT && word & 0x8000 == 0 {
                    *slot = zigzag((word >> 8) & 0x7f);
                    pos += 2;
                    continue;
                }
                if tag == INT && word & 0x80_0000 == 0 {
                    *slot = zigzag(((word >> 8) & 0x7f) | ((word >> 9) & 0x3f80));
                    pos += 3;
                    continue;
                }
            }
            let mut rare = pos;
            *slot = decode_rare(bytes, &mut rare)?;
            pos = rare;
        }
        *at = pos;
        Some(())
    }

    /// [`decode_one`], kept out of [`decode_values`]'s loop.
    #[inline(never)]
    fn decode_rare(bytes: &[u8], pos: &mut usize) -> Option<Value> {
        decode_one(bytes, pos)
    }

    /// A LEB128 number at `*at` (the encoding of every payload), moving
    /// `*at` past it; `None` for malformed or missing bytes.
    #[inline(always)]
    pub fn get_number(bytes: &[u8], at: &mut usize) -> Option<u64> {
        get(bytes, at)
    }

    /// Appends `n` in LEB128.
    #[inline]
    pub fn put_number(out: &mut Vec<u8>, n: u64) {
        put(out, n)
    }

    /// `#[serde(with = "compact")]` for a `Vec<Value>`.
    pub fn serialize<S: Serializer>(values: &[Value], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&encode(values))
    }

    /// `#[serde(with = "compact")]` for a `Vec<Value>`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Value>, D::Error> {
        let bytes: &'de [u8] = <&[u8]>::deserialize(deserializer)?;
        decode(bytes).ok_or_else(|| D::Error::custom("malformed values"))
    }
}

#[cfg(test)]
mod tests {
    use super::compact::{decode, encode};
    use super::*;
    use crate::test_noise as noise;

    #[test]
    fn compact_values_round_trip() {
        let values = vec![
            Value::Nil,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::Int(300),
            Value::Int(i64::MAX),
            Value::Float(-0.0),
            Value::Float(f64::NAN),
            Value::Obj(ObjRef(u32::MAX)),
            Value::Func(FuncIdx(7)),
            Value::UNSET,
        ];
        let decoded = decode(&encode(&values)).expect("decodes");
        assert_eq!(format!("{decoded:?}"), format!("{values:?}"));
    }

    #[test]
    fn values_one_at_a_time_match_the_slice_encoding() {
        use super::compact::{decode_one, encode_into};
        let values = [
            Value::Nil,
            Value::Bool(true),
            Value::Int(-70),
            Value::Float(1.5),
            Value::Obj(ObjRef(300)),
            Value::Func(FuncIdx(2)),
            Value::UNSET,
        ];
        let mut bytes = vec![9];
        encode_into(&values, &mut bytes);
        assert_eq!(bytes[1..], encode(&values)[..]);
        let mut at = 1;
        for value in values {
            let decoded = decode_one(&bytes, &mut at).expect("decodes");
            assert_eq!(format!("{decoded:?}"), format!("{value:?}"));
        }
        assert_eq!(at, bytes.len());
        assert!(decode_one(&bytes, &mut at).is_none(), "past the end");
        assert!(decode_one(&[4, 0, 0], &mut 0).is_none(), "truncated float");
    }

    #[test]
    fn malformed_compact_values_are_refused() {
        assert!(decode(&[9]).is_none(), "unknown tag");
        assert!(decode(&[3, 0x80]).is_none(), "truncated int");
        assert!(decode(&[4, 1, 2]).is_none(), "truncated float");
        assert!(
            decode(&[5, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_none(),
            "index too large"
        );
        assert!(
            decode(&[3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
                .is_none()
        );
        assert_eq!(decode(&[]), Some(Vec::new()));
    }

    /// The fast paths of `decode_values` agree with `decode_one` value by
    /// value on any input: valid or not, near the end or not.
    #[test]
    fn decoding_many_values_matches_decoding_one_at_a_time() {
        use super::compact::{decode_one, decode_values};
        let mut next = noise(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let len = (next() % 24) as usize;
            // Mostly the bytes of nil and ints, sometimes anything.
            let bytes: Vec<u8> = (0..len)
                .map(|_| match next() % 8 {
                    0..=2 => 0,
                    3 | 4 => 3,
                    5 => (next() % 0x80) as u8,
                    6 => 0x80 | (next() % 0x80) as u8,
                    _ => next() as u8,
                })
                .collect();
            let start = if len == 0 { 0 } else { round % (len + 1) };
            let count = (next() % 12) as usize;
            let mut at = start;
            let many = decode_values(&bytes, &mut at, count);
            let mut one_at = start;
            let one: Option<Vec<Value>> = (0..count)
                .map(|_| decode_one(&bytes, &mut one_at))
                .collect();
            assert_eq!(
                format!("{many:?}"),
                format!("{one:?}"),
                "{bytes:?} from {start}, {count} values"
            );
            if many.is_some() {
                assert_eq!(at, one_at, "{bytes:?} from {start}");
            }
        }
    }
}
