//! Dispatchers: how a host answers the I/O requests of a run.
//!
//! [`Run::resume`](spool_vm::Run::resume) returns `Step::Io(batch)` with
//! every request the tasks issued in one CPU phase. A [`Dispatcher`] starts
//! them and hands results back as they finish, in any order and in parts;
//! [`drive`](crate::drive) feeds those results to the run and resumes it.

use spool_vm::{IoId, IoRequest, IoResult};

/// One finished request.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The request's id.
    pub id: IoId,
    /// Its result, or the message of the `Io` error the call raises.
    pub result: IoResult,
}

/// Answers I/O requests.
pub trait Dispatcher {
    /// Starts every request of one batch. Results come from
    /// [`Dispatcher::wait`].
    fn submit(&mut self, batch: Vec<IoRequest>);

    /// Blocks until at least one submitted request has finished and returns
    /// every finished one not returned before. Returns an empty list only
    /// when no request is in flight.
    fn wait(&mut self) -> Vec<Completion>;
}
