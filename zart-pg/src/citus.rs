//! Zart on Citus (docs/scale.md): the bucket sets of the shards a claim walks.
//!
//! On Citus, `FOR UPDATE` must stay on one shard, so a claim (and the idle look-up of the next
//! due time) runs once per shard with that shard's buckets, which keeps each statement on one
//! shard in one round trip. The map is read once per scheduler from Citus's metadata; on plain
//! PostgreSQL it is empty and every call runs once, over every bucket.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_postgres::types::Type;
use zart::Error;

use crate::errors::Call;
use crate::queries;

/// The shards of `zart_tasks` (and the tables co-located with it), each as its buckets.
#[derive(Debug, Default)]
pub(crate) struct Shards {
    /// One bucket set per shard, in shard order; empty when not on Citus.
    sets: Vec<Vec<i16>>,
    /// Where the next claim starts, so every shard is served first in turn.
    next: AtomicUsize,
}

impl Shards {
    /// Reads the map: none unless the database has the citus extension and `zart_tasks` is
    /// distributed (`zart migrate` does it there).
    pub(crate) async fn load(pool: &deadpool_postgres::Pool) -> Result<Shards, Error> {
        let call = Call::new("reading the shard map");
        let rows = crate::query(pool, queries::HAS_CITUS, &[], call).await?;
        if !crate::first_value::<bool>(&rows, call)? {
            return Ok(Shards::default());
        }
        let rows = crate::query(pool, queries::TASKS_DISTRIBUTED, &[], call).await?;
        if !crate::first_value::<bool>(&rows, call)? {
            return Ok(Shards::default());
        }
        let rows = crate::query(pool, queries::SHARD_BUCKETS, &[], call).await?;
        let sets = rows
            .iter()
            .map(|r| r.try_get::<_, Vec<i16>>(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| crate::errors::from_pg(e, call))?;
        Ok(Shards {
            sets,
            next: AtomicUsize::new(0),
        })
    }

    /// Whether the tables are distributed (the calls go shard by shard).
    pub(crate) fn distributed(&self) -> bool {
        !self.sets.is_empty()
    }

    /// Every shard's buckets once, starting at the next shard in turn.
    pub(crate) fn in_turn(&self) -> impl Iterator<Item = &[i16]> {
        let n = self.sets.len();
        let first = if n == 0 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        (0..n).map(move |i| self.sets[(first + i) % n].as_slice())
    }
}

/// The parameter type of a bucket set.
pub(crate) const BUCKETS: Type = Type::INT2_ARRAY;
