//! The encoding of a fiber in a saved run: the bulk of a run with many
//! suspended tasks or coroutines, so it is one byte string rather than a
//! serde structure per frame and per register.
//!
//! A fiber serializes as a pair: the byte string below, then its
//! `unwinds` (rare, and holding traces with strings) through serde. The
//! byte string is, every number in LEB128:
//!
//! | what | how |
//! |---|---|
//! | registers | a count, then each value in [`compact`]'s encoding |
//! | frames | a count, then per frame `func`, `pc`, `base`, the closure (0 for none, else its `ObjRef` + 1) and `ret` + 1 (wrapping, so [`Frame::DISCARD`] is 0) |
//! | handlers | a count, then per handler `frame_depth`, `catch_pc`, `dst` |
//! | defers | a count, then per defer `frame_depth` and the value |
//!
//! and nothing after.
//!
//! A task's [`Context`] (its fiber and the resumers of the coroutines it
//! is inside) serializes as a pair: a tag, then for [`PACKED`] the byte
//! string of its one fiber (when it has no unwinds and no resumers, the
//! usual case), or for [`FULL`] the fiber and the resumers. A packed
//! context is restored as those bytes ([`Context::is_packed`]):
//! `validate` decodes each into one scratch fiber to check it and records
//! the heap objects it refers to, the task decodes it when it runs, and
//! saving the run again copies the bytes. A run with many parked tasks
//! restores without building their stacks.
//!
//! Decoding treats the bytes as untrusted: every count is
//! checked against the bytes left (each item takes at least one byte per
//! field) before anything is reserved, so a hostile count cannot make it
//! allocate more than a small multiple of the input; vectors are reserved
//! exactly, once. What the numbers mean (frames inside the register file,
//! handlers of existing frames, live heap references) is checked by
//! [`crate::saved::validate`], as for every other part of a run.

use std::cell::RefCell;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::exec::fiber::{DeferEntry, Fiber, Frame, Handler, Unwind};
use crate::heap::objects::{Context, Packed, Resumer};
use crate::heap::value::compact::{
    decode_one, decode_values_into, encode_into, encode_one, get_number, put_number,
};
use crate::heap::value::{FuncIdx, ObjRef, Reg};

/// Appends the byte string of `fiber` (everything but its unwinds).
pub(crate) fn encode(fiber: &Fiber, out: &mut Vec<u8>) {
    // Upper bounds: 5 bytes per u32, 11 per value.
    out.reserve(
        5 + fiber.registers.len() * 11
            + 5
            + fiber.frames.len() * 25
            + 5
            + fiber.handlers.len() * 13
            + 5
            + fiber.defers.len() * 16,
    );
    put_number(out, fiber.registers.len() as u64);
    encode_into(&fiber.registers, out);
    put_number(out, fiber.frames.len() as u64);
    for frame in &fiber.frames {
        put_number(out, u64::from(frame.func.0));
        put_number(out, u64::from(frame.pc));
        put_number(out, u64::from(frame.base));
        put_number(out, frame.closure.map_or(0, |obj| u64::from(obj.0) + 1));
        put_number(out, u64::from(frame.ret.wrapping_add(1)));
    }
    put_number(out, fiber.handlers.len() as u64);
    for handler in &fiber.handlers {
        put_number(out, u64::from(handler.frame_depth));
        put_number(out, u64::from(handler.catch_pc));
        put_number(out, u64::from(handler.dst.0));
    }
    put_number(out, fiber.defers.len() as u64);
    for entry in &fiber.defers {
        put_number(out, u64::from(entry.frame_depth));
        encode_one(entry.func, out);
    }
}

/// Decodes what [`encode`] made into a fiber without unwinds; `None` for
/// malformed bytes.
pub(crate) fn decode(bytes: &[u8]) -> Option<Fiber> {
    let mut fiber = Fiber::default();
    decode_into(bytes, &mut fiber)?;
    Some(fiber)
}

/// [`decode`] into `fiber`, whose contents are replaced (its unwinds
/// emptied) and whose vectors' room is reused; `None` for malformed bytes,
/// which leave it in some state that is not to be used.
pub(crate) fn decode_into(bytes: &[u8], fiber: &mut Fiber) -> Option<()> {
    let mut at = 0;
    let at = &mut at;
    let count = count(bytes, at, 1)?;
    decode_values_into(bytes, at, count, &mut fiber.registers)?;
    let count = self::count(bytes, at, 5)?;
    frames(bytes, at, count, &mut fiber.frames)?;
    let count = self::count(bytes, at, 3)?;
    fiber.handlers.clear();
    fiber.handlers.reserve_exact(count);
    for _ in 0..count {
        let frame_depth = u32_at(bytes, at)?;
        let catch_pc = u32_at(bytes, at)?;
        let dst = Reg(u16::try_from(get_number(bytes, at)?).ok()?);
        fiber.handlers.push(Handler {
            frame_depth,
            catch_pc,
            dst,
        });
    }
    let count = self::count(bytes, at, 2)?;
    fiber.defers.clear();
    fiber.defers.reserve_exact(count);
    for _ in 0..count {
        let frame_depth = u32_at(bytes, at)?;
        let func = decode_one(bytes, at)?;
        fiber.defers.push(DeferEntry { frame_depth, func });
    }
    fiber.unwinds.clear();
    (*at == bytes.len()).then_some(())
}

/// `count` frames (bounded by the caller by the bytes left), replacing
/// the contents of `frames`.
fn frames(bytes: &[u8], at: &mut usize, count: usize, frames: &mut Vec<Frame>) -> Option<()> {
    frames.clear();
    frames.reserve_exact(count);
    let mut pos = *at;
    // The last position five bytes can be read at (none when the input
    // is shorter).
    let last_window = bytes.len().wrapping_sub(5);
    for _ in 0..count {
        // Usually every number of a frame takes one byte: read the five
        // at once.
        if bytes.len() >= 5 && pos <= last_window {
            let [func, pc, base, closure, ret] = [
                bytes[pos],
                bytes[pos + 1],
                bytes[pos + 2],
                bytes[pos + 3],
                bytes[pos + 4],
            ];
            if (func | pc | base | closure | ret) < 0x80 {
                pos += 5;
                frames.push(Frame {
                    func: FuncIdx(u32::from(func)),
                    pc: u32::from(pc),
                    base: u32::from(base),
                    closure: closure.checked_sub(1).map(|n| ObjRef(u32::from(n))),
                    ret: u32::from(ret).wrapping_sub(1),
                });
                continue;
            }
        }
        // Read through a copy, so that `pos` stays in a register.
        let mut rare = pos;
        frames.push(frame(bytes, &mut rare)?);
        pos = rare;
    }
    *at = pos;
    Some(())
}

/// One frame of any size: `func`, `pc`, `base`, the closure + 1 and
/// `ret` + 1.
#[inline(never)]
fn frame(bytes: &[u8], at: &mut usize) -> Option<Frame> {
    let func = FuncIdx(u32_at(bytes, at)?);
    let pc = u32_at(bytes, at)?;
    let base = u32_at(bytes, at)?;
    let closure = match u32_at(bytes, at)? {
        0 => None,
        n => Some(ObjRef(n - 1)),
    };
    let ret = u32_at(bytes, at)?.wrapping_sub(1);
    Some(Frame {
        func,
        pc,
        base,
        closure,
        ret,
    })
}

/// A count of items taking at least `min_bytes` each: refused when the
/// bytes left cannot hold that many.
fn count(bytes: &[u8], at: &mut usize, min_bytes: usize) -> Option<usize> {
    let n = usize::try_from(get_number(bytes, at)?).ok()?;
    let left = bytes.len().checked_sub(*at)?;
    (n <= left / min_bytes).then_some(n)
}

#[inline(always)]
fn u32_at(bytes: &[u8], at: &mut usize) -> Option<u32> {
    u32::try_from(get_number(bytes, at)?).ok()
}

thread_local! {
    /// A buffer reused by every fiber serialized on this thread.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Serialize for Fiber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Fiber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fiber, D::Error> {
        deserializer.deserialize_tuple(2, FiberVisitor)
    }
}

/// Gives `write` the byte string of `fiber`, encoded in this thread's
/// scratch buffer, and returns what it returns.
fn with_encoded<R>(fiber: &Fiber, write: impl FnOnce(&[u8]) -> R) -> R {
    // Taken out of the cell rather than borrowed, so that nothing can
    // observe it borrowed, whatever the serializer does (a fiber's
    // serializer may run inside a context's).
    let mut scratch = SCRATCH.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    scratch.clear();
    encode(fiber, &mut scratch);
    let result = write(&scratch);
    // Large buffers are not kept for the thread's lifetime.
    if scratch.capacity() <= 1 << 20 {
        SCRATCH.with(|cell| *cell.borrow_mut() = scratch);
    }
    result
}

/// Serializes `fiber` as its byte string and its unwinds.
fn serialize<S: Serializer>(fiber: &Fiber, serializer: S) -> Result<S::Ok, S::Error> {
    let mut tuple = serializer.serialize_tuple(2)?;
    with_encoded(fiber, |bytes| tuple.serialize_element(&Bytes(bytes)))?;
    tuple.serialize_element(&fiber.unwinds)?;
    tuple.end()
}

/// The first element of a context's pair for a packed context: the
/// fiber's byte string follows.
const PACKED: u8 = 0;
/// The first element of a context's pair for a full context: the fiber
/// and the resumers follow.
const FULL: u8 = 1;

/// The byte string of a fiber with no registers, frames, handlers or
/// defers: a context holding it is not worth keeping packed.
const EMPTY_FIBER: [u8; 4] = [0; 4];

impl Serialize for Context {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut pair = serializer.serialize_tuple(2)?;
        if let Some(packed) = &self.packed {
            pair.serialize_element(&PACKED)?;
            pair.serialize_element(&Bytes(&packed.bytes))?;
        } else if self.resumers.is_empty() && self.fiber.unwinds.is_empty() {
            pair.serialize_element(&PACKED)?;
            with_encoded(&self.fiber, |bytes| pair.serialize_element(&Bytes(bytes)))?;
        } else {
            pair.serialize_element(&FULL)?;
            pair.serialize_element(&(&self.fiber, &self.resumers))?;
        }
        pair.end()
    }
}

impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Context, D::Error> {
        deserializer.deserialize_tuple(2, ContextVisitor)
    }
}

/// `deserialize_with` for the run's own context: decoded at once, since
/// the run executes it next.
pub(crate) fn unpacked_context<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Context, D::Error> {
    let mut context = Context::deserialize(deserializer)?;
    context.unpack().map_err(D::Error::custom)?;
    Ok(context)
}

struct ContextVisitor;

impl<'de> Visitor<'de> for ContextVisitor {
    type Value = Context;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a task's context")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Context, A::Error> {
        let tag: u8 = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let missing = || A::Error::invalid_length(1, &self);
        match tag {
            // Kept as it is, checked by `validate` and decoded when the
            // task runs.
            PACKED => {
                let bytes: &'de [u8] = seq.next_element()?.ok_or_else(missing)?;
                let packed = (bytes != EMPTY_FIBER).then(|| {
                    Box::new(Packed {
                        bytes: bytes.into(),
                        refs: OnceLock::new(),
                    })
                });
                Ok(Context {
                    packed,
                    ..Context::default()
                })
            }
            FULL => {
                let (fiber, resumers): (Fiber, Vec<Resumer>) =
                    seq.next_element()?.ok_or_else(missing)?;
                Ok(Context {
                    fiber,
                    resumers,
                    packed: None,
                })
            }
            _ => Err(A::Error::custom("malformed context")),
        }
    }
}

/// A byte slice that serializes with `serialize_bytes` (not as a
/// sequence of `u8`).
struct Bytes<'a>(&'a [u8]);

impl serde::Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

struct FiberVisitor;

impl<'de> Visitor<'de> for FiberVisitor {
    type Value = Fiber;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a fiber")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Fiber, A::Error> {
        let bytes: &'de [u8] = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let mut fiber = decode(bytes).ok_or_else(|| A::Error::custom("malformed fiber"))?;
        fiber.unwinds = seq
            .next_element::<Vec<Unwind>>()?
            .ok_or_else(|| A::Error::invalid_length(1, &self))?;
        Ok(fiber)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::error::TraceFrame;
    use crate::heap::value::{NativeIdx, Value};

    fn sample() -> Fiber {
        Fiber {
            registers: vec![
                Value::Nil,
                Value::Int(-3),
                Value::Obj(ObjRef(70_000)),
                Value::Float(0.5),
                Value::UNSET,
                Value::Native(NativeIdx(4)),
            ],
            frames: vec![
                Frame {
                    func: FuncIdx(0),
                    pc: 12,
                    base: 0,
                    closure: None,
                    ret: 0,
                },
                Frame {
                    func: FuncIdx(300),
                    pc: u32::MAX,
                    base: 2,
                    closure: Some(ObjRef(u32::MAX - 1)),
                    ret: Frame::DISCARD,
                },
            ],
            handlers: vec![Handler {
                frame_depth: 1,
                catch_pc: 9,
                dst: Reg(u16::MAX),
            }],
            defers: vec![DeferEntry {
                frame_depth: 0,
                func: Value::Func(FuncIdx(2)),
            }],
            unwinds: vec![Unwind {
                frame_depth: 1,
                error: Value::Obj(ObjRef(5)),
                trace: vec![TraceFrame {
                    function: "f".into(),
                    file: "a.spl".into(),
                    line: 3,
                    col: 4,
                }],
            }],
        }
    }

    #[test]
    fn fibers_round_trip_through_postcard() {
        let fiber = sample();
        let bytes = postcard::to_allocvec(&fiber).expect("serializes");
        let back: Fiber = postcard::from_bytes(&bytes).expect("deserializes");
        assert_eq!(format!("{back:?}"), format!("{fiber:?}"));
        let empty: Fiber = postcard::from_bytes(&postcard::to_allocvec(&Fiber::default()).unwrap())
            .expect("deserializes");
        assert!(empty.registers.is_empty() && empty.frames.is_empty());
    }

    /// A context with one fiber and nothing else is saved as that fiber's
    /// byte string and restored packed; it decodes to what was saved, and
    /// saving it again writes the same bytes.
    #[test]
    fn plain_contexts_restore_packed_and_save_the_same_bytes() {
        let mut fiber = sample();
        fiber.unwinds.clear();
        let context = Context {
            fiber,
            ..Context::default()
        };
        let bytes = postcard::to_allocvec(&context).expect("serializes");
        assert_eq!(bytes[0], PACKED);
        let mut back: Context = postcard::from_bytes(&bytes).expect("deserializes");
        assert!(back.is_packed() && back.fiber.frames.is_empty());
        assert_eq!(postcard::to_allocvec(&back).expect("serializes"), bytes);
        assert_eq!(
            format!("{:?}", back.unpacked().fiber),
            format!("{:?}", context.fiber)
        );
        back.unpack().expect("decodes");
        assert!(!back.is_packed());
        assert_eq!(format!("{:?}", back.fiber), format!("{:?}", context.fiber));
        // An empty context is not worth packing.
        let empty: Context =
            postcard::from_bytes(&postcard::to_allocvec(&Context::default()).unwrap())
                .expect("deserializes");
        assert!(!empty.is_packed());
    }

    /// A context with unwinds or resumers is saved whole and restored
    /// decoded.
    #[test]
    fn contexts_with_unwinds_or_resumers_restore_decoded() {
        let context = Context {
            fiber: sample(),
            ..Context::default()
        };
        let bytes = postcard::to_allocvec(&context).expect("serializes");
        assert_eq!(bytes[0], FULL);
        let back: Context = postcard::from_bytes(&bytes).expect("deserializes");
        assert!(!back.is_packed());
        assert_eq!(format!("{:?}", back.fiber), format!("{:?}", context.fiber));
        let resumed = Context {
            resumers: vec![Resumer {
                coro: ObjRef(3),
                dst: Reg(1),
                fiber: Fiber::default(),
            }],
            ..Context::default()
        };
        let bytes = postcard::to_allocvec(&resumed).expect("serializes");
        let back: Context = postcard::from_bytes(&bytes).expect("deserializes");
        assert!(!back.is_packed() && back.resumers.len() == 1);
        assert!(
            postcard::from_bytes::<Context>(&[2, 0]).is_err(),
            "unknown tag"
        );
    }

    #[test]
    fn damaged_fibers_are_refused_without_panicking() {
        let mut bytes = Vec::new();
        encode(&sample(), &mut bytes);
        assert!(decode(&bytes).is_some());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_none(), "truncated at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_none(), "trailing bytes");
        for at in 0..bytes.len() {
            for byte in [0, 1, 0x7f, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] = byte;
                let _ = decode(&damaged);
            }
        }
        // A count larger than the bytes left is refused before reserving.
        assert!(decode(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0]).is_none());
        assert!(decode(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_none());
        assert!(
            decode(&[0, 1, 0, 0, 0, 0]).is_none(),
            "a frame needs 5 bytes"
        );
    }

    /// The five-byte fast path of `frames` agrees with `frame` frame by
    /// frame on any input, numbers of one byte or more, near the end or not.
    #[test]
    fn decoding_many_frames_matches_decoding_one_at_a_time() {
        let mut next = crate::test_noise(0x2545_f491_4f6c_dd1d);
        for round in 0..20_000 {
            let len = (next() % 32) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| match next() % 4 {
                    0 | 1 => (next() % 0x80) as u8,
                    2 => 0x80 | (next() % 0x80) as u8,
                    _ => next() as u8,
                })
                .collect();
            let start = if len == 0 { 0 } else { round % (len + 1) };
            let count = (next() % 6) as usize;
            let mut at = start;
            let mut decoded = Vec::new();
            let many = frames(&bytes, &mut at, count, &mut decoded).map(|()| decoded);
            let mut one_at = start;
            let one: Option<Vec<Frame>> = (0..count).map(|_| frame(&bytes, &mut one_at)).collect();
            assert_eq!(many, one, "{bytes:?} from {start}, {count} frames");
            if many.is_some() {
                assert_eq!(at, one_at, "{bytes:?} from {start}");
            }
        }
    }
}
