//! Fibers: a stack of frames with its register file, and the bookkeeping
//! of `try`, `defer` and unwinding that belongs to that stack.
//!
//! The main script runs on the run's first fiber; every coroutine has its
//! own, kept in its heap object while it is suspended. Architecture
//! invariant: a fiber is plain data (indices and values only), so a fiber
//! can be moved between the run and a heap object with `mem::take` and
//! serialized wherever it is.

use serde::{Deserialize, Serialize};

use crate::exec::error::TraceFrame;
use crate::heap::value::{FuncIdx, ObjRef, Reg, Value};
use crate::program::Program;

/// One stack of frames with its register file. The main script runs on one;
/// every coroutine has its own (empty until the coroutine starts).
///
/// Saved runs encode it compactly (`vm/src/wire.rs`): one byte string for
/// the registers, frames, handlers and defers, then the unwinds.
///
/// Laid out in declaration order (`repr(C)`), the register file and the
/// frames first: a task switch moves those two.
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct Fiber {
    /// The register stack. Frame `f` owns `registers[f.base ..
    /// f.base + register_count]`; a callee's window starts inside its
    /// caller's (at the call's `base` operand), so arguments are not copied.
    /// Invariant: `len() >= base + register_count` of every frame.
    pub registers: Vec<Value>,
    /// The call stack, outermost first. The last frame is the running one.
    pub frames: Vec<Frame>,
    /// Active `try` handlers, innermost last. A handler's `frame_depth` is
    /// never above the top frame's depth.
    pub handlers: Vec<Handler>,
    /// Pending `defer`s of every frame, in registration order; a frame's
    /// defers are the entries with its depth, always at the end of the
    /// vector while that frame runs.
    pub defers: Vec<DeferEntry>,
    /// Frames that are unwinding an error while one of their defers runs,
    /// innermost last: when that defer returns, unwinding continues with the
    /// stored error.
    pub unwinds: Vec<Unwind>,
}

/// One activation of a script function. 24 bytes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The function running in this frame.
    pub func: FuncIdx,
    /// The next instruction to execute, saved whenever the frame is not the
    /// one running (it called, paused or is being unwound). While a frame
    /// runs a `Return`'s defers, `pc` points at that `Return`, which
    /// re-executes after each defer.
    pub pc: u32,
    /// The absolute index in [`Fiber::registers`] of this frame's `R[0]`.
    pub base: u32,
    /// The closure whose captures `LoadCapture`, `CaptureGet` and
    /// `CaptureSet` read; `None` for a plain function.
    pub closure: Option<ObjRef>,
    /// The absolute register in the caller that receives the result (equal
    /// to `base` for a call), or [`Frame::DISCARD`] for a deferred call,
    /// whose result is dropped and whose caller then resumes its return or
    /// its unwinding.
    pub ret: u32,
}

/// A `try` handler pushed by `TryBegin` and popped by `TryEnd`, by a return
/// from its frame, or by catching an error.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handler {
    /// Index in [`Fiber::frames`] of the frame that pushed it.
    pub frame_depth: u32,
    /// Where that frame continues when it catches an error.
    pub catch_pc: u32,
    /// The register of that frame that receives the `Error` record.
    pub dst: Reg,
}

/// A deferred call registered by `Defer`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct DeferEntry {
    /// Index in [`Fiber::frames`] of the frame it belongs to.
    pub frame_depth: u32,
    /// The zero-argument function to call: a script function, a closure or
    /// a native.
    pub func: Value,
}

/// An error held while a frame runs a defer during unwinding.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Unwind {
    /// Index in [`Fiber::frames`] of the frame being unwound.
    pub frame_depth: u32,
    /// The `Error` record in flight (a GC root).
    pub error: Value,
    /// The stack where it was raised, innermost first; empty when a handler
    /// was active then, because the error is sure to be caught.
    pub trace: Vec<TraceFrame>,
}

impl Frame {
    /// The `ret` of a deferred call: its result is discarded.
    pub const DISCARD: u32 = u32::MAX;
}

impl Fiber {
    /// Calls `visit` on every value the fiber holds: registers, the
    /// closures its frames run, pending defers and errors being unwound.
    pub fn for_each_value(&self, mut visit: impl FnMut(Value)) {
        self.registers.iter().copied().for_each(&mut visit);
        let closures = self.frames.iter().filter_map(|frame| frame.closure);
        closures.map(Value::Obj).for_each(&mut visit);
        self.defers.iter().for_each(|entry| visit(entry.func));
        self.unwinds.iter().for_each(|unwind| visit(unwind.error));
    }

    /// Empties it, keeping the vectors' room.
    #[inline]
    pub fn clear(&mut self) {
        self.registers.clear();
        self.frames.clear();
        self.handlers.clear();
        self.defers.clear();
        self.unwinds.clear();
    }

    /// Drops the registers above every frame's window: they are dead, and
    /// dropping them keeps stale references out of the collector's roots.
    pub(crate) fn truncate_dead_registers(&mut self, program: &Program) {
        let extent = self
            .frames
            .iter()
            .map(|frame| {
                let count = program
                    .functions
                    .get(frame.func.index())
                    .map_or(0, |f| f.register_count);
                frame.base as usize + count as usize
            })
            .max()
            .unwrap_or(0);
        self.registers.truncate(extent);
    }
}

const _: () = assert!(std::mem::size_of::<Frame>() <= 24);
