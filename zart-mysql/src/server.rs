//! Connecting: the URL, the pool with its session settings, and the checks that refuse a
//! server or setting that would break Zart's guarantees.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use zart::Error;

use crate::errors::from_mysql;
use crate::queries;

/// The pooled connections a scheduler keeps at most.
pub(crate) const MAX_CONNECTIONS: usize = 16;

/// Parses `url` (`mysql://` or `mariadb://`), refusing other schemes and URLs without a
/// database.
pub(crate) fn opts(url: &str) -> Result<Opts, Error> {
    let rest = url
        .strip_prefix("mysql://")
        .or_else(|| url.strip_prefix("mariadb://"))
        .ok_or_else(|| {
            Error::invalid(
                "database url",
                "expected mysql://user:password@host:port/database (or mariadb://...)",
            )
        })?;
    let opts = Opts::from_url(&format!("mysql://{rest}"))
        .map_err(|e| Error::invalid("database url", format!("{e}")))?;
    if opts.db_name().is_none_or(str::is_empty) {
        return Err(Error::invalid(
            "database url",
            "names no database: add it after the host (mysql://host:3306/app)",
        ));
    }
    Ok(opts)
}

/// A pool for `url`: READ COMMITTED, UTC and utf8mb4 on every connection (set once per
/// connection; the pool does not reset connections, so their prepared statements stay).
///
/// # Errors
/// [`Error::InvalidInput`] for a URL that is not `mysql://` or `mariadb://` or names no
/// database.
pub fn pool_for(url: &str) -> Result<Pool, Error> {
    let opts = opts(url)?;
    let constraints = PoolConstraints::new(0, MAX_CONNECTIONS)
        .ok_or_else(|| crate::errors::internal("bad pool constraints"))?;
    let builder = OptsBuilder::from_opts(opts)
        .setup(vec![queries::SESSION_ISOLATION, queries::SESSION_ZONE])
        .stmt_cache_size(256)
        .pool_opts(
            PoolOpts::default()
                .with_constraints(constraints)
                .with_reset_connection(false)
                .with_inactive_connection_ttl(Duration::from_secs(60)),
        );
    Ok(Pool::new(builder))
}

/// The user, host and database of `url`, for error messages (never the password).
pub(crate) fn describe(url: &str) -> String {
    match opts(url) {
        Ok(o) => format!(
            "connecting to database {:?} on {}:{} as user {:?}",
            o.db_name().unwrap_or_default(),
            o.ip_or_hostname(),
            o.tcp_port(),
            o.user().unwrap_or_default()
        ),
        Err(_) => "connecting".to_owned(),
    }
}

/// Refuses a server Zart cannot keep its guarantees on, naming the setting: older than
/// MariaDB 10.6 or MySQL 8.0 (no `SKIP LOCKED`), `binlog_format=STATEMENT` (unsafe for
/// `SKIP LOCKED` and `LIMIT` in updates), a default storage engine other than InnoDB, a
/// session not READ COMMITTED.
pub(crate) async fn check(conn: &mut Conn) -> Result<(), Error> {
    let row: Option<(String, Option<String>, String)> = conn
        .query_first(queries::SERVER_SETTINGS)
        .await
        .map_err(|e| from_mysql(e, "reading the server's settings"))?;
    let Some((version, binlog, engine)) = row else {
        return Err(crate::errors::internal("the server sent no settings"));
    };
    refuse_version(&version)?;
    if binlog
        .as_deref()
        .is_some_and(|b| b.eq_ignore_ascii_case("STATEMENT"))
    {
        return Err(setting(
            "binlog_format",
            "is STATEMENT: row locks with SKIP LOCKED are not replicated safely; set \
             binlog_format=ROW (or MIXED)",
        ));
    }
    if !engine.eq_ignore_ascii_case("InnoDB") {
        return Err(setting(
            "default_storage_engine",
            &format!("is {engine}: Zart needs InnoDB's transactions and row locks"),
        ));
    }
    let isolation_query = if version.to_ascii_lowercase().contains("mariadb") {
        queries::MARIADB_ISOLATION
    } else {
        queries::MYSQL_ISOLATION
    };
    let isolation: Option<String> = conn
        .query_first(isolation_query)
        .await
        .map_err(|e| from_mysql(e, "reading the session's isolation level"))?;
    let isolation = isolation.unwrap_or_default();
    if !isolation.eq_ignore_ascii_case("READ-COMMITTED") {
        return Err(setting(
            "transaction_isolation",
            &format!("is {isolation} for this session, not READ-COMMITTED"),
        ));
    }
    Ok(())
}

fn setting(name: &str, why: &str) -> Error {
    Error::Database {
        message: format!("server setting {name} {why}"),
        source: None,
    }
}

/// Refuses MariaDB before 10.6 and MySQL before 8.0 (from `version()`).
fn refuse_version(version: &str) -> Result<(), Error> {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    let ok = if mariadb {
        (major, minor) >= (10, 6)
    } else {
        major >= 8
    };
    if ok {
        return Ok(());
    }
    Err(setting(
        "version",
        &format!("is {version}: Zart needs MariaDB 10.6+ or MySQL 8.0+ (FOR UPDATE SKIP LOCKED)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked() {
        assert!(refuse_version("10.11.19-MariaDB-0+deb12u1").is_ok());
        assert!(refuse_version("10.6.1-MariaDB").is_ok());
        assert!(refuse_version("10.5.9-MariaDB").is_err());
        assert!(refuse_version("8.0.36").is_ok());
        assert!(refuse_version("5.7.44-log").is_err());
    }
}
