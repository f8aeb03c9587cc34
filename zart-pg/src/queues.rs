//! Queue limits on PostgreSQL: the [`zart::Scheduler`] limit methods, each one call of a
//! function of `sql/zart.sql` (`zart_set_queue_limits`, `zart_list_queue_limits`). The claim
//! enforces them (`zart_pick_tasks`).

use std::time::Duration;

use postgres_types::Type;
use zart::queues::{QueueLimits, QueueLimitsRow, Rate};
use zart::Error;

use crate::errors::{from_pg, Call};
use crate::{first_value, int4, millis, queries, PostgresScheduler};

impl PostgresScheduler {
    pub(crate) async fn pg_set_queue_limits(
        &self,
        queue: &str,
        limits: Option<QueueLimits>,
    ) -> Result<bool, Error> {
        let limits = limits.unwrap_or_default();
        limits.validate()?;
        let count = |n: Option<u32>| n.map(int4);
        let rate = |r: Option<Rate>| (r.map(|r| int4(r.count)), r.map(|r| millis(r.per)));
        let (rate_limit, rate_ms) = rate(limits.rate);
        let (key_rate_limit, key_rate_ms) = rate(limits.key_rate);
        let call = Call::new("setting queue limits");
        let rows = self
            .query(
                queries::SET_QUEUE_LIMITS,
                &[
                    (&queue, Type::TEXT),
                    (&count(limits.max_running), Type::INT4),
                    (&rate_limit, Type::INT4),
                    (&rate_ms, Type::INT8),
                    (&count(limits.key_max_running), Type::INT4),
                    (&key_rate_limit, Type::INT4),
                    (&key_rate_ms, Type::INT8),
                ],
                call,
            )
            .await?;
        first_value(&rows, call)
    }

    pub(crate) async fn pg_list_queue_limits(&self) -> Result<Vec<QueueLimitsRow>, Error> {
        let call = Call::new("listing queue limits");
        let rows = self.query(queries::LIST_QUEUE_LIMITS, &[], call).await?;
        rows.iter()
            .map(|r| {
                let get = |i: usize| r.try_get::<_, Option<i32>>(i).map_err(|e| from_pg(e, call));
                let get_ms =
                    |i: usize| r.try_get::<_, Option<i64>>(i).map_err(|e| from_pg(e, call));
                let count = |n: Option<i32>| n.map(|n| u32::try_from(n).unwrap_or(0));
                let rate = |n: Option<i32>, ms: Option<i64>| {
                    Some(Rate::new(
                        count(n)?,
                        Duration::from_millis(u64::try_from(ms?).unwrap_or(0)),
                    ))
                };
                Ok(QueueLimitsRow {
                    queue: r.try_get(0).map_err(|e| from_pg(e, call))?,
                    limits: QueueLimits {
                        max_running: count(get(1)?),
                        rate: rate(get(2)?, get_ms(3)?),
                        key_max_running: count(get(4)?),
                        key_rate: rate(get(5)?, get_ms(6)?),
                    },
                    running: count(get(7)?).unwrap_or(0),
                    started_in_window: count(get(8)?).unwrap_or(0),
                })
            })
            .collect()
    }
}
