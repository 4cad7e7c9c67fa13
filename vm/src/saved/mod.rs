//! Saved runs: the format runs are saved in and restored from, the compact
//! encoding of fibers inside it, the validator that makes a run from
//! untrusted bytes safe to execute, and upgrades, which move a run to a
//! changed program (with the liveness analysis they rely on).

pub(crate) mod liveness;
pub mod snapshot;
pub mod upgrade;
pub mod validate;
pub(crate) mod wire;
