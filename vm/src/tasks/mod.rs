//! Tasks, I/O and scheduling: the task tree, channels, locks and groups;
//! the scheduler that runs ready tasks until all are blocked (a CPU phase)
//! and hands their I/O requests to the host as one batch (an I/O phase);
//! and the requests themselves with the data that crosses the boundary.

pub mod check;
pub mod host_values;
pub mod io;
pub mod sched;
pub mod select;
