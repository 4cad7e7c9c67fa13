//! Small helpers shared by the suite's modules: running code on a thread
//! with a large stack, and turning panics into reportable text.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Stack size for threads that compile or run scripts. The front end may
/// recurse on deeply nested input; the VM should not, but a generous stack
/// keeps a bug there a report rather than an abort of the whole suite.
pub const BIG_STACK: usize = 256 * 1024 * 1024;

/// Runs `body` on a new thread with [`BIG_STACK`]; the thread is detached.
pub fn spawn_big_stack(body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(BIG_STACK)
        .spawn(body)
        .expect("cannot spawn a test thread");
}

/// Runs `body` on a new thread with [`BIG_STACK`] and waits for its result.
pub fn with_big_stack<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let handle = std::thread::Builder::new()
        .stack_size(BIG_STACK)
        .spawn(body)
        .expect("cannot spawn a test thread");
    match handle.join() {
        Ok(value) => value,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Runs `body`, turning a panic into `Err` with the panic's message.
pub fn catch_panic<T>(body: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(body)).map_err(|payload| panic_message(payload.as_ref()))
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}
