//! The schema: embedded SQL migrations (`migrations/V<n>__<name>.sql`), applied in order and
//! recorded in `zart_schema_history`, and the check that a database is migrated for this build.
//!
//! [`migrate`] runs in one `BEGIN IMMEDIATE` transaction: it is idempotent, two processes may
//! run it at once (the second waits for the first, then finds nothing to do), and a failed
//! migration leaves nothing behind. A database migrated by a newer Zart is refused, not
//! touched.

use rusqlite::Connection;
use zart::Error;

use crate::clock;
use crate::errors::SqlResult;
use crate::queries;
use crate::url::Location;

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version (the `n` of `V<n>__`).
    pub version: i64,
    /// Its name (`init`).
    pub name: &'static str,
    /// Its SQL.
    pub sql: &'static str,
}

/// Every migration of this build, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/V1__init.sql"),
    },
    Migration {
        version: 2,
        name: "check_without_in_lists",
        sql: include_str!("../migrations/V2__check_without_in_lists.sql"),
    },
    Migration {
        version: 3,
        name: "retention",
        sql: include_str!("../migrations/V3__retention.sql"),
    },
    Migration {
        version: 4,
        name: "patches",
        sql: include_str!("../migrations/V4__patches.sql"),
    },
    Migration {
        version: 5,
        name: "delayed_starts",
        sql: include_str!("../migrations/V5__delayed_starts.sql"),
    },
    Migration {
        version: 6,
        name: "schedules",
        sql: include_str!("../migrations/V6__schedules.sql"),
    },
    Migration {
        version: 7,
        name: "priorities_limits_dedup",
        sql: include_str!("../migrations/V7__priorities_limits_dedup.sql"),
    },
    Migration {
        version: 8,
        name: "state",
        sql: include_str!("../migrations/V8__state.sql"),
    },
    Migration {
        version: 9,
        name: "audit_and_lists",
        sql: include_str!("../migrations/V9__audit_and_lists.sql"),
    },
];

/// The schema version this build writes and needs.
pub const SCHEMA_VERSION: i64 = 9;

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The migrations applied by this run (`V1__init`), empty when the schema was up to date.
    pub applied: Vec<String>,
    /// The schema version after the run.
    pub schema_version: i64,
}

/// Creates or upgrades the Zart tables in the database at `url` (`sqlite://path.db`; the file
/// is created if missing, its directory is not).
///
/// # Errors
/// [`Error::InvalidInput`] for a URL that is not `sqlite:`; [`Error::Database`] naming the path
/// for a missing directory, a read-only file or one that is not a database;
/// [`Error::Contention`] when another program keeps the database locked past the busy timeout;
/// [`Error::Schema`] when the database was migrated by a newer Zart.
///
/// # Examples
/// ```no_run
/// # async fn example() -> Result<(), zart::Error> {
/// let report = zart_sqlite::migrate("sqlite://zart.db").await?;
/// println!("schema version {}", report.schema_version);
/// # Ok(()) }
/// ```
pub async fn migrate(url: &str) -> Result<MigrationReport, Error> {
    let location = Location::parse(url)?;
    let options = crate::SqliteOptions::default();
    tokio::task::spawn_blocking(move || {
        let conn = location.open(true, options.busy_timeout)?;
        crate::pool::configure_writer(&conn, &options)?;
        migrate_connection(&conn)
    })
    .await
    .map_err(|e| crate::errors::internal(format!("the migration task failed: {e}")))?
}

/// Applies the missing migrations on `conn` in one `BEGIN IMMEDIATE` transaction.
pub(crate) fn migrate_connection(conn: &Connection) -> Result<MigrationReport, Error> {
    conn.execute_batch("begin immediate")
        .or_db(conn, "starting the migration")?;
    let result = apply(conn);
    match result {
        Ok(report) => {
            conn.execute_batch("commit")
                .or_db(conn, "committing the migration")?;
            Ok(report)
        }
        Err(err) => {
            let _ = conn.execute_batch("rollback");
            Err(err)
        }
    }
}

fn apply(conn: &Connection) -> Result<MigrationReport, Error> {
    conn.execute_batch(queries::CREATE_SCHEMA_HISTORY)
        .or_db(conn, "creating zart_schema_history")?;
    let found: i64 = conn
        .query_row(queries::SCHEMA_VERSION, [], |r| r.get::<_, Option<i64>>(0))
        .or_db(conn, "reading the schema version")?
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(newer(conn, found));
    }
    let now = clock::format(clock::system_ms(std::time::SystemTime::now()));
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        let label = format!("V{}__{}", m.version, m.name);
        conn.execute_batch(m.sql)
            .or_db(conn, &format!("applying migration {label}"))?;
        conn.execute(
            queries::RECORD_MIGRATION,
            rusqlite::params![m.version, m.name, now],
        )
        .or_db(conn, "recording a migration")?;
        applied.push(label);
    }
    Ok(MigrationReport {
        applied,
        schema_version: SCHEMA_VERSION.max(found),
    })
}

/// Checks that the database on `conn` has this build's schema. Reads only.
pub(crate) fn check(conn: &Connection) -> Result<(), Error> {
    let db = crate::errors::db_name(conn);
    let has_history: i64 = conn
        .query_row(queries::HAS_SCHEMA_HISTORY, [], |r| r.get(0))
        .or_db(conn, "checking the schema")?;
    let found = if has_history == 0 {
        None
    } else {
        conn.query_row(queries::SCHEMA_VERSION, [], |r| r.get::<_, Option<i64>>(0))
            .or_db(conn, "checking the schema")?
    };
    match found {
        None => Err(Error::Schema(format!(
            "the Zart schema is missing from database {db}: run `zart migrate --database-url \
             sqlite://{db}`"
        ))),
        Some(v) if v < SCHEMA_VERSION => Err(Error::Schema(format!(
            "the Zart schema in database {db} is version {v}, but this build needs version \
             {SCHEMA_VERSION}: run `zart migrate --database-url sqlite://{db}`"
        ))),
        Some(v) if v > SCHEMA_VERSION => Err(newer(conn, v)),
        Some(_) => Ok(()),
    }
}

fn newer(conn: &Connection, found: i64) -> Error {
    Error::Schema(format!(
        "database {} was migrated by a newer Zart (schema version {found}; this build knows up \
         to {SCHEMA_VERSION}): upgrade this program, or use another database file",
        crate::errors::db_name(conn)
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const T: &str = "2026-12-07T00:00:00.000Z";

    /// A database at version 1 with a row in each table, upgraded by `migrate_connection`,
    /// keeps its rows, its indexes and its constraints, gets version 3's indexes, takes
    /// version 4's patch markers, gets version 6's schedules table with its checks, and
    /// version 7's priorities (0 for the rows it found) and limit tables with their checks.
    #[test]
    fn later_versions_keep_the_rows_indexes_and_checks_of_version_1() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(queries::CREATE_SCHEMA_HISTORY).unwrap();
        conn.execute_batch(MIGRATIONS[0].sql).unwrap();
        conn.execute(queries::RECORD_MIGRATION, rusqlite::params![1, "init", T])
            .unwrap();
        conn.execute_batch(&format!(
            "insert into zart_executions (id, task_name, queue, input, status, parent_id,
                 created_at, updated_at)
                 values ('e1', 't', 'q', '{{}}', 'waiting', 'p', '{T}', '{T}');
             insert into zart_tasks (execution_id, task_name, queue, run_at, fence, wait_kind,
                 wait_name) values ('e1', 't', 'q', '{T}', 7, 'event', 'go');
             insert into zart_steps (execution_id, name, seq, kind, status, output, attempts,
                 created_at, updated_at) values ('e1', 's', 0, 'step', 'completed', '1', 1,
                 '{T}', '{T}');"
        ))
        .unwrap();

        let report = migrate_connection(&conn).unwrap();
        assert_eq!(
            report.applied,
            vec![
                "V2__check_without_in_lists".to_owned(),
                "V3__retention".to_owned(),
                "V4__patches".to_owned(),
                "V5__delayed_starts".to_owned(),
                "V6__schedules".to_owned(),
                "V7__priorities_limits_dedup".to_owned(),
                "V8__state".to_owned(),
                "V9__audit_and_lists".to_owned()
            ]
        );
        check(&conn).unwrap();

        let row: (String, String, i64, String) = conn
            .query_row(
                "select e.status, e.parent_id, t.fence, t.wait_name
                 from zart_executions e join zart_tasks t on t.execution_id = e.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(row, ("waiting".into(), "p".into(), 7, "go".into()));
        let steps: i64 = conn
            .query_row("select count(*) from zart_steps", [], |r| r.get(0))
            .unwrap();
        assert_eq!(steps, 1);

        let indexes: Vec<String> = conn
            .prepare(
                "select name from sqlite_master
                 where type = 'index' and sql is not null order by name",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            indexes,
            [
                "zart_events_execution_id_idx",
                "zart_events_pending_idx",
                "zart_executions_created_at_idx",
                "zart_executions_finished_at_idx",
                "zart_executions_parent_id_idx",
                "zart_schedules_due_idx",
                "zart_start_keys_expires_at_idx",
                "zart_tasks_claim_idx"
            ]
        );

        for bad in [
            "update zart_executions set status = 'paused'",
            "update zart_tasks set wait_kind = 'nap'",
            "update zart_steps set status = 'done'",
            "update zart_steps set kind = 'job'",
        ] {
            let err = conn.execute(bad, []).unwrap_err().to_string();
            assert!(err.contains("CHECK constraint failed"), "{bad}: {err}");
        }
        conn.execute("update zart_tasks set wait_kind = null", [])
            .unwrap();
        conn.execute("update zart_steps set kind = 'patch'", [])
            .unwrap();
        conn.execute("update zart_steps set kind = 'state'", [])
            .unwrap();

        conn.execute(
            &format!(
                "insert into zart_schedules (id, task_name, queue, input, cron, time_zone,
                     overlap, catch_up, catch_up_limit, created_at, updated_at)
                 values ('s', 't', 'q', '{{}}', '* * * * *', 'UTC', 'skip', 'latest', 1,
                     '{T}', '{T}')"
            ),
            [],
        )
        .unwrap();
        for bad in [
            "update zart_schedules set overlap = 'sometimes'",
            "update zart_schedules set catch_up = 'some'",
            "update zart_schedules set catch_up_limit = 0",
            "update zart_schedules set catch_up_limit = 1001",
            "update zart_schedules set paused = 2",
            "update zart_schedules set input = '{'",
        ] {
            let err = conn.execute(bad, []).unwrap_err().to_string();
            assert!(err.contains("CHECK constraint failed"), "{bad}: {err}");
        }
        conn.execute(
            "update zart_schedules set overlap = 'cancel_previous', catch_up = 'all',
                 catch_up_limit = 1000, paused = 1",
            [],
        )
        .unwrap();

        let priorities: (i64, i64, Option<String>) = conn
            .query_row(
                "select e.priority, t.priority, t.limit_key
                 from zart_executions e join zart_tasks t on t.execution_id = e.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(priorities, (0, 0, None));
        conn.execute(
            &format!(
                "insert into zart_queue_limits (queue, max_running, rate_limit, rate_interval_ms,
                     updated_at) values ('q', 2, 10, 1000, '{T}')"
            ),
            [],
        )
        .unwrap();
        conn.execute(
            &format!(
                "insert into zart_start_keys (task_name, start_key, execution_id, debounce,
                     expires_at) values ('t', 'k', 'e1', 1, '{T}')"
            ),
            [],
        )
        .unwrap();
        for bad in [
            "update zart_queue_limits set max_running = 0",
            "update zart_queue_limits set rate_interval_ms = null",
            "update zart_queue_limits set rate_interval_ms = 0",
            "update zart_queue_limits set key_rate_limit = 1",
            "update zart_start_keys set debounce = 2",
        ] {
            let err = conn.execute(bad, []).unwrap_err().to_string();
            assert!(err.contains("CHECK constraint failed"), "{bad}: {err}");
        }
    }
}
