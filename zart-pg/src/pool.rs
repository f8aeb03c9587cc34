//! [`PgPool`]: a deadpool-postgres pool that remembers its connection settings, TLS included,
//! so the scheduler's dedicated LISTEN connection and `zart migrate` connect as the pool does;
//! and, optionally, another address for the LISTEN connection alone
//! ([`PgPool::with_listen_url`], [`LISTEN_URL_ENV`]), for pools behind a transaction-mode
//! pooler, which cannot carry LISTEN.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use zart::Error;

use crate::tls::{self, Tls};

/// Default largest number of pooled connections.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// The environment variable [`PgPool::connect`] and [`PgPool::connect_lazy`] read a LISTEN
/// URL from when it is set and not empty (see [`PgPool::with_listen_url`]).
pub const LISTEN_URL_ENV: &str = "ZART_LISTEN_URL";

/// A connection pool plus the settings it connects with.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: Tls,
    /// Where the LISTEN connection goes, when not where the pool goes.
    listen: Option<Arc<(tokio_postgres::Config, Tls)>>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("status", &self.pool.status())
            .field("sslmode", &self.tls.mode())
            .field("separate_listen_url", &self.listen.is_some())
            .finish()
    }
}

impl PgPool {
    /// Parses `url` (`postgres://user:pass@host:port/db`, with `?sslmode=...&sslrootcert=...`
    /// for TLS as `docs/tls.md` describes), builds a pool of [`DEFAULT_POOL_SIZE`] connections
    /// and opens one to check the server is reachable. The LISTEN connection goes to
    /// [`LISTEN_URL_ENV`] when that is set, else to `url`.
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
    /// [`Error::InvalidInput`] for a malformed URL (or [`LISTEN_URL_ENV`]), an unknown
    /// `sslmode` or an unusable `sslrootcert`.
    pub fn connect_lazy(url: &str, max_size: usize) -> Result<Self, Error> {
        let (config, tls) = parse_url(url, "zart")?;
        let pool = PgPool::with_tls(config, tls, max_size)?;
        match std::env::var(LISTEN_URL_ENV) {
            Ok(listen) if !listen.trim().is_empty() => pool.with_listen_url(listen.trim()),
            _ => Ok(pool),
        }
    }

    /// Sends the scheduler's LISTEN connection (and `zart doctor`'s LISTEN check) to `url`
    /// instead of the pool's address; the pool's connections are unchanged.
    ///
    /// Behind a pooler in transaction mode (PgBouncer's `pool_mode = transaction`), LISTEN
    /// cannot work: the server connection that ran it goes back to the pooler's pool, and
    /// notifications sent to it never reach this process. Point `url` at the server itself
    /// (or at a session-mode pool) and keep the pool on the pooler. A LISTEN connection that
    /// does not receive notifications is reported at start with a warning (see
    /// [`crate::PostgresScheduler::notifications_delivered`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed URL, an unknown `sslmode` or an unusable
    /// `sslrootcert`.
    ///
    /// # Examples
    /// ```no_run
    /// # fn example() -> Result<(), zart::Error> {
    /// let pool = zart_pg::PgPool::connect_lazy("postgres://app@pgbouncer:6432/app", 16)?
    ///     .with_listen_url("postgres://app@db-primary:5432/app")?;
    /// # Ok(()) }
    /// ```
    pub fn with_listen_url(mut self, url: &str) -> Result<Self, Error> {
        let (mut config, tls) = parse_url(url, "zart-listen")?;
        tls.apply(&mut config);
        self.listen = Some(Arc::new((config, tls)));
        Ok(self)
    }

    /// Where the LISTEN connection goes: the listen URL's settings if one was given, else the
    /// pool's.
    pub fn listen_config(&self) -> (&tokio_postgres::Config, &Tls) {
        match &self.listen {
            Some(listen) => (&listen.0, &listen.1),
            None => (&self.config, &self.tls),
        }
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
        Ok(PgPool {
            pool: build_pool(&config, &tls, max_size, DEFAULT_WAIT_TIMEOUT)?,
            config,
            tls,
            listen: None,
        })
    }

    /// The same pool (not connected yet), whose callers wait at most `wait` for a connection
    /// to come free when every one is in use, and then fail with [`Error::Unavailable`]
    /// saying the pool is exhausted. Default [`DEFAULT_WAIT_TIMEOUT`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the pool cannot be built.
    pub fn with_wait_timeout(mut self, wait: Duration) -> Result<Self, Error> {
        let max_size = self.pool.status().max_size;
        self.pool = build_pool(&self.config, &self.tls, max_size, wait)?;
        Ok(self)
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

/// How long a caller waits for a pooled connection when all are in use, unless
/// [`PgPool::with_wait_timeout`] says otherwise.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

fn build_pool(
    config: &tokio_postgres::Config,
    tls: &Tls,
    max_size: usize,
    wait: Duration,
) -> Result<Pool, Error> {
    let manager = Manager::from_config(
        config.clone(),
        tls.connector(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(Duration::from_secs(10)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| Error::invalid("pool", e.to_string()))
}

/// A URL's settings with Zart's defaults: a 10 s connect timeout and `application_name`.
fn parse_url(url: &str, application: &str) -> Result<(tokio_postgres::Config, Tls), Error> {
    let (mut config, tls) = tls::split_url(url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name(application);
    }
    Ok((config, tls))
}
