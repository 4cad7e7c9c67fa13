//! What the store needs of a database: transactions, statements with
//! numbered parameters (`$1`, `$2`, ...) and rows of plain cells. The
//! store's operations are written once, in [`crate::Store`], against this
//! trait; [`crate::sqlite`] and [`crate::postgres`] implement it, so both
//! stores behave the same by construction. Where the two dialects differ
//! (the schema's column types, `FOR UPDATE SKIP LOCKED`), the store asks
//! [`Backend::dialect`].

use std::fmt;

/// One value going into or coming out of a statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// SQL `NULL` (only ever read: statements spell a null out).
    Null,
    /// A 64-bit integer (`BIGINT`).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (`BLOB`, `BYTEA`).
    Blob(Vec<u8>),
}

impl Cell {
    /// The integer in the cell (0 for anything else).
    pub fn int(&self) -> i64 {
        match self {
            Cell::Int(n) => *n,
            _ => 0,
        }
    }

    /// The integer in the cell, `None` for a null.
    pub fn opt_int(&self) -> Option<i64> {
        match self {
            Cell::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The text in the cell (empty for anything else).
    pub fn text(&self) -> String {
        match self {
            Cell::Text(text) => text.clone(),
            _ => String::new(),
        }
    }

    /// The text in the cell, `None` for a null.
    pub fn opt_text(&self) -> Option<String> {
        match self {
            Cell::Text(text) => Some(text.clone()),
            _ => None,
        }
    }

    /// The bytes in the cell (empty for anything else).
    pub fn blob(self) -> Vec<u8> {
        match self {
            Cell::Blob(bytes) => bytes,
            _ => Vec::new(),
        }
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Cell {
        Cell::Int(n)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::Text(text.to_string())
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::Text(text)
    }
}

impl From<Vec<u8>> for Cell {
    fn from(bytes: Vec<u8>) -> Cell {
        Cell::Blob(bytes)
    }
}

/// A row a query returned.
pub type Row = Vec<Cell>;

/// Which SQL a backend speaks, where the two differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: one writer at a time (`BEGIN IMMEDIATE`).
    Sqlite,
    /// PostgreSQL: row locks (`FOR UPDATE`, `SKIP LOCKED`).
    Postgres,
}

/// A database error, as the database described it.
#[derive(Clone, Debug, PartialEq)]
pub struct DbError {
    /// What the database (or the connection to it) said.
    pub message: String,
    /// The same operation may succeed later on a new connection: the
    /// connection broke or could not be made, the server is shutting down
    /// or starting, the database was busy or locked, an I/O failed. Not
    /// for errors in what was asked (a missing table or column, a
    /// constraint, a value of the wrong type).
    pub transient: bool,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DbError {}

/// A connection to the database a store lives in.
pub trait Backend: Send {
    /// Which SQL it speaks.
    fn dialect(&self) -> Dialect;

    /// Begins a transaction that will write: SQLite takes the write lock
    /// at once (`BEGIN IMMEDIATE`), so two writers never deadlock.
    fn begin(&mut self) -> Result<(), DbError>;

    /// Commits the open transaction.
    fn commit(&mut self) -> Result<(), DbError>;

    /// Rolls the open transaction back (errors are ignored: a broken
    /// connection has no transaction left).
    fn rollback(&mut self);

    /// Runs one statement (or, without parameters, several separated by
    /// `;`), returning how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Cell]) -> Result<u64, DbError>;

    /// Runs a query, returning its rows.
    fn query(&mut self, sql: &str, params: &[Cell]) -> Result<Vec<Row>, DbError>;

    /// Runs a query planned for these parameters and the tables as they
    /// are now, not by a plan kept from earlier: PostgreSQL keeps a
    /// prepared statement's generic plan until the table's statistics
    /// change, and a claim planned while `spool_runs` was small goes on
    /// scanning the whole table once it holds a hundred thousand runs.
    /// For the statements whose best plan depends on a table's size.
    fn query_fresh(&mut self, sql: &str, params: &[Cell]) -> Result<Vec<Row>, DbError> {
        self.query(sql, params)
    }
}
