//! `zart doctor`: checks that a database and a login are ready for Zart, and says what is not.
//!
//! Every check reads only, except the LISTEN/NOTIFY probe, which sends one notification on the
//! channel `zart_probe` (the one every scheduler's listener checks itself with). [`doctor`]
//! returns an error only when the server cannot be reached or a catalog query fails; every
//! other problem is a [`Check`] with [`Level::Fail`] or [`Level::Warn`] in the report.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use postgres_types::Type;
use tokio_postgres::AsyncMessage;
use zart::Error;

use crate::errors::{from_pg, from_pool, Call};
use crate::{queries, PgPool, REQUIRED_SCHEMA_VERSION};

/// How long the LISTEN/NOTIFY probe waits for its notification.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(2);

pub use zart::doctor::CLOCK_SKEW_WARNING;

/// The entry points only a client calls (`zart_client`'s grants in `sql/roles.sql`; the ones
/// every role has, such as `zart_get_execution`, are left out).
pub const CLIENT_ENTRY_POINTS: &[&str] = &[
    "zart_start_execution",
    "zart_start",
    "zart_send_event",
    "zart_emit_event",
    "zart_cancel_execution",
    "zart_cancel",
    "zart_retry_execution",
    "zart_retry",
    "zart_schedule",
    "zart_pause_schedule",
    "zart_delete_schedule",
    "zart_set_queue_limits",
    "zart_audit_begin",
    "zart_audit_finish",
];

/// The entry points only a worker calls (`zart_worker`'s grants in `sql/roles.sql`).
pub const WORKER_ENTRY_POINTS: &[&str] = &[
    "zart_claim_tasks",
    "zart_commit_step",
    "zart_commit_steps",
    "zart_retry_step",
    "zart_complete_execution",
    "zart_complete_executions",
    "zart_heartbeat",
    "zart_release_tasks",
    "zart_claim_started",
    "zart_next_run_at",
    "zart_sleep",
    "zart_await_event",
    "zart_start_child",
    "zart_start_children",
    "zart_prune",
    "zart_claim_schedules",
    "zart_fire_schedule",
    "zart_next_schedule_at",
    "zart_worker_seen",
    "zart_worker_gone",
];

pub use zart::doctor::{Check, DoctorReport, Level};

/// Checks the database and login of `pool`: the schema version against this build, the Zart
/// roles the login is a member of and the entry points it may execute, the clock difference
/// between this machine and the server, and whether LISTEN/NOTIFY works through the
/// connection (it does not behind a transaction-mode pooler).
///
/// # Errors
/// [`Error::Unavailable`] when the server cannot be reached; [`Error::Database`] when a
/// catalog query fails.
pub async fn doctor(pool: &PgPool) -> Result<DoctorReport, Error> {
    let call = Call::new("zart doctor");
    let client = pool.pool().get().await.map_err(|e| from_pool(e, call))?;
    let mut checks = Vec::new();
    let pg = |e| from_pg(e, call);

    let sent = SystemTime::now();
    let started = Instant::now();
    let row = client.query_one(queries::SESSION, &[]).await.map_err(pg)?;
    let round_trip = started.elapsed();
    let user: String = row.try_get(0).map_err(pg)?;
    let superuser: Option<bool> = row.try_get(1).map_err(pg)?;
    let superuser = superuser.unwrap_or(false);
    let version: String = row.try_get(2).map_err(pg)?;
    let server_time: SystemTime = row.try_get(3).map_err(pg)?;
    checks.push(Check::new(
        "server",
        Level::Ok,
        format!(
            "PostgreSQL {version}, connected as {user}{}, round trip {} ms",
            if superuser { " (superuser)" } else { "" },
            round_trip.as_millis()
        ),
    ));

    let installed = client
        .query_opt(queries::INSTALLED_SCHEMA_VERSION, &[])
        .await
        .map_err(pg)?
        .map(|row| -> Result<(Option<i32>, bool), Error> {
            Ok((row.try_get(0).map_err(pg)?, row.try_get(1).map_err(pg)?))
        })
        .transpose()?;
    checks.push(match installed {
        Some((version, false)) => Check::new(
            "schema",
            Level::Fail,
            format!(
                "version {}, but {user} may not execute zart_schema_version(), which every \
                 Zart process calls at start: grant it a Zart role (docs/roles.md)",
                version.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
            ),
        ),
        Some((version, true)) => schema_check(version),
        None => schema_check(None),
    });

    let roles: Vec<String> = client
        .query(queries::ROLE_MEMBERSHIPS, &[])
        .await
        .map_err(pg)?
        .iter()
        .filter(|r| r.try_get::<_, bool>(1).unwrap_or(false))
        .filter_map(|r| r.try_get::<_, String>(0).ok())
        .collect();
    checks.push(if superuser {
        Check::new("roles", Level::Ok, format!("{user} is a superuser: every privilege"))
    } else if roles.is_empty() {
        Check::new(
            "roles",
            Level::Warn,
            format!("{user} is a member of no Zart role (zart_worker, zart_client, zart_reader): grant one (docs/roles.md)"),
        )
    } else {
        Check::new("roles", Level::Ok, format!("{user} is a member of {}", roles.join(", ")))
    });

    for (name, functions) in [
        ("client", CLIENT_ENTRY_POINTS),
        ("worker", WORKER_ENTRY_POINTS),
    ] {
        let names: Vec<&str> = functions.to_vec();
        let rows = client
            .query_typed(queries::FUNCTION_PRIVILEGES, &[(&names, Type::TEXT_ARRAY)])
            .await
            .map_err(pg)?;
        let allowed: Vec<String> = rows
            .iter()
            .filter(|r| r.try_get::<_, bool>(1).unwrap_or(false))
            .filter_map(|r| r.try_get::<_, String>(0).ok())
            .collect();
        let missing: Vec<&str> = functions
            .iter()
            .copied()
            .filter(|f| !allowed.iter().any(|a| a == f))
            .collect();
        checks.push(entry_point_check(name, &missing, functions.len()));
    }

    let can_read: bool = client
        .query_one(queries::CAN_READ_EXECUTIONS, &[])
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    checks.push(if can_read {
        Check::new(
            "reader",
            Level::Ok,
            "may read the tables (zart list, zart show)",
        )
    } else {
        Check::new(
            "reader",
            Level::Info,
            "may not read the tables: zart list and zart show need zart_reader",
        )
    });

    let durability = client
        .query_one(
            "select current_setting('synchronous_commit'), current_setting('fsync')",
            &[],
        )
        .await
        .map_err(pg)?;
    checks.push(durability_check(
        &durability.try_get::<_, String>(0).map_err(pg)?,
        &durability.try_get::<_, String>(1).map_err(pg)?,
    ));

    checks.push(zart::doctor::clock_check(sent, round_trip, server_time));
    drop(client);
    checks.push(notify_check(pool).await);
    Ok(DoctorReport::new(checks))
}

/// Warns when the server may lose commits it acknowledged: a step a worker was told is recorded
/// could then vanish in a crash while the execution went on past it.
fn durability_check(synchronous_commit: &str, fsync: &str) -> Check {
    let mut lost = Vec::new();
    if synchronous_commit == "off" {
        lost.push("synchronous_commit is off".to_owned());
    }
    if fsync == "off" {
        lost.push("fsync is off".to_owned());
    }
    zart::doctor::durability_check(
        format!("synchronous_commit {synchronous_commit}, fsync {fsync}"),
        &lost,
        "; Zart's guarantees need both on for the sessions of its roles (its claims turn \
         synchronous_commit off for themselves, which is safe)",
    )
}

fn schema_check(installed: Option<i32>) -> Check {
    zart::doctor::schema_check(installed.map(i64::from), i64::from(REQUIRED_SCHEMA_VERSION))
}

fn entry_point_check(name: &'static str, missing: &[&str], all: usize) -> Check {
    if missing.is_empty() {
        Check::new(
            name,
            Level::Ok,
            format!("may execute every {name} entry point"),
        )
    } else if missing.len() == all {
        Check::new(
            name,
            Level::Info,
            format!("may execute no {name} entry point (not a zart_{name} login)"),
        )
    } else {
        Check::new(
            name,
            Level::Warn,
            format!(
                "may not execute {}: grant zart_{name} (docs/roles.md)",
                missing.join(", ")
            ),
        )
    }
}

/// LISTENs on a dedicated connection (to the pool's listen URL, if it has one), NOTIFYs
/// through a pooled connection, and waits for the notification.
async fn notify_check(pool: &PgPool) -> Check {
    match notify_round_trip(pool).await {
        Ok(Some(took)) => Check::new(
            "notify",
            Level::Ok,
            format!(
                "LISTEN/NOTIFY works through this connection ({} ms)",
                took.as_millis()
            ),
        ),
        Ok(None) => Check::new(
            "notify",
            Level::Fail,
            format!(
                "no notification within {} s: LISTEN/NOTIFY does not work through this connection \
                 (a transaction-mode pooler such as PgBouncer drops it); set ZART_LISTEN_URL (or \
                 PgPool::with_listen_url) to the server's own address, or use a session-mode pool",
                NOTIFY_TIMEOUT.as_secs()
            ),
        ),
        Err(e) => Check::new("notify", Level::Fail, format!("LISTEN/NOTIFY failed: {e}")),
    }
}

async fn notify_round_trip(pool: &PgPool) -> Result<Option<Duration>, Error> {
    let call = Call::new("checking LISTEN/NOTIFY");
    // Where the scheduler's LISTEN connection goes (a listen URL, if the pool has one).
    let (config, tls) = pool.listen_config();
    let (client, mut connection) = config
        .connect(tls.connector())
        .await
        .map_err(|e| from_pg(e, call))?;
    let token = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    let result = async {
        client
            .batch_execute(queries::PROBE_LISTEN)
            .await
            .map_err(|e| from_pg(e, call))?;
        let started = Instant::now();
        // Through the pool, as wake-ups travel: a listen URL that points elsewhere than the
        // pool (another server) fails here too.
        pool.pool()
            .get()
            .await
            .map_err(|e| from_pool(e, call))?
            .query_typed(queries::PROBE_NOTIFY, &[(&token, Type::TEXT)])
            .await
            .map_err(|e| from_pg(e, call))?;
        let wait = async {
            while let Some(payload) = rx.recv().await {
                if payload == token {
                    return true;
                }
            }
            false
        };
        Ok(match tokio::time::timeout(NOTIFY_TIMEOUT, wait).await {
            Ok(true) => Some(started.elapsed()),
            _ => None,
        })
    }
    .await;
    drop(client);
    let _ = driver.await;
    result
}

#[cfg(test)]
mod tests {
    use super::{durability_check, Level};

    #[test]
    fn durability_warns_when_the_server_may_lose_acknowledged_commits() {
        assert_eq!(durability_check("on", "on").level, Level::Ok);
        assert_eq!(durability_check("remote_apply", "on").level, Level::Ok);
        let check = durability_check("off", "on");
        assert_eq!(check.level, Level::Warn);
        assert!(
            check.detail.starts_with("synchronous_commit is off:"),
            "{}",
            check.detail
        );
        let check = durability_check("off", "off");
        assert!(
            check
                .detail
                .starts_with("synchronous_commit is off and fsync is off:"),
            "{}",
            check.detail
        );
    }
}
