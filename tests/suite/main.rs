//! Spool's integration suite, one test binary (CONVENTIONS.md points 6-9):
//! script conformance in three run modes, golden files for disassembly and
//! diagnostics, the command line, and bad input for the front end.
//!
//! Useful environment variables: `SPOOL_TEST_FILTER=substring` (only the
//! scripts and goldens whose path contains it), `UPDATE_GOLDEN=1` (rewrite
//! golden files), `SPOOL_TEST_TIMEOUT=seconds`, `SPOOL_TEST_TIMES=1`,
//! `SPOOL_SNAPSHOT_BUDGET_MB=n` (0: snapshot at every pause), `SPOOL_FUZZ_CASES=n`.

mod checkpoints;
mod cli;
mod cli_security;
mod conformance;
mod durability;
mod embedding;
mod examples;
mod golden;
mod io;
mod limits;
mod pg_cluster;
mod program_call;
mod repl;
mod robustness;
mod runner;
mod script_result;
mod store_durability;
mod store_policy;
mod store_scale;
mod stress;
mod support;
mod tasks;
mod tidy;
mod upgrade;
