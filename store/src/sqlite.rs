//! The SQLite backend: one file, nothing to install (rusqlite with SQLite
//! compiled in). The database runs in WAL mode with `synchronous=FULL`, so
//! a committed transaction survives a crash of the process or the machine;
//! writers take the lock at `BEGIN IMMEDIATE` and wait for each other up to
//! [`BUSY_TIMEOUT`], in short sleeps. Statements are written with
//! `$1`-style parameters and become SQLite's `?1` here.

use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Connection;

use crate::backend::{Backend, Cell, DbError, Dialect, Row};

/// How long a writer waits for another process's transaction.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to a SQLite store.
pub struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &str) -> Result<Sqlite, DbError> {
        let conn = Connection::open(path).map_err(db_error)?;
        conn.busy_handler(Some(wait_for_writer)).map_err(db_error)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_error)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_error)?;
        Ok(Sqlite { conn })
    }
}

/// Whether to try again for the lock another connection holds, after
/// `attempt` tries: sleeps a little and says yes until [`BUSY_TIMEOUT`]. A
/// transaction holds the lock for a millisecond or two (its `fsync`), so
/// the waits are short and even: SQLite's own busy timeout backs off to
/// 100 ms sleeps, and a few processes writing together then spend most of
/// their time asleep while the lock is free.
fn wait_for_writer(attempt: i32) -> bool {
    const WAIT: Duration = Duration::from_micros(500);
    if WAIT * attempt.max(0) as u32 >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(WAIT);
    true
}

/// A rusqlite error as the store reports it: transient when the file was
/// busy or locked past the wait, or could not be read, written or opened.
fn db_error(error: rusqlite::Error) -> DbError {
    use rusqlite::ErrorCode;
    let transient = matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory
        )
    );
    DbError {
        message: error.to_string(),
        transient,
    }
}

/// `$1`-style parameters as SQLite's `?1`.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

fn to_sql(cell: &Cell) -> SqlValue {
    match cell {
        Cell::Null => SqlValue::Null,
        Cell::Int(n) => SqlValue::Integer(*n),
        Cell::Text(text) => SqlValue::Text(text.clone()),
        Cell::Blob(bytes) => SqlValue::Blob(bytes.clone()),
    }
}

fn from_sql(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(n) => Cell::Int(n),
        ValueRef::Real(x) => Cell::Int(x as i64),
        ValueRef::Text(text) => Cell::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(bytes) => Cell::Blob(bytes.to_vec()),
    }
}

impl Backend for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn begin(&mut self) -> Result<(), DbError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db_error)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        self.conn.execute_batch("COMMIT").map_err(db_error)
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn execute(&mut self, sql: &str, params: &[Cell]) -> Result<u64, DbError> {
        if params.is_empty() && sql.contains(';') {
            self.conn.execute_batch(sql).map_err(db_error)?;
            return Ok(0);
        }
        let mut statement = self
            .conn
            .prepare_cached(&sqlite_sql(sql))
            .map_err(db_error)?;
        let values: Vec<SqlValue> = params.iter().map(to_sql).collect();
        let changed = statement
            .execute(rusqlite::params_from_iter(values))
            .map_err(db_error)?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Cell]) -> Result<Vec<Row>, DbError> {
        let mut statement = self
            .conn
            .prepare_cached(&sqlite_sql(sql))
            .map_err(db_error)?;
        let columns = statement.column_count();
        let values: Vec<SqlValue> = params.iter().map(to_sql).collect();
        let mut rows = statement
            .query(rusqlite::params_from_iter(values))
            .map_err(db_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db_error)? {
            let mut cells = Vec::with_capacity(columns);
            for index in 0..columns {
                cells.push(from_sql(row.get_ref(index).map_err(db_error)?));
            }
            out.push(cells);
        }
        Ok(out)
    }
}
