//! `spool run --trace PATH`: a Chrome trace-event file of a run's CPU
//! phases, I/O batches and requests, to open in Perfetto
//! (<https://ui.perfetto.dev>) or `chrome://tracing`.
//!
//! Track 1 shows the CPU phases (each `Run::resume` call, with the number
//! of live tasks); each I/O batch is an async span from its submission to
//! its last result; every request is a span on a lane of its own (lanes are
//! reused), named after its operation, with its id, batch and task.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use spool_vm::{IoId, IoRequest};

/// Collects trace events while a run executes.
pub struct TraceRecorder {
    start: Instant,
    events: Vec<String>,
    requests: BTreeMap<IoId, Pending>,
    /// Requests still outstanding per batch number.
    batches: BTreeMap<u64, usize>,
    lanes: Vec<bool>,
    next_batch: u64,
}

/// A request between its submission and its result.
struct Pending {
    began: f64,
    op: String,
    batch: u64,
    lane: usize,
    task: u64,
}

impl Default for TraceRecorder {
    fn default() -> TraceRecorder {
        TraceRecorder::new()
    }
}

impl TraceRecorder {
    /// A recorder whose time zero is now.
    pub fn new() -> TraceRecorder {
        let mut recorder = TraceRecorder {
            start: Instant::now(),
            events: Vec::new(),
            requests: BTreeMap::new(),
            batches: BTreeMap::new(),
            lanes: Vec::new(),
            next_batch: 1,
        };
        recorder.thread_name(1, "CPU phases");
        recorder.thread_name(2, "I/O batches");
        recorder
    }

    /// Microseconds since the recorder started.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1e6
    }

    /// The trace's time (microseconds since it started) of the moment `at`.
    pub fn at(&self, at: std::time::Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64() * 1e6
    }

    fn thread_name(&mut self, tid: usize, name: &str) {
        self.events.push(format!(
            r#"{{"ph":"M","pid":1,"tid":{tid},"name":"thread_name","args":{{"name":{}}}}}"#,
            json_string(name)
        ));
    }

    /// A CPU phase that began at `began` (from [`TraceRecorder::now`]) and
    /// ends now, with `tasks` live tasks at its end.
    pub fn cpu_phase(&mut self, began: f64, tasks: usize, outcome: &str) {
        let end = self.now();
        self.events.push(format!(
            r#"{{"name":"CPU","cat":"cpu","ph":"X","pid":1,"tid":1,"ts":{began:.1},"dur":{:.1},"args":{{"tasks":{tasks},"until":{}}}}}"#,
            (end - began).max(0.0),
            json_string(outcome)
        ));
    }

    /// A batch handed to the dispatcher now.
    pub fn batch(&mut self, batch: &[IoRequest]) {
        if batch.is_empty() {
            return;
        }
        let number = self.next_batch;
        self.next_batch += 1;
        let now = self.now();
        self.events.push(format!(
            r#"{{"name":"batch {number}","cat":"io","ph":"b","pid":1,"tid":2,"id":{number},"ts":{now:.1},"args":{{"requests":{}}}}}"#,
            batch.len()
        ));
        self.batches.insert(number, batch.len());
        for request in batch {
            let lane = self.free_lane();
            let pending = Pending {
                began: now,
                op: request.op.to_string(),
                batch: number,
                lane,
                task: request.task,
            };
            self.requests.insert(request.id, pending);
        }
    }

    fn free_lane(&mut self) -> usize {
        if let Some(lane) = self.lanes.iter().position(|busy| !busy) {
            self.lanes[lane] = true;
            return lane;
        }
        self.lanes.push(true);
        let lane = self.lanes.len() - 1;
        self.thread_name(100 + lane, &format!("I/O lane {lane}"));
        lane
    }

    /// The result of request `id` arrived now.
    pub fn completed(&mut self, id: IoId, ok: bool) {
        let Some(pending) = self.requests.remove(&id) else {
            return;
        };
        let now = self.now();
        self.lanes[pending.lane] = false;
        self.events.push(format!(
            r#"{{"name":{},"cat":"io","ph":"X","pid":1,"tid":{},"ts":{:.1},"dur":{:.1},"args":{{"id":{},"batch":{},"task":{},"ok":{ok}}}}}"#,
            json_string(&pending.op),
            100 + pending.lane,
            pending.began,
            (now - pending.began).max(0.0),
            id.0,
            pending.batch,
            pending.task
        ));
        let left = self.batches.entry(pending.batch).or_insert(1);
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.batches.remove(&pending.batch);
            self.events.push(format!(
                r#"{{"name":"batch {0}","cat":"io","ph":"e","pid":1,"tid":2,"id":{0},"ts":{now:.1}}}"#,
                pending.batch
            ));
        }
    }

    /// The trace as a JSON document.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"traceEvents\":[\n");
        for (index, event) in self.events.iter().enumerate() {
            if index > 0 {
                out.push_str(",\n");
            }
            out.push_str(event);
        }
        out.push_str("\n],\"displayTimeUnit\":\"ms\"}\n");
        out
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
