//! The PostgreSQL backend, for a fleet of workers on many machines: the
//! `postgres` client crate over one connection, statements prepared once
//! per connection (those of [`Backend::query_fresh`] planned each time).
//! Integers are `BIGINT`, bytes `BYTEA`; rows are locked with `FOR UPDATE`
//! (the store's writes to a run) and claimed with `FOR UPDATE SKIP
//! LOCKED`, so workers never wait for each other's runs.

use std::collections::HashMap;

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Statement};

use crate::backend::{Backend, Cell, DbError, Dialect, Row};

/// A connection to a PostgreSQL store.
pub struct Postgres {
    client: Client,
    /// Statements prepared on this connection, by their text.
    prepared: HashMap<String, Statement>,
}

impl Postgres {
    /// Connects to `url` (`postgres://user@host:port/database`, or any
    /// connection string the client accepts), without TLS.
    pub fn connect(url: &str) -> Result<Postgres, DbError> {
        let client = Client::connect(url, NoTls).map_err(db_error)?;
        Ok(Postgres {
            client,
            prepared: HashMap::new(),
        })
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).map_err(db_error)?;
        self.prepared.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

/// A client error as the store reports it, with the server's message
/// when there is one. Transient: the connection closed or failed, or the
/// server said it cannot go on now (a connection exception, shutting down
/// or starting up, out of resources, a serialization failure or deadlock,
/// a lock not available, an I/O error).
fn db_error(error: postgres::Error) -> DbError {
    const TRANSIENT: [&str; 7] = ["08", "57P", "53", "40001", "40P01", "55P03", "58030"];
    let Some(db) = error.as_db_error() else {
        let broken = error.is_closed()
            || std::error::Error::source(&error)
                .is_some_and(|source| source.is::<std::io::Error>());
        return DbError {
            message: error.to_string(),
            transient: broken,
        };
    };
    DbError {
        message: format!("{}: {}", db.severity(), db.message()),
        transient: TRANSIENT
            .iter()
            .any(|prefix| db.code().code().starts_with(prefix)),
    }
}

/// The parameters as the client takes them. Statements never take a null
/// (they spell `NULL` out), so each cell has its one type.
fn params(cells: &[Cell]) -> Vec<Box<dyn ToSql + Sync>> {
    cells
        .iter()
        .map(|cell| -> Box<dyn ToSql + Sync> {
            match cell {
                Cell::Null => Box::new(None::<i64>),
                Cell::Int(n) => Box::new(*n),
                Cell::Text(text) => Box::new(text.clone()),
                Cell::Blob(bytes) => Box::new(bytes.clone()),
            }
        })
        .collect()
}

fn cell(row: &postgres::Row, index: usize) -> Result<Cell, DbError> {
    let ty = row.columns()[index].type_().clone();
    let cell = if ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(index)
            .map_err(db_error)?
            .map_or(Cell::Null, Cell::Int)
    } else if ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(index)
            .map_err(db_error)?
            .map_or(Cell::Null, |n| Cell::Int(n.into()))
    } else if ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(index)
            .map_err(db_error)?
            .map_or(Cell::Null, |b| Cell::Int(b.into()))
    } else if ty == Type::BYTEA {
        row.try_get::<_, Option<Vec<u8>>>(index)
            .map_err(db_error)?
            .map_or(Cell::Null, Cell::Blob)
    } else {
        row.try_get::<_, Option<String>>(index)
            .map_err(db_error)?
            .map_or(Cell::Null, Cell::Text)
    };
    Ok(cell)
}

impl Backend for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn begin(&mut self) -> Result<(), DbError> {
        self.client.batch_execute("BEGIN").map_err(db_error)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        self.client.batch_execute("COMMIT").map_err(db_error)
    }

    fn rollback(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
    }

    fn execute(&mut self, sql: &str, cells: &[Cell]) -> Result<u64, DbError> {
        if cells.is_empty() && sql.contains(';') {
            self.client.batch_execute(sql).map_err(db_error)?;
            return Ok(0);
        }
        let statement = self.statement(sql)?;
        let owned = params(cells);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|p| p.as_ref()).collect();
        self.client.execute(&statement, &refs).map_err(db_error)
    }

    fn query_fresh(&mut self, sql: &str, cells: &[Cell]) -> Result<Vec<Row>, DbError> {
        // An unnamed statement, typed here: planned at each execution, in
        // one round trip.
        let owned = params(cells);
        let typed: Vec<(&(dyn ToSql + Sync), Type)> = owned
            .iter()
            .zip(cells)
            .map(|(param, cell)| {
                let ty = match cell {
                    Cell::Null | Cell::Int(_) => Type::INT8,
                    Cell::Text(_) => Type::TEXT,
                    Cell::Blob(_) => Type::BYTEA,
                };
                (param.as_ref(), ty)
            })
            .collect();
        let rows = self.client.query_typed(sql, &typed).map_err(db_error)?;
        rows.iter()
            .map(|row| (0..row.len()).map(|index| cell(row, index)).collect())
            .collect()
    }

    fn query(&mut self, sql: &str, cells: &[Cell]) -> Result<Vec<Row>, DbError> {
        let statement = self.statement(sql)?;
        let owned = params(cells);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|p| p.as_ref()).collect();
        let rows = self.client.query(&statement, &refs).map_err(db_error)?;
        rows.iter()
            .map(|row| (0..row.len()).map(|index| cell(row, index)).collect())
            .collect()
    }
}
