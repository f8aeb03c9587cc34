//! `zart doctor` on MySQL and MariaDB: whether a database and a login are ready for Zart.
//!
//! Reads only. [`doctor`] returns an error only when the server cannot be reached (or refuses
//! the login or the database); every other problem is a [`Check`] of the report with
//! [`Level::Fail`] or [`Level::Warn`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use zart::doctor::{clock_check, schema_check, Check, DoctorReport, Level};
use zart::Error;

use crate::errors::from_mysql;
use crate::schema::SCHEMA_VERSION;
use crate::{pool_for, server};

/// The login, the server's version and its clock (ms since the epoch, UTC).
const SESSION: &str = "select current_user(), version(),
    cast(floor(unix_timestamp(utc_timestamp(6)) * 1000) as signed)";
/// What a commit's durability depends on.
const DURABILITY: &str =
    "select cast(@@innodb_flush_log_at_trx_commit as char), cast(@@sync_binlog as char), @@log_bin";

/// Checks the database at `url` (`mysql://` or `mariadb://`): the server's version and the
/// settings Zart refuses (as a scheduler's start does), the schema version against this build,
/// the durability of a commit, and the clock difference between this machine and the server.
///
/// # Errors
/// [`Error::InvalidInput`] for a URL that is not `mysql://` or `mariadb://`;
/// [`Error::Unavailable`] when the server cannot be reached; [`Error::Database`] for a wrong
/// login or a missing database.
pub async fn doctor(url: &str) -> Result<DoctorReport, Error> {
    let pool = pool_for(url)?;
    let checked = run(&pool, url).await;
    let _ = pool.disconnect().await;
    checked
}

async fn run(pool: &mysql_async::Pool, url: &str) -> Result<DoctorReport, Error> {
    let mut conn = pool
        .get_conn()
        .await
        .map_err(|e| from_mysql(e, &server::describe(url)))?;
    let mut checks = Vec::new();
    let sent = SystemTime::now();
    let started = Instant::now();
    let (user, version, server_ms): (String, String, i64) = conn
        .query_first(SESSION)
        .await
        .map_err(|e| from_mysql(e, "zart doctor"))?
        .ok_or_else(|| crate::errors::internal("zart doctor: the server sent no session row"))?;
    let round_trip = started.elapsed();
    checks.push(match server::check(&mut conn).await {
        Ok(()) => Check::new(
            "server",
            Level::Ok,
            format!(
                "{version}, connected as {user}, round trip {} ms; version, binlog format, \
                 storage engine and isolation as Zart needs",
                round_trip.as_millis()
            ),
        ),
        Err(err) => Check::new(
            "server",
            Level::Fail,
            format!(
                "{version}, connected as {user}: {}",
                zart::error::error_chain(&err)
            ),
        ),
    });
    let installed = crate::schema::installed(&mut conn).await?;
    checks.push(schema_check(installed, SCHEMA_VERSION));
    let (flush, sync_binlog, log_bin): (String, String, i64) = conn
        .query_first(DURABILITY)
        .await
        .map_err(|e| from_mysql(e, "zart doctor"))?
        .ok_or_else(|| crate::errors::internal("zart doctor: the server sent no settings"))?;
    checks.push(durability_check(&flush, &sync_binlog, log_bin != 0));
    let server_time = UNIX_EPOCH + Duration::from_millis(u64::try_from(server_ms).unwrap_or(0));
    checks.push(clock_check(sent, round_trip, server_time));
    drop(conn);
    Ok(DoctorReport::new(checks))
}

/// Warns when the server may lose commits it acknowledged (a step a worker was told is
/// recorded could vanish in a crash while the execution went on past it).
fn durability_check(flush: &str, sync_binlog: &str, log_bin: bool) -> Check {
    let mut lost = Vec::new();
    if flush != "1" {
        lost.push(format!(
            "innodb_flush_log_at_trx_commit is {flush} (the redo log is not flushed at every \
             commit)"
        ));
    }
    if log_bin && sync_binlog != "1" {
        lost.push(format!(
            "sync_binlog is {sync_binlog} with the binary log on (a replica or a point-in-time \
             restore can miss commits the primary acknowledged)"
        ));
    }
    let settings = format!(
        "innodb_flush_log_at_trx_commit {flush}, sync_binlog {sync_binlog}, binary log {}",
        if log_bin { "on" } else { "off" }
    );
    zart::doctor::durability_check(settings, &lost, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_warns_on_a_lazy_flush_and_an_unsynced_binlog() {
        assert_eq!(durability_check("1", "0", false).level, Level::Ok);
        assert_eq!(durability_check("1", "1", true).level, Level::Ok);
        let lazy = durability_check("2", "0", false);
        assert_eq!(lazy.level, Level::Warn);
        assert!(lazy.detail.contains("innodb_flush_log_at_trx_commit is 2"));
        let binlog = durability_check("1", "0", true);
        assert_eq!(binlog.level, Level::Warn);
        assert!(binlog.detail.contains("sync_binlog is 0"));
    }
}
