//! Maps driver and pool errors to [`zart::Error`], by SQLSTATE.

use zart::error::BoxError;
use zart::Error;

/// The SQLSTATEs raised by `sql/zart.sql`.
pub mod sqlstate {
    /// The execution was cancelled.
    pub const CANCELLED: &str = "ZA001";
    /// The fence is stale or the lease was given up: the lease was lost.
    pub const LEASE_LOST: &str = "ZA002";
    /// The id exists with another task, input, queue, parent or deadline, or under a tenant
    /// the session cannot see.
    pub const CONFLICT: &str = "ZA003";
    /// An argument was refused.
    pub const INVALID_INPUT: &str = "ZA004";
    /// The bucket does not match the id.
    pub const WRONG_BUCKET: &str = "ZA005";
    /// The step already has a final result.
    pub const STEP_RECORDED: &str = "ZA006";
    /// No execution has the id.
    pub const NOT_FOUND: &str = "ZA007";
    /// The execution has finished (an event for it is refused).
    pub const FINISHED: &str = "ZA008";
    /// The execution cannot be retried (not failed, or past its deadline).
    pub const NOT_RETRYABLE: &str = "ZA009";
    /// PostgreSQL's `serialization_failure`: retry the transaction.
    pub const SERIALIZATION_FAILURE: &str = "40001";
    /// PostgreSQL's `deadlock_detected`: retry the transaction.
    pub const DEADLOCK_DETECTED: &str = "40P01";
}

const MISSING_SCHEMA: &str = "the Zart schema is missing from this database (or incomplete): \
     run `zart migrate` with DATABASE_URL pointing at it";

/// What a failed call was about, to name it in the error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub what: &'static str,
    pub execution_id: Option<&'a str>,
    pub step: Option<&'a str>,
    /// Items in a batch call (group commit), for its span.
    pub batch: Option<usize>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(what: &'static str) -> Self {
        Call {
            what,
            execution_id: None,
            step: None,
            batch: None,
        }
    }

    pub(crate) fn execution(what: &'static str, id: &'a str) -> Self {
        Call {
            what,
            execution_id: Some(id),
            step: None,
            batch: None,
        }
    }

    pub(crate) fn step(mut self, step: &'a str) -> Self {
        self.step = Some(step);
        self
    }

    /// A batch of `items` (one item's execution and step are named by the caller).
    pub(crate) fn batch(mut self, items: usize) -> Self {
        self.batch = Some(items);
        self
    }
}

/// A `ZA004` message (`invalid <field>: <reason>`, as every refusal in zart.sql words it) as
/// [`Error::InvalidInput`]; a message of another shape is the reason, for field `argument`.
pub(crate) fn invalid_input(message: &str) -> Error {
    message
        .strip_prefix("invalid ")
        .and_then(|rest| rest.split_once(": "))
        .map(|(field, reason)| Error::invalid(field, reason))
        .unwrap_or_else(|| Error::invalid("argument", message))
}

/// Maps a tokio-postgres error.
pub(crate) fn from_pg(err: tokio_postgres::Error, call: Call<'_>) -> Error {
    if let Some(db) = err.as_db_error() {
        let (code, message) = (db.code().code().to_owned(), db.message().to_owned());
        return from_sqlstate(&code, message, call, Box::new(err));
    }
    if let Some(failure) = crate::tls::handshake_failure(&err) {
        let message = format!("{}: TLS handshake failed: {}", call.what, failure.reason);
        return if failure.refused {
            // A refused certificate or a server without TLS: trying again cannot help.
            Error::Database {
                message,
                source: Some(Box::new(err)),
            }
        } else {
            Error::Unavailable {
                message,
                source: Some(Box::new(err)),
            }
        };
    }
    // No server error: the connection broke, or the driver could not talk to the server.
    Error::Unavailable {
        message: call.what.to_owned(),
        source: Some(Box::new(err)),
    }
}

/// Maps a server error by its SQLSTATE; `source` is the driver's error, kept as the source.
fn from_sqlstate(code: &str, message: String, call: Call<'_>, err: BoxError) -> Error {
    let id = || call.execution_id.unwrap_or_default().to_owned();
    match code {
        sqlstate::CANCELLED => Error::Cancelled { id: id() },
        sqlstate::LEASE_LOST => Error::LeaseLost { id: id() },
        sqlstate::CONFLICT => Error::Conflict {
            id: id(),
            detail: message,
        },
        sqlstate::INVALID_INPUT => invalid_input(&message),
        sqlstate::NOT_FOUND => Error::NotFound { id: id() },
        sqlstate::FINISHED => {
            // "execution "x" has finished (completed): the event was not stored"
            let (status, what) = message
                .split_once("has finished (")
                .and_then(|(_, rest)| rest.split_once("): "))
                .map(|(s, w)| (s.to_owned(), w.to_owned()))
                .unwrap_or_else(|| (String::new(), message.clone()));
            Error::Finished {
                id: id(),
                status,
                what,
            }
        }
        sqlstate::NOT_RETRYABLE => Error::NotRetryable {
            id: id(),
            // "execution "x" cannot be retried: it is completed (..)"
            reason: message
                .split_once("cannot be retried: ")
                .map_or_else(|| message.clone(), |(_, reason)| reason.to_owned()),
        },
        sqlstate::STEP_RECORDED => Error::StepAlreadyRecorded {
            id: id(),
            step: call.step.unwrap_or_default().to_owned(),
        },
        // Data exceptions (out-of-range values, bad formats): the value is at fault, and
        // sending it again fails again.
        _ if code.starts_with("22") => Error::InvalidInput {
            field: "value".to_owned(),
            reason: format!("{}: {message} (SQLSTATE {code})", call.what),
        },
        "42501" => Error::Database {
            message: format!(
                "{}: {message} (SQLSTATE 42501): the database role lacks a privilege Zart \
                     needs; grant it zart_worker, zart_client or zart_reader as docs/roles.md \
                     describes",
                call.what
            ),
            source: Some(err),
        },
        // disk_full, out_of_memory: the server could not take the write now; nothing was
        // written (the transaction rolled back), and the same call passes once there is room.
        "53100" | "53200" => {
            Error::Unavailable {
                message: format!(
                "{}: the database server is out of {} ({message}); nothing was written, and work \
                 resumes once it has room",
                call.what,
                if code == "53100" { "disk space" } else { "memory" }
            ),
                source: Some(err),
            }
        }
        // read_only_sql_transaction: a standby, or default_transaction_read_only turned on
        // since the process started. Transient: a promotion or the setting turned off lets
        // the same call pass, and workers back off until then.
        "25006" => Error::Unavailable {
            message: format!(
                "{}: the database refused a write because it is read-only ({message}); Zart \
                 needs a writable primary: point DATABASE_URL at it, or turn \
                 default_transaction_read_only off for Zart's roles",
                call.what
            ),
            source: Some(err),
        },
        // undefined_function, undefined_table: the schema is not there.
        "42883" | "42P01" => Error::Schema(format!("{MISSING_SCHEMA} ({message})")),
        // too_many_connections: the server's max_connections, or the role's or database's
        // CONNECTION LIMIT. Transient: connections come free.
        "53300" => Error::Unavailable {
            message: format!(
                "{}: the server has no connection left for this login ({message}): \
                 max_connections, or a CONNECTION LIMIT on the role or database, is reached; \
                 each Zart process needs its pool's size plus one (its LISTEN connection)",
                call.what
            ),
            source: Some(err),
        },
        _ if code.starts_with("08") || code == "57P01" || code == "57P02" || code == "57P03" => {
            Error::Unavailable {
                message: call.what.to_owned(),
                source: Some(err),
            }
        }
        // The transaction lost to a concurrent one and was rolled back: nothing was
        // written, and the same call may pass if tried again.
        sqlstate::SERIALIZATION_FAILURE | sqlstate::DEADLOCK_DETECTED => Error::Contention {
            message: format!("{}: {message} (SQLSTATE {code})", call.what),
            source: Some(err),
        },
        _ => Error::Database {
            message: format!("{}: {message} (SQLSTATE {code})", call.what),
            source: Some(err),
        },
    }
}

/// Maps a pool error (timeout, or failure to open a connection).
pub(crate) fn from_pool(err: deadpool_postgres::PoolError, call: Call<'_>) -> Error {
    match err {
        deadpool_postgres::PoolError::Backend(pg) => from_pg(pg, call),
        deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            Error::Unavailable {
                message: format!(
                    "{}: no pooled connection came free within the pool's wait timeout (every \
                     connection of the pool is in use: raise the pool's size, PgPool's \
                     max_size, or run fewer executions at once per process)",
                    call.what
                ),
                source: Some(Box::new(err)),
            }
        }
        other => Error::Unavailable {
            message: format!(
                "{}: could not get a database connection: {other}",
                call.what
            ),
            source: Some(Box::new(other)),
        },
    }
}

/// A server that takes no writes, found at start: refused, since nothing Zart does can work.
pub(crate) fn read_only_database(standby: bool) -> Error {
    Error::Database {
        message: if standby {
            "the database is a hot standby (in recovery) and takes no writes: Zart needs a \
             writable primary; point DATABASE_URL at the primary"
                .to_owned()
        } else {
            "transactions on this database are read-only (default_transaction_read_only is \
             on for this login or database): Zart needs to write; turn it off for Zart's roles"
                .to_owned()
        },
        source: None,
    }
}

/// The message for a schema older than this build.
pub(crate) fn outdated_schema(found: i32, required: i32) -> Error {
    Error::Schema(format!(
        "the Zart schema in this database is version {found}, but this build needs version \
         {required}: run `zart migrate` with DATABASE_URL pointing at it"
    ))
}

pub(crate) fn missing_schema() -> Error {
    Error::Schema(MISSING_SCHEMA.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn map(code: &str) -> Error {
        let call = Call::execution("committing a step", "order-7").step("charge");
        let source: BoxError = Box::new(std::io::Error::other("driver error"));
        from_sqlstate(code, "the message".to_owned(), call, source)
    }

    #[test]
    fn serialization_failures_and_deadlocks_are_transient_contention() {
        for code in [sqlstate::SERIALIZATION_FAILURE, sqlstate::DEADLOCK_DETECTED] {
            let err = map(code);
            assert!(matches!(err, Error::Contention { .. }), "{code}: {err:?}");
            assert!(err.is_transient(), "{code}");
            assert_eq!(err.code(), "contention");
            assert_eq!(
                err.to_string(),
                format!("database contention: committing a step: the message (SQLSTATE {code})")
            );
            assert!(
                std::error::Error::source(&err).is_some(),
                "the driver error is kept"
            );
        }
    }

    #[test]
    fn connection_errors_are_transient_unavailable() {
        for code in ["08006", "08001", "57P01", "57P02", "57P03", "53300"] {
            let err = map(code);
            assert!(matches!(err, Error::Unavailable { .. }), "{code}: {err:?}");
            assert!(err.is_transient(), "{code}");
        }
    }

    #[test]
    fn a_full_disk_a_full_memory_and_a_read_only_database_are_transient_and_say_so() {
        for (code, says) in [
            ("53100", "out of disk space"),
            ("53200", "out of memory"),
            ("25006", "read-only"),
        ] {
            let err = map(code);
            assert!(matches!(err, Error::Unavailable { .. }), "{code}: {err:?}");
            assert!(err.is_transient(), "{code}");
            assert!(err.to_string().contains(says), "{code}: {err}");
        }
    }

    #[test]
    fn zart_sqlstates_map_to_their_kinds_and_are_final() {
        let cases = [
            (sqlstate::CANCELLED, "cancelled"),
            (sqlstate::LEASE_LOST, "lease_lost"),
            (sqlstate::CONFLICT, "conflict"),
            (sqlstate::INVALID_INPUT, "invalid_input"),
            (sqlstate::STEP_RECORDED, "step_already_recorded"),
            (sqlstate::NOT_FOUND, "not_found"),
            ("22003", "invalid_input"),
            ("42883", "schema"),
            ("42501", "database"),
            ("XX000", "database"),
        ];
        for (sqlstate, code) in cases {
            let err = map(sqlstate);
            assert_eq!(err.code(), code, "{sqlstate}: {err:?}");
            assert!(!err.is_transient(), "{sqlstate}");
        }
        match map(sqlstate::LEASE_LOST) {
            Error::LeaseLost { id } => assert_eq!(id, "order-7"),
            other => panic!("{other:?}"),
        }
    }
}
