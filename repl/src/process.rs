//! The `spool` executable's start-up, done here instead of by the standard
//! library's start-up routine, which the executable skips (`#![no_main]`
//! in main.rs): that routine also finds the main thread's stack guard by
//! reading all of `/proc/self/maps` and installs a handler that reports a
//! stack overflow, which together are a good part of the time an empty
//! script takes. What of it the command line needs is done by [`start`],
//! the same way; nothing in `spool` recurses without a bound, so a stack
//! overflow is not a way it ends.

use std::sync::OnceLock;
use std::thread::ThreadId;

/// The thread [`start`] ran on: the process's main thread.
static MAIN_THREAD: OnceLock<ThreadId> = OnceLock::new();

/// Prepares the process as the standard library's start-up routine would
/// for the command line; called first thing by the executable's `main`.
/// - Standard input, output and error are open: any of them the process
///   was started without is opened on `/dev/null`, so that no file the
///   run opens later (a saved run, say) takes its number and receives
///   what was meant for the terminal.
/// - `SIGPIPE` is ignored, so that writing to a closed pipe is an error
///   the command line reports rather than the end of the process.
/// - This thread is remembered as the main one ([`is_main_thread`]).
pub fn start() {
    open_standard_streams();
    ignore_sigpipe();
    let _ = MAIN_THREAD.set(std::thread::current().id());
}

/// Is this the thread [`start`] ran on, the process's main thread (whose
/// stack may grow to the soft limit `ulimit -s` sets)?
pub fn is_main_thread() -> bool {
    MAIN_THREAD.get() == Some(&std::thread::current().id())
}

/// The soft limit of the main thread's stack in bytes: `None` when it is
/// unlimited, 0 when it cannot be read.
pub fn stack_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` through the pointer, which
    // points at a valid, exclusive `rlimit` on this stack.
    #[allow(unsafe_code)]
    let status = unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) };
    match status {
        0 if limit.rlim_cur == libc::RLIM_INFINITY => None,
        0 => Some(limit.rlim_cur),
        _ => Some(0),
    }
}

/// 64 bits from the operating system's random source (`getrandom`), or
/// `None` if it has none.
pub fn entropy() -> Option<u64> {
    let mut bytes = [0u8; 8];
    // SAFETY: `getrandom` writes at most the 8 bytes asked for into
    // `bytes`, a valid, exclusive 8-byte buffer.
    #[allow(unsafe_code)]
    let written = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    (written == 8).then(|| u64::from_ne_bytes(bytes))
}

/// Opens `/dev/null` on each of descriptors 0, 1 and 2 that is closed.
fn open_standard_streams() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `poll` reads and writes the three `pollfd`s of `fds`, a
    // valid, exclusive array of exactly the length passed; a timeout of 0
    // returns at once.
    #[allow(unsafe_code)]
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    if polled == -1 {
        return;
    }
    for pollfd in fds {
        if pollfd.revents & libc::POLLNVAL != 0 {
            // Opening takes the lowest free number: this one. The file is
            // kept open for the life of the process on purpose.
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                std::mem::forget(null);
            }
        }
    }
}

/// Ignores `SIGPIPE`.
fn ignore_sigpipe() {
    // SAFETY: setting the disposition of `SIGPIPE` to `SIG_IGN` installs
    // no handler (no code runs on the signal), and no other thread exists
    // yet to race with it.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
