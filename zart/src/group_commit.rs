//! Group commit for any backend: writes from many executions share transactions.
//!
//! Callers [`Batcher::submit`] one item and wait for its own answer. A writer task takes
//! everything queued (up to [`Batcher::max_batch`] items) and hands it to the backend's
//! [`BatchWriter::write_batch`], which writes it in one transaction and answers item by item.
//! While a batch is in flight the next one accumulates, so batches grow with load and a lone
//! write on an idle worker goes out at once: no flush timer ever delays it. If a whole batch
//! fails (the transaction could not commit), each of its items is written on its own with
//! [`BatchWriter::write_one`], so one bad item cannot fail the others. An answer is sent only
//! once the item's transaction has committed.
//!
//! zart-pg writes step results and outcomes through two batchers; a backend with one writer
//! connection (SQLite) may send every write through one.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::Error;

/// The largest batch a [`Batcher`] hands to its writer unless told otherwise.
pub const DEFAULT_MAX_BATCH: usize = 256;

/// How a backend writes the items a [`Batcher`] collects.
#[async_trait]
pub trait BatchWriter<I, O>: Send + Sync + 'static
where
    I: Send + Sync + 'static,
    O: Send + 'static,
{
    /// Writes `items` in one transaction; returns one result per item, in order (an item that
    /// was refused, such as a write with a lost lease, has its error and the others are still
    /// written).
    ///
    /// # Errors
    /// When the batch as a whole could not be written (nothing of it committed): the batcher
    /// then writes the items one by one with [`BatchWriter::write_one`].
    async fn write_batch(&self, items: &[I]) -> Result<Vec<Result<O, Error>>, Error>;

    /// Writes one item in a transaction of its own.
    ///
    /// # Errors
    /// The item's own error.
    async fn write_one(&self, item: &I) -> Result<O, Error>;
}

type Reply<O> = oneshot::Sender<Result<O, Error>>;

/// A queue of writes and the task that writes them in batches; the task stops when the
/// batcher is dropped.
pub struct Batcher<I, O> {
    queue: mpsc::UnboundedSender<(I, Reply<O>)>,
    task: JoinHandle<()>,
    max_batch: usize,
}

impl<I, O> std::fmt::Debug for Batcher<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl<I, O> Drop for Batcher<I, O> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<I, O> Batcher<I, O>
where
    I: Send + Sync + 'static,
    O: Send + 'static,
{
    /// Starts the writer task on the current tokio runtime; `name` labels the batch-size
    /// histogram (`zart_group_commit_batch_size{kind}`).
    pub fn start(name: &'static str, writer: Arc<dyn BatchWriter<I, O>>, max_batch: usize) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let max_batch = max_batch.max(1);
        let task = tokio::spawn(write_loop(name, writer, rx, max_batch));
        Batcher {
            queue,
            task,
            max_batch,
        }
    }

    /// The most items one batch holds.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Stops taking items, writes those already queued, and returns once the writer task has
    /// ended (and dropped its writer). Dropping the batcher instead abandons queued items.
    pub async fn close(mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.queue, closed));
        let _ = (&mut self.task).await;
    }

    /// Queues `item` and waits until it is written (committed) or refused.
    ///
    /// # Errors
    /// The item's own error; [`Error::Unavailable`] if the writer task has stopped.
    pub async fn submit(&self, item: I) -> Result<O, Error> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((item, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::Unavailable {
        message: "the group-commit writer has stopped".to_owned(),
        source: None,
    }
}

/// Takes whatever is queued, writes it as one batch, answers each caller; repeats.
async fn write_loop<I, O>(
    name: &'static str,
    writer: Arc<dyn BatchWriter<I, O>>,
    mut rx: mpsc::UnboundedReceiver<(I, Reply<O>)>,
    max_batch: usize,
) where
    I: Send + Sync + 'static,
    O: Send + 'static,
{
    let mut queued = Vec::with_capacity(64);
    while rx.recv_many(&mut queued, max_batch).await > 0 {
        let (items, replies): (Vec<I>, Vec<Reply<O>>) = queued.drain(..).unzip();
        metrics::histogram!("zart_group_commit_batch_size", "kind" => name)
            .record(items.len() as f64);
        let results = write(&*writer, &items).await;
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

async fn write<I, O>(writer: &dyn BatchWriter<I, O>, items: &[I]) -> Vec<Result<O, Error>>
where
    I: Send + Sync + 'static,
    O: Send + 'static,
{
    if items.len() > 1 {
        match writer.write_batch(items).await {
            Ok(results) if results.len() == items.len() => return results,
            Ok(results) => tracing::warn!(
                items = items.len(),
                results = results.len(),
                "a batch write answered the wrong number of items; writing them one by one"
            ),
            Err(err) => tracing::debug!(
                error = %crate::error::error_chain(&err),
                "a batch write failed; writing its items one by one"
            ),
        }
    }
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        results.push(writer.write_one(item).await);
    }
    results
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;

    /// Refuses odd items; fails whole batches that hold a 13; records batch sizes.
    #[derive(Default)]
    struct Odd {
        batches: Mutex<Vec<usize>>,
        singles: AtomicUsize,
    }

    fn check(i: u32) -> Result<u32, Error> {
        if i % 2 == 1 {
            Err(Error::invalid("item", format!("{i} is odd")))
        } else {
            Ok(i * 10)
        }
    }

    #[async_trait]
    impl BatchWriter<u32, u32> for Odd {
        async fn write_batch(&self, items: &[u32]) -> Result<Vec<Result<u32, Error>>, Error> {
            self.batches.lock().unwrap().push(items.len());
            if items.contains(&13) {
                return Err(Error::invalid("batch", "holds 13"));
            }
            Ok(items.iter().map(|i| check(*i)).collect())
        }

        async fn write_one(&self, item: &u32) -> Result<u32, Error> {
            self.singles.fetch_add(1, Ordering::SeqCst);
            check(*item)
        }
    }

    #[tokio::test]
    async fn each_caller_gets_its_own_answer_and_batches_grow_under_load() {
        let writer = Arc::new(Odd::default());
        let batcher = Arc::new(Batcher::start("test", writer.clone(), 8));
        let calls: Vec<_> = (0..40u32)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { (i, b.submit(i).await) })
            })
            .collect();
        for call in calls {
            let (i, result) = call.await.unwrap();
            match result {
                Ok(v) => assert_eq!(v, i * 10),
                Err(e) => {
                    assert_eq!(i % 2, 1, "{i}: {e}");
                    assert_eq!(e.to_string(), format!("invalid item: {i} is odd"));
                }
            }
        }
        let batches = writer.batches.lock().unwrap().clone();
        assert!(batches.iter().all(|n| *n <= 8), "{batches:?}");
        assert!(batches.iter().any(|n| *n > 1), "{batches:?}");
    }

    #[tokio::test]
    async fn a_failed_batch_is_written_item_by_item() {
        let writer = Arc::new(Odd::default());
        let batcher = Arc::new(Batcher::start("test", writer.clone(), 64));
        // Queue several before the writer task runs, so they share one batch.
        let calls: Vec<_> = [12u32, 13, 14]
            .into_iter()
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { b.submit(i).await })
            })
            .collect();
        let mut results = Vec::new();
        for call in calls {
            results.push(call.await.unwrap().map_err(|e| e.to_string()));
        }
        assert_eq!(
            results,
            vec![Ok(120), Err("invalid item: 13 is odd".to_owned()), Ok(140)]
        );
        if writer.batches.lock().unwrap().iter().any(|n| *n > 1) {
            assert!(writer.singles.load(Ordering::SeqCst) >= 3);
        }
    }

    #[tokio::test]
    async fn a_stopped_writer_is_unavailable() {
        let writer = Arc::new(Odd::default());
        let batcher = Batcher::start("test", writer, 4);
        batcher.task.abort();
        tokio::task::yield_now().await;
        let err = batcher.submit(2).await.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }
}
