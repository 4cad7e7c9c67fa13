//! Execution: the dispatch loop and what it works on. A run's fibers
//! (frames and register files), calls and returns, errors and their
//! unwinding through handlers and defers, coroutines switching fibers,
//! and native functions with the output a run prints through.

pub mod coro;
pub(crate) mod divisor;
pub mod error;
pub mod fiber;
pub(crate) mod interp;
pub mod native;
pub mod unwind;
