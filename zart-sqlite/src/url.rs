//! `sqlite://` URLs: where the database is and how a connection to it is opened.
//!
//! - `sqlite://relative/path.db`: a file, relative to the working directory;
//! - `sqlite:///absolute/path.db`: a file at an absolute path;
//! - `sqlite::memory:` (or `sqlite://:memory:`): a database in memory, private to one
//!   scheduler (a named, shared-cache in-memory database, unique per scheduler, which the
//!   scheduler reaches through one connection) and gone when the scheduler is dropped.
//!
//! Opening checks what can be checked before anything is written: the directory exists, the
//! file is writable, and it is an SQLite database. Each failure names the path and what to do.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use zart::Error;

use crate::errors::SqlResult;

/// Where a database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A database file.
    File(PathBuf),
    /// A private in-memory database; the string is its shared-cache URI.
    Memory(String),
}

static MEMORY_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Location {
    /// Parses a `sqlite://` URL. Each `sqlite::memory:` gets a new, unique database.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (field `database url`) for anything else, saying what is
    /// accepted.
    pub fn parse(url: &str) -> Result<Location, Error> {
        if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            let n = MEMORY_COUNTER.fetch_add(1, Ordering::Relaxed);
            let salt: u32 = rand::random();
            return Ok(Location::Memory(format!(
                "file:zart-memory-{}-{n}-{salt:08x}?mode=memory&cache=shared",
                std::process::id()
            )));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                Error::invalid(
                    "database url",
                    format!(
                        "{url:?} is not a SQLite URL: use sqlite://relative/path.db, \
                         sqlite:///absolute/path.db or sqlite::memory:"
                    ),
                )
            })?;
        let path = path.split(['?', '#']).next().unwrap_or_default();
        if path.is_empty() {
            return Err(Error::invalid(
                "database url",
                format!("{url:?} names no file: use sqlite://path/to/zart.db"),
            ));
        }
        Ok(Location::File(PathBuf::from(path)))
    }

    /// True for an in-memory database.
    pub fn is_memory(&self) -> bool {
        matches!(self, Location::Memory(_))
    }

    /// How errors and logs name the database.
    pub fn display(&self) -> String {
        match self {
            Location::File(path) => path.display().to_string(),
            Location::Memory(_) => ":memory:".to_owned(),
        }
    }

    /// Opens a connection. `create`: a missing file is created (migrate); else it is an error
    /// that says to run `zart migrate`.
    pub(crate) fn open(&self, create: bool, busy_timeout: Duration) -> Result<Connection, Error> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = match self {
            Location::Memory(uri) => {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
                Connection::open_with_flags(uri, flags).map_err(|e| open_error(self, e))?
            }
            Location::File(path) => {
                check_directory(path)?;
                if create {
                    flags |= OpenFlags::SQLITE_OPEN_CREATE;
                } else if !path.exists() {
                    return Err(Error::Schema(format!(
                        "no database at {}: create it with `zart migrate --database-url \
                         sqlite://{}`",
                        path.display(),
                        path.display()
                    )));
                }
                let conn =
                    Connection::open_with_flags(path, flags).map_err(|e| open_error(self, e))?;
                if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
                    return Err(read_only(path));
                }
                conn
            }
        };
        conn.busy_timeout(busy_timeout)
            .or_db(&conn, "setting the busy timeout")?;
        // Reading the schema fails at once on a file that is not a database.
        conn.query_row("select count(*) from sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| open_error(self, e))?;
        Ok(conn)
    }
}

fn check_directory(path: &Path) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => return Ok(()),
    };
    if !dir.is_dir() {
        return Err(Error::Database {
            message: format!(
                "cannot open database {}: the directory {} does not exist; create it first \
                 (mkdir -p {})",
                path.display(),
                dir.display(),
                dir.display()
            ),
            source: None,
        });
    }
    Ok(())
}

/// Whether `location` is an existing file in a directory this process cannot create files
/// in (tried with a probe file, removed at once; only on the error path).
fn directory_is_read_only(location: &Location) -> bool {
    let Location::File(path) = location else {
        return false;
    };
    if !path.is_file() {
        return false;
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".zart-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(err) => matches!(
            err.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        ),
    }
}

fn read_only(path: &Path) -> Error {
    Error::Database {
        message: format!(
            "database {} is read-only: Zart writes to it (and to its -wal and -shm files \
             beside it); make the file and its directory writable, or use another path",
            path.display()
        ),
        source: None,
    }
}

/// Maps an error met while opening.
fn open_error(location: &Location, err: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    let name = location.display();
    let message = match err.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => format!(
            "{name} is not a SQLite database (or is encrypted or damaged): point the URL at a \
             Zart database or at a new file"
        ),
        Some(ErrorCode::CannotOpen) if directory_is_read_only(location) => {
            let dir = match location {
                Location::File(path) => path.parent().map(|d| d.display().to_string()),
                Location::Memory(_) => None,
            }
            .unwrap_or_default();
            format!(
                "cannot open database {name}: its directory {dir} is read-only, and SQLite \
                 keeps the -wal and -shm files of a database beside it; make the directory \
                 writable"
            )
        }
        Some(ErrorCode::CannotOpen) => format!(
            "cannot open database {name}: check that the path is a file you may read and write"
        ),
        Some(ErrorCode::ReadOnly) | Some(ErrorCode::PermissionDenied) => {
            if let Location::File(path) = location {
                return read_only(path);
            }
            format!("database {name} is read-only")
        }
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            return crate::errors::locked(&name, err)
        }
        _ => format!("cannot open database {name}"),
    };
    Error::Database {
        message,
        source: Some(Box::new(err)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_name_files_or_a_private_memory_database() {
        assert_eq!(
            Location::parse("sqlite://data/zart.db").unwrap(),
            Location::File(PathBuf::from("data/zart.db"))
        );
        assert_eq!(
            Location::parse("sqlite:///var/lib/zart.db").unwrap(),
            Location::File(PathBuf::from("/var/lib/zart.db"))
        );
        let (a, b) = (
            Location::parse("sqlite::memory:").unwrap(),
            Location::parse("sqlite::memory:").unwrap(),
        );
        assert!(a.is_memory() && a != b, "each memory database is its own");
        let err = Location::parse("postgres://localhost/db").unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        assert!(err.to_string().contains("sqlite://"), "{err}");
    }
}
