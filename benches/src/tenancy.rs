//! What tenancy costs (issue #14 item 3): `zart-load`'s figures Z1t and Z2t run Z1 and Z2 as
//! two LOGIN roles made for the run, first with tenancy off, then on, in the same run.
//!
//! [`Logins`] makes them on the server: a member of `zart_client` and a member of
//! `zart_worker`, each granted the tenant [`TENANT`] only (`zart_tenant_access`), with unique
//! names and a random password (ignored under `trust`). Roles belong to the cluster, so the
//! driver drops them when the run ends, also after an error or Ctrl-C
//! ([`Logins::drop_all`]). [`set_tenancy`] turns tenancy on or off for the whole scratch
//! database (`zart_settings`), and [`prefill_mixed`] starts the pre-filled executions of a
//! tenancy-on drain interleaved with a backlog of [`OTHER_TENANT`] that the worker's claims
//! must read past.

use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::{Client, Config};

use crate::drain::start_many;
use crate::report::{format_value, markdown, text, thousands};
use crate::scratch::connect;
use crate::stats::Rng;

/// The tenant the logins act for.
pub const TENANT: &str = "t1";

/// The other tenant, whose backlog a tenancy-on drain's claims read past.
pub const OTHER_TENANT: &str = "t2";

/// Executions per pre-fill statement of [`prefill_mixed`]: the two tenants' executions
/// alternate in chunks of this many.
pub const CHUNK: u32 = 100;

/// Z1t and Z2t of one run: tenancy on against off, as the same logins (`--json`: `tenancy`).
#[derive(Debug, Clone, Serialize)]
pub struct TenancyReport {
    /// Who ran what.
    pub logins: LoginNames,
    /// The one tenant the logins are granted.
    pub tenant: &'static str,
    /// The other tenant, whose backlog Z2t's tenancy-on drain reads past.
    pub other_tenant: &'static str,
    /// Executions per chunk of Z2t's interleaved tenancy-on pre-fill.
    pub chunk: u32,
    /// One row per figure run (z1t, z2t).
    pub figures: Vec<TenancyFigure>,
}

/// One figure measured with tenancy off and on.
#[derive(Debug, Clone, Serialize)]
pub struct TenancyFigure {
    /// `z1t` or `z2t`.
    pub figure: &'static str,
    /// What was measured.
    pub what: String,
    /// The login that started (Z1t) or drained (Z2t), in both phases.
    pub login: String,
    /// `starts/s`, `executions/s`.
    pub unit: &'static str,
    /// Tenancy off.
    pub off: f64,
    /// Tenancy on.
    pub on: f64,
    /// `on / off`.
    pub on_over_off: f64,
    /// The same figure as the URL's login with tenancy off (Z1 or Z2 of this run), if run.
    pub owner_off: Option<f64>,
    /// Executions of the other tenant due in the same queue and task during the tenancy-on
    /// phase (0 for Z1t, which claims nothing).
    pub other_tenant_backlog: u32,
}

impl TenancyFigure {
    /// `off`, `on` and `on / off` of one figure; `owner_off` and the backlog are unset.
    pub fn new(
        figure: &'static str,
        what: &str,
        login: &str,
        unit: &'static str,
        off: f64,
        on: f64,
    ) -> Self {
        TenancyFigure {
            figure,
            what: what.to_owned(),
            login: login.to_owned(),
            unit,
            off,
            on,
            on_over_off: on / off,
            owner_off: None,
            other_tenant_backlog: 0,
        }
    }

    fn cells(&self, owner: &str) -> Vec<String> {
        let owner_off = self.owner_off;
        vec![
            format!("{} {}", self.figure.to_uppercase(), self.what),
            self.login.clone(),
            format_value(self.off, self.unit),
            format_value(self.on, self.unit),
            format!("{:.2}×", self.on_over_off),
            owner_off.map_or_else(
                || "not run".to_owned(),
                |o| format!("{} ({owner})", format_value(o, self.unit)),
            ),
            owner_off
                .filter(|o| *o != 0.0)
                .map_or_else(|| "-".to_owned(), |o| format!("{:.2}×", self.off / o)),
        ]
    }
}

const TENANCY_HEADERS: [&str; 7] = [
    "figure",
    "login",
    "tenancy off",
    "tenancy on",
    "on / off",
    "URL's login, off",
    "login off / URL's",
];

impl TenancyReport {
    /// Which logins ran which phase, and how the backlog was laid out.
    pub fn legend(&self) -> String {
        let l = &self.logins;
        let mut out = format!(
            "Z1 and Z2 (when run) run as {owner} (the URL's login, owner of the Zart objects), \
             tenancy off. Z1t ran as the client login {client} (member of zart_client) and Z2t's worker as the \
             worker login {worker} (member of zart_worker), each granted tenant {t} only, with \
             tenancy off and then on; {owner} pre-filled the drains and switched tenancy.",
            owner = l.owner,
            client = l.client,
            worker = l.worker,
            t = self.tenant,
        );
        if let Some(z2t) = self.figures.iter().find(|f| f.figure == "z2t") {
            out.push_str(&format!(
                " Z2t with tenancy on drained {t}'s executions with {n} due executions of tenant \
                 {o} in the same queue and task, started first in each pair of chunks of {c}, \
                 which every claim reads past (with tenancy off there is no other tenant).",
                t = self.tenant,
                n = thousands(f64::from(z2t.other_tenant_backlog)),
                o = self.other_tenant,
                c = self.chunk,
            ));
        }
        out
    }

    /// The rows as an aligned text table.
    pub fn text(&self) -> String {
        text(
            &TENANCY_HEADERS,
            self.figures.iter().map(|f| f.cells(&self.logins.owner)),
            "ll",
        )
    }

    /// The rows as a markdown table.
    pub fn markdown(&self) -> String {
        markdown(
            &TENANCY_HEADERS,
            self.figures.iter().map(|f| f.cells(&self.logins.owner)),
            "ll",
        )
    }
}

/// The two LOGIN roles of one run (created by [`Logins::create`], dropped by
/// [`Logins::drop_all`]).
pub struct Logins {
    /// The server, database `postgres` (to terminate the logins' sessions and drop them).
    admin: Config,
    prefix: String,
    password: String,
    made: Mutex<Vec<String>>,
}

/// Who ran the Z1t and Z2t phases, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct LoginNames {
    /// The login of the run's URL, owner of the Zart objects (runs Z1, Z2 and the pre-fills).
    pub owner: String,
    /// Member of `zart_client`, granted [`TENANT`]: the client of Z1t.
    pub client: String,
    /// Member of `zart_worker`, granted [`TENANT`]: the worker of Z2t.
    pub worker: String,
}

impl Logins {
    /// Names `zart_load_<pid>_<random>_{client,worker}` on the server of `server`; nothing is
    /// created yet.
    pub fn new(server: &Config, rng: &mut Rng) -> Logins {
        let mut admin = server.clone();
        admin.dbname("postgres");
        Logins {
            admin,
            prefix: format!(
                "zart_load_{}_{:08x}",
                std::process::id(),
                rng.next_u64() as u32
            ),
            password: format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()),
            made: Mutex::new(Vec::new()),
        }
    }

    /// The client login's role name.
    pub fn client(&self) -> String {
        format!("{}_client", self.prefix)
    }

    /// The worker login's role name.
    pub fn worker(&self) -> String {
        format!("{}_worker", self.prefix)
    }

    /// Creates both logins through `owner` (a connection to the migrated scratch database as
    /// a role that may create roles and grant Zart's group roles) and grants each the tenant
    /// [`TENANT`]. Idempotent: a second call does nothing.
    ///
    /// # Errors
    /// When a role cannot be created (the URL's user needs CREATEROLE and the right to grant
    /// `zart_client` and `zart_worker`) or the grant fails.
    pub async fn create(&self, owner: &Client) -> Result<LoginNames> {
        let owner_name: String = owner
            .query_one("select session_user::text", &[])
            .await
            .context("reading the run's login")?
            .try_get(0)?;
        let names = LoginNames {
            owner: owner_name,
            client: self.client(),
            worker: self.worker(),
        };
        if !self.made().is_empty() {
            return Ok(names);
        }
        for (role, group) in [
            (&names.client, "zart_client"),
            (&names.worker, "zart_worker"),
        ] {
            owner
                .batch_execute(&format!(
                    "create role \"{role}\" login password '{}' in role {group}",
                    self.password
                ))
                .await
                .with_context(|| {
                    format!(
                        "creating the login {role} in {group} (the URL's user needs CREATEROLE; \
                         leave z1t,z2t out with --only to run without)"
                    )
                })?;
            self.made
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(role.clone());
        }
        owner
            .execute(
                "insert into public.zart_tenant_access (role_name, tenant)
                 values ($1, $3), ($2, $3)",
                &[&names.client, &names.worker, &TENANT],
            )
            .await
            .context("granting the logins their tenant")?;
        Ok(names)
    }

    /// Connection settings of the scratch database `scratch` as the login `role`.
    pub fn config(&self, scratch: &Config, role: &str) -> Config {
        let mut config = scratch.clone();
        config.user(role).password(self.password.as_str());
        config
    }

    fn made(&self) -> Vec<String> {
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Ends the logins' sessions and drops the logins that were created (none: nothing to
    /// do). Call it after the scratch database is gone, whatever happened before.
    ///
    /// # Errors
    /// When the server cannot be reached or a role cannot be dropped.
    pub async fn drop_all(&self) -> Result<()> {
        let made = self.made();
        if made.is_empty() {
            return Ok(());
        }
        let client = connect(&self.admin)
            .await
            .context("connecting to the `postgres` database to drop the run's logins")?;
        client
            .execute(
                "select pg_terminate_backend(pid) from pg_stat_activity
                  where usename = any ($1::text[])",
                &[&made],
            )
            .await
            .context("ending the run's logins' sessions")?;
        for role in &made {
            client
                .batch_execute(&format!("drop role if exists \"{role}\""))
                .await
                .with_context(|| format!("dropping the login {role}"))?;
        }
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        Ok(())
    }
}

/// Turns tenancy on or off for the whole database (`zart_settings.tenancy`, owner only).
///
/// # Errors
/// When the update fails.
pub async fn set_tenancy(owner: &Client, on: bool) -> Result<()> {
    owner
        .execute("update public.zart_settings set tenancy = $1", &[&on])
        .await
        .with_context(|| format!("turning tenancy {}", if on { "on" } else { "off" }))?;
    Ok(())
}

/// With tenancy on: starts `count` executions of `task` for [`TENANT`] (ids `<task>-1..`) and
/// as many for [`OTHER_TENANT`] (ids `<task>-<count + 1>..`), all due, in the same queue and
/// with the same task name, alternating in chunks of [`CHUNK`] (the other tenant's first), each
/// chunk started by the owner in one statement with `set zart.tenant` (its own connection, so
/// the setting goes with it), then vacuums and analyses. Each chunk's statement has its own
/// start time, so in the claim index (`queue, task_name, run_at`) every chunk of
/// [`TENANT`]'s sits behind a chunk of [`OTHER_TENANT`]'s, which the worker's claims read past.
///
/// # Errors
/// When a statement fails.
pub async fn prefill_mixed(config: &Config, task: &str, count: u32, steps: u32) -> Result<()> {
    let client = connect(config)
        .await
        .context("connecting for the tenants' pre-fill")?;
    let mut done = 0;
    while done < count {
        let n = CHUNK.min(count - done);
        for (tenant, from) in [(OTHER_TENANT, count + done + 1), (TENANT, done + 1)] {
            client
                .execute("select set_config('zart.tenant', $1, false)", &[&tenant])
                .await
                .context("set zart.tenant")?;
            start_many(&client, task, steps, i64::from(from), n).await?;
        }
        done += n;
    }
    // VACUUM cannot share a multi-statement batch.
    for sql in ["reset zart.tenant", "vacuum analyze"] {
        client
            .batch_execute(sql)
            .await
            .with_context(|| format!("{sql} after the tenants' pre-fill"))?;
    }
    Ok(())
}

/// Deletes the executions of `task` (tasks first) of `tenant` (`None`: of every tenant), then
/// vacuums and analyses the two tables, so later claims have nothing left of them to skip.
///
/// # Errors
/// When a statement fails.
pub async fn remove(owner: &Client, task: &str, tenant: Option<&str>) -> Result<()> {
    for sql in [
        "delete from public.zart_tasks where task_name = $1 and ($2::text is null or tenant = $2)",
        "delete from public.zart_executions
          where task_name = $1 and ($2::text is null or tenant = $2)",
    ] {
        owner
            .execute(sql, &[&task, &tenant])
            .await
            .with_context(|| format!("removing the executions of {task}"))?;
    }
    owner
        .batch_execute("vacuum analyze public.zart_tasks, public.zart_executions")
        .await
        .context("vacuum analyze after removing executions")?;
    Ok(())
}

/// Checks that the `count` executions of `task` of `tenant` are all still there and none was
/// ever claimed (a worker acting for another tenant must not take them); a problem, if not.
///
/// # Errors
/// When the query fails.
pub async fn untouched(
    owner: &Client,
    task: &str,
    tenant: &str,
    count: u32,
) -> Result<Option<String>> {
    let row = owner
        .query_one(
            "select /* zart-load watcher */ count(*),
                    count(*) filter (where e.status <> 'scheduled' or e.started_at is not null)
               from public.zart_execution_status e
              where e.task_name = $1 and e.tenant = $2",
            &[&task, &tenant],
        )
        .await
        .with_context(|| format!("checking tenant {tenant}'s executions of {task}"))?;
    let total: i64 = row.try_get(0)?;
    let touched: i64 = row.try_get(1)?;
    Ok((total != i64::from(count) || touched != 0).then(|| {
        format!(
            "{task}: tenant {tenant}'s backlog was touched by the other tenant's worker: \
             {touched} of {total} executions claimed ({count} expected, none claimed)"
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_over_off_and_the_table() {
        let mut f = TenancyFigure::new("z1t", "start_typed", "c1", "starts/s", 1000.0, 970.0);
        assert!((f.on_over_off - 0.97).abs() < 1e-12);
        f.owner_off = Some(1250.0);
        let report = TenancyReport {
            logins: LoginNames {
                owner: "postgres".to_owned(),
                client: "c1".to_owned(),
                worker: "w1".to_owned(),
            },
            tenant: TENANT,
            other_tenant: OTHER_TENANT,
            chunk: CHUNK,
            figures: vec![f],
        };
        let md = report.markdown();
        assert!(
            md.contains(
                "| Z1T start_typed | c1 | 1,000 starts/s | 970 starts/s | 0.97× | \
                 1,250 starts/s (postgres) | 0.80× |"
            ),
            "{md}"
        );
        assert!(report.legend().contains("client login c1"));
        assert!(!report.legend().contains("backlog"));
    }
}
