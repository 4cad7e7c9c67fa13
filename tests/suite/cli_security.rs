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
    let mut child = Command::new(spool_binary())
        .args(args)
        .current_dir(dir)
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
            panic!("`spool {}` took more than {seconds} s", args.join(" "));
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
