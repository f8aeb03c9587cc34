//! The schema: embedded SQL migrations (`migrations/V<n>__<name>.sql`), applied in order and
//! recorded in `zart_schema_history`, and the check that a database is migrated for this build.
//!
//! [`migrate`] holds the named lock `zart_migrate` (`GET_LOCK`) on its connection while it
//! runs, so two processes may run it at once: the second waits for the first, then finds
//! nothing to do. MySQL commits DDL at once, so each migration is recorded right after it
//! applies; a migration that fails part-way is reported with the statement that failed. A
//! database migrated by a newer Zart is refused, not touched.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use zart::Error;

use crate::errors::from_mysql;
use crate::ops::{first, p};
use crate::{clock, queries};

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version (the `n` of `V<n>__`).
    pub version: i64,
    /// Its name (`init`).
    pub name: &'static str,
    /// Its SQL: statements separated by lines holding only `;`.
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
        name: "audit_and_lists",
        sql: include_str!("../migrations/V2__audit_and_lists.sql"),
    },
];

/// The schema version this build writes and needs.
pub const SCHEMA_VERSION: i64 = 2;

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The migrations applied by this run (`V1__init`), empty when the schema was up to date.
    pub applied: Vec<String>,
    /// The schema version after the run.
    pub schema_version: i64,
}

/// Creates or upgrades the Zart tables in the database at `url`
/// (`mysql://user:password@host:3306/database`; the database must exist).
///
/// # Errors
/// [`Error::InvalidInput`] for a URL that is not `mysql://` or `mariadb://`;
/// [`Error::Unavailable`] when the server cannot be reached; [`Error::Database`] for a wrong
/// user or password, a missing database, a refused server setting, or a statement that failed;
/// [`Error::Contention`] when another migrator holds the lock for over a minute;
/// [`Error::Schema`] when the database was migrated by a newer Zart.
///
/// # Examples
/// ```no_run
/// # async fn example() -> Result<(), zart::Error> {
/// let report = zart_mysql::migrate("mysql://root@127.0.0.1:3306/app").await?;
/// println!("schema version {}", report.schema_version);
/// # Ok(()) }
/// ```
pub async fn migrate(url: &str) -> Result<MigrationReport, Error> {
    let pool = crate::server::pool_for(url)?;
    let result = async {
        let mut conn = pool
            .get_conn()
            .await
            .map_err(|e| from_mysql(e, &crate::server::describe(url)))?;
        crate::server::check(&mut conn).await?;
        let locked: Option<Option<i64>> = conn
            .query_first(queries::MIGRATION_LOCK)
            .await
            .map_err(|e| from_mysql(e, "taking the migration lock"))?;
        if locked.flatten() != Some(1) {
            return Err(Error::Contention {
                message: "another `zart migrate` held the lock zart_migrate for over a minute"
                    .to_owned(),
                source: None,
            });
        }
        let result = apply(&mut conn).await;
        let _ = conn.query_drop(queries::MIGRATION_UNLOCK).await;
        result
    }
    .await;
    let _ = pool.disconnect().await;
    result
}

async fn apply(conn: &mut Conn) -> Result<MigrationReport, Error> {
    conn.query_drop(queries::CREATE_SCHEMA_HISTORY)
        .await
        .map_err(|e| from_mysql(e, "creating zart_schema_history"))?;
    let found: i64 = first::<Option<i64>>(
        conn,
        queries::SCHEMA_VERSION,
        Vec::new(),
        "reading the schema version",
    )
    .await?
    .flatten()
    .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(newer(found));
    }
    let now = clock::format(clock::system_ms(std::time::SystemTime::now()));
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        let label = format!("V{}__{}", m.version, m.name);
        for statement in statements(m.sql) {
            conn.query_drop(statement)
                .await
                .map_err(|e| from_mysql(e, &format!("applying migration {label}")))?;
        }
        crate::ops::exec(
            conn,
            queries::RECORD_MIGRATION,
            p![m.version, m.name, now.as_str()],
            "recording a migration",
        )
        .await?;
        applied.push(label);
    }
    Ok(MigrationReport {
        applied,
        schema_version: SCHEMA_VERSION.max(found),
    })
}

/// The statements of a migration: split at lines holding only `;`, comments and blanks left
/// out.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        if line.trim() == ";" {
            out.push(std::mem::take(&mut current));
        } else if !line.trim_start().starts_with("--") {
            current.push_str(line);
            current.push('\n');
        }
    }
    out.push(current);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// Checks that the database on `conn` has this build's schema. Reads only.
pub(crate) async fn check(conn: &mut Conn) -> Result<(), Error> {
    match installed(conn).await? {
        None => Err(Error::Schema(
            "the Zart schema is missing from this database: run `zart migrate --database-url \
             mysql://...` first"
                .to_owned(),
        )),
        Some(v) if v < SCHEMA_VERSION => Err(Error::Schema(format!(
            "the Zart schema in this database is version {v}, but this build needs version \
             {SCHEMA_VERSION}: run `zart migrate --database-url mysql://...`"
        ))),
        Some(v) if v > SCHEMA_VERSION => Err(newer(v)),
        Some(_) => Ok(()),
    }
}

/// The schema version installed in the database, `None` when there is none.
pub(crate) async fn installed(conn: &mut Conn) -> Result<Option<i64>, Error> {
    let has_history: i64 = first::<i64>(
        conn,
        queries::HAS_SCHEMA_HISTORY,
        Vec::new(),
        "checking the schema",
    )
    .await?
    .unwrap_or(0);
    let found = if has_history == 0 {
        None
    } else {
        first::<Option<i64>>(
            conn,
            queries::SCHEMA_VERSION,
            Vec::new(),
            "checking the schema",
        )
        .await?
        .flatten()
    };
    Ok(found)
}

fn newer(found: i64) -> Error {
    Error::Schema(format!(
        "this database was migrated by a newer Zart (schema version {found}; this build knows \
         up to {SCHEMA_VERSION}): upgrade this program, or use another database"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_split_into_statements() {
        let parts = statements(MIGRATIONS[0].sql);
        assert_eq!(parts.len(), 9);
        assert!(parts
            .iter()
            .all(|s| s.trim_start().starts_with("create table")));
    }
}
