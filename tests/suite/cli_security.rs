//! The command line as a host that does not trust what it is given: state
//! files (checkpoints never follow a planted link, `resume` and `inspect`
//! read only regular files), the caps and timeouts of its I/O operations
//! (`--max-read`, `--max-exec-output`, `--exec-timeout`, `--http-timeout`)
//! and `--sandbox` with its `--allow` grants. Everything runs through the
//! real binary.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{assert_exit, scratch, spool, spool_binary, stderr, stdout};

/// Runs `spool` in `dir` with `args` like [`spool`], but fails the test
/// if it takes longer than `seconds` (the process is killed then).
#[track_caller]
fn spool_within(dir: &Path, args: &[&str], seconds: u64) -> Output {
    let mut command = Command::new(spool_binary());
    command.args(args).current_dir(dir);
    finish_within(&mut command, &format!("spool {}", args.join(" ")), seconds)
}

/// Runs `command` with no input and its output collected, killing it and
/// failing the test if it takes longer than `seconds`; `what` names it.
#[track_caller]
pub(crate) fn finish_within(command: &mut Command, what: &str, seconds: u64) -> Output {
    let mut child = command
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the spool binary");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while child.try_wait().expect("wait for spool").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` took more than {seconds} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect spool's output")
}

/// The first line of stderr, which names the error.
fn first_error_line(output: &Output) -> String {
    stderr(output)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[cfg(unix)]
#[test]
fn checkpoints_never_follow_a_link_planted_at_the_old_temporary_name() {
    let dir = scratch(
        "planted_link",
        &[
            ("x.spl", "sleep(1)\nprint(\"done\")\n"),
            ("victim.txt", "keep me\n"),
        ],
    );
    std::os::unix::fs::symlink(dir.join("victim.txt"), dir.join("x.run.tmp")).unwrap();
    std::os::unix::fs::symlink(dir.join("victim.txt"), dir.join("x.tmp")).unwrap();
    let output = spool(&dir, &["run", "x.spl", "--state", "x.run"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "done\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("victim.txt")).unwrap(),
        "keep me\n"
    );
    assert!(std::fs::read(dir.join("x.run"))
        .unwrap()
        .starts_with(b"SPOOLRUN"));
    // No temporary is left behind.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["victim.txt", "x.run", "x.run.tmp", "x.spl", "x.tmp"]
    );
}

#[cfg(unix)]
#[test]
fn resume_and_inspect_refuse_devices_and_fifos_at_once() {
    let dir = scratch("not_regular", &[]);
    for command in ["resume", "inspect"] {
        let output = spool_within(&dir, &[command, "/dev/zero"], 10);
        assert_exit(&output, 2);
        assert_eq!(
            first_error_line(&output),
            "error: `/dev/zero` is not a regular file (a saved run is a file written by `--state`)"
        );
    }
    let made = Command::new("mkfifo").arg(dir.join("pipe.run")).status();
    if !made.is_ok_and(|status| status.success()) {
        eprintln!("no mkfifo here; the FIFO case is skipped");
        return;
    }
    for command in ["resume", "inspect"] {
        let output = spool_within(&dir, &[command, "pipe.run"], 10);
        assert_exit(&output, 2);
        assert!(
            first_error_line(&output).contains("`pipe.run` is not a regular file"),
            "{}",
            stderr(&output)
        );
    }
    let output = spool_within(&dir, &["resume", "."], 10);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("is not a regular file"));
}

#[test]
fn resume_checks_the_magic_before_reading_the_rest() {
    let dir = scratch(
        "magic",
        &[("short.run", "SPOOL"), ("other.run", "PK\u{3}\u{4}....")],
    );
    for file in ["short.run", "other.run"] {
        let output = spool_within(&dir, &["resume", file], 10);
        assert_exit(&output, 2);
        assert_eq!(
            first_error_line(&output),
            format!("error: `{file}`: not a saved Spool run")
        );
    }
}

/// The script `print(EXPR)` in a file of its own.
fn script(expr: &str) -> String {
    format!("print({expr})\n")
}

#[test]
fn read_file_stops_at_its_cap() {
    let dir = scratch(
        "read_cap",
        &[
            ("zero.spl", &script("read_file(\"/dev/zero\").len()")),
            ("small.spl", &script("read_file(\"five.txt\")")),
            ("five.txt", "12345"),
        ],
    );
    let output = spool_within(&dir, &["run", "zero.spl"], 30);
    assert_exit(&output, 1);
    assert_eq!(
        first_error_line(&output),
        "error: Io: read_file(\"/dev/zero\"): the file is larger than the 64 MiB cap \
         (`--max-read` raises it)"
    );
    let output = spool_within(&dir, &["run", "small.spl", "--max-read", "4"], 10);
    assert_exit(&output, 1);
    assert_eq!(
        first_error_line(&output),
        "error: Io: read_file(\"five.txt\"): the file is larger than the 4 bytes cap \
         (`--max-read` raises it)"
    );
    let output = spool_within(&dir, &["run", "small.spl", "--max-read=5"], 10);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "12345\n");
    let output = spool_within(&dir, &["run", "zero.spl", "--max-read", "1k"], 10);
    assert!(stderr(&output).contains("larger than the 1 KiB cap"));
}

#[test]
fn exec_output_and_time_are_capped() {
    let dir = scratch(
        "exec_caps",
        &[
            ("yes.spl", &script("exec(\"yes\", []).code")),
            ("sleep.spl", &script("exec(\"sleep\", [\"1000\"]).code")),
        ],
    );
    let output = spool_within(&dir, &["run", "yes.spl"], 60);
    assert_exit(&output, 1);
    assert_eq!(
        first_error_line(&output),
        "error: Io: exec(\"yes\"): the output is larger than the 64 MiB cap \
         (`--max-exec-output` raises it)"
    );
    let output = spool_within(&dir, &["run", "yes.spl", "--max-exec-output", "2k"], 10);
    assert!(stderr(&output).contains("larger than the 2 KiB cap"));
    let started = Instant::now();
    let output = spool_within(&dir, &["run", "sleep.spl", "--exec-timeout", "1"], 10);
    assert_exit(&output, 1);
    assert_eq!(
        first_error_line(&output),
        "error: Io: exec(\"sleep\"): timed out after 1 s (`--exec-timeout` raises the limit)"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let output = spool_within(&dir, &["run", "sleep.spl", "--exec-timeout=0.2"], 10);
    assert!(stderr(&output).contains("timed out after 0.2 s"));
}

#[test]
fn http_timeout_ends_a_request_that_never_answers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let dir = scratch(
        "http_timeout",
        &[("get.spl", &script(&format!("http_get(\"{url}\").status")))],
    );
    let started = Instant::now();
    let output = spool_within(&dir, &["run", "get.spl", "--http-timeout", "0.5"], 20);
    assert_exit(&output, 1);
    let line = first_error_line(&output);
    assert!(
        line.starts_with(&format!("error: Io: http(GET {url}): ")),
        "{line}"
    );
    assert!(line.to_lowercase().contains("timeout"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(listener);
}

#[test]
fn limit_flags_reject_bad_values() {
    let dir = scratch("bad_limits", &[("x.spl", "print(1)\n")]);
    for (flag, value) in [
        ("--max-read", "0"),
        ("--max-read", "12X"),
        ("--max-exec-output", "-1"),
        ("--exec-timeout", "0"),
        ("--http-timeout", "soon"),
        ("--allow", "disk"),
        ("--allow", "read="),
    ] {
        let output = spool(&dir, &["run", "x.spl", "--sandbox", flag, value]);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains(flag),
            "{flag} {value}: {}",
            stderr(&output)
        );
    }
    let output = spool(&dir, &["run", "x.spl", "--allow", "read"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("`--allow` grants only make sense with `--sandbox`"));
    let output = spool(
        &dir,
        &["run", "x.spl", "--max-read", "64M", "--exec-timeout", "1.5"],
    );
    assert_exit(&output, 0);
    let output = spool(&dir, &["--help"]);
    for flag in [
        "--max-read",
        "--max-exec-output",
        "--exec-timeout",
        "--http-timeout",
        "--sandbox",
        "--allow",
    ] {
        assert!(stdout(&output).contains(flag), "--help lacks {flag}");
    }
}

/// Runs `code` (one line of Spool) with `flags` in `dir` and gives the
/// first line of stderr, or `ok: ` and stdout when it succeeded.
fn outcome(dir: &Path, code: &str, flags: &[&str]) -> String {
    std::fs::write(dir.join("probe.spl"), code).unwrap();
    let mut args = vec!["run", "probe.spl"];
    args.extend_from_slice(flags);
    let output = spool_within(dir, &args, 20);
    match output.status.code() {
        Some(0) => format!("ok: {}", stdout(&output).trim_end()),
        _ => first_error_line(&output),
    }
}

#[test]
fn the_sandbox_denies_each_operation_naming_its_grant() {
    let dir = scratch("sandbox_denials", &[("data.txt", "hello")]);
    let denied = |call: &str, grant: &str, category: &str| {
        format!(
            "error: Io: {call}: denied by --sandbox (grant it with --allow {grant} or \
             --allow {category})"
        )
    };
    let cases = [
        (
            "read_file(\"data.txt\")",
            denied("read_file(\"data.txt\")", "read=data.txt", "read"),
        ),
        (
            "list_dir(\".\")",
            denied("list_dir(\".\")", "read=.", "read"),
        ),
        (
            "write_file(\"out.txt\", \"x\")",
            denied("write_file(\"out.txt\")", "write=out.txt", "write"),
        ),
        (
            "exec(\"echo\", [\"hi\"]).stdout",
            denied("exec(\"echo\")", "exec=echo", "exec"),
        ),
        (
            "http_get(\"http://127.0.0.1:9/\").status",
            denied("http(GET http://127.0.0.1:9/)", "net=127.0.0.1", "net"),
        ),
        ("env(\"HOME\")", denied("env(\"HOME\")", "env=HOME", "env")),
    ];
    for (call, message) in cases {
        assert_eq!(
            outcome(&dir, &script(call), &["--sandbox"]),
            message,
            "{call}"
        );
    }
    assert!(!dir.join("out.txt").exists());
    // now, sleep and input stay allowed.
    let allowed = "sleep(1)\nprint(now() > 0)\n";
    assert_eq!(outcome(&dir, allowed, &["--sandbox"]), "ok: true");
}

#[test]
fn sandbox_grants_allow_what_they_name_and_no_more() {
    let dir = scratch(
        "sandbox_grants",
        &[("data.txt", "hello"), ("secret.txt", "no")],
    );
    let read = |path: &str| script(&format!("read_file(\"{path}\")"));
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/inner.txt"), "in").unwrap();
    let run = |code: &str, grants: &[&str]| {
        let mut flags = vec!["--sandbox"];
        for grant in grants {
            flags.extend(["--allow", grant]);
        }
        outcome(&dir, code, &flags)
    };
    assert_eq!(run(&read("data.txt"), &["read=data.txt"]), "ok: hello");
    assert_eq!(run(&read("data.txt"), &["read"]), "ok: hello");
    assert!(run(&read("secret.txt"), &["read=data.txt"]).contains("denied by --sandbox"));
    assert_eq!(run(&read("sub/inner.txt"), &["read=sub"]), "ok: in");
    // `..` is resolved before the check.
    assert!(run(&read("sub/../secret.txt"), &["read=sub"]).contains("denied"));
    // Writing: a new file in a granted directory, not beside it.
    let write = |path: &str| format!("write_file(\"{path}\", \"w\")\nprint(\"done\")\n");
    assert_eq!(run(&write("sub/new.txt"), &["write=sub"]), "ok: done");
    assert!(run(&write("new.txt"), &["write=sub"]).contains("denied"));
    assert!(run(&write("sub/new.txt"), &["read"]).contains("denied"));
    // Programs by name or resolved path.
    let echo = script("exec(\"echo\", [\"hi\"]).stdout.trim()");
    assert_eq!(run(&echo, &["exec=echo"]), "ok: hi");
    assert_eq!(run(&echo, &["exec"]), "ok: hi");
    if let Some(path) = which("echo") {
        assert_eq!(run(&echo, &[&format!("exec={path}")]), "ok: hi");
    }
    assert!(run(&echo, &["exec=true"]).contains("denied"));
    // Variables by name.
    let home = script("env(\"HOME\") != nil");
    assert_eq!(run(&home, &["env=HOME"]), "ok: true");
    assert!(run(&script("env(\"PATH\") != nil"), &["env=HOME"]).contains("denied"));
    // Hosts by name: the request is let through (and fails to connect).
    let get = script("http_get(\"http://127.0.0.1:9/\").status");
    let granted = run(&get, &["net=127.0.0.1"]);
    assert!(
        !granted.contains("denied") && granted.contains("http(GET"),
        "{granted}"
    );
    assert!(run(&get, &["net=example.com"]).contains("denied"));
}

#[cfg(unix)]
#[test]
fn sandbox_paths_are_checked_after_following_links() {
    let dir = scratch("sandbox_links", &[("outside.txt", "secret")]);
    std::fs::create_dir(dir.join("box")).unwrap();
    std::fs::write(dir.join("box/in.txt"), "in").unwrap();
    std::os::unix::fs::symlink(dir.join("outside.txt"), dir.join("box/link.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("box/etc")).unwrap();
    let flags = ["--sandbox", "--allow", "read=box", "--allow", "write=box"];
    assert_eq!(
        outcome(&dir, &script("read_file(\"box/in.txt\")"), &flags),
        "ok: in"
    );
    for code in [
        script("read_file(\"box/link.txt\")"),
        script("read_file(\"box/etc/hostname\")"),
        script("list_dir(\"box/etc\")"),
        "write_file(\"box/link.txt\", \"overwritten\")\n".to_string(),
    ] {
        let got = outcome(&dir, &code, &flags);
        assert!(got.contains("denied by --sandbox"), "{code}: {got}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("outside.txt")).unwrap(),
        "secret"
    );
}

#[test]
fn resume_takes_the_policy_again_from_its_own_flags() {
    let code = "let answer: str = yield \"go?\"\nprint(read_file(\"data.txt\"))\n";
    let dir = scratch(
        "sandbox_resume",
        &[("flow.spl", code), ("data.txt", "hello")],
    );
    let output = spool(
        &dir,
        &[
            "run",
            "flow.spl",
            "--state",
            "flow.run",
            "--step",
            "--sandbox",
        ],
    );
    assert_exit(&output, 0);
    let output = spool(
        &dir,
        &["resume", "flow.run", "--send", "\"yes\"", "--sandbox"],
    );
    assert_exit(&output, 1);
    assert!(stderr(&output).contains("read_file(\"data.txt\"): denied by --sandbox"));
    let output = spool(
        &dir,
        &[
            "resume",
            "flow.run",
            "--sandbox",
            "--allow",
            "read=data.txt",
        ],
    );
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "hello\n");
}

/// Where `program` is found in `PATH`.
fn which(program: &str) -> Option<String> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .and_then(|found| found.to_str().map(str::to_string))
}
