//! The store's promises checked through its Rust API on SQLite: a lease
//! lost to another worker fences every write of its old holder, answers
//! sent while a run is being written back are never lost, and claims
//! take only due runs.

use std::time::Duration;

use spool_store::{Commit, RunStatus, Store, StoreError};

/// A store in a fresh SQLite file.
fn store(name: &str) -> (Store, String) {
    let dir = std::env::temp_dir().join(format!("spool-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = dir.join("runs.db").to_string_lossy().into_owned();
    (Store::open(&url).unwrap(), url)
}

fn submit(store: &mut Store, source: &str) -> spool_store::RunId {
    let program = spool::Engine::new().compile("flow.spl", source).unwrap();
    store
        .submit(&program, "flow.spl", source, vec![], "")
        .unwrap()
}

#[test]
fn a_lost_lease_fences_every_write_of_its_old_holder() {
    let (mut store, _) = store("fence");
    let id = submit(&mut store, "print(1)");
    let first = store.claim("a", 1, Duration::from_millis(1)).unwrap();
    assert_eq!(first.len(), 1);
    let old = first[0].lease;
    std::thread::sleep(Duration::from_millis(5));
    // The lease expired: another worker claims the run again.
    let second = store.claim("b", 1, Duration::from_secs(30)).unwrap();
    assert_eq!(second.len(), 1, "an expired lease makes the run due");
    assert_ne!(second[0].lease.token, old.token);
    let stale = Commit {
        status: Some(RunStatus::Done),
        lines: vec!["from the old holder".into()],
        ..Commit::default()
    };
    assert!(
        !store.commit(old, stale).unwrap(),
        "the old holder's commit is refused"
    );
    assert!(!store
        .record_io(old, &[(spool::IoId(1), Ok(spool::Data::Int(1)))])
        .unwrap());
    assert!(!store.heartbeat(old, Duration::from_secs(30)).unwrap().held);
    assert!(store.recorded_io(id).unwrap().is_empty());
    assert!(store.output(id, 0).unwrap().is_empty());
    assert_eq!(store.run(id).unwrap().status, RunStatus::Running);
    let new = Commit {
        status: Some(RunStatus::Done),
        lines: vec!["from the new holder".into()],
        ..Commit::default()
    };
    assert!(store.commit(second[0].lease, new).unwrap());
    assert_eq!(store.output(id, 0).unwrap(), ["from the new holder"]);
    assert_eq!(store.run(id).unwrap().attempts, 2);
}

#[test]
fn an_answer_sent_during_a_write_back_makes_the_run_due_again() {
    let (mut store, _) = store("race");
    let id = submit(&mut store, "let x: int = yield 1\nprint(x)");
    let claim = store
        .claim("a", 1, Duration::from_secs(30))
        .unwrap()
        .remove(0);
    // The answer arrives while the worker holds the run...
    store.send(id, "5").unwrap();
    // ...and the worker, which looked for answers before, writes it back
    // as waiting: the store makes it due at once instead.
    let commit = Commit {
        status: Some(RunStatus::Waiting),
        waiting: "yield 1".into(),
        ..Commit::default()
    };
    assert!(store.commit(claim.lease, commit).unwrap());
    let info = store.run(id).unwrap();
    assert_eq!(info.status, RunStatus::Pending);
    assert!(info.due_at.is_some());
    assert_eq!(
        store.next_signal(id, 0).unwrap().map(|s| s.1),
        Some("5".into())
    );
}

#[test]
fn waiting_and_finished_runs_are_never_claimed() {
    let (mut store, _) = store("due");
    let waiting = submit(&mut store, "yield 1");
    let claim = store
        .claim("a", 8, Duration::from_secs(30))
        .unwrap()
        .remove(0);
    let commit = Commit {
        status: Some(RunStatus::Waiting),
        ..Commit::default()
    };
    assert!(store.commit(claim.lease, commit).unwrap());
    assert!(store
        .claim("a", 8, Duration::from_secs(30))
        .unwrap()
        .is_empty());
    assert_eq!(store.scheduled().unwrap(), 0);
    store.cancel(waiting).unwrap();
    assert_eq!(
        store.claim("a", 8, Duration::from_secs(30)).unwrap().len(),
        1
    );
    let missing = spool_store::RunId(99);
    assert_eq!(
        store.send(missing, "1"),
        Err(StoreError::NoSuchRun(missing))
    );
}
