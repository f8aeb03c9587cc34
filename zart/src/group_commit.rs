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
//! connection (SQLite) may send every write through one. A backend whose driver blocks
//! implements [`BlockingBatchWriter`] instead and starts the batcher with
//! [`Batcher::start_blocking`]: the same loop then runs on a thread of its own, which calls the
//! driver directly, so a lone write crosses threads twice (to the writer and back) rather than
//! through a task and a blocking-pool hand-off as well.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// How a backend whose driver blocks writes the items a [`Batcher`] collects: called on the
/// batcher's own thread ([`Batcher::start_blocking`]), one batch at a time. The rules are
/// those of [`BatchWriter`].
pub trait BlockingBatchWriter<I, O>: Send + 'static {
    /// Writes `items` in one transaction; one result per item, in order.
    ///
    /// # Errors
    /// When nothing of the batch committed: the items are then written one by one.
    fn write_batch(&mut self, items: &[I]) -> Result<Vec<Result<O, Error>>, Error>;

    /// Writes one item in a transaction of its own.
    ///
    /// # Errors
    /// The item's own error.
    fn write_one(&mut self, item: &I) -> Result<O, Error>;
}

type Reply<O> = oneshot::Sender<Result<O, Error>>;

/// Where the writing loop runs.
enum Runner {
    /// A tokio task ([`Batcher::start`]).
    Task(JoinHandle<()>),
    /// A thread of its own ([`Batcher::start_blocking`]); it ends when the queue closes, and
    /// says so on the receiver.
    Thread(Option<oneshot::Receiver<()>>),
}

/// A queue of writes and the task (or thread) that writes them in batches; a task stops when
/// the batcher is dropped, a thread once it has written what was queued.
pub struct Batcher<I, O> {
    queue: mpsc::UnboundedSender<(I, Reply<O>)>,
    runner: Runner,
    max_batch: usize,
    /// Items submitted and not yet answered (queued or being written).
    pending: Arc<AtomicUsize>,
    /// Batches whose write failed as a whole and were written item by item.
    splits: Splits,
}

/// Counts the batches of one batcher that were split item by item: for
/// [`Batcher::splits`], and as `zart_group_commit_splits_total{kind}`.
#[derive(Clone)]
struct Splits {
    kind: &'static str,
    count: Arc<AtomicU64>,
}

impl Splits {
    fn new(kind: &'static str) -> Self {
        Splits {
            kind,
            count: Arc::default(),
        }
    }

    fn record(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::telemetry::GROUP_COMMIT_SPLITS, "kind" => self.kind).increment(1);
    }
}

/// Counts one submitted item until its answer arrives or its caller gives up.
struct Pending(Arc<AtomicUsize>);

impl Pending {
    fn new(count: &Arc<AtomicUsize>) -> Pending {
        count.fetch_add(1, Ordering::AcqRel);
        Pending(count.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
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
        // A writer thread ends by itself once the queue closes, after what is queued.
        if let Runner::Task(task) = &self.runner {
            task.abort();
        }
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
        let splits = Splits::new(name);
        let task = tokio::spawn(write_loop(name, writer, rx, max_batch, splits.clone()));
        Batcher {
            queue,
            runner: Runner::Task(task),
            max_batch,
            pending: Arc::default(),
            splits,
        }
    }

    /// Starts the writing loop on a new thread named `zart-{name}-writer`, calling `writer`
    /// there; the thread ends when the batcher is dropped or closed, after writing what is
    /// queued. Needs no runtime.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the thread cannot be started.
    pub fn start_blocking(
        name: &'static str,
        mut writer: impl BlockingBatchWriter<I, O>,
        max_batch: usize,
    ) -> Result<Self, Error> {
        let (queue, mut rx) = mpsc::unbounded_channel::<(I, Reply<O>)>();
        let max_batch = max_batch.max(1);
        let (done, ended) = oneshot::channel();
        let splits = Splits::new(name);
        let counted = splits.clone();
        std::thread::Builder::new()
            .name(format!("zart-{name}-writer"))
            .spawn(move || {
                let mut queued = Vec::with_capacity(64);
                while let Some(first) = rx.blocking_recv() {
                    queued.push(first);
                    while queued.len() < max_batch {
                        match rx.try_recv() {
                            Ok(next) => queued.push(next),
                            Err(_) => break,
                        }
                    }
                    let (items, replies): (Vec<I>, Vec<Reply<O>>) = queued.drain(..).unzip();
                    record_batch(name, items.len());
                    let results = write_blocking(&mut writer, &items, &counted);
                    answer(replies, results);
                }
                drop(writer);
                let _ = done.send(());
            })
            .map_err(|e| Error::Unavailable {
                message: format!("cannot start the {name} writer thread: {e}"),
                source: None,
            })?;
        Ok(Batcher {
            queue,
            runner: Runner::Thread(Some(ended)),
            max_batch,
            pending: Arc::default(),
            splits,
        })
    }

    /// The most items one batch holds.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// How many batches failed as a whole and were then written item by item (also counted
    /// by the `zart_group_commit_splits_total{kind}` metric). A transient failure (a deadlock)
    /// splits a batch now and then; a count that grows with every batch means the backend's
    /// batch path is broken and only its one-item path works.
    pub fn splits(&self) -> u64 {
        self.splits.count.load(Ordering::Relaxed)
    }

    /// Stops taking items, writes those already queued, and returns once the writer task has
    /// ended (and dropped its writer). Dropping the batcher instead abandons queued items (a
    /// writer thread of [`Batcher::start_blocking`] still writes them, in the background).
    pub async fn close(mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.queue, closed));
        match &mut self.runner {
            Runner::Task(task) => {
                let _ = task.await;
            }
            Runner::Thread(ended) => {
                if let Some(ended) = ended.take() {
                    let _ = ended.await;
                }
            }
        }
    }

    /// Queues `item` and waits until it is written (committed) or refused.
    ///
    /// # Errors
    /// The item's own error; [`Error::Unavailable`] if the writer task has stopped.
    pub async fn submit(&self, item: I) -> Result<O, Error> {
        let _pending = Pending::new(&self.pending);
        let (reply, answer) = oneshot::channel();
        self.queue.send((item, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `write` (a lone item written by the caller itself, on its own thread) if nothing
    /// is pending this instant (none queued, none being written, no other such write), and
    /// counts it as pending while it runs, so writes submitted meanwhile queue up behind it
    /// and go out together. `None` when something was pending: submit the item instead.
    ///
    /// A backend whose writer is a thread of its own uses it to skip the hand-off to that
    /// thread and back on an idle store (zart-sqlite); under load the batcher is rarely idle,
    /// so writes keep sharing commits.
    pub fn write_alone<R>(&self, write: impl FnOnce() -> Option<R>) -> Option<R> {
        self.pending
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        let _pending = Pending(self.pending.clone());
        write()
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
    splits: Splits,
) where
    I: Send + Sync + 'static,
    O: Send + 'static,
{
    let mut queued = Vec::with_capacity(64);
    while rx.recv_many(&mut queued, max_batch).await > 0 {
        let (items, replies): (Vec<I>, Vec<Reply<O>>) = queued.drain(..).unzip();
        record_batch(name, items.len());
        let results = write(&*writer, &items, &splits).await;
        answer(replies, results);
    }
}

fn record_batch(name: &'static str, size: usize) {
    metrics::histogram!(crate::telemetry::GROUP_COMMIT_BATCH_SIZE, "kind" => name)
        .record(size as f64);
}

fn answer<O>(replies: Vec<Reply<O>>, results: Vec<Result<O, Error>>) {
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}

/// A whole batch's answer, if it can stand: one result per item. Otherwise counts a split.
fn batch_answer<O>(
    items: usize,
    written: Result<Vec<Result<O, Error>>, Error>,
    splits: &Splits,
) -> Option<Vec<Result<O, Error>>> {
    match written {
        Ok(results) if results.len() == items => return Some(results),
        Ok(results) => tracing::warn!(
            items,
            results = results.len(),
            "a batch write answered the wrong number of items; writing them one by one"
        ),
        // A server error (not a refusal, not a lost connection or a deadlock) is worth a
        // look: every item of the batch may meet it again alone.
        Err(err @ (Error::Database { .. } | Error::Schema(_))) => tracing::warn!(
            error = %crate::error::error_chain(&err),
            "a batch write failed; writing its items one by one"
        ),
        Err(err) => tracing::debug!(
            error = %crate::error::error_chain(&err),
            "a batch write failed; writing its items one by one"
        ),
    }
    splits.record();
    None
}

fn write_blocking<I, O>(
    writer: &mut impl BlockingBatchWriter<I, O>,
    items: &[I],
    splits: &Splits,
) -> Vec<Result<O, Error>> {
    if items.len() > 1 {
        if let Some(results) = batch_answer(items.len(), writer.write_batch(items), splits) {
            return results;
        }
    }
    items.iter().map(|item| writer.write_one(item)).collect()
}

async fn write<I, O>(
    writer: &dyn BatchWriter<I, O>,
    items: &[I],
    splits: &Splits,
) -> Vec<Result<O, Error>>
where
    I: Send + Sync + 'static,
    O: Send + 'static,
{
    if items.len() > 1 {
        let written = writer.write_batch(items).await;
        if let Some(results) = batch_answer(items.len(), written, splits) {
            return results;
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

    /// Forty concurrent callers: the even ones get ten times their item, the odd ones their
    /// own refusal.
    async fn forty_callers_get_their_own_answers(batcher: &Arc<Batcher<u32, u32>>) {
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
    }

    #[tokio::test]
    async fn each_caller_gets_its_own_answer_and_batches_grow_under_load() {
        let writer = Arc::new(Odd::default());
        let batcher = Arc::new(Batcher::start("test", writer.clone(), 8));
        forty_callers_get_their_own_answers(&batcher).await;
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

    impl BlockingBatchWriter<u32, u32> for Arc<Odd> {
        fn write_batch(&mut self, items: &[u32]) -> Result<Vec<Result<u32, Error>>, Error> {
            self.batches.lock().unwrap().push(items.len());
            if items.contains(&13) {
                return Err(Error::invalid("batch", "holds 13"));
            }
            Ok(items.iter().map(|i| check(*i)).collect())
        }

        fn write_one(&mut self, item: &u32) -> Result<u32, Error> {
            self.singles.fetch_add(1, Ordering::SeqCst);
            check(*item)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_thread_answers_each_caller_and_falls_back_item_by_item() {
        let writer = Arc::new(Odd::default());
        let batcher = Arc::new(Batcher::start_blocking("test", writer.clone(), 8).unwrap());
        forty_callers_get_their_own_answers(&batcher).await;
        let batches = writer.batches.lock().unwrap().clone();
        assert!(batches.iter().all(|n| *n <= 8), "{batches:?}");
        let batcher = Arc::into_inner(batcher).unwrap();
        batcher.close().await;
        assert_eq!(
            Arc::strong_count(&writer),
            1,
            "close ends the thread and drops its writer"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_alone_runs_only_when_nothing_is_pending() {
        let writer = Arc::new(Odd::default());
        let batcher = Arc::new(Batcher::start_blocking("test", writer.clone(), 8).unwrap());
        assert_eq!(batcher.write_alone(|| Some(1)), Some(1));
        // Inside one lone write, another is refused.
        let nested = batcher.write_alone(|| Some(batcher.write_alone(|| Some(2))));
        assert_eq!(nested, Some(None));
        // While a lone write runs, a submitted item queues and is answered after it.
        let entered = Arc::new(tokio::sync::Notify::new());
        let (release, released) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let (b, entered) = (batcher.clone(), entered.clone());
            tokio::spawn(async move {
                b.write_alone(|| {
                    entered.notify_one();
                    released.recv().ok()
                })
            })
        };
        entered.notified().await;
        let queued = {
            let b = batcher.clone();
            tokio::spawn(async move { b.submit(4).await })
        };
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        assert_eq!(queued.await.unwrap().unwrap(), 40);
        assert_eq!(batcher.write_alone(|| Some(3)), Some(3), "idle again");
    }

    #[tokio::test]
    async fn a_stopped_writer_is_unavailable() {
        let writer = Arc::new(Odd::default());
        let batcher = Batcher::start("test", writer, 4);
        if let Runner::Task(task) = &batcher.runner {
            task.abort();
        }
        tokio::task::yield_now().await;
        let err = batcher.submit(2).await.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }
}
