//! The I/O host of the conformance harness: the command line's operations,
//! made deterministic.
//!
//! Every operation runs for real (files, processes, HTTP, the environment)
//! except time: `sleep` advances a virtual clock instead of waiting, and
//! `now` reads that clock. Results come back in a fixed order: each `wait`
//! returns everything but sleeps first, in request order, then the sleeps
//! that end earliest. `input` answers with the script's `// stdin:` lines,
//! in order (the prompt is not part of the output), and fails with `Io`
//! once they are used up. A script's output thus depends only on the script,
//! never on how fast this machine is, and a test that sleeps a minute
//! takes no time.

use std::collections::BTreeMap;

use spool::{Completion, Data, Dispatcher, IoRequest};

/// Virtual time at the start of every run: 2026-01-01T00:00:00Z in ms.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

/// The deterministic dispatcher.
#[derive(Debug, Default)]
pub struct TestDispatcher {
    /// Finished requests not yet returned, in request order.
    ready: Vec<Completion>,
    /// Pending sleeps by (deadline, id).
    sleeps: BTreeMap<(i64, u64), spool::IoId>,
    /// The virtual clock, ms since the epoch.
    now: i64,
    /// The lines `input` answers with, in order.
    pub stdin: std::collections::VecDeque<String>,
    /// Every batch submitted, as the ops it held (for tests of batching).
    pub batches: Vec<Vec<String>>,
}

impl TestDispatcher {
    /// A dispatcher whose clock reads [`EPOCH_MS`].
    pub fn new() -> TestDispatcher {
        TestDispatcher {
            now: EPOCH_MS,
            ..TestDispatcher::default()
        }
    }
}

impl Dispatcher for TestDispatcher {
    fn submit(&mut self, batch: Vec<IoRequest>) {
        self.batches
            .push(batch.iter().map(|r| r.op.to_string()).collect());
        for request in batch {
            let result = match (&*request.op, request.args.first()) {
                ("sleep", Some(Data::Int(ms))) if *ms >= 0 => {
                    let deadline = self.now.saturating_add(*ms);
                    self.sleeps.insert((deadline, request.id.0), request.id);
                    continue;
                }
                ("sleep", _) => Err("sleep: the duration must not be negative".to_string()),
                ("now", _) => Ok(Data::Int(self.now)),
                ("input", _) => self
                    .stdin
                    .pop_front()
                    .map(Data::Str)
                    .ok_or_else(|| "end of input".to_string()),
                _ => spool_cli::cli_io::handle(&request),
            };
            self.ready.push(Completion {
                id: request.id,
                result,
            });
        }
    }

    fn wait(&mut self) -> Vec<Completion> {
        if !self.ready.is_empty() {
            return std::mem::take(&mut self.ready);
        }
        let Some((&(deadline, _), _)) = self.sleeps.first_key_value() else {
            return Vec::new();
        };
        self.now = self.now.max(deadline);
        let mut woken = Vec::new();
        while let Some(entry) = self.sleeps.first_entry() {
            if entry.key().0 > deadline {
                break;
            }
            let id = entry.remove();
            woken.push(Completion {
                id,
                result: Ok(Data::Nil),
            });
        }
        woken
    }
}
