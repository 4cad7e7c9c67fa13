//! Writes a corpus for the `restore` fuzz target: saved runs (the current
//! format) of scripts paused at many points, bodies only (the target adds
//! a header and checksum), plus a few whole files for the header checks.
//!
//! `cargo run --release --manifest-path fuzz/Cargo.toml --example corpus --
//! fuzz/corpus/restore tests/scripts/tasks/*.spl examples/*.spl ...`

use spool::{CaptureOutput, Data, Limits, Step};

/// Saved runs kept per script, spread over its run.
const PER_SCRIPT: usize = 12;
/// Bodies larger than this are left out: they slow the fuzzer down.
const MAX_LEN: usize = 64 << 10;

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().expect("usage: corpus DIR SCRIPT...");
    std::fs::create_dir_all(&out).expect("the corpus directory can be made");
    let engine = spool_cli::engine();
    let mut written = 0;
    for path in args {
        let source = std::fs::read_to_string(&path).expect("the script can be read");
        let Ok(program) = engine.compile(&path, &source) else {
            continue;
        };
        let saved = saved_runs(program.start(Vec::new()));
        let stride = (saved.len() / PER_SCRIPT).max(1);
        let stem = std::path::Path::new(&path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (index, bytes) in saved.iter().enumerate().step_by(stride).take(PER_SCRIPT) {
            let body = &bytes[spool::snapshot::HEADER_LEN..];
            if body.len() > MAX_LEN {
                continue;
            }
            std::fs::write(format!("{out}/{stem}-{index}"), body).expect("written");
            if index == 0 && written % 20 == 0 {
                std::fs::write(format!("{out}/{stem}-whole"), bytes).expect("written");
            }
            written += 1;
        }
    }
    eprintln!("{written} saved runs in {out}");
}

/// Snapshots of `run` at every I/O phase and yield, at every seventh pause
/// of a 37-instruction budget, and at its end; I/O is answered without
/// touching anything outside (time is fixed, files and processes fail).
fn saved_runs(mut run: spool::Run) -> Vec<Vec<u8>> {
    run.set_limits(Limits {
        budget: Some(37),
        ..Limits::default()
    });
    let mut host = CaptureOutput::default();
    let mut saved = Vec::new();
    for pause in 1..20_000 {
        let step = run.resume(&mut host);
        if !matches!(step, Ok(Step::Paused)) || pause % 7 == 0 {
            saved.push(spool::snapshot(&run));
        }
        match step {
            Ok(Step::Done(_)) | Err(_) => break,
            Ok(Step::Paused) => {}
            Ok(Step::Yield(_)) => run.send(spool::Value::Nil),
            Ok(Step::Io(_)) => {
                for request in run.pending_io() {
                    let result = match &*request.op {
                        "sleep" | "env" => Ok(Data::Nil),
                        "now" => Ok(Data::Int(1_767_225_600_000)),
                        "input" => Ok(Data::str("a line")),
                        _ => Err("no I/O while making a corpus".to_string()),
                    };
                    run.complete(request.id, result);
                }
            }
        }
    }
    saved
}
