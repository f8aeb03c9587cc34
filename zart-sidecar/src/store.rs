//! Opening the database a URL names: zart-pg, zart-sqlite or zart-mysql by the scheme, migrated on request,
//! retried while unreachable up to `ZART_CONNECT_TIMEOUT`, and checked against the schema.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use zart::admin::Admin;
use zart::scheduler::DynScheduler;
use zart::{Backoff, Error, Scheduler};
use zart_mysql::MySqlScheduler;
use zart_pg::{PgPool, PostgresScheduler};
use zart_sqlite::SqliteScheduler;

use crate::exit::{self, Exit};
use crate::settings::{Backend, Settings};

/// The opened backend, as the worker sees it and as the statistics reader sees it.
pub(crate) struct Store {
    pub(crate) scheduler: DynScheduler,
    pub(crate) admin: Arc<dyn Admin>,
}

/// Opens the backend of `settings`, migrates it if asked, and checks its schema.
pub(crate) async fn open(settings: &Settings, backend: Backend) -> Result<Store, Exit> {
    let deadline = Instant::now() + settings.connect_timeout;
    let url = settings.database_url.as_str();
    match backend {
        Backend::Postgres => {
            let pool = PgPool::connect_lazy(url, settings.pool_size)
                .map_err(|e| Exit::new(exit::CONFIG, format!("invalid DATABASE_URL: {e}")))?;
            let pg = Arc::new(PostgresScheduler::new(pool));
            if settings.migrate {
                let report = retry(deadline, settings, || zart_pg::migrate(pg.pool())).await?;
                tracing::info!(
                    applied = ?report.applied,
                    schema_version = report.schema_version,
                    "migrated the database"
                );
            }
            retry(deadline, settings, || pg.check_schema()).await?;
            Ok(Store {
                scheduler: pg.clone(),
                admin: pg,
            })
        }
        Backend::Sqlite => {
            if settings.migrate {
                let report = retry(deadline, settings, || zart_sqlite::migrate(url)).await?;
                tracing::info!(
                    applied = ?report.applied,
                    schema_version = report.schema_version,
                    "migrated the database"
                );
            }
            let sqlite =
                Arc::new(retry(deadline, settings, || SqliteScheduler::connect(url)).await?);
            retry(deadline, settings, || sqlite.check_schema()).await?;
            Ok(Store {
                scheduler: sqlite.clone(),
                admin: sqlite,
            })
        }
        Backend::MySql => {
            if settings.migrate {
                let report = retry(deadline, settings, || zart_mysql::migrate(url)).await?;
                tracing::info!(
                    applied = ?report.applied,
                    schema_version = report.schema_version,
                    "migrated the database"
                );
            }
            let mysql = Arc::new(retry(deadline, settings, || MySqlScheduler::connect(url)).await?);
            retry(deadline, settings, || mysql.check_schema()).await?;
            Ok(Store {
                scheduler: mysql.clone(),
                admin: mysql,
            })
        }
    }
}

/// Calls `f` until it succeeds, retrying transient errors with back-off until `deadline`.
async fn retry<T, F, Fut>(deadline: Instant, settings: &Settings, mut f: F) -> Result<T, Exit>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut backoff = Backoff::new();
    loop {
        match f().await {
            Ok(value) => return Ok(value),
            Err(err) if err.is_transient() => {
                let delay = backoff.next();
                if Instant::now() + delay >= deadline {
                    return Err(Exit::new(
                        exit::UNAVAILABLE,
                        format!(
                            "the database could not be reached within ZART_CONNECT_TIMEOUT ({:?}): {}",
                            settings.connect_timeout,
                            zart::error::error_chain(&err)
                        ),
                    ));
                }
                tracing::warn!(
                    error = %zart::error::error_chain(&err),
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot reach the database; retrying"
                );
                tokio::time::sleep(delay).await;
            }
            Err(err) => return Err(exit_for(&err)),
        }
    }
}

/// The exit for an error at start.
pub(crate) fn exit_for(err: &Error) -> Exit {
    let message = zart::error::error_chain(err);
    match err {
        Error::Schema(_) => Exit::new(exit::SCHEMA, message),
        Error::InvalidInput { .. } => Exit::new(exit::CONFIG, message),
        _ => Exit::new(
            exit::UNAVAILABLE,
            format!("the database refused the sidecar: {message}"),
        ),
    }
}
