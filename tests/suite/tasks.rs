//! Tasks and batched I/O from the host's side (LANGUAGE.md §5, §6): one
//! batch per I/O phase, the same output whatever order and grouping the
//! results come back in, and the command line's operations against real
//! files, processes and an HTTP server on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use spool::{CaptureOutput, Data, Engine, IoRequest, Run, Step};

use crate::cli::{assert_exit, scratch, spool, stderr, stdout};

/// 1 000 tasks, each issuing 3 requests one after the other.
const FAN_OUT: &str = "
fn work(n: int) -> int {
    let a = fetch(n)
    let b = fetch(a)
    return fetch(b)
}
let tasks: [Task<int>] = []
for i in 0..1000 {
    tasks.push(spawn work(i))
}
let total = 0
for t in tasks {
    total += await t
}
print(total)
print(tasks[999])
";

/// An engine with the host operation `fetch(n: int) -> int`.
pub(crate) fn engine() -> Engine {
    let mut engine = Engine::new();
    engine
        .register_io("fn fetch(n: int) -> int")
        .expect("the signature parses");
    engine
}

fn start(source: &str) -> Run {
    let program = engine().compile("fan_out.spl", source).expect("compiles");
    program.start(Vec::new())
}

/// `fetch(n)` answers `n + 1`.
fn answer(request: &IoRequest) -> Data {
    Data::Int(request.args[0].as_int().expect("an int") + 1)
}

/// Drives `run`; `order` decides, given the requests outstanding, which of
/// them to answer before the next `resume` (at least one). Returns what the
/// run printed and the size of every batch.
fn drive(
    mut run: Run,
    mut order: impl FnMut(&mut Vec<IoRequest>) -> Vec<IoRequest>,
) -> (Vec<String>, Vec<usize>) {
    let mut host = CaptureOutput::default();
    let mut outstanding: Vec<IoRequest> = Vec::new();
    let mut batches = Vec::new();
    loop {
        match run.resume(&mut host).expect("the run succeeds") {
            Step::Done(_) => return (host.lines, batches),
            Step::Io(batch) => {
                if !batch.is_empty() {
                    batches.push(batch.len());
                }
                outstanding.extend(batch);
                let chosen = order(&mut outstanding);
                assert!(!chosen.is_empty(), "answer at least one request");
                for request in chosen {
                    assert!(run.complete(request.id, Ok(answer(&request))));
                }
            }
            step => panic!("unexpected step {step:?}"),
        }
    }
}

#[test]
fn one_batch_per_io_phase() {
    let (lines, batches) = drive(start(FAN_OUT), std::mem::take);
    assert_eq!(batches, [1000, 1000, 1000]);
    assert_eq!(lines, ["502500", "<task 1000>"]);
}

#[test]
fn results_in_parts_and_out_of_order_give_the_same_output() {
    let (expected, _) = drive(start(FAN_OUT), std::mem::take);
    // Newest first, one at a time.
    let (lines, batches) = drive(start(FAN_OUT), |pending| {
        pending.pop().into_iter().collect()
    });
    assert_eq!(lines, expected);
    assert!(
        batches.len() > 3,
        "answering in parts makes more, smaller batches"
    );
    // Shuffled, in parts of varying size.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let (lines, _) = drive(start(FAN_OUT), |pending| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let take = 1 + (seed % 97) as usize % pending.len().max(1);
        let mut chosen = Vec::new();
        for _ in 0..take.min(pending.len()) {
            let index = (seed as usize / 3 + chosen.len() * 31) % pending.len();
            chosen.push(pending.swap_remove(index));
        }
        chosen
    });
    assert_eq!(lines, expected);
}

#[test]
fn the_same_results_give_the_same_output_every_time() {
    let first = drive(start(FAN_OUT), std::mem::take);
    let second = drive(start(FAN_OUT), std::mem::take);
    assert_eq!(first, second);
}

#[test]
fn a_failed_request_raises_io_at_the_call() {
    let source = "
try {
    fetch(1)
} catch e {
    print(\"${e.kind}: ${e.message}\")
}
";
    let mut run = start(source);
    let mut host = CaptureOutput::default();
    let Ok(Step::Io(batch)) = run.resume(&mut host) else {
        panic!("expected an I/O step");
    };
    run.complete(batch[0].id, Err("backend down".into()));
    assert!(
        !run.complete(batch[0].id, Ok(Data::Int(1))),
        "a second answer is ignored"
    );
    assert!(matches!(run.resume(&mut host), Ok(Step::Done(_))));
    assert_eq!(host.lines, ["Io: backend down"]);
}

#[test]
fn a_result_of_the_wrong_type_is_a_type_error_not_a_crash() {
    let mut run = start("print(fetch(1) + 1)");
    let mut host = CaptureOutput::default();
    let Ok(Step::Io(batch)) = run.resume(&mut host) else {
        panic!("expected an I/O step");
    };
    run.complete(batch[0].id, Ok(Data::str("not an int")));
    let error = run.resume(&mut host).expect_err("the run fails");
    assert_eq!(error.kind, "Type");
    assert!(error.message.contains("`fetch`"), "{}", error.message);
}

#[test]
fn a_suspended_run_with_requests_in_flight_survives_a_snapshot() {
    let mut run = start(FAN_OUT);
    let mut host = CaptureOutput::default();
    let Ok(Step::Io(batch)) = run.resume(&mut host) else {
        panic!("expected an I/O step");
    };
    let bytes = spool::snapshot(&run);
    let mut restored = spool::restore(&bytes).expect("restores");
    assert_eq!(restored.pending_io().len(), 1000);
    for request in batch {
        restored.complete(request.id, Ok(answer(&request)));
    }
    let (lines, _) = drive(restored, std::mem::take);
    assert_eq!(lines, ["502500", "<task 1000>"]);
}

/// The run describes every request not yet completed whole, by its id or
/// all together, as the host got it in its batch (id, operation,
/// arguments, task number), before a snapshot and after the restore; a
/// completed request is gone from both.
#[test]
fn requests_in_flight_are_described_as_the_host_got_them() {
    let mut run = start(FAN_OUT);
    let mut host = CaptureOutput::default();
    let Ok(Step::Io(batch)) = run.resume(&mut host) else {
        panic!("expected an I/O step");
    };
    assert_eq!(batch.len(), 1000);
    assert_eq!((batch[0].task, batch[999].task), (1, 1000));
    assert_eq!(&*batch[7].op, "fetch");
    assert_eq!(run.requests_in_flight(), batch);
    assert_eq!(run.pending_io(), batch);
    for request in [&batch[0], &batch[500], &batch[999]] {
        assert_eq!(run.request_in_flight(request.id).as_ref(), Some(request));
    }
    let restored = spool::restore(&spool::snapshot(&run)).expect("restores");
    assert_eq!(restored.pending_io(), batch);
    assert_eq!(restored.requests_in_flight(), batch);
    run.complete(batch[0].id, Ok(answer(&batch[0])));
    assert_eq!(run.request_in_flight(batch[0].id), None);
    assert_eq!(run.requests_in_flight(), batch[1..]);
}

/// Arguments an I/O call cannot hand to the host (data nested deeper than
/// conversions go) raise a `Type` error naming the operation at the call,
/// which the script catches; no request is issued and the task goes on.
#[test]
fn an_argument_that_cannot_cross_raises_at_the_call() {
    let mut engine = engine();
    engine
        .register_io("fn put(j: Json) -> int")
        .expect("the signature parses");
    let source = "
let j = Json.Null
for i in 0..2000 {
    j = Json.Arr([j])
}
try {
    print(put(j))
} catch e {
    print(e.kind)
    print(e.message)
}
print(fetch(41))
";
    let program = engine.compile("deep.spl", source).expect("compiles");
    let mut run = program.start(Vec::new());
    let mut host = CaptureOutput::default();
    let Ok(Step::Io(batch)) = run.resume(&mut host) else {
        panic!("expected an I/O step");
    };
    assert_eq!(batch.len(), 1);
    assert_eq!(&*batch[0].op, "fetch");
    run.complete(batch[0].id, Ok(answer(&batch[0])));
    assert!(matches!(run.resume(&mut host), Ok(Step::Done(_))));
    assert_eq!(
        host.lines,
        [
            "Type",
            "put: value nested too deeply to pass to the host",
            "42"
        ]
    );
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers `requests` requests:
/// `GET /hello` with 200, `POST /echo` with the request body and its
/// `x-token` header, anything else with 404.
fn http_server(requests: usize) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            reader.read_line(&mut request_line).expect("request line");
            let (mut length, mut token) = (0, String::new());
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("header");
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "x-token" => token = value.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("body");
            let (status, reply) = if request_line.starts_with("GET /hello ") {
                ("200 OK", "hello from the server".to_string())
            } else if request_line.starts_with("POST /echo ") {
                (
                    "200 OK",
                    format!("{token}:{}", String::from_utf8_lossy(&body)),
                )
            } else {
                ("404 Not Found", "nothing here".to_string())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nx-served-by: test\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (address, handle)
}

#[test]
fn cli_operations_against_real_files_processes_and_http() {
    let (base, server) = http_server(3);
    let script = format!(
        r#"
write_file("note.txt", "line one\nline two")
print(read_file("note.txt").split("\n").len())
print(list_dir(".").filter(fn(n) => n.ends_with(".txt")))
let out = exec("sh", ["-c", "echo out; echo err >&2; exit 3"])
print("${{out.code}} ${{out.stdout.trim()}} ${{out.stderr.trim()}}")
try {{
    exec("no-such-program-here", [])
}} catch e {{
    print(e.kind)
}}
let tasks = ["/hello", "/missing"].map(fn(p) => spawn http_get("{base}" + p))
for t in tasks {{
    let r = await t
    print("${{r.status}} ${{r.body}} ${{r.headers["x-served-by"]}}")
}}
let posted = http(Request(method: "POST", url: "{base}/echo", headers: ["x-token": "abc"], body: "payload"))
print(posted.body)
print(env("SPOOL_TEST_VALUE") ?? "unset")
try {{
    read_file("missing.txt")
}} catch e {{
    print("${{e.kind}} ${{e.message.contains("missing.txt")}}")
}}
"#
    );
    let dir = scratch("cli_io", &[("io.spl", &script)]);
    let output = spool_with_env(&dir, &["run", "--max-io", "2", "io.spl"]);
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output),
        "2\n[\"note.txt\"]\n3 out err\nIo\n200 hello from the server test\n404 nothing here test\nabc:payload\nvalue\nIo true\n"
    );
    server.join().expect("the server ends");
}

fn spool_with_env(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::env::set_var("SPOOL_TEST_VALUE", "value");
    spool(dir, args)
}

#[test]
fn cli_sleeps_run_concurrently_and_trace_is_written() {
    let script = "
let start = now()
let tasks: [Task<nil>] = []
for i in 0..200 {
    tasks.push(spawn sleep(200))
}
for t in tasks {
    await t
}
let elapsed = now() - start
print(elapsed >= 200 && elapsed < 2000)
";
    let dir = scratch("cli_sleep", &[("sleep.spl", script)]);
    let output = spool(&dir, &["run", "sleep.spl", "--trace", "trace.json"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "true\n");
    let trace = std::fs::read_to_string(dir.join("trace.json")).expect("trace written");
    assert!(trace.starts_with("{\"traceEvents\":["), "{trace}");
    assert!(trace.contains("\"name\":\"CPU\""));
    assert!(trace.contains("\"name\":\"batch 1\""));
    assert_eq!(trace.matches("\"name\":\"sleep\"").count(), 200);
    assert!(trace.trim_end().ends_with('}'));
}

#[test]
fn cli_uncaught_task_error_fails_the_run_with_its_trace() {
    let script = "
fn load(path: str) -> str {
    return read_file(path)
}
let t = spawn load(\"nope.txt\")
print(\"spawned\")
";
    let dir = scratch("cli_task_error", &[("fail.spl", script)]);
    let output = spool(&dir, &["run", "fail.spl"]);
    assert_exit(&output, 1);
    assert_eq!(stdout(&output), "spawned\n");
    let err = stderr(&output);
    assert!(err.starts_with("error: Io: "), "{err}");
    assert!(err.contains("at load (fail.spl:3:"), "{err}");
}
