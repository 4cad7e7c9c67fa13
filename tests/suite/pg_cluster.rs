//! A throwaway PostgreSQL cluster for tests that need a real database.
//!
//! [`PgCluster::start`] finds the server binaries (`initdb`, `pg_ctl`,
//! `postgres`) in the highest `/usr/lib/postgresql/*/bin`, else on `PATH`;
//! makes a directory `spool-pg-PID-COUNTER-NANOS` under the system's
//! temporary directory; runs `initdb` there (trust authentication, user
//! `postgres`, UTF8, the C locale, `--no-sync`); and starts the server with
//! `pg_ctl -w` on a free port of 127.0.0.1, its Unix socket in the same
//! directory, `max_connections = 200`. `fsync` stays on: durability tests
//! restart the server ([`PgCluster::restart`]) and expect their data back.
//! [`PgCluster::url`] is `postgres://postgres@127.0.0.1:PORT/postgres`.
//! Dropping the value stops the server (`-m immediate`) and removes the
//! directory.
//!
//! Root: `initdb` and `postgres` refuse to run as uid 0, so when the tests
//! run as root, every server command goes through `runuser -u postgres --`
//! (the user Debian's packages create; `nobody` when there is none) and the
//! directory is first handed to that user with `chown -R`. Clients (`psql`)
//! connect over TCP with trust authentication and run as whoever we are.
//!
//! Starting a cluster takes a second or two, so tests that only need a
//! database of their own share one cluster per test process ([`shared`])
//! and each take a new database in it ([`fresh_database`]). A static is
//! never dropped, so that cluster is stopped another way: every cluster
//! has a watchdog, a `sh` in its own process group that blocks reading a
//! pipe only this process holds the writing end of. When the process ends,
//! however it ends (even by SIGKILL), the kernel closes that end, and the
//! watchdog stops the server and removes the directory. Should a watchdog
//! itself have been killed, the first cluster started by a later test
//! process stops and removes the directories of processes that no longer
//! exist (the PID in the name, checked in `/proc`). A test that restarts
//! or stops the server takes its own cluster ([`start_or_skip`]), not the
//! shared one.
//!
//! When the server binaries are not installed, [`start_or_skip`] and
//! [`shared`] print `SKIPPED <test>: ...` and return `None`, unless
//! `SPOOL_REQUIRE_POSTGRES=1` (set by CI), which makes the skip a failure.
#![cfg(unix)]

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a test is skipped (or fails under `SPOOL_REQUIRE_POSTGRES=1`).
const NOT_INSTALLED: &str = "PostgreSQL server binaries (initdb, pg_ctl) are not installed";

/// How the names of cluster directories under the temporary directory begin.
const DIR_PREFIX: &str = "spool-pg-";

/// The database superuser `initdb` creates, and the user in every URL.
const SUPERUSER: &str = "postgres";

/// A PostgreSQL server of its own, in a temporary directory, listening on
/// 127.0.0.1. Stopped, and its directory removed, when dropped.
pub struct PgCluster {
    /// The directory holding `initdb`, `pg_ctl` and `postgres`.
    bin: PathBuf,
    /// The temporary directory: `data/`, `log` and the Unix socket.
    dir: PathBuf,
    /// The TCP port on 127.0.0.1, kept across restarts.
    port: u16,
    /// The user server commands run as (`runuser -u`), when we are root.
    run_as: Option<String>,
    /// The `sh` that cleans up when this process is gone; its stdin is the
    /// pipe whose closing tells it so.
    watchdog: Mutex<Option<Child>>,
}

impl PgCluster {
    /// Creates a cluster in a new temporary directory and starts its server.
    /// The error says which step failed, with the server log's tail when
    /// the server would not start.
    pub fn start() -> Result<PgCluster, String> {
        let bin = server_bin_dir().ok_or(NOT_INSTALLED)?.to_path_buf();
        let run_as = server_user()?;
        static SWEEP: Once = Once::new();
        SWEEP.call_once(|| sweep_stale_clusters(&bin, run_as.as_deref()));

        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "{DIR_PREFIX}{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name);
        fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // From here on, dropping `cluster` cleans up whatever was made.
        let mut cluster = PgCluster {
            bin,
            dir,
            port: 0,
            run_as,
            watchdog: Mutex::new(None),
        };
        *cluster
            .watchdog
            .get_mut()
            .unwrap_or_else(|e| e.into_inner()) = Some(cluster.spawn_watchdog()?);
        if let Some(user) = &cluster.run_as {
            let mut chown = Command::new("chown");
            chown.arg("-R").arg(format!("{user}:")).arg(&cluster.dir);
            run(&mut chown, "chown")?;
        }
        cluster.initdb()?;
        cluster.configure()?;
        // The port is free when chosen but may be taken before the server
        // binds it (other tests do the same): then try another.
        let attempts = 5;
        for attempt in 1..=attempts {
            cluster.port = free_port()?;
            let log_start = cluster.log_len();
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    let clash = cluster
                        .log_since(log_start)
                        .contains("Address already in use");
                    if !clash || attempt == attempts {
                        return Err(e);
                    }
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// The URL of the `postgres` database, as the superuser `postgres`
    /// (no password: trust authentication).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of `database` on this server.
    fn url_for(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast`: connections are cut, the
    /// data is written out cleanly). Nothing happens when it is not
    /// running; panics when a running server cannot be stopped.
    /// [`restart`](Self::restart) starts it again.
    pub fn stop(&self) {
        if !self.is_running() {
            return;
        }
        let mut stop = self.pg_ctl();
        stop.args(["-m", "fast", "-w", "-t", "60", "stop"]);
        if let Err(e) = run(&mut stop, "pg_ctl stop") {
            panic!("cannot stop PostgreSQL: {e}\n{}", self.log_tail());
        }
    }

    /// Stops the server when it runs and starts it again on the same data
    /// directory and port; also starts a server [`stop`](Self::stop) left
    /// stopped.
    pub fn restart(&self) -> Result<(), String> {
        self.stop();
        self.pg_ctl_start()
    }

    /// Whether the server's PID file exists (it runs, or crashed).
    fn is_running(&self) -> bool {
        self.data().join("postmaster.pid").exists()
    }

    /// The data directory.
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server log `pg_ctl -l` appends to.
    fn log(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// `program` from the server's bin directory, as the server user.
    fn server_command(&self, program: &str) -> Command {
        server_command(&self.bin.join(program), self.run_as.as_deref())
    }

    /// `pg_ctl -D DATA`, as the server user.
    fn pg_ctl(&self) -> Command {
        let mut command = self.server_command("pg_ctl");
        command.arg("-D").arg(self.data());
        command
    }

    /// Runs `initdb` on the data directory.
    fn initdb(&self) -> Result<(), String> {
        let mut initdb = self.server_command("initdb");
        initdb
            .arg("-D")
            .arg(self.data())
            .args(["--auth=trust", "-U", SUPERUSER, "--no-sync"])
            .args(["-E", "UTF8", "--locale=C"]);
        run(&mut initdb, "initdb").map(drop)
    }

    /// Appends this cluster's settings to `postgresql.conf` (the port is
    /// given on the command line, as it may change between attempts).
    fn configure(&self) -> Result<(), String> {
        let conf = self.data().join("postgresql.conf");
        let socket_dir = self.dir.to_string_lossy().replace('\'', "''");
        let settings = format!(
            "\n# A throwaway cluster for Spool's tests (tests/suite/pg_cluster.rs).\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\n\
             max_connections = 200\n"
        );
        fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| file.write_all(settings.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", conf.display()))
    }

    /// `pg_ctl start`, waiting until the server accepts connections.
    fn pg_ctl_start(&self) -> Result<(), String> {
        let mut start = self.pg_ctl();
        start
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {}", self.port))
            .arg("start");
        run(&mut start, "pg_ctl start").map(drop).map_err(|e| {
            format!(
                "{e}\nserver log ({}):\n{}",
                self.log().display(),
                self.log_tail()
            )
        })
    }

    /// The log's size now, to read what a start adds to it.
    fn log_len(&self) -> u64 {
        fs::metadata(self.log()).map_or(0, |m| m.len())
    }

    /// The log from byte `offset` on.
    fn log_since(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(self.log()) {
            if file.seek(SeekFrom::Start(offset)).is_ok() {
                let mut bytes = Vec::new();
                let _ = file.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        text
    }

    /// The log's last lines, for error messages.
    fn log_tail(&self) -> String {
        let log = self.log_since(0);
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        if tail.is_empty() {
            "(empty)".to_string()
        } else {
            tail.join("\n")
        }
    }

    /// Starts the watchdog: a `sh` in its own process group (so a Ctrl-C
    /// meant for the tests does not reach it) that waits for end of file
    /// on its stdin, then stops the server and removes the directory.
    fn spawn_watchdog(&self) -> Result<Child, String> {
        let mut pg_ctl = match &self.run_as {
            Some(user) => format!("runuser -u {} -- ", sh_quote(user)),
            None => String::new(),
        };
        pg_ctl.push_str(&sh_quote(&self.bin.join("pg_ctl").to_string_lossy()));
        let script = format!(
            "cat >/dev/null 2>&1; {pg_ctl} -D {data} -m immediate -w stop >/dev/null 2>&1; rm -rf {dir}",
            data = sh_quote(&self.data().to_string_lossy()),
            dir = sh_quote(&self.dir.to_string_lossy()),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the watchdog sh: {e}"))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.is_running() {
            let mut stop = self.pg_ctl();
            stop.args(["-m", "immediate", "-w", "stop"]);
            let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
        let watchdog = self.watchdog.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(mut watchdog) = watchdog.take() {
            // Closing its stdin lets it finish; there is nothing left to do.
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

/// A cluster of the test's own, or `None` (with `SKIPPED test: ...` on
/// stderr) when the server binaries are not installed. Panics when they
/// are installed but the server does not start, and instead of skipping
/// when `SPOOL_REQUIRE_POSTGRES=1`.
pub fn start_or_skip(test: &str) -> Option<PgCluster> {
    if !installed_or_skip(test) {
        return None;
    }
    match PgCluster::start() {
        Ok(cluster) => Some(cluster),
        Err(e) => panic!("{test}: cannot start PostgreSQL: {e}"),
    }
}

/// The cluster this test process shares, started by the first caller; as
/// [`start_or_skip`] when it is not installed or does not start. Take a
/// database of your own in it with [`fresh_database`]; do not stop or
/// restart it.
pub fn shared(test: &str) -> Option<&'static PgCluster> {
    static SHARED: OnceLock<Result<PgCluster, String>> = OnceLock::new();
    if !installed_or_skip(test) {
        return None;
    }
    match SHARED.get_or_init(PgCluster::start) {
        Ok(cluster) => Some(cluster),
        Err(e) => panic!("{test}: cannot start the shared PostgreSQL: {e}"),
    }
}

/// Creates a new, empty database on `cluster` and returns its URL. Its
/// name is `name_hint` (lowercased, other characters than letters and
/// digits made `_`) and a number unique in this process, so tests sharing
/// a cluster do not see each other's tables. Panics when it cannot.
pub fn fresh_database(cluster: &PgCluster, name_hint: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut name: String = name_hint
        .chars()
        .take(40)
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "db_");
    }
    let name = format!("{name}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    if let Err(e) = psql(&cluster.url(), &format!("CREATE DATABASE {name}")) {
        panic!("cannot create database {name}: {e}");
    }
    cluster.url_for(&name)
}

/// Runs `sql` (one or more statements, stopping at the first error) with
/// `psql` against `url` and returns what it printed, unaligned, rows only,
/// without the last newline: `SELECT 1` gives `1`.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let program = server_bin_dir()
        .map(|bin| bin.join("psql"))
        .filter(|psql| psql.is_file())
        .unwrap_or_else(|| PathBuf::from("psql"));
    let mut command = Command::new(program);
    command
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null());
    let out = run(&mut command, "psql")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
}

/// Whether the server binaries are there; if not, prints the skip (or
/// panics under `SPOOL_REQUIRE_POSTGRES=1`).
fn installed_or_skip(test: &str) -> bool {
    if server_bin_dir().is_some() {
        return true;
    }
    if std::env::var("SPOOL_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("{test}: {NOT_INSTALLED} (SPOOL_REQUIRE_POSTGRES=1 makes that a failure)");
    }
    eprintln!("SKIPPED {test}: {NOT_INSTALLED}");
    false
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: the highest
/// version under `/usr/lib/postgresql/*/bin` (Debian's layout), else the
/// first directory on `PATH` with all three.
fn server_bin_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let has_server = |dir: &Path| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|program| dir.join(program).is_file())
        };
        let version = |name: &str| -> Vec<u32> {
            name.split('.')
                .map(|part| part.parse().unwrap_or(0))
                .collect()
        };
        let mut debian: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                (version(&name), entry.path().join("bin"))
            })
            .filter(|(_, bin)| has_server(bin))
            .collect();
        debian.sort();
        if let Some((_, bin)) = debian.pop() {
            return Some(bin);
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).find(|dir| has_server(dir))
    })
    .as_deref()
}

/// The user to run server commands as: none when we are not root, else
/// `postgres`, else `nobody`.
fn server_user() -> Result<Option<String>, String> {
    if effective_uid() != Some(0) {
        return Ok(None);
    }
    ["postgres", "nobody"]
        .into_iter()
        .find(|user| {
            Command::new("id")
                .arg("-u")
                .arg(user)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
        .map(|user| Some(user.to_string()))
        .ok_or_else(|| {
            "running as root, which PostgreSQL refuses, and there is no `postgres` \
             or `nobody` user to run it as"
                .to_string()
        })
}

/// This process's effective user id, from `/proc/self/status`, else `id -u`.
fn effective_uid() -> Option<u32> {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        let uids = status.lines().find_map(|line| line.strip_prefix("Uid:"));
        if let Some(euid) = uids.and_then(|ids| ids.split_whitespace().nth(1)) {
            return euid.parse().ok();
        }
    }
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// `program`, through `runuser -u user --` when `run_as` is given, in `/`
/// (which every user may enter, unlike, perhaps, our working directory),
/// with the variables that would point libpq or the server elsewhere
/// removed.
fn server_command(program: &Path, run_as: Option<&str>) -> Command {
    let mut command = match run_as {
        Some(user) => {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", user, "--"]).arg(program);
            runuser
        }
        None => Command::new(program),
    };
    command.current_dir("/").stdin(Stdio::null());
    for var in [
        "PGDATA",
        "PGPORT",
        "PGHOST",
        "PGUSER",
        "PGDATABASE",
        "PGOPTIONS",
    ] {
        command.env_remove(var);
    }
    command
}

/// Runs `command` to its end; an error (with everything it printed) when
/// it cannot start or fails.
fn run(command: &mut Command, what: &str) -> Result<std::process::Output, String> {
    let out = command
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        return Ok(out);
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    ))
}

/// A free TCP port on 127.0.0.1 (free when asked; see [`PgCluster::start`]).
fn free_port() -> Result<u16, String> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// `text` quoted for `sh`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Stops and removes the clusters of test processes that are gone and
/// whose watchdog did not clean up (it was killed too). The PID in the
/// directory's name says whose it is; with no `/proc` nothing is removed.
fn sweep_stale_clusters(bin: &Path, run_as: Option<&str>) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let data = entry.path().join("data");
        if data.join("postmaster.pid").exists() {
            let mut stop = server_command(&bin.join("pg_ctl"), run_as);
            stop.arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"]);
            let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        let _ = fs::remove_dir_all(entry.path());
    }
}

#[test]
fn pg_cluster_starts_and_answers() {
    let Some(cluster) = start_or_skip("pg_cluster_starts_and_answers") else {
        return;
    };
    assert!(cluster.url().starts_with("postgres://postgres@127.0.0.1:"));
    assert_eq!(psql(&cluster.url(), "SELECT 1").unwrap(), "1");
    let url = fresh_database(&cluster, "Starts & answers");
    assert!(url.contains("/starts___answers_"), "{url}");
    assert_eq!(psql(&url, "SELECT 1").unwrap(), "1");
    assert_eq!(psql(&url, "SHOW max_connections").unwrap(), "200");
    assert_eq!(psql(&url, "SHOW fsync").unwrap(), "on");
}

#[test]
fn pg_cluster_restarts_keeping_its_data_and_cleans_up_when_dropped() {
    let Some(cluster) =
        start_or_skip("pg_cluster_restarts_keeping_its_data_and_cleans_up_when_dropped")
    else {
        return;
    };
    let url = fresh_database(&cluster, "restarts");
    psql(&url, "CREATE TABLE t (n int); INSERT INTO t VALUES (42)").unwrap();
    cluster.restart().unwrap();
    assert_eq!(psql(&url, "SELECT n FROM t").unwrap(), "42");
    cluster.stop();
    assert!(psql(&url, "SELECT 1").is_err(), "answers after stop");
    cluster.stop();
    cluster.restart().unwrap();
    assert_eq!(psql(&url, "SELECT n FROM t").unwrap(), "42");
    let dir = cluster.dir.clone();
    drop(cluster);
    assert!(!dir.exists(), "{} is left after drop", dir.display());
    assert!(psql(&url, "SELECT 1").is_err(), "answers after drop");
}

#[test]
fn pg_cluster_watchdog_cleans_up_when_the_process_is_gone() {
    let Some(cluster) = start_or_skip("pg_cluster_watchdog_cleans_up_when_the_process_is_gone")
    else {
        return;
    };
    assert_eq!(psql(&cluster.url(), "SELECT 1").unwrap(), "1");
    // What the kernel does when this process ends: close the pipe's end.
    let mut watchdog = cluster.watchdog.lock().unwrap().take().unwrap();
    drop(watchdog.stdin.take());
    assert!(watchdog.wait().unwrap().success());
    assert!(!cluster.dir.exists(), "{} is left", cluster.dir.display());
    assert!(psql(&cluster.url(), "SELECT 1").is_err(), "still answers");
}

#[test]
fn pg_cluster_shared_keeps_databases_apart() {
    let Some(cluster) = shared("pg_cluster_shared_keeps_databases_apart") else {
        return;
    };
    let again = shared("pg_cluster_shared_keeps_databases_apart").unwrap();
    assert!(std::ptr::eq(cluster, again));
    let one = fresh_database(cluster, "apart");
    let other = fresh_database(cluster, "apart");
    assert_ne!(one, other);
    psql(&one, "CREATE TABLE only_here (n int)").unwrap();
    assert_eq!(psql(&one, "SELECT count(*) FROM only_here").unwrap(), "0");
    assert!(psql(&other, "SELECT count(*) FROM only_here").is_err());
}
