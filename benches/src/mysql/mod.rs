//! The parts of `zart-load-mysql`, the MySQL/MariaDB load driver: the server and a scratch
//! database on it ([`Server`], [`Scratch`]), the raw mysql_async baselines (M0, M1, MB in
//! [`raw`]), drains (Q2, Q3 in [`drain`]), the worker process of Q4x and Q6x ([`child`]), an
//! idle worker's cost (Q6, Q6x in [`idle`]) and the relay that counts a scheduler's statements
//! ([`meter`]). The backend-neutral phases (pickup sampling, the drain loop, the worker
//! process's protocol) are in [`crate::common`].
//!
//! Every connection, raw or Zart's, comes from [`zart_mysql::pool_for`], so it has the
//! session Zart sets: READ COMMITTED, UTC, utf8mb4; the server's own settings
//! (`innodb_flush_log_at_trx_commit`, `sync_binlog`, ...) are whatever the server runs with,
//! and are printed with the report.

pub mod child;
pub mod drain;
pub mod idle;
pub mod meter;
pub mod raw;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolOpts};
use serde::Serialize;
use zart_mysql::{MySqlOptions, MySqlScheduler};

/// The server used when neither `--url` nor `ZART_MYSQL_URL` names one.
pub const DEFAULT_SERVER: &str = "mysql://root@127.0.0.1:3306";

/// How long connecting to the server may take before the run is refused.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A server URL, split so a database can be put in it and its address swapped.
#[derive(Debug, Clone)]
pub struct Server {
    /// `mysql://` or `mariadb://`.
    scheme: String,
    /// `user:password@` or empty.
    userinfo: String,
    /// `host:port` (or `host`, or `[v6]:port`).
    hostport: String,
    /// The query string without `?`, if any.
    query: Option<String>,
    /// The host connections go to.
    host: String,
    /// The port connections go to.
    port: u16,
}

impl Server {
    /// Parses `url` (`mysql://user:password@host:port[/database][?options]`, or `mariadb://`);
    /// a database in it is ignored: the run makes its own.
    ///
    /// # Errors
    /// When it is not such a URL.
    pub fn parse(url: &str) -> Result<Server> {
        let (scheme, rest) = ["mysql://", "mariadb://"]
            .iter()
            .find_map(|s| url.strip_prefix(s).map(|rest| ((*s).to_owned(), rest)))
            .ok_or_else(|| {
                anyhow!("the server URL must be mysql://user:password@host:port (or mariadb://)")
            })?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, q)) => (rest, Some(q.to_owned())),
            None => (rest, None),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((user, host)) => (format!("{user}@"), host.to_owned()),
            None => (String::new(), authority.to_owned()),
        };
        let opts = Opts::from_url(&format!("mysql://{authority}"))
            .context("the server URL does not parse")?;
        Ok(Server {
            scheme,
            userinfo,
            hostport,
            query,
            host: opts.ip_or_hostname().to_owned(),
            port: opts.tcp_port(),
        })
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        self.url_at(&self.hostport, db, None)
    }

    /// The URL of database `db` reached through `127.0.0.1:port` (a [`meter::Meter`]) over
    /// TCP only (`prefer_socket=false`: mysql_async would otherwise switch a loopback
    /// connection to the server's Unix socket, around the relay).
    pub fn url_via(&self, port: u16, db: &str) -> String {
        self.url_at(
            &format!("127.0.0.1:{port}"),
            db,
            Some("prefer_socket=false"),
        )
    }

    fn url_at(&self, hostport: &str, db: &str, extra: Option<&str>) -> String {
        let relayed = extra.is_some();
        let query: Vec<&str> = self
            .query
            .as_deref()
            .into_iter()
            .flat_map(|q| q.split('&'))
            // Through the relay, no option may send the connection around it.
            .filter(|p| {
                !p.is_empty()
                    && !(relayed && (p.starts_with("socket=") || p.starts_with("prefer_socket=")))
            })
            .chain(extra)
            .collect();
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        format!("{}{}{hostport}/{db}{query}", self.scheme, self.userinfo)
    }

    /// `host:port` the server listens on, for the relay to connect to.
    pub fn address(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }

    /// The URL without its password, for messages.
    pub fn display(&self) -> String {
        let user = self
            .userinfo
            .trim_end_matches('@')
            .split(':')
            .next()
            .unwrap_or_default();
        let user = if user.is_empty() {
            String::new()
        } else {
            format!("{user}@")
        };
        format!("{}{user}{}", self.scheme, self.hostport)
    }

    /// A pool on the server without a database (for creating and dropping the scratch one
    /// and reading server-wide settings and counters).
    fn admin_pool(&self) -> Result<Pool> {
        let url = self
            .url_at(&self.hostport, "", None)
            .replacen(&self.scheme, "mysql://", 1);
        let opts = Opts::from_url(&url).context("the server URL does not parse")?;
        // No reset when a connection goes back: it would be one more command per reading.
        let opts = OptsBuilder::from_opts(opts)
            .pool_opts(PoolOpts::default().with_reset_connection(false));
        Ok(Pool::new(opts))
    }
}

/// The server's version and the settings that decide what a commit costs.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    /// `version()`.
    pub version: String,
    /// `innodb_flush_log_at_trx_commit` (1: the redo log is flushed at every commit).
    pub innodb_flush_log_at_trx_commit: String,
    /// `sync_binlog` (1: the binary log is flushed at every commit; 0: by the OS).
    pub sync_binlog: String,
    /// Whether the binary log is on (`log_bin`).
    pub binlog: bool,
    /// `binlog_format`.
    pub binlog_format: String,
    /// The server's default isolation level (sessions of Zart and of the baselines set READ
    /// COMMITTED).
    pub global_isolation: String,
    /// The isolation level of the baselines' and Zart's sessions, as read on one.
    pub session_isolation: String,
}

impl std::fmt::Display for ServerInfo {
    /// `10.11.19-MariaDB | innodb_flush_log_at_trx_commit=1, sync_binlog=0, binlog off, ...`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} | innodb_flush_log_at_trx_commit={}, sync_binlog={}, binlog {}, \
             isolation {} (sessions: {})",
            self.version,
            self.innodb_flush_log_at_trx_commit,
            self.sync_binlog,
            if self.binlog {
                format!("on ({})", self.binlog_format)
            } else {
                "off".to_owned()
            },
            self.global_isolation,
            self.session_isolation,
        )
    }
}

/// A database created for one run, `zart_load_<pid>_<nanos>`, dropped by [`Scratch::run`].
#[derive(Debug)]
pub struct Scratch {
    server: Server,
    admin: Pool,
    name: String,
}

impl Scratch {
    /// Creates the scratch database on `server` (after checking the server answers).
    ///
    /// # Errors
    /// When no server answers within 10 s (with a message saying how to get one), or the
    /// database cannot be created.
    pub async fn create(server: &Server) -> Result<Scratch> {
        let admin = server.admin_pool()?;
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, admin.get_conn()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                let _ = admin.disconnect().await;
                bail!(
                    "no MySQL/MariaDB server answers at {} ({e}); start one (`eval \
                     \"$(ci/mariadb-up)\"` starts a throwaway MariaDB) and pass its URL with \
                     --url or ZART_MYSQL_URL",
                    server.display()
                )
            }
            Err(_) => {
                bail!(
                    "no MySQL/MariaDB server answered at {} within {CONNECT_TIMEOUT:?}; start \
                     one (`eval \"$(ci/mariadb-up)\"` starts a throwaway MariaDB) and pass its \
                     URL with --url or ZART_MYSQL_URL",
                    server.display()
                )
            }
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("zart_load_{}_{nanos}", std::process::id());
        conn.query_drop(format!("create database `{name}`"))
            .await
            .with_context(|| format!("creating the scratch database {name}"))?;
        drop(conn);
        Ok(Scratch {
            server: server.clone(),
            admin,
            name,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        self.server.url(&self.name)
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The server's version and settings, with the isolation of a session from
    /// [`zart_mysql::pool_for`] on the scratch database.
    ///
    /// # Errors
    /// When a read fails.
    pub async fn server_info(&self) -> Result<ServerInfo> {
        let mut conn = self.admin.get_conn().await?;
        let row: Option<(String, String, String, String, String)> = conn
            .query_first(
                "select version(), cast(@@innodb_flush_log_at_trx_commit as char),
                        cast(@@sync_binlog as char), cast(@@log_bin as char),
                        cast(@@global.binlog_format as char)",
            )
            .await
            .context("reading the server's settings")?;
        let (version, flush, sync_binlog, log_bin, binlog_format) =
            row.ok_or_else(|| anyhow!("the server sent no settings"))?;
        let variable = if version.to_ascii_lowercase().contains("mariadb") {
            "tx_isolation"
        } else {
            "transaction_isolation"
        };
        let global: Option<String> = conn
            .query_first(format!("select cast(@@global.{variable} as char)"))
            .await?;
        drop(conn);
        let pool = self.pool()?;
        let mut session_conn = pool.get_conn().await?;
        let session: Option<String> = session_conn
            .query_first(format!("select cast(@@session.{variable} as char)"))
            .await?;
        drop(session_conn);
        pool.disconnect().await?;
        Ok(ServerInfo {
            version,
            innodb_flush_log_at_trx_commit: flush,
            sync_binlog,
            binlog: matches!(log_bin.to_ascii_uppercase().as_str(), "1" | "ON"),
            binlog_format,
            global_isolation: global.unwrap_or_default(),
            session_isolation: session.unwrap_or_default(),
        })
    }

    /// A pool on the scratch database with Zart's session settings.
    ///
    /// # Errors
    /// When the URL does not parse.
    pub fn pool(&self) -> Result<Pool> {
        Ok(zart_mysql::pool_for(&self.url())?)
    }

    /// The server's `Questions` counter (statements the server ran for its clients, all of
    /// them: this reading counts too).
    ///
    /// # Errors
    /// When the read fails.
    pub async fn questions(&self) -> Result<u64> {
        let mut conn = self.admin.get_conn().await?;
        let row: Option<(String, String)> = conn
            .query_first("show global status like 'Questions'")
            .await?;
        let (_, value) = row.ok_or_else(|| anyhow!("the server has no Questions counter"))?;
        Ok(value.parse()?)
    }

    /// Runs `f` and drops the database afterwards, whether `f` succeeded, failed or was
    /// interrupted by Ctrl-C. `f`'s error comes first.
    ///
    /// # Errors
    /// `f`'s error, "interrupted", or the failure to drop the database.
    pub async fn run<'a, T, Fut>(&'a self, f: Fut) -> Result<T>
    where
        Fut: Future<Output = Result<T>> + 'a,
    {
        let result = tokio::select! {
            result = f => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        };
        let dropped = self.drop_database().await;
        match (result, dropped) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(d)) => Err(d),
            (Err(e), Ok(())) => Err(e),
            (Err(e), Err(d)) => Err(e.context(format!("and then failed to drop it: {d:#}"))),
        }
    }

    /// Drops the database (waiting up to 60 s), then closes the admin pool.
    ///
    /// # Errors
    /// When the drop fails.
    async fn drop_database(&self) -> Result<()> {
        let drop = async {
            let mut conn = self.admin.get_conn().await?;
            conn.query_drop(format!("drop database if exists `{}`", self.name))
                .await?;
            anyhow::Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(60), drop).await {
            Ok(r) => r.with_context(|| format!("dropping the scratch database {}", self.name)),
            Err(_) => bail!(
                "dropping the scratch database {} took over 60 s (drop it by hand)",
                self.name
            ),
        }
    }

    /// Closes the admin pool.
    pub async fn close(self) {
        let _ = self.admin.disconnect().await;
    }
}

/// A scheduler on `url` with default options.
///
/// # Errors
/// When the database cannot be reached or is not migrated.
pub async fn scheduler(url: &str) -> Result<Arc<MySqlScheduler>> {
    let scheduler = MySqlScheduler::connect_with(url, MySqlOptions::default())
        .await
        .context("connecting a scheduler to the scratch database")?;
    Ok(Arc::new(scheduler))
}

/// Closes `scheduler` (its writer, poller and pool) if this is its last handle; otherwise
/// only drops this one.
pub async fn close(scheduler: Arc<MySqlScheduler>) {
    if let Some(scheduler) = Arc::into_inner(scheduler) {
        scheduler.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_a_database_and_a_relay() -> Result<()> {
        let s = Server::parse("mysql://root:se%2Fcret@db.example:3307/app?socket=%2Fx")?;
        assert_eq!(
            s.url("zart_load_1"),
            "mysql://root:se%2Fcret@db.example:3307/zart_load_1?socket=%2Fx"
        );
        assert_eq!(
            s.url_via(4000, "d"),
            "mysql://root:se%2Fcret@127.0.0.1:4000/d?prefer_socket=false"
        );
        assert_eq!(s.address(), ("db.example".to_owned(), 3307));
        assert_eq!(s.display(), "mysql://root@db.example:3307");
        let s = Server::parse("mariadb://127.0.0.1")?;
        assert_eq!(s.url("d"), "mariadb://127.0.0.1/d");
        assert_eq!(s.address(), ("127.0.0.1".to_owned(), 3306));
        assert!(Server::parse("postgres://x").is_err());
        Ok(())
    }
}
