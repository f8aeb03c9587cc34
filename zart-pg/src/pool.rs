//! [`PgPool`]: a deadpool-postgres pool that remembers its connection settings, TLS included,
//! so the scheduler's dedicated LISTEN connection and `zart migrate` connect as the pool does.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use zart::Error;

use crate::tls::{self, Tls};

/// Default largest number of pooled connections.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// A connection pool plus the settings it connects with.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: Tls,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("status", &self.pool.status())
            .field("sslmode", &self.tls.mode())
            .finish()
    }
}

impl PgPool {
    /// Parses `url` (`postgres://user:pass@host:port/db`, with `?sslmode=...&sslrootcert=...`
    /// for TLS as `docs/tls.md` describes), builds a pool of [`DEFAULT_POOL_SIZE`] connections
    /// and opens one to check the server is reachable.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed URL, an unknown `sslmode` or an unusable
    /// `sslrootcert`; [`Error::Unavailable`] when the server cannot be reached;
    /// [`Error::Database`] saying "TLS handshake failed" and why when the server's certificate
    /// is refused or the server offers no TLS under `require` or stricter.
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
    /// [`Error::InvalidInput`] for a malformed URL, an unknown `sslmode` or an unusable
    /// `sslrootcert`.
    pub fn connect_lazy(url: &str, max_size: usize) -> Result<Self, Error> {
        let (mut config, tls) = tls::split_url(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("zart");
        }
        PgPool::with_tls(config, tls, max_size)
    }

    /// A pool over an already-built configuration, with TLS as its `sslmode` says (`disable`,
    /// `prefer` or `require`, without a certificate check: a driver configuration cannot say
    /// more; use [`PgPool::with_tls`] to verify the server).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the pool cannot be built.
    pub fn from_config(config: tokio_postgres::Config, max_size: usize) -> Result<Self, Error> {
        let tls = Tls::from_config(&config)?;
        PgPool::with_tls(config, tls, max_size)
    }

    /// A pool over an already-built configuration and TLS settings (the configuration's own
    /// `sslmode` is replaced by the one of `tls`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the pool cannot be built.
    pub fn with_tls(
        mut config: tokio_postgres::Config,
        tls: Tls,
        max_size: usize,
    ) -> Result<Self, Error> {
        tls.apply(&mut config);
        let manager = Manager::from_config(
            config.clone(),
            tls.connector(),
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
        Ok(PgPool { pool, config, tls })
    }

    /// The deadpool pool, for your own queries.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The connection settings (without the certificate checks: see [`PgPool::tls`]).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS settings every connection of this pool, its scheduler's LISTEN connection and
    /// [`crate::migrate`] use.
    pub fn tls(&self) -> &Tls {
        &self.tls
    }
}
