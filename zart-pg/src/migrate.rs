//! `zart migrate`: applies the V-migrations (refinery) and then the functions in `sql/`, under
//! a session-level advisory lock, so running it twice or from two processes at once is safe.

use std::borrow::Cow;

use zart::Error;

use crate::queries;
use crate::tls::Tls;
use crate::PgPool;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The functions file, applied after the migrations on every run (CREATE OR REPLACE).
pub const FUNCTIONS_SQL: &str = include_str!("../sql/zart.sql");

/// The roles and privileges file, applied after [`FUNCTIONS_SQL`] in the same transaction on
/// every run: the one place the grants of `zart_worker`, `zart_client` and `zart_reader` are set.
pub const ROLES_SQL: &str = include_str!("../sql/roles.sql");

/// The Citus step, applied after [`ROLES_SQL`] in a transaction of its own, and only when the
/// database has the `citus` extension: distributes the bucketed tables by bucket and makes the
/// shared ones reference tables (docs/scale.md).
pub const CITUS_SQL: &str = include_str!("../sql/citus.sql");

/// The schema version this build needs (`zart_schema_version()` in `sql/zart.sql`).
pub const REQUIRED_SCHEMA_VERSION: i32 = 13;

/// The table refinery records applied migrations in.
pub const HISTORY_TABLE: &str = "zart_schema_history";

/// The names of every V-migration this build carries (`V1__init`, ...), in order.
pub fn migration_names() -> Vec<String> {
    ordered_migrations().iter().map(|m| m.to_string()).collect()
}

/// The embedded V-migrations by version (as text, "V10__.." would sort before "V2__..").
fn ordered_migrations() -> Vec<refinery::Migration> {
    let mut migrations = embedded::migrations::runner().get_migrations().clone();
    migrations.sort_by_key(|m| m.version());
    migrations
}

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Names of the V-migrations applied by this run (empty when up to date).
    pub applied: Vec<String>,
    /// The schema version now installed.
    pub schema_version: i32,
}

/// Where [`migrate`] connects: a [`PgPool`]'s settings, TLS checks included (`&pool`), or a
/// bare driver configuration (`&config`), whose `sslmode` can only say `disable`, `prefer` or
/// `require` and never checks the certificate.
#[derive(Debug, Clone)]
pub struct MigrateTarget<'a> {
    config: &'a tokio_postgres::Config,
    tls: Option<Cow<'a, Tls>>,
}

impl<'a> From<&'a PgPool> for MigrateTarget<'a> {
    fn from(pool: &'a PgPool) -> Self {
        MigrateTarget {
            config: pool.config(),
            tls: Some(Cow::Borrowed(pool.tls())),
        }
    }
}

impl<'a> From<&'a tokio_postgres::Config> for MigrateTarget<'a> {
    fn from(config: &'a tokio_postgres::Config) -> Self {
        MigrateTarget { config, tls: None }
    }
}

/// Applies every pending migration, then [`FUNCTIONS_SQL`] and [`ROLES_SQL`], to the database
/// of `target` (a [`PgPool`] or a `tokio_postgres::Config`), on a connection of its own.
///
/// # Errors
/// [`Error::Unavailable`] when the server cannot be reached; [`Error::Database`] saying "TLS
/// handshake failed" and why when TLS is refused; [`Error::Database`] with the server's message
/// (the whole source chain) when a migration fails.
pub async fn migrate<'a>(target: impl Into<MigrateTarget<'a>>) -> Result<MigrationReport, Error> {
    let (mut client, conn_task) = connect(target.into(), "migrate").await?;
    let result = migrate_locked(&mut client).await;
    drop(client);
    let _ = conn_task.await;
    result
}

/// Opens the connection of `target` and drives it on a task of its own.
async fn connect(
    target: MigrateTarget<'_>,
    what: &'static str,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), Error> {
    let tls = match target.tls {
        Some(tls) => tls,
        None => Cow::Owned(Tls::from_config(target.config)?),
    };
    let (client, connection) = target
        .config
        .connect(tls.connector())
        .await
        .map_err(|e| crate::errors::from_pg(e, crate::errors::Call::new(what)))?;
    let conn_task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, conn_task))
}

/// A V-migration that [`migrate`] would apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMigration {
    /// Its name (`V5__retention`).
    pub name: String,
    /// Its SQL, as embedded in this build.
    pub sql: String,
}

/// What [`migrate`] would run on a database now: the pending V-migrations, then
/// [`FUNCTIONS_SQL`] and [`ROLES_SQL`] (applied on every run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationPlan {
    /// The V-migrations not recorded in [`HISTORY_TABLE`], in order.
    pub pending: Vec<PendingMigration>,
}

impl MigrationPlan {
    /// The SQL [`migrate`] would run, in order, each part under a comment naming it; refinery's
    /// own bookkeeping (creating [`HISTORY_TABLE`] and recording each migration) is left out.
    pub fn sql(&self) -> String {
        let mut out = String::new();
        for m in &self.pending {
            out.push_str(&format!("-- ==== migration {} ====\n", m.name));
            out.push_str(m.sql.trim_end());
            out.push_str("\n\n");
        }
        out.push_str("-- ==== sql/zart.sql (every run) ====\n");
        out.push_str(FUNCTIONS_SQL.trim_end());
        out.push_str("\n\n-- ==== sql/roles.sql (every run) ====\n");
        out.push_str(ROLES_SQL.trim_end());
        out.push_str(
            "\n\n-- ==== sql/citus.sql (every run, only where the citus extension is) ====\n",
        );
        out.push_str(CITUS_SQL.trim_end());
        out.push('\n');
        out
    }
}

/// Works out what [`migrate`] would run on the database of `target`, changing nothing.
///
/// # Errors
/// As [`migrate`] when the server cannot be reached; [`Error::Database`] when the history
/// table cannot be read.
pub async fn migration_plan<'a>(
    target: impl Into<MigrateTarget<'a>>,
) -> Result<MigrationPlan, Error> {
    let call = crate::errors::Call::new("reading the migration history");
    let (client, conn_task) = connect(target.into(), "reading the migration history").await?;
    let result = async {
        let exists: bool = client
            .query_one(queries::HISTORY_EXISTS, &[])
            .await
            .map_err(|e| crate::errors::from_pg(e, call))?
            .try_get(0)
            .map_err(|e| crate::errors::from_pg(e, call))?;
        let mut applied = std::collections::HashSet::new();
        if exists {
            for row in client
                .query(queries::APPLIED_MIGRATIONS, &[])
                .await
                .map_err(|e| crate::errors::from_pg(e, call))?
            {
                let version: i32 = row
                    .try_get(1)
                    .map_err(|e| crate::errors::from_pg(e, call))?;
                applied.insert(i64::from(version));
            }
        }
        let pending = ordered_migrations()
            .iter()
            .filter(|m| !applied.contains(&i64::from(m.version())))
            .map(|m| PendingMigration {
                name: m.to_string(),
                sql: m.sql().unwrap_or_default().to_owned(),
            })
            .collect();
        Ok(MigrationPlan { pending })
    }
    .await;
    drop(client);
    let _ = conn_task.await;
    result
}

async fn migrate_locked(client: &mut tokio_postgres::Client) -> Result<MigrationReport, Error> {
    let call = crate::errors::Call::new("migrate");
    client
        .batch_execute(queries::MIGRATE_LOCK)
        .await
        .map_err(|e| crate::errors::from_pg(e, call))?;
    let result = apply(client).await;
    // The lock is session-level; closing the connection would release it too.
    let _ = client.batch_execute(queries::MIGRATE_UNLOCK).await;
    result
}

async fn apply(client: &mut tokio_postgres::Client) -> Result<MigrationReport, Error> {
    let call = crate::errors::Call::new("migrate");
    let report = embedded::migrations::runner()
        .set_migration_table_name(HISTORY_TABLE)
        .run_async(client)
        .await
        .map_err(|e| Error::Database {
            message: format!(
                "migration failed: {}",
                zart::error::error_chain(&e as &(dyn std::error::Error + 'static))
            ),
            source: Some(Box::new(e)),
        })?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| crate::errors::from_pg(e, call))?;
    tx.batch_execute(FUNCTIONS_SQL).await.map_err(|e| {
        crate::errors::from_pg(e, crate::errors::Call::new("installing sql/zart.sql"))
    })?;
    tx.batch_execute(ROLES_SQL).await.map_err(|e| {
        crate::errors::from_pg(e, crate::errors::Call::new("installing sql/roles.sql"))
    })?;
    let version: i32 = tx
        .query_one(queries::SCHEMA_VERSION, &[])
        .await
        .map_err(|e| crate::errors::from_pg(e, call))?
        .get(0);
    let citus: bool = tx
        .query_one(queries::HAS_CITUS, &[])
        .await
        .map_err(|e| crate::errors::from_pg(e, call))?
        .get(0);
    tx.commit()
        .await
        .map_err(|e| crate::errors::from_pg(e, call))?;
    if citus {
        // A transaction of its own: distributing a table copies its rows to the shards, and
        // the functions above must be in place (and committed) first.
        let tx = client
            .transaction()
            .await
            .map_err(|e| crate::errors::from_pg(e, call))?;
        tx.batch_execute(CITUS_SQL).await.map_err(|e| {
            crate::errors::from_pg(e, crate::errors::Call::new("installing sql/citus.sql"))
        })?;
        tx.commit()
            .await
            .map_err(|e| crate::errors::from_pg(e, call))?;
    }
    Ok(MigrationReport {
        applied: report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect(),
        schema_version: version,
    })
}
