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

/// The shard map of one database, read on first use and kept (shared by a scheduler and its
/// group-commit writers).
#[derive(Debug)]
pub(crate) struct ShardMap {
    pool: deadpool_postgres::Pool,
    shards: tokio::sync::OnceCell<Shards>,
}

impl ShardMap {
    pub(crate) fn new(pool: deadpool_postgres::Pool) -> Self {
        ShardMap {
            pool,
            shards: tokio::sync::OnceCell::new(),
        }
    }

    /// The shards (none on plain PostgreSQL), read from the database the first time.
    pub(crate) async fn get(&self) -> Result<&Shards, Error> {
        self.shards
            .get_or_try_init(|| Shards::load(&self.pool))
            .await
    }
}

/// The shards of `zart_tasks` (and the tables co-located with it), each as its buckets.
#[derive(Debug, Default)]
pub(crate) struct Shards {
    /// One bucket set per shard, in shard order; empty when not on Citus.
    sets: Vec<Vec<i16>>,
    /// The shard (index into `sets`) of each bucket.
    shard_of: Vec<usize>,
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
        let mut shard_of = vec![0; 1024];
        for (shard, set) in sets.iter().enumerate() {
            for &b in set {
                if let Some(slot) = usize::try_from(b).ok().and_then(|b| shard_of.get_mut(b)) {
                    *slot = shard;
                }
            }
        }
        Ok(Shards {
            sets,
            shard_of,
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

impl Shards {
    /// The indexes of `buckets`' items grouped by shard: one group of all of them when not
    /// distributed.
    pub(crate) fn group(&self, buckets: &[i16]) -> Vec<Vec<usize>> {
        if !self.distributed() {
            return vec![(0..buckets.len()).collect()];
        }
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); self.sets.len()];
        for (i, &b) in buckets.iter().enumerate() {
            let shard = usize::try_from(b)
                .ok()
                .and_then(|b| self.shard_of.get(b))
                .copied()
                .unwrap_or(0);
            groups[shard].push(i);
        }
        groups.retain(|g| !g.is_empty());
        groups
    }
}

/// The items of a batch grouped by shard (on Citus, one statement per shard), each group
/// with the indexes its items had in the batch.
pub(crate) fn split<T: Clone>(
    shards: &Shards,
    items: &[T],
    bucket: impl Fn(&T) -> Result<i16, Error>,
) -> Result<Vec<(Vec<usize>, Vec<T>)>, Error> {
    let buckets = items.iter().map(bucket).collect::<Result<Vec<_>, _>>()?;
    Ok(shards
        .group(&buckets)
        .into_iter()
        .map(|group| {
            let part = group.iter().map(|&i| items[i].clone()).collect();
            (group, part)
        })
        .collect())
}

/// Puts the results of the groups of [`split`] back in the order of the batch's `n` items.
pub(crate) fn in_batch_order<R>(
    n: usize,
    groups: Vec<(Vec<usize>, Vec<Result<R, Error>>)>,
) -> Result<Vec<Result<R, Error>>, Error> {
    let mut out: Vec<Option<Result<R, Error>>> = (0..n).map(|_| None).collect();
    for (indexes, results) in groups {
        for (i, result) in indexes.into_iter().zip(results) {
            out[i] = Some(result);
        }
    }
    out.into_iter()
        .map(|r| {
            r.ok_or_else(|| Error::Database {
                message: "a batch returned fewer results than it had items".to_owned(),
                source: None,
            })
        })
        .collect()
}

/// The parameter type of a bucket set.
pub(crate) const BUCKETS: Type = Type::INT2_ARRAY;
