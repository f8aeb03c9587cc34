//! Maps mysql_async errors to [`zart::Error`], naming what was being done.
//!
//! Deadlock (1213) and lock wait timeout (1205) are [`Error::Contention`], transient; a lost or
//! refused connection (2002, 2003, 2006, 2013, an I/O error, a pool that timed out or was
//! closed) is [`Error::Unavailable`]; a missing Zart table (1146) is [`Error::Schema`] saying
//! to run `zart migrate`; access denied (1044, 1045) and an unknown database (1049) say which
//! user or database; the rest is [`Error::Database`]. The driver's error is always kept as the
//! source.

use mysql_async::Error as MyError;
use zart::Error;

/// Server error codes Zart maps by number.
mod code {
    pub const DB_ACCESS_DENIED: u16 = 1044;
    pub const ACCESS_DENIED: u16 = 1045;
    pub const UNKNOWN_DATABASE: u16 = 1049;
    pub const NO_SUCH_TABLE: u16 = 1146;
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const DEADLOCK: u16 = 1213;
    pub const SERVER_SHUTDOWN: u16 = 1053;
    pub const TOO_MANY_CONNECTIONS: u16 = 1040;
    pub const CONNECTION_ERROR: u16 = 2002;
    pub const CONN_HOST_ERROR: u16 = 2003;
    pub const SERVER_GONE: u16 = 2006;
    pub const SERVER_LOST: u16 = 2013;
    pub const QUERY_INTERRUPTED: u16 = 1927;
}

/// Maps one driver error; `what` says what was being done.
pub(crate) fn from_mysql(err: MyError, what: &str) -> Error {
    match &err {
        MyError::Server(server) => match server.code {
            code::DEADLOCK | code::LOCK_WAIT_TIMEOUT => Error::Contention {
                message: format!("{what}: {}", server.message),
                source: Some(Box::new(err)),
            },
            code::CONNECTION_ERROR
            | code::CONN_HOST_ERROR
            | code::SERVER_GONE
            | code::SERVER_LOST
            | code::SERVER_SHUTDOWN
            | code::TOO_MANY_CONNECTIONS
            | code::QUERY_INTERRUPTED => Error::Unavailable {
                message: format!("{what}: {}", server.message),
                source: Some(Box::new(err)),
            },
            code::ACCESS_DENIED | code::DB_ACCESS_DENIED => Error::Database {
                message: format!(
                    "{what}: access denied ({}); check the user and password in the database URL",
                    server.message
                ),
                source: Some(Box::new(err)),
            },
            code::UNKNOWN_DATABASE => Error::Database {
                message: format!(
                    "{what}: {}; create the database (`create database ...`) or fix the URL",
                    server.message
                ),
                source: Some(Box::new(err)),
            },
            code::NO_SUCH_TABLE if server.message.contains("zart_") => Error::Schema(format!(
                "the Zart schema is missing from this database (or incomplete: {}): run `zart \
                 migrate --database-url mysql://...`",
                server.message
            )),
            _ => Error::Database {
                message: format!("{what}: {}", server.message),
                source: Some(Box::new(err)),
            },
        },
        MyError::Io(_) => Error::Unavailable {
            message: format!("{what}: the database server cannot be reached: {err}"),
            source: Some(Box::new(err)),
        },
        MyError::Driver(
            mysql_async::DriverError::PoolDisconnected | mysql_async::DriverError::ConnectionClosed,
        ) => Error::Unavailable {
            message: format!("{what}: {err}"),
            source: Some(Box::new(err)),
        },
        _ => Error::Database {
            message: format!("{what}: {err}"),
            source: Some(Box::new(err)),
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::ServerError;

    fn server(code: u16, message: &str) -> MyError {
        MyError::Server(ServerError {
            code,
            message: message.to_owned(),
            state: "HY000".to_owned(),
        })
    }

    #[test]
    fn deadlocks_and_lock_waits_are_transient_contention() {
        for code in [1213, 1205] {
            let err = from_mysql(server(code, "try again"), "claiming");
            assert!(matches!(err, Error::Contention { .. }), "{code}: {err:?}");
            assert!(err.is_transient());
        }
    }

    #[test]
    fn lost_connections_are_transient_unavailable() {
        for code in [2002, 2003, 2006, 2013, 1040, 1053] {
            let err = from_mysql(server(code, "gone"), "committing");
            assert!(matches!(err, Error::Unavailable { .. }), "{code}: {err:?}");
            assert!(err.is_transient());
        }
        let io = MyError::Io(mysql_async::IoError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(from_mysql(io, "connecting").is_transient());
    }

    #[test]
    fn a_missing_zart_table_says_to_run_migrate() {
        let err = from_mysql(
            server(1146, "Table 'app.zart_tasks' doesn't exist"),
            "claiming",
        );
        assert!(matches!(err, Error::Schema(_)), "{err:?}");
        assert!(err.to_string().contains("zart migrate"), "{err}");
        let other = from_mysql(server(1146, "Table 'app.orders' doesn't exist"), "x");
        assert!(matches!(other, Error::Database { .. }), "{other:?}");
    }

    #[test]
    fn access_denied_and_unknown_databases_say_what_to_do() {
        let err = from_mysql(server(1045, "Access denied for user 'zart'"), "connecting");
        assert!(err.to_string().contains("access denied"), "{err}");
        assert!(!err.is_transient());
        let err = from_mysql(server(1049, "Unknown database 'app'"), "connecting");
        assert!(err.to_string().contains("create the database"), "{err}");
    }
}
