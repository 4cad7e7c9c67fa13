//! Fuzz target: `spool::restore` of arbitrary bytes never panics, hangs or
//! allocates more than a small multiple of the input, and a run it accepts
//! executes (briefly, with any I/O answered) without panicking.
//!
//! Bytes are taken both as a whole file and as a body that gets a correct
//! header and checksum, so the fuzzer reaches the decoder and the validator.
//! Run with `cargo +nightly fuzz run restore` from the repository root; see
//! the README's "Fuzzing" notes for the corpus and the flags.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use libfuzzer_sys::fuzz_target;
use spool::{CaptureOutput, Data, Limits, Step};

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are
// only arithmetic on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc(layout);
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc_zeroed(layout);
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        System.dealloc(pointer, layout);
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = System.realloc(pointer, layout, new_size);
        if !moved.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What `restore` may allocate for `len` bytes at most: a multiple of the
/// input (a one-byte `nil` becomes a 16-byte value, a free heap slot a
/// 64-byte one, and vectors grow by doubling) plus what serde allocates
/// ahead for a sequence before it fails (at most 1 MiB per sequence being
/// decoded, and sequences nest a few deep).
fn allowance(len: usize) -> usize {
    128 * len + (8 << 20)
}

fn exercise(bytes: &[u8]) {
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let restored = spool::restore(bytes);
    let used = PEAK.load(Relaxed) - before;
    assert!(
        used <= allowance(bytes.len()),
        "restore of {} bytes allocated {used} bytes",
        bytes.len()
    );
    let Ok(mut run) = restored else {
        return;
    };
    run.set_limits(Limits {
        budget: Some(1_000),
        max_heap_bytes: 64 << 20,
        max_call_depth: 1_000,
        max_tasks: 1_000,
    });
    let mut host = CaptureOutput::default();
    for _ in 0..20 {
        match run.resume(&mut host) {
            Ok(Step::Done(_)) | Err(_) => break,
            Ok(Step::Paused) => {}
            Ok(Step::Yield(_)) => run.send(spool::Value::Nil),
            Ok(Step::Io(_)) => {
                for request in run.pending_io() {
                    run.complete(request.id, Ok(Data::Int(1)));
                }
            }
        }
    }
    let _ = spool::snapshot(&run);
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    let mut sealed = vec![0; spool::snapshot::HEADER_LEN];
    sealed.extend_from_slice(data);
    spool::snapshot::seal(&mut sealed, 0);
    exercise(&sealed);
});
