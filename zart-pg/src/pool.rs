//! [`PgPool`]: a deadpool-postgres pool that remembers its connection settings, so the
//! scheduler can open its dedicated LISTEN connection outside the pool.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use zart::Error;

/// Default largest number of pooled connections.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// A connection pool plus the settings it connects with.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
    config: tokio_postgres::Config,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl PgPool {
    /// Parses `url` (`postgres://user:pass@host:port/db`), builds a pool of
    /// [`DEFAULT_POOL_SIZE`] connections and opens one to check the server is reachable.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed URL; [`Error::Unavailable`] when the server
    /// cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let pool = PgPool::connect_lazy(url, DEFAULT_POOL_SIZE)?;
        let _connection = pool.pool.get().await.map_err(|e| {
            crate::errors::from_pool(e, crate::errors::Call::new("connecting to PostgreSQL"))
        })?;
        Ok(pool)
    }

    /// Like [`PgPool::connect`] with a pool of `max_size`, without connecting yet.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed URL.
    pub fn connect_lazy(url: &str, max_size: usize) -> Result<Self, Error> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            Error::invalid(
                "database url",
                format!("{e} (expected postgres://user:password@host:port/database)"),
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("zart");
        }
        PgPool::from_config(config, max_size)
    }

    /// A pool over an already-built configuration.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the pool cannot be built.
    pub fn from_config(config: tokio_postgres::Config, max_size: usize) -> Result<Self, Error> {
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| Error::invalid("pool", e.to_string()))?;
        Ok(PgPool { pool, config })
    }

    /// The deadpool pool, for your own queries.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The connection settings.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}
