//! Cron schedules on PostgreSQL: the [`zart::Scheduler`] schedule methods, each one call of a
//! function of `sql/zart.sql` (`zart_schedule`, `zart_claim_schedules`, `zart_fire_schedule`,
//! ...). The functions send their own NOTIFYs, inside the transaction.

use std::time::{Duration, SystemTime};

use postgres_types::Type;
use tokio_postgres::Row;
use zart::schedule::{CatchUp, Overlap, Schedule, ScheduleRow};
use zart::scheduler::{
    ClaimSchedulesParams, DueSchedule, FireOutcome, FireScheduleParams, NextRunAtParams,
};
use zart::Error;

use crate::errors::{from_pg, Call};
use crate::{first_value, millis, queries, PostgresScheduler};

impl PostgresScheduler {
    pub(crate) async fn pg_upsert_schedule(&self, s: Schedule) -> Result<bool, Error> {
        s.check()?;
        let call = Call::new("declaring a schedule");
        let limit = i32::try_from(s.catch_up.limit()).unwrap_or(i32::MAX);
        let rows = self
            .query(
                queries::UPSERT_SCHEDULE,
                &[
                    (&s.id, Type::TEXT),
                    (&s.cron, Type::TEXT),
                    (&s.task_name, Type::TEXT),
                    (&s.input, Type::JSONB),
                    (&s.queue, Type::TEXT),
                    (&s.time_zone, Type::TEXT),
                    (&s.overlap.as_str(), Type::TEXT),
                    (&s.catch_up.as_str(), Type::TEXT),
                    (&limit, Type::INT4),
                ],
                call,
            )
            .await?;
        first_value(&rows, call)
    }

    pub(crate) async fn pg_pause_schedule(&self, id: &str, paused: bool) -> Result<(), Error> {
        let call = Call::new("pausing a schedule");
        self.query(
            queries::PAUSE_SCHEDULE,
            &[(&id, Type::TEXT), (&paused, Type::BOOL)],
            call,
        )
        .await
        .map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound { id: id.to_owned() },
            other => other,
        })?;
        Ok(())
    }

    pub(crate) async fn pg_delete_schedule(&self, id: &str) -> Result<bool, Error> {
        let call = Call::new("deleting a schedule");
        let rows = self
            .query(queries::DELETE_SCHEDULE, &[(&id, Type::TEXT)], call)
            .await?;
        first_value(&rows, call)
    }

    pub(crate) async fn pg_list_schedules(&self) -> Result<Vec<ScheduleRow>, Error> {
        let call = Call::new("listing schedules");
        let rows = self.query(queries::LIST_SCHEDULES, &[], call).await?;
        rows.iter()
            .map(|r| schedule_row(r, call).map(|(row, _)| row))
            .collect()
    }

    pub(crate) async fn pg_claim_schedules(
        &self,
        p: ClaimSchedulesParams,
    ) -> Result<Vec<DueSchedule>, Error> {
        let call = Call::new("claiming schedules");
        let limit = i32::try_from(p.limit).unwrap_or(i32::MAX);
        let rows = self
            .query(
                queries::CLAIM_SCHEDULES,
                &[
                    (&p.worker_id, Type::TEXT),
                    (&p.queue, Type::TEXT),
                    (&p.task_names, Type::TEXT_ARRAY),
                    (&limit, Type::INT4),
                    (&millis(p.lease), Type::INT8),
                    (&millis(p.ahead), Type::INT8),
                ],
                call,
            )
            .await?;
        rows.iter()
            .map(|r| {
                let (row, declared_at) = schedule_row(r, call)?;
                let now: SystemTime = r.try_get("now").map_err(|e| from_pg(e, call))?;
                Ok(DueSchedule {
                    row,
                    declared_at,
                    now,
                })
            })
            .collect()
    }

    pub(crate) async fn pg_fire_schedule(
        &self,
        p: FireScheduleParams,
    ) -> Result<FireOutcome, Error> {
        let call = Call::execution("firing a schedule", &p.id);
        let times: Vec<SystemTime> = p.fires.iter().map(|(t, _)| *t).collect();
        let ids: Vec<&str> = p.fires.iter().map(|(_, id)| id.as_str()).collect();
        let rows = self
            .query(
                queries::FIRE_SCHEDULE,
                &[
                    (&p.worker_id, Type::TEXT),
                    (&p.id, Type::TEXT),
                    (&times, Type::TIMESTAMPTZ_ARRAY),
                    (&ids, Type::TEXT_ARRAY),
                    (&p.next_fire_at, Type::TIMESTAMPTZ),
                    (&p.error, Type::TEXT),
                ],
                call,
            )
            .await?;
        let mut outcome = FireOutcome::default();
        for row in &rows {
            let get_err = |e| from_pg(e, call);
            let id: String = row.try_get(0).map_err(get_err)?;
            match row.try_get::<_, String>(1).map_err(get_err)?.as_str() {
                "started" => outcome.started.push(id),
                "skipped" => outcome.skipped.push(id),
                "cancelled" => outcome.cancelled.push(id),
                _ => {}
            }
        }
        Ok(outcome)
    }

    pub(crate) async fn pg_next_schedule_at(
        &self,
        p: NextRunAtParams,
    ) -> Result<Option<Duration>, Error> {
        self.due_in(queries::NEXT_SCHEDULE_AT, &p, Call::new("next_schedule_at"))
            .await
    }
}

/// A row of `zart_list_schedules` or `zart_claim_schedules`, and when it was declared.
fn schedule_row(r: &Row, call: Call<'_>) -> Result<(ScheduleRow, SystemTime), Error> {
    let get_err = |e| from_pg(e, call);
    let limit: i32 = r.try_get("catch_up_limit").map_err(get_err)?;
    let catch_up_name: String = r.try_get("catch_up").map_err(get_err)?;
    let overlap_name: String = r.try_get("overlap").map_err(get_err)?;
    let stored = |e: Error| Error::Database {
        message: format!("{}: a stored schedule does not read back: {e}", call.what),
        source: None,
    };
    let schedule = Schedule::new(
        r.try_get::<_, String>("id").map_err(get_err)?,
        r.try_get::<_, String>("cron").map_err(get_err)?,
        r.try_get::<_, String>("task_name").map_err(get_err)?,
    )
    .input(r.try_get("input").map_err(get_err)?)
    .queue(r.try_get::<_, String>("queue").map_err(get_err)?)
    .time_zone(r.try_get::<_, String>("time_zone").map_err(get_err)?)
    .overlap(Overlap::parse(&overlap_name).map_err(stored)?)
    .catch_up(CatchUp::parse(&catch_up_name, u32::try_from(limit).unwrap_or(1)).map_err(stored)?);
    let mut row = ScheduleRow::new(schedule);
    row.paused = r.try_get("paused").map_err(get_err)?;
    row.next_fire_at = r.try_get("next_fire_at").map_err(get_err)?;
    row.last_fire_at = r.try_get("last_fire_at").map_err(get_err)?;
    row.last_execution_id = r.try_get("last_execution_id").map_err(get_err)?;
    row.error = r.try_get("error").map_err(get_err)?;
    let declared_at: SystemTime = r.try_get("declared_at").map_err(get_err)?;
    Ok((row, declared_at))
}
