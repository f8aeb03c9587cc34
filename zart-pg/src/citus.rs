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

/// The indexes some items had in a batch, and those items (or their results).
pub(crate) type Group<T> = (Vec<usize>, Vec<T>);

/// The items of a batch grouped by shard (on Citus, one statement per shard), each group
/// with the indexes its items had in the batch.
pub(crate) fn split<T: Clone>(
    shards: &Shards,
    items: &[T],
    bucket: impl Fn(&T) -> Result<i16, Error>,
) -> Result<Vec<Group<T>>, Error> {
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
    groups: Vec<Group<Result<R, Error>>>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Three shards: buckets 0-9 on shard 0, 10-19 on shard 1, 20-1023 on shard 2.
    fn three_shards() -> Shards {
        let sets: Vec<Vec<i16>> = vec![(0..10).collect(), (10..20).collect(), (20..1024).collect()];
        let mut shard_of = vec![0; 1024];
        for (shard, set) in sets.iter().enumerate() {
            for &b in set {
                shard_of[usize::try_from(b).unwrap()] = shard;
            }
        }
        Shards {
            sets,
            shard_of,
            next: AtomicUsize::new(0),
        }
    }

    #[test]
    fn a_batch_splits_by_shard_and_its_results_come_back_in_batch_order() {
        let shards = three_shards();
        let items: Vec<(i16, &str)> = vec![(25, "a"), (3, "b"), (12, "c"), (4, "d"), (1000, "e")];
        let groups = split(&shards, &items, |(b, _)| Ok(*b)).unwrap();
        let parts: Vec<Vec<&str>> = groups
            .iter()
            .map(|(_, part)| part.iter().map(|(_, name)| *name).collect())
            .collect();
        assert_eq!(parts, vec![vec!["b", "d"], vec!["c"], vec!["a", "e"]]);
        // Each group "writes" its items' names back; the batch gets them in its own order.
        let written = groups
            .into_iter()
            .map(|(indexes, part)| {
                let results = part.into_iter().map(|(_, name)| Ok(name)).collect();
                (indexes, results)
            })
            .collect();
        let out: Vec<&str> = in_batch_order(items.len(), written)
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, vec!["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn a_group_that_answers_short_is_an_error_not_a_lost_item() {
        let shards = three_shards();
        let items = vec![1_i16, 2, 15];
        let groups = split(&shards, &items, |b| Ok(*b)).unwrap();
        let short = groups
            .into_iter()
            .map(|(indexes, _)| (indexes, vec![Ok(())]))
            .collect();
        assert!(in_batch_order(items.len(), short).is_err());
    }

    #[test]
    fn not_distributed_is_one_group_and_claims_in_turn_start_one_shard_further_each_time() {
        let plain = Shards::default();
        assert!(!plain.distributed());
        assert_eq!(plain.group(&[5, 700, 3]), vec![vec![0, 1, 2]]);
        assert_eq!(plain.in_turn().count(), 0);

        let shards = three_shards();
        let firsts: Vec<i16> = (0..4)
            .map(|_| shards.in_turn().next().unwrap()[0])
            .collect();
        assert_eq!(firsts, vec![0, 10, 20, 0]);
        assert_eq!(shards.in_turn().count(), 3, "every shard once per walk");
    }
}
