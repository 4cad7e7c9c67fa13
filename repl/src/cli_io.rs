//! The I/O operations of the `spool` command line (LANGUAGE.md §6): files,
//! processes, HTTP, time, the environment and standard input.
//!
//! [`SIGNATURES`] declares them to the compiler; [`handle`] answers one
//! request; [`dispatcher`] runs many at once on a [`PoolDispatcher`], with
//! `sleep` served by its timer thread and `now`/`env` answered on the spot.
//!
//! Every failure is the message of the `Io` error the call raises: the
//! operation and its main argument, then the operating system's (or the
//! HTTP client's) message, as in
//! `read_file("x.txt"): No such file or directory (os error 2)`. Arguments
//! of the wrong shape cannot come from a checked script; they give
//! `internal: bad arguments for OP` rather than a panic.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use spool_vm::{Data, IoRequest, IoResult};

use spool::dispatch::{self, PoolDispatcher, Route};

/// The Spool signatures of the operations [`handle`] answers. The structs
/// they use (`Output`, `Request`, `Response`) are declared by the standard
/// library.
pub const SIGNATURES: &[&str] = &[
    "fn read_file(path: str) -> str",
    "fn write_file(path: str, data: str)",
    "fn list_dir(path: str) -> [str]",
    "fn exec(cmd: str, args: [str]) -> Output",
    "fn http(req: Request) -> Response",
    "fn http_get(url: str) -> Response",
    "fn sleep(ms: int)",
    "fn now() -> int",
    "fn env(name: str) -> str?",
    "fn input(prompt: str) -> str",
];

/// How long one HTTP request may take in all (connecting, sending, and
/// reading the whole response) before it fails.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest HTTP response body accepted, in bytes (64 MiB); a larger one
/// fails.
pub const HTTP_MAX_BODY: u64 = 64 << 20;

/// A [`PoolDispatcher`] for the command line: [`handle`] on at most
/// `max_in_flight` worker threads (`0` is taken as `1`), `sleep` on the
/// pool's timer thread, `now` and `env` answered without a worker.
pub fn dispatcher(max_in_flight: usize) -> PoolDispatcher {
    PoolDispatcher::new(Arc::new(handle))
        .with_max_in_flight(max_in_flight)
        .with_router(route)
}

/// Where [`dispatcher`] sends a request.
fn route(request: &IoRequest) -> Route {
    match &*request.op {
        "now" | "env" => Route::Done(handle(request)),
        _ => dispatch::sleep_route(request),
    }
}

/// Answers one request of an operation in [`SIGNATURES`], blocking until it
/// is done. `sleep` blocks the calling thread here; [`dispatcher`] serves it
/// with a timer instead.
pub fn handle(request: &IoRequest) -> IoResult {
    let args = request.args.as_slice();
    match &*request.op {
        "read_file" => read_file(str_arg("read_file", args)?),
        "write_file" => write_file(args),
        "list_dir" => list_dir(str_arg("list_dir", args)?),
        "exec" => exec(args),
        "http" => http(args),
        "http_get" => http_get(str_arg("http_get", args)?),
        "sleep" => sleep(args),
        "now" => now(args),
        "env" => env(str_arg("env", args)?),
        "input" => input(str_arg("input", args)?),
        other => Err(format!("internal: unknown operation {other}")),
    }
}

fn bad_args(op: &str) -> String {
    format!("internal: bad arguments for {op}")
}

/// The single string argument of `op`.
fn str_arg<'a>(op: &str, args: &'a [Data]) -> Result<&'a str, String> {
    match args {
        [Data::Str(text)] => Ok(text),
        _ => Err(bad_args(op)),
    }
}

fn read_file(path: &str) -> IoResult {
    let bytes = std::fs::read(path).map_err(|e| format!("read_file({path:?}): {e}"))?;
    String::from_utf8(bytes).map(Data::Str).map_err(|e| {
        format!(
            "read_file({path:?}): the file is not valid UTF-8 (bad byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn write_file(args: &[Data]) -> IoResult {
    let [Data::Str(path), Data::Str(data)] = args else {
        return Err(bad_args("write_file"));
    };
    std::fs::write(path, data).map_err(|e| format!("write_file({path:?}): {e}"))?;
    Ok(Data::Nil)
}

/// The names of a directory's entries, sorted (by bytes). A name that is
/// not valid UTF-8 is given with U+FFFD in place of the bad bytes.
fn list_dir(path: &str) -> IoResult {
    let context = |e: std::io::Error| format!("list_dir({path:?}): {e}");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).map_err(context)? {
        let entry = entry.map_err(context)?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(Data::List(names.into_iter().map(Data::Str).collect()))
}

/// Runs a program without a shell, standard input closed, and collects its
/// output (invalid UTF-8 in it becomes U+FFFD). A program killed by a
/// signal has code 128 + the signal's number, as in a shell; on systems
/// without signals an exit without a code is -1.
fn exec(args: &[Data]) -> IoResult {
    let [Data::Str(cmd), Data::List(items)] = args else {
        return Err(bad_args("exec"));
    };
    let argv = items
        .iter()
        .map(|item| item.as_str().ok_or_else(|| bad_args("exec")))
        .collect::<Result<Vec<_>, _>>()?;
    let output = Command::new(cmd)
        .args(&argv)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("exec({cmd:?}): {e}"))?;
    Ok(Data::Record {
        name: "Output".to_string(),
        fields: vec![
            ("code".to_string(), Data::Int(exit_code(&output.status))),
            ("stdout".to_string(), lossy(&output.stdout)),
            ("stderr".to_string(), lossy(&output.stderr)),
        ],
    })
}

fn lossy(bytes: &[u8]) -> Data {
    Data::Str(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(unix)]
fn exit_code(status: &std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        (None, None) => -1,
    }
}

#[cfg(not(unix))]
fn exit_code(status: &std::process::ExitStatus) -> i64 {
    status.code().map_or(-1, i64::from)
}

/// The HTTP client every request shares (it pools connections). Statuses
/// are never errors; proxies come from the usual environment variables.
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .allow_non_standard_methods(true)
            .build()
            .into()
    })
}

fn http_get(url: &str) -> IoResult {
    send("GET", url, &[], "")
}

/// `http(req)`: the request's fields by name; headers are a map of
/// strings to strings.
fn http(args: &[Data]) -> IoResult {
    let [request @ Data::Record { .. }] = args else {
        return Err(bad_args("http"));
    };
    let text = |name| request.field(name).and_then(Data::as_str);
    let (Some(method), Some(url), Some(body)) = (text("method"), text("url"), text("body")) else {
        return Err(bad_args("http"));
    };
    let headers = match request.field("headers") {
        Some(Data::Map(pairs)) => string_pairs(pairs).ok_or_else(|| bad_args("http"))?,
        _ => return Err(bad_args("http")),
    };
    send(method, url, &headers, body)
}

fn string_pairs(pairs: &[(Data, Data)]) -> Option<Vec<(&str, &str)>> {
    pairs
        .iter()
        .map(|(name, value)| Some((name.as_str()?, value.as_str()?)))
        .collect()
}

/// Sends one request and reads the whole response, whatever its status.
/// An empty body is sent as no body at all, except for methods that
/// normally carry one (`POST`, `PUT`, `PATCH`: `content-length: 0`).
fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> IoResult {
    let context = |e: &dyn std::fmt::Display| format!("http({method} {url}): {e}");
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let sent = if body.is_empty() && !matches!(method, "POST" | "PUT" | "PATCH") {
        builder.body(()).map(|request| agent().run(request))
    } else {
        builder.body(body).map(|request| agent().run(request))
    };
    let response = sent
        .map_err(|e| context(&e))?
        .map_err(|e| context(&describe(e)))?;
    response_data(response).map_err(|e| context(&describe(e)))
}

/// The client's message for a failure; for an I/O failure, the operating
/// system's message alone (`Connection refused (os error 111)`).
fn describe(error: ureq::Error) -> String {
    match error {
        ureq::Error::Io(error) => error.to_string(),
        other => other.to_string(),
    }
}

/// A `Response` record: the status, the headers by lowercase name (values
/// of a repeated header joined with `, `), the body (invalid UTF-8 becomes
/// U+FFFD).
fn response_data(mut response: ureq::http::Response<ureq::Body>) -> Result<Data, ureq::Error> {
    let status = Data::Int(i64::from(response.status().as_u16()));
    let headers = header_map(response.headers());
    let body = response
        .body_mut()
        .with_config()
        .limit(HTTP_MAX_BODY)
        .read_to_vec()?;
    Ok(Data::Record {
        name: "Response".to_string(),
        fields: vec![
            ("status".to_string(), status),
            ("headers".to_string(), headers),
            ("body".to_string(), lossy(&body)),
        ],
    })
}

fn header_map(headers: &ureq::http::HeaderMap) -> Data {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match pairs.iter_mut().find(|(n, _)| n == name.as_str()) {
            Some((_, joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            None => pairs.push((name.as_str().to_string(), value.into_owned())),
        }
    }
    Data::Map(
        pairs
            .into_iter()
            .map(|(name, value)| (Data::Str(name), Data::Str(value)))
            .collect(),
    )
}

/// `sleep(ms)` on the calling thread (the fallback when no timer serves
/// it).
fn sleep(args: &[Data]) -> IoResult {
    let [Data::Int(ms)] = args else {
        return Err(bad_args("sleep"));
    };
    std::thread::sleep(dispatch::sleep_duration(*ms)?);
    Ok(Data::Nil)
}

/// Milliseconds since the Unix epoch.
fn now(args: &[Data]) -> IoResult {
    if !args.is_empty() {
        return Err(bad_args("now"));
    }
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "now(): the system clock is set before 1970".to_string())?;
    i64::try_from(since.as_millis())
        .map(Data::Int)
        .map_err(|_| "now(): the system clock is too far in the future".to_string())
}

/// An environment variable, or `nil` when it is not set. A name no
/// variable can have (empty, or containing `=` or NUL) is not set either.
fn env(name: &str) -> IoResult {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Ok(Data::Nil);
    }
    match std::env::var(name) {
        Ok(value) => Ok(Data::Str(value)),
        Err(std::env::VarError::NotPresent) => Ok(Data::Nil),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("env({name:?}): the value is not valid UTF-8"))
        }
    }
}

/// Prints the prompt (no newline) and reads one line of standard input,
/// without its line ending. Concurrent calls take turns, each prompt
/// followed by its own line.
fn input(prompt: &str) -> IoResult {
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(prompt.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("input: cannot print the prompt: {e}"))?;
    drop(stdout);
    read_line(&mut std::io::stdin().lock())
}

/// One line without its `\n` or `\r\n`; the end of input is an error.
fn read_line(reader: &mut impl BufRead) -> IoResult {
    let mut line = String::new();
    let read = reader
        .read_line(&mut line)
        .map_err(|e| format!("input: {e}"))?;
    if read == 0 {
        return Err("end of input".to_string());
    }
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(Data::Str(line))
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Cursor, Read};
    use std::net::{TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::thread;

    use spool_vm::IoId;

    use super::*;
    use spool::dispatch::Dispatcher;

    fn call(op: &str, args: Vec<Data>) -> IoResult {
        handle(&IoRequest::new(IoId(1), op, args))
    }

    fn s(text: &str) -> Data {
        Data::str(text)
    }

    fn strs(items: &[&str]) -> Data {
        Data::List(items.iter().map(|item| s(item)).collect())
    }

    /// A fresh, empty directory under the system's temporary directory.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spool-cli-io-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        dir
    }

    fn path_str(path: &std::path::Path) -> Data {
        s(path.to_str().expect("temporary paths are UTF-8"))
    }

    #[test]
    fn files_round_trip_and_list_sorted() {
        let dir = temp_dir("files");
        let file = dir.join("b.txt");
        assert_eq!(
            call("write_file", vec![path_str(&file), s("héllo\n")]),
            Ok(Data::Nil)
        );
        assert_eq!(call("read_file", vec![path_str(&file)]), Ok(s("héllo\n")));
        std::fs::write(dir.join("a.txt"), "").unwrap();
        std::fs::create_dir(dir.join("c")).unwrap();
        assert_eq!(
            call("list_dir", vec![path_str(&dir)]),
            Ok(strs(&["a.txt", "b.txt", "c"]))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_errors_name_the_call_and_the_os_message() {
        let dir = temp_dir("errors");
        let missing = dir.join("x.txt");
        let shown = missing.to_str().unwrap();
        let message = call("read_file", vec![path_str(&missing)]).unwrap_err();
        assert_eq!(
            message,
            format!("read_file({shown:?}): No such file or directory (os error 2)")
        );
        let message = call("list_dir", vec![path_str(&missing)]).unwrap_err();
        assert!(
            message.starts_with(&format!("list_dir({shown:?}): ")),
            "{message}"
        );
        let nested = dir.join("no/such/dir.txt");
        let message = call("write_file", vec![path_str(&nested), s("x")]).unwrap_err();
        assert!(message.contains("os error 2"), "{message}");
        std::fs::write(&missing, b"ok\xff").unwrap();
        let message = call("read_file", vec![path_str(&missing)]).unwrap_err();
        assert!(
            message.ends_with("not valid UTF-8 (bad byte at offset 2)"),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn wrong_arguments_are_internal_errors() {
        let bad = |op: &str, args: Vec<Data>| {
            assert_eq!(
                call(op, args),
                Err(format!("internal: bad arguments for {op}"))
            );
        };
        bad("read_file", vec![]);
        bad("read_file", vec![Data::Int(1)]);
        bad("write_file", vec![s("p")]);
        bad("list_dir", vec![s("a"), s("b")]);
        bad("exec", vec![s("echo"), Data::List(vec![Data::Int(1)])]);
        bad("exec", vec![s("echo")]);
        bad("http", vec![s("http://x")]);
        bad(
            "http",
            vec![Data::Record {
                name: "Request".into(),
                fields: vec![("method".into(), s("GET"))],
            }],
        );
        bad("http_get", vec![]);
        bad("sleep", vec![s("1")]);
        bad("now", vec![Data::Nil]);
        bad("env", vec![]);
        bad("input", vec![Data::Nil]);
        assert_eq!(
            call("launch", vec![]),
            Err("internal: unknown operation launch".to_string())
        );
    }

    fn output(code: i64, stdout: &str, stderr: &str) -> Data {
        Data::Record {
            name: "Output".into(),
            fields: vec![
                ("code".into(), Data::Int(code)),
                ("stdout".into(), s(stdout)),
                ("stderr".into(), s(stderr)),
            ],
        }
    }

    #[test]
    fn exec_runs_programs_without_a_shell() {
        assert_eq!(
            call("exec", vec![s("echo"), strs(&["hi", "$HOME"])]),
            Ok(output(0, "hi $HOME\n", ""))
        );
        assert_eq!(
            call(
                "exec",
                vec![s("sh"), strs(&["-c", "echo out; echo err >&2; exit 3"])]
            ),
            Ok(output(3, "out\n", "err\n"))
        );
        // Standard input is closed, so `cat` ends at once.
        assert_eq!(
            call("exec", vec![s("cat"), strs(&[])]),
            Ok(output(0, "", ""))
        );
        assert_eq!(
            call("exec", vec![s("sh"), strs(&["-c", "kill -9 $$"])]),
            Ok(output(137, "", ""))
        );
    }

    #[test]
    fn exec_of_a_missing_program_fails() {
        let message = call("exec", vec![s("spool-no-such-program"), strs(&[])]).unwrap_err();
        assert_eq!(
            message,
            "exec(\"spool-no-such-program\"): No such file or directory (os error 2)"
        );
    }

    /// A one-thread HTTP/1.1 server on 127.0.0.1 answering `count`
    /// connections, then stopping. It sends each request it read (head and
    /// body) on the channel. `/missing` is a 404, everything else a 200.
    fn serve(count: usize) -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test port");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming().take(count) {
                let Ok(stream) = stream else { return };
                let _ = answer(stream, &tx);
            }
        });
        (base, rx)
    }

    fn answer(mut stream: TcpStream, seen: &mpsc::Sender<String>) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            head.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let missing = head.starts_with("GET /missing ");
        let _ = seen.send(head + &String::from_utf8_lossy(&body));
        let (status, text) = match missing {
            true => ("404 Not Found", "no such page"),
            false => ("200 OK", "hello"),
        };
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Custom: yes\r\nSet-Cookie: a=1\r\n\
             Set-Cookie: b=2\r\nConnection: close\r\n\r\n{text}",
            text.len()
        )?;
        stream.flush()
    }

    fn response(status: i64, body: &str) -> (i64, String) {
        (status, body.to_string())
    }

    fn status_and_body(data: &Data) -> (i64, String) {
        let status = data.field("status").and_then(Data::as_int).unwrap();
        let body = data.field("body").and_then(Data::as_str).unwrap();
        (status, body.to_string())
    }

    fn header<'a>(data: &'a Data, name: &str) -> Option<&'a str> {
        let Some(Data::Map(pairs)) = data.field("headers") else {
            panic!("no headers in {data:?}")
        };
        pairs
            .iter()
            .find(|(n, _)| n.as_str() == Some(name))
            .and_then(|(_, v)| v.as_str())
    }

    #[test]
    fn http_get_returns_the_response() {
        let (base, seen) = serve(1);
        let got = call("http_get", vec![s(&format!("{base}/hello?q=1"))]).unwrap();
        assert_eq!(status_and_body(&got), response(200, "hello"));
        assert_eq!(header(&got, "x-custom"), Some("yes"));
        assert_eq!(header(&got, "set-cookie"), Some("a=1, b=2"));
        assert_eq!(header(&got, "X-Custom"), None);
        let request = seen.recv().unwrap();
        assert!(
            request.starts_with("GET /hello?q=1 HTTP/1.1\r\n"),
            "{request}"
        );
    }

    #[test]
    fn http_sends_method_headers_and_body() {
        let (base, seen) = serve(1);
        let request = Data::Record {
            name: "Request".into(),
            fields: vec![
                ("method".into(), s("POST")),
                ("url".into(), s(&format!("{base}/submit"))),
                ("headers".into(), Data::Map(vec![(s("X-Token"), s("abc"))])),
                ("body".into(), s("payload")),
            ],
        };
        let got = call("http", vec![request]).unwrap();
        assert_eq!(status_and_body(&got), response(200, "hello"));
        let sent = seen.recv().unwrap().to_ascii_lowercase();
        assert!(sent.starts_with("post /submit http/1.1\r\n"), "{sent}");
        assert!(sent.contains("\r\nx-token: abc\r\n"), "{sent}");
        assert!(sent.contains("\r\ncontent-length: 7\r\n"), "{sent}");
        assert!(sent.ends_with("\r\n\r\npayload"), "{sent}");
    }

    #[test]
    fn http_error_statuses_are_responses() {
        let (base, _seen) = serve(1);
        let got = call("http_get", vec![s(&format!("{base}/missing"))]).unwrap();
        assert_eq!(status_and_body(&got), response(404, "no such page"));
    }

    #[test]
    fn http_connection_failures_are_errors() {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/");
        let message = call("http_get", vec![s(&url)]).unwrap_err();
        assert!(
            message.starts_with(&format!("http(GET {url}): ")),
            "{message}"
        );
        assert!(message.contains("(os error "), "{message}");
        let message = call("http_get", vec![s("not a url")]).unwrap_err();
        assert!(message.starts_with("http(GET not a url): "), "{message}");
    }

    #[test]
    fn env_reads_variables() {
        let path = call("env", vec![s("PATH")]).unwrap();
        assert_eq!(path, s(&std::env::var("PATH").unwrap()));
        assert_eq!(
            call("env", vec![s("SPOOL_TEST_SURELY_UNSET_VARIABLE")]),
            Ok(Data::Nil)
        );
        assert_eq!(call("env", vec![s("")]), Ok(Data::Nil));
        assert_eq!(call("env", vec![s("A=B")]), Ok(Data::Nil));
    }

    #[test]
    fn now_is_milliseconds_since_the_epoch() {
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        let before = ms(SystemTime::now());
        let got = call("now", vec![]).unwrap().as_int().unwrap();
        let after = ms(SystemTime::now());
        assert!(before <= got && got <= after, "{before} {got} {after}");
    }

    #[test]
    fn sleep_without_the_timer_blocks() {
        let start = std::time::Instant::now();
        assert_eq!(call("sleep", vec![Data::Int(20)]), Ok(Data::Nil));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(call("sleep", vec![Data::Int(-5)]).is_err());
    }

    #[test]
    fn lines_lose_their_ending() {
        let mut text = Cursor::new("first\r\nsecond\nlast");
        assert_eq!(read_line(&mut text), Ok(s("first")));
        assert_eq!(read_line(&mut text), Ok(s("second")));
        assert_eq!(read_line(&mut text), Ok(s("last")));
        assert_eq!(read_line(&mut text), Err("end of input".to_string()));
    }

    #[test]
    fn the_dispatcher_serves_every_operation() {
        let dir = temp_dir("dispatcher");
        let file = dir.join("f.txt");
        std::fs::write(&file, "data").unwrap();
        let mut pool = dispatcher(4);
        let request = |id, op: &str, args| IoRequest::new(IoId(id), op, args);
        pool.submit(vec![
            request(1, "sleep", vec![Data::Int(30)]),
            request(2, "read_file", vec![path_str(&file)]),
            request(3, "now", vec![]),
            request(4, "sleep", vec![Data::Int(-1)]),
        ]);
        let mut done = Vec::new();
        while done.len() < 4 {
            done.extend(pool.wait());
        }
        done.sort_by_key(|c| c.id);
        assert_eq!(done[0].result, Ok(Data::Nil));
        assert_eq!(done[1].result, Ok(s("data")));
        assert!(done[2].result.as_ref().is_ok_and(|n| n.as_int().is_some()));
        assert!(done[3].result.is_err());
        assert!(pool.wait().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
