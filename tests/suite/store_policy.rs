//! The policy a run is submitted with, applied by `spool worker` under
//! its own flags as the ceiling: the sandbox and its grants, the
//! instruction limit, and the host key the store's saved runs are signed
//! with. Through the real binary, on a SQLite store.

use std::path::Path;

use crate::cli::{assert_exit, scratch, spool, stdout};

/// `spool runs --status S` lists run `id`.
fn has_status(dir: &Path, id: &str, status: &str) -> bool {
    let listed = stdout(&spool(dir, &["runs", "--status", status]));
    listed
        .lines()
        .skip(1)
        .any(|line| line.split_whitespace().next() == Some(id))
}

fn submit(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["submit"];
    all.extend_from_slice(args);
    let output = spool(dir, &all);
    assert_exit(&output, 0);
    stdout(&output).trim().to_string()
}

fn work(dir: &Path, flags: &[&str]) {
    let mut all = vec!["worker", "--until-idle"];
    all.extend_from_slice(flags);
    assert_exit(&spool(dir, &all), 0);
}

fn inspect(dir: &Path, id: &str) -> String {
    stdout(&spool(dir, &["inspect", id]))
}

const READER: &str = "print(read_file(\"data/note.txt\"))\n";

#[test]
fn a_sandboxed_worker_runs_only_runs_it_grants() {
    let dir = scratch("store-policy-sandbox", &[("reader.spl", READER)]);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/note.txt"), "kept in data").unwrap();
    let open = submit(&dir, &["reader.spl"]);
    let granted = submit(
        &dir,
        &["reader.spl", "--sandbox", "--allow", "read=data/note.txt"],
    );
    let too_much = submit(&dir, &["reader.spl", "--sandbox", "--allow", "exec=sh"]);
    let denied = submit(&dir, &["reader.spl", "--sandbox"]);
    work(&dir, &["--sandbox", "--allow", "read=data"]);

    assert!(
        has_status(&dir, &open, "failed"),
        "{}",
        inspect(&dir, &open)
    );
    assert!(inspect(&dir, &open).contains("runs only sandboxed runs"));
    assert!(
        has_status(&dir, &granted, "done"),
        "{}",
        inspect(&dir, &granted)
    );
    assert_eq!(stdout(&spool(&dir, &["logs", &granted])), "kept in data\n");
    assert!(has_status(&dir, &too_much, "failed"));
    assert!(inspect(&dir, &too_much).contains("does not allow `--allow exec=sh`"));
    // Allowed to run, but the run's own sandbox denies the read.
    assert!(has_status(&dir, &denied, "failed"));
    assert!(inspect(&dir, &denied).contains("denied by --sandbox"));
}

#[test]
fn the_instruction_limit_travels_with_the_run() {
    let looping = "var n = 0\nwhile true { n = n + 1 }\n".replace("var ", "let ");
    let dir = scratch("store-policy-limit", &[("loop.spl", &looping)]);
    let id = submit(&dir, &["loop.spl", "--max-instructions", "100000"]);
    work(&dir, &[]);
    assert!(has_status(&dir, &id, "failed"), "{}", inspect(&dir, &id));
    assert!(inspect(&dir, &id).contains("Limit: the run ran 100000 instructions"));
}

#[test]
fn signed_saved_runs_need_the_key() {
    let dir = scratch(
        "store-policy-key",
        &[
            ("ask.spl", "let n: int = yield \"n?\"\nprint(n * 2)\n"),
            ("key", "0123456789abcdef-secret"),
        ],
    );
    let id = submit(&dir, &["ask.spl", "--state-key", "key"]);
    work(&dir, &["--state-key", "key"]);
    assert!(has_status(&dir, &id, "waiting"));
    // Without the key, the answer cannot even be checked.
    let refused = spool(&dir, &["send", &id, "21"]);
    assert_exit(&refused, 1);
    assert_exit(&spool(&dir, &["send", &id, "21", "--state-key", "key"]), 0);
    work(&dir, &["--state-key", "key"]);
    assert!(has_status(&dir, &id, "done"), "{}", inspect(&dir, &id));
    assert_eq!(stdout(&spool(&dir, &["logs", &id])), "42\n");
}

#[test]
fn a_worker_stopped_by_sigterm_releases_its_run_for_the_next() {
    let script = "print(\"before\")\nexec(\"sleep\", [\"30\"])\nprint(\"after\")\n";
    let dir = scratch("store-policy-sigterm", &[("slow.spl", script)]);
    let id = submit(&dir, &["slow.spl"]);
    let mut worker = std::process::Command::new(crate::cli::spool_binary())
        .args(["worker"])
        .current_dir(&dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the worker starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !has_status(&dir, &id, "running") {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let term = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success());
    let started = std::time::Instant::now();
    let status = worker.wait().expect("the worker ends");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed().as_secs() < 10,
        "the worker did not stop promptly"
    );
    // Released, due at once, with the request in flight to be issued again.
    assert!(has_status(&dir, &id, "pending"), "{}", inspect(&dir, &id));
    assert!(
        inspect(&dir, &id).contains("exec(\"sleep\""),
        "{}",
        inspect(&dir, &id)
    );
    assert_eq!(stdout(&spool(&dir, &["logs", &id])), "before\n");
}

#[test]
fn exit_statuses_and_seeds_in_the_store() {
    let dir = scratch(
        "store-exit-seed",
        &[
            ("fail.spl", "defer print(\"bye\")\nexit(3)\n"),
            ("ok.spl", "exit(0)\nprint(\"never\")\n"),
            ("dice.spl", "print(random())\n"),
        ],
    );
    let failing = submit(&dir, &["fail.spl"]);
    let passing = submit(&dir, &["ok.spl"]);
    let seeded = [
        submit(&dir, &["dice.spl", "--seed", "7"]),
        submit(&dir, &["dice.spl", "--seed", "7"]),
    ];
    let fresh = [submit(&dir, &["dice.spl"]), submit(&dir, &["dice.spl"])];
    work(&dir, &[]);
    // A run that exits with a non-zero status failed, with the status in
    // its error; exit(0) is done.
    assert!(
        has_status(&dir, &failing, "failed"),
        "{}",
        inspect(&dir, &failing)
    );
    assert!(inspect(&dir, &failing).contains("Exit: exit(3)"));
    assert_eq!(stdout(&spool(&dir, &["logs", &failing])), "bye\n");
    assert!(
        has_status(&dir, &passing, "done"),
        "{}",
        inspect(&dir, &passing)
    );
    let logs = |id: &String| stdout(&spool(&dir, &["logs", id]));
    assert_eq!(logs(&seeded[0]), logs(&seeded[1]), "--seed 7 twice");
    assert_ne!(logs(&fresh[0]), logs(&fresh[1]), "two fresh runs");
}
