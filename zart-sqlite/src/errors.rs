//! Maps rusqlite errors to [`zart::Error`], naming the database file and the call.
//!
//! `SQLITE_BUSY` / `SQLITE_LOCKED` after the busy timeout (another process holds the write
//! lock) is [`Error::Contention`], transient; a missing Zart table is [`Error::Schema`] saying
//! to run `zart migrate`; I/O errors are [`Error::Unavailable`]; the rest is
//! [`Error::Database`]. The driver's error is always kept as the source.

use rusqlite::{Connection, ErrorCode};
use zart::Error;

/// Converts a rusqlite result, naming the database (from `conn`) and what was being done.
pub(crate) trait SqlResult<T> {
    /// The value, or the mapped error.
    fn or_db(self, conn: &Connection, what: &str) -> Result<T, Error>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn or_db(self, conn: &Connection, what: &str) -> Result<T, Error> {
        self.map_err(|e| from_sqlite(e, &db_name(conn), what))
    }
}

/// The file name of `conn`'s main database, or `:memory:`.
pub(crate) fn db_name(conn: &Connection) -> String {
    match conn.path() {
        Some(path) if !path.is_empty() && !path.contains("mode=memory") => path.to_owned(),
        _ => ":memory:".to_owned(),
    }
}

/// Maps one driver error.
pub(crate) fn from_sqlite(err: rusqlite::Error, db: &str, what: &str) -> Error {
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => locked(db, err),
        Some(ErrorCode::SystemIoFailure) | Some(ErrorCode::CannotOpen) => Error::Unavailable {
            message: format!("{what}: cannot read or write database {db}"),
            source: Some(Box::new(err)),
        },
        Some(ErrorCode::NotADatabase) => Error::Database {
            message: format!("{what}: {db} is not a SQLite database (or is encrypted or damaged)"),
            source: Some(Box::new(err)),
        },
        Some(ErrorCode::ReadOnly) => Error::Database {
            message: format!("{what}: database {db} is read-only; make it writable"),
            source: Some(Box::new(err)),
        },
        Some(ErrorCode::DiskFull) => Error::Database {
            message: format!("{what}: the disk holding database {db} is full"),
            source: Some(Box::new(err)),
        },
        _ if err.to_string().contains("no such table: zart_") => Error::Schema(format!(
            "the Zart schema is missing from database {db} (or incomplete): run `zart migrate \
             --database-url sqlite://{db}`"
        )),
        _ => Error::Database {
            message: format!("{what}: {err}"),
            source: Some(Box::new(err)),
        },
    }
}

/// The error for a database another connection keeps locked past the busy timeout.
pub(crate) fn locked(db: &str, err: rusqlite::Error) -> Error {
    Error::Contention {
        message: format!(
            "database {db} is locked by another connection or program (waited out the busy \
             timeout); close the program that holds it (an open `sqlite3` shell in a \
             transaction, a backup) or try again"
        ),
        source: Some(Box::new(err)),
    }
}

/// An internal invariant broke (a reply of the wrong kind, a row that cannot be read).
pub(crate) fn internal(message: impl Into<String>) -> Error {
    Error::Database {
        message: message.into(),
        source: None,
    }
}

pub(crate) use zart::error::{from_json_text as from_json, to_json_text as to_json};

/// A recorded error, read leniently ([`zart::ErrorRecord::from_stored_text`]).
pub(crate) fn error_record(text: &str) -> zart::ErrorRecord {
    zart::ErrorRecord::from_stored_text(text)
}
