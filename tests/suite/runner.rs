//! Running one compiled program in one of the three modes of DESIGN.md
//! §Tests, and describing how the run ended.
//!
//! Every mode must print the same lines and end the same way: a difference
//! between them is a durability bug (a pause or a snapshot lost state).

use std::fmt;

use spool::Dispatcher;

use crate::io::TestDispatcher;

/// How a run is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No budget: one `resume` runs to the end.
    Direct,
    /// Budget of one instruction: the run pauses between any two
    /// instructions and is resumed at once.
    TinySlices,
    /// The run is saved to bytes, dropped, restored from the bytes and
    /// continued: at every I/O phase and top-level yield, after each of
    /// its first [`every_instruction`] instructions (budget 1), and then
    /// at a sample of pauses every thousand instructions (see
    /// [`Sampler`]).
    Snapshot,
}

impl Mode {
    /// All modes, in the order they are run and reported.
    pub const ALL: [Mode; 3] = [Mode::Direct, Mode::TinySlices, Mode::Snapshot];

    /// The instruction budget per `resume`; `per_instruction` tells
    /// whether snapshot mode is still round-tripping at every instruction.
    fn budget(self, per_instruction: bool) -> Option<u64> {
        match self {
            Mode::Direct => None,
            Mode::TinySlices => Some(1),
            Mode::Snapshot if per_instruction => Some(1),
            Mode::Snapshot => Some(1000),
        }
    }
}

/// For how many instructions snapshot mode round-trips the run after every
/// single one: `SPOOL_SNAPSHOT_EVERY` (default 100 000; nearly every script
/// runs fewer, so it is saved and restored at every instruction to its
/// end). A run whose round trips add up to the [`Sampler`]'s byte budget
/// first (a big heap, a deep stack) goes on to the sampled part then.
pub fn every_instruction() -> u64 {
    static EVERY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *EVERY.get_or_init(|| {
        std::env::var("SPOOL_SNAPSHOT_EVERY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000)
    })
}

/// In the instruction-by-instruction part of snapshot mode, every this
/// many round trips carries the program in the bytes ([`spool::snapshot`]
/// and [`spool::restore`]); the others leave it out
/// ([`spool::snapshot_without_program`] and
/// [`spool::restore_with_program`]), which saves encoding and decoding
/// the bytecode at each instruction, while the run's whole state still
/// goes through bytes.
const FULL_EVERY: u64 = 1000;

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Direct => "direct",
            Mode::TinySlices => "tiny-slices",
            Mode::Snapshot => "snapshot",
        })
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The script returned.
    Done,
    /// An uncaught error ended the run.
    Error {
        /// The error's kind.
        kind: String,
        /// The error's message.
        message: String,
    },
    /// The harness could not drive the run: a restore failed, the host was
    /// asked for something it cannot give, or the run never ended.
    Broken(String),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Done => f.write_str("finished normally"),
            End::Error { kind, message } => write!(f, "uncaught error {kind}: {message}"),
            End::Broken(why) => write!(f, "harness could not drive the run: {why}"),
        }
    }
}

/// What a run printed and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The lines of standard output, in order.
    pub lines: Vec<String>,
    /// How the run ended.
    pub end: End,
    /// How often the run paused for its budget (not compared between modes).
    pub pauses: u64,
    /// How many of those pauses were snapshotted and restored.
    pub snapshots: u64,
}

/// More pauses than this and the run is taken to loop forever. A billion
/// single instructions is far beyond any conformance script.
const MAX_PAUSES: u64 = 1_000_000_000;

/// Runs `program` with `args` in `mode`; `input` answers with the lines
/// of `stdin`, in order.
pub fn run(program: &spool::Program, args: &[String], stdin: &[String], mode: Mode) -> Outcome {
    let mut run = program.start(args.to_vec());
    set_budget(&mut run, mode, mode == Mode::Snapshot);
    let mut host = spool::CaptureOutput::default();
    let mut pauses: u64 = 0;
    let mut snapshots: u64 = 0;
    let mut sampler = Sampler::from_env();
    // Snapshot mode starts by round-tripping after every instruction.
    let mut per_instruction = mode == Mode::Snapshot;
    let mut per_instruction_bytes: u64 = 0;
    let mut io = TestDispatcher::new();
    io.stdin = stdin.iter().cloned().collect();
    let end = loop {
        let step = run.resume(&mut host);
        // An I/O phase and a top-level yield are suspension points:
        // snapshot mode always saves and restores the run there (with its
        // requests in flight, or its yield pending).
        if mode == Mode::Snapshot && matches!(step, Ok(spool::Step::Io(_) | spool::Step::Yield(_)))
        {
            match round_trip(run) {
                Ok((restored, _)) => {
                    run = restored;
                    snapshots += 1;
                }
                Err(why) => break End::Broken(why),
            }
            set_budget(&mut run, mode, per_instruction);
        }
        match step {
            Ok(spool::Step::Done(_)) => break End::Done,
            Ok(spool::Step::Io(batch)) => {
                if !batch.is_empty() {
                    io.submit(batch);
                }
                let finished = io.wait();
                if finished.is_empty() {
                    break End::Broken("the run waits for I/O that nothing answers".into());
                }
                for completion in finished {
                    run.complete(completion.id, completion.result);
                }
            }
            // As the command line does: print the value, answer nil.
            Ok(spool::Step::Yield(value)) => host.lines.push(run.display(value)),
            Ok(spool::Step::Paused) => {
                pauses += 1;
                if pauses > MAX_PAUSES {
                    break End::Broken(format!("still running after {MAX_PAUSES} pauses"));
                }
                if mode == Mode::Snapshot && per_instruction {
                    // One instruction ran: save and restore it.
                    let trip = if pauses.is_multiple_of(FULL_EVERY) {
                        round_trip(run)
                    } else {
                        lean_round_trip(run, program)
                    };
                    match trip {
                        Ok((restored, size)) => {
                            run = restored;
                            snapshots += 1;
                            per_instruction_bytes += size;
                        }
                        Err(why) => break End::Broken(why),
                    }
                    // Heavy runs (a big heap, a deep stack) leave the
                    // instruction-by-instruction part early: the sampled
                    // part then checks them all along the run.
                    per_instruction = pauses < every_instruction()
                        && sampler
                            .budget
                            .is_none_or(|budget| per_instruction_bytes <= budget);
                    set_budget(&mut run, mode, per_instruction);
                } else if mode == Mode::Snapshot && sampler.due() {
                    match round_trip(run) {
                        Ok((restored, size)) => {
                            run = restored;
                            snapshots += 1;
                            sampler.spent(size);
                        }
                        Err(why) => break End::Broken(why),
                    }
                    set_budget(&mut run, mode, per_instruction);
                }
            }
            Err(error) => {
                break End::Error {
                    kind: error.kind,
                    message: error.message,
                }
            }
        }
    };
    Outcome {
        lines: stdout_lines(&host.lines),
        end,
        pauses,
        snapshots,
    }
}

/// The lines of standard output that `printed` (one entry per `print`
/// call) make: a printed string holding newlines is several lines.
fn stdout_lines(printed: &[String]) -> Vec<String> {
    printed
        .iter()
        .flat_map(|text| text.split('\n'))
        .map(str::to_string)
        .collect()
}

fn set_budget(run: &mut spool::Run, mode: Mode, per_instruction: bool) {
    if let Some(budget) = mode.budget(per_instruction) {
        run.set_limits(spool::Limits {
            budget: Some(budget),
            ..Default::default()
        });
    }
}

/// Snapshots `run`, drops it and restores a new one from the bytes alone;
/// also gives the snapshot's size.
fn round_trip(run: spool::Run) -> Result<(spool::Run, u64), String> {
    let bytes = into_bytes(run);
    let size = bytes.len() as u64;
    spool::restore(&bytes)
        .map(|run| (run, size))
        .map_err(|error| format!("restore failed: {error}"))
}

/// [`round_trip`] without the program in the bytes: the run's state goes
/// through bytes and is restored onto `program`.
fn lean_round_trip(
    mut run: spool::Run,
    program: &spool::Program,
) -> Result<(spool::Run, u64), String> {
    let bytes = spool::snapshot_without_program(&mut run);
    drop(run);
    spool::restore_with_program(&bytes, program)
        .map(|run| (run, bytes.len() as u64))
        .map_err(|error| format!("restore (without the program) failed: {error}"))
}

/// The snapshot of `run`, which is consumed: only the bytes go on.
fn into_bytes(run: spool::Run) -> Vec<u8> {
    spool::snapshot(&run)
}

/// Which pauses of a snapshot-mode run are snapshotted once it has left
/// the instruction-by-instruction part (its budget is then a thousand
/// instructions).
///
/// Every pause is, until the snapshots taken so far add up to a byte
/// budget; then every second pause until the budget is spent again, then
/// every fourth, and so on. Small scripts are thus checked at every pause,
/// while a script with a deep stack or a big heap (where each snapshot
/// costs more) stays affordable and is still checked all along its run.
/// `SPOOL_SNAPSHOT_BUDGET_MB` sets the budget (default 32); `0` means no
/// budget: snapshot at every pause, however long that takes.
#[derive(Debug)]
struct Sampler {
    /// Bytes per stage; `None` for no limit.
    budget: Option<u64>,
    /// Bytes snapshotted in the current stage.
    spent: u64,
    /// Snapshot every `stride`-th pause.
    stride: u64,
    /// Pauses since the last snapshot.
    waited: u64,
}

impl Sampler {
    fn from_env() -> Sampler {
        let megabytes: u64 = std::env::var("SPOOL_SNAPSHOT_BUDGET_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(32);
        Sampler {
            budget: (megabytes > 0).then_some(megabytes << 20),
            spent: 0,
            stride: 1,
            waited: 0,
        }
    }

    /// Whether this pause is snapshotted.
    fn due(&mut self) -> bool {
        self.waited += 1;
        if self.waited < self.stride {
            return false;
        }
        self.waited = 0;
        true
    }

    /// Records a snapshot of `size` bytes.
    fn spent(&mut self, size: u64) {
        let Some(budget) = self.budget else {
            return;
        };
        self.spent += size;
        if self.spent > budget {
            self.spent = 0;
            self.stride = self.stride.saturating_mul(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budgeted modes really pause (and snapshot), else they would test
    /// nothing that the direct mode does not.
    #[test]
    fn budgeted_modes_pause() {
        let source = "let s = 0\nfor i in 0..3000 {\n  s += i\n}\nprint(s)\n";
        let program = spool_cli::engine()
            .compile("pauses.spl", source)
            .expect("compiles");
        let direct = run(&program, &[], &[], Mode::Direct);
        let tiny = run(&program, &[], &[], Mode::TinySlices);
        let snapshot = run(&program, &[], &[], Mode::Snapshot);
        assert_eq!(
            (direct.end.clone(), direct.lines.clone()),
            (End::Done, vec!["4498500".to_string()])
        );
        assert_eq!(
            (tiny.end, tiny.lines),
            (direct.end.clone(), direct.lines.clone())
        );
        assert_eq!((snapshot.end, snapshot.lines), (direct.end, direct.lines));
        assert!(
            tiny.pauses >= 3000,
            "tiny slices paused only {} times",
            tiny.pauses
        );
        assert!(
            snapshot.snapshots >= 3,
            "snapshot mode took {} snapshots",
            snapshot.snapshots
        );
    }
}
