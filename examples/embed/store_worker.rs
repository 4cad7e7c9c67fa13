//! A Rust application with its own run store and worker: it registers an
//! I/O operation of its own (`charge`), submits workflows to a SQLite store
//! ([`spool_store::Store`]), runs the worker loop ([`spool_store::Worker`])
//! with its own dispatcher, answers the runs waiting for a person, and
//! prints what each run printed. The same code runs on PostgreSQL with a
//! `postgres://` URL.
//!
//! Run with `cargo run -p spool-examples --example store_worker [STORE]`
//! (default: a fresh SQLite file in the temporary directory).

use std::error::Error;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spool::{Data, Dispatcher, Engine, FnDispatcher, IoRequest, IoResult, Program, Run};
use spool_store::{RunStatus, Store, Worker, WorkerConfig, WorkerHost};

/// The workflow: charge an amount, wait for a person to approve a refund,
/// refund it.
const WORKFLOW: &str = r#"
let customer = args()[0]
let receipt = charge(customer, 40)
print("${customer}: charged, receipt ${receipt}")
let approved: bool = yield "refund ${customer}?"
if approved {
    let refund = charge(customer, -40)
    print("${customer}: refunded, receipt ${refund}")
} else {
    print("${customer}: kept")
}
"#;

/// The host's operation: `charge(customer, cents) -> int` (a receipt).
const CHARGE: &str = "fn charge(customer: str, cents: int) -> int";

/// The application as the worker's host: its engine and its payments.
struct Payments {
    engine: Engine,
    /// The next receipt number: what the payment service would return.
    receipts: Arc<AtomicI64>,
}

impl WorkerHost for Payments {
    fn compile(&self, name: &str, source: &str) -> Result<Program, String> {
        self.engine
            .compile(name, source)
            .map_err(|error| error.render())
    }

    fn prepare(&self, run: &mut Run, _policy: &str) -> Result<Box<dyn Dispatcher>, String> {
        run.set_limits(spool::Limits::default());
        let receipts = Arc::clone(&self.receipts);
        Ok(Box::new(FnDispatcher::new(
            move |request: &IoRequest| -> IoResult {
                match (&*request.op, &request.args[..]) {
                    ("charge", [Data::Str(_customer), Data::Int(_cents)]) => {
                        Ok(Data::Int(receipts.fetch_add(1, Ordering::SeqCst)))
                    }
                    (op, _) => Err(format!("{op}: not an operation of this application")),
                }
            },
        )))
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let given = std::env::args().nth(1);
    let temporary = std::env::temp_dir().join(format!("store_worker-{}.db", std::process::id()));
    let url = given
        .clone()
        .unwrap_or_else(|| temporary.to_string_lossy().into_owned());
    let mut engine = Engine::new();
    engine.register_io(CHARGE)?;
    let program = engine.compile("refund.spl", WORKFLOW)?;

    let mut store = Store::open(&url)?;
    let customers = ["ada", "grace", "linus"];
    let mut runs = Vec::new();
    for customer in customers {
        let id = store.submit(&program, "refund.spl", WORKFLOW, vec![customer.into()], "")?;
        println!("submitted run {id} for {customer}");
        runs.push(id);
    }

    let host = Arc::new(Payments {
        engine,
        receipts: Arc::new(AtomicI64::new(1000)),
    });
    let config = WorkerConfig {
        concurrency: 2,
        poll: Duration::from_millis(10),
        exit_when_idle: true,
        ..WorkerConfig::default()
    };
    let worker = Worker::new(&url, host.clone(), config.clone());
    let stats = worker.run()?;
    println!("worker: {} claimed, {} parked", stats.claimed, stats.parked);

    for (n, id) in runs.iter().enumerate() {
        let info = store.run(*id)?;
        assert_eq!(info.status, RunStatus::Waiting);
        println!("run {id} waits on: {}", info.waiting);
        // A person approves the first two refunds.
        store.send(*id, if n < 2 { "true" } else { "false" })?;
    }
    let stats = Worker::new(&url, host, config).run()?;
    println!(
        "worker: {} claimed, {} finished",
        stats.claimed, stats.finished
    );

    for id in runs {
        let info = store.run(id)?;
        println!("run {id}: {}", info.status);
        for line in store.output(id, 0)? {
            println!("  {line}");
        }
    }
    if given.is_none() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{url}{suffix}"));
        }
    }
    Ok(())
}
