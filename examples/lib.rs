//! Runnable Spool scripts live beside this file (`examples/*.spl`, checked
//! by the test suite) and the benchmark workloads in `examples/bench/`.
//! `examples/embed/main.rs` shows a Rust program driving a run step by step:
//! `cargo run -p spool-examples --example embed`.
