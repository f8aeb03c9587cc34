//! Zart on Citus (docs/scale.md): the bucket sets of the shards a claim walks.
//!
//! On Citus, `FOR UPDATE` must stay on one shard, so a claim (and the idle look-up of the next
//! due time) runs once per shard with that shard's buckets, which keeps each statement on one
//! shard in one round trip. The map is read once per scheduler from Citus's metadata; on plain
//! PostgreSQL it is empty and every call runs once, over every bucket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use zart::group_commit::BatchWriter;

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
        Ok(Shards::from_sets(sets))
    }

    /// The map of these bucket sets, one per shard in shard order.
    fn from_sets(sets: Vec<Vec<i16>>) -> Shards {
        let mut shard_of = vec![0; 1024];
        for (shard, set) in sets.iter().enumerate() {
            for &b in set {
                if let Some(slot) = usize::try_from(b).ok().and_then(|b| shard_of.get_mut(b)) {
                    *slot = shard;
                }
            }
        }
        Shards {
            sets,
            shard_of,
            next: AtomicUsize::new(0),
        }
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

/// A group-commit writer that, on Citus, writes a batch as one batch per shard (a statement
/// stays on one shard); on plain PostgreSQL it is `W` itself.
pub(crate) struct ByShard<W, I> {
    inner: W,
    shards: Arc<ShardMap>,
    bucket: fn(&I) -> Result<i16, Error>,
}

impl<W, I> ByShard<W, I> {
    pub(crate) fn new(
        inner: W,
        shards: Arc<ShardMap>,
        bucket: fn(&I) -> Result<i16, Error>,
    ) -> Self {
        ByShard {
            inner,
            shards,
            bucket,
        }
    }
}

#[async_trait]
impl<W, I, O> BatchWriter<I, O> for ByShard<W, I>
where
    W: BatchWriter<I, O>,
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    async fn write_batch(&self, items: &[I]) -> Result<Vec<Result<O, Error>>, Error> {
        let shards = self.shards.get().await?;
        if !shards.distributed() {
            return self.inner.write_batch(items).await;
        }
        write_by_shard(shards, &self.inner, items, self.bucket).await
    }

    async fn write_one(&self, item: &I) -> Result<O, Error> {
        self.inner.write_one(item).await
    }
}

/// Writes `items` one batch per shard and answers in their order. A shard's batch that fails
/// as a whole has its items written one by one here, as the batcher would: the other shards'
/// batches are committed, and writing their items again would answer them wrongly.
async fn write_by_shard<I, O>(
    shards: &Shards,
    inner: &impl BatchWriter<I, O>,
    items: &[I],
    bucket: fn(&I) -> Result<i16, Error>,
) -> Result<Vec<Result<O, Error>>, Error>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    let mut out: Vec<Option<Result<O, Error>>> = items.iter().map(|_| None).collect();
    for (indexes, part) in split(shards, items, bucket)? {
        let results = match inner.write_batch(&part).await {
            Ok(results) if results.len() == part.len() => results,
            written => {
                if let Err(err) = &written {
                    tracing::warn!(
                        error = %zart::error::error_chain(err),
                        "a shard's batch write failed; writing its items one by one"
                    );
                }
                let mut results = Vec::with_capacity(part.len());
                for item in &part {
                    results.push(inner.write_one(item).await);
                }
                results
            }
        };
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
        Shards::from_sets(vec![
            (0..10).collect(),
            (10..20).collect(),
            (20..1024).collect(),
        ])
    }

    /// A writer that answers each item with its name, records what it was asked, and fails
    /// as a whole any batch holding the item named "bad".
    #[derive(Default)]
    struct Recorder {
        batches: std::sync::Mutex<Vec<Vec<&'static str>>>,
        ones: std::sync::Mutex<Vec<&'static str>>,
    }

    #[async_trait]
    impl BatchWriter<(i16, &'static str), &'static str> for Recorder {
        async fn write_batch(
            &self,
            items: &[(i16, &'static str)],
        ) -> Result<Vec<Result<&'static str, Error>>, Error> {
            let names: Vec<&'static str> = items.iter().map(|(_, n)| *n).collect();
            self.batches.lock().unwrap().push(names.clone());
            if names.contains(&"bad") {
                return Err(Error::Database {
                    message: "the batch failed".to_owned(),
                    source: None,
                });
            }
            Ok(names.into_iter().map(Ok).collect())
        }

        async fn write_one(&self, item: &(i16, &'static str)) -> Result<&'static str, Error> {
            self.ones.lock().unwrap().push(item.1);
            Ok(item.1)
        }
    }

    fn bucket(item: &(i16, &'static str)) -> Result<i16, Error> {
        Ok(item.0)
    }

    #[tokio::test]
    async fn a_batch_goes_out_one_batch_per_shard_and_is_answered_in_its_own_order() {
        let shards = three_shards();
        let writer = Recorder::default();
        let items = vec![(25, "a"), (3, "b"), (12, "c"), (4, "d"), (1000, "e")];
        let out: Vec<&str> = write_by_shard(&shards, &writer, &items, bucket)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, vec!["a", "b", "c", "d", "e"]);
        assert_eq!(
            *writer.batches.lock().unwrap(),
            vec![vec!["b", "d"], vec!["c"], vec!["a", "e"]]
        );
        assert!(writer.ones.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_shard_batch_that_fails_is_written_one_by_one_and_the_others_are_not_written_again() {
        let shards = three_shards();
        let writer = Recorder::default();
        let items = vec![(1, "a"), (15, "bad"), (2, "b"), (16, "c")];
        let out: Vec<&str> = write_by_shard(&shards, &writer, &items, bucket)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, vec!["a", "bad", "b", "c"]);
        assert_eq!(*writer.ones.lock().unwrap(), vec!["bad", "c"]);
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
