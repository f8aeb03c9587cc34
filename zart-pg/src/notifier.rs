//! Wake-ups sent after commit: NOTIFYs queued by the process and sent in batches on a pooled
//! connection, so no writing transaction pays NOTIFY's global commit lock.
//!
//! While one batch is in flight the next one accumulates, so batches grow with load and a lone
//! notification goes out at once; under load batches are paced (a trailing debounce, at most
//! one every [`PACE`]). Duplicates within a batch are sent once, and the finished executions
//! of a batch share `zart_done` notifications: each payload is a JSON array of ids (see
//! [`done_payloads`]), so a drain of thousands of executions wakes every listener a few times
//! instead of once per execution.
//!
//! When nothing is queued or in flight ([`Notifier::is_idle`]), a writer may instead NOTIFY
//! inside its own transaction: a lone write then wakes its listener at its own commit, one
//! round trip sooner, and pays NOTIFY's commit lock only when nobody else is writing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::queries;

/// The largest batch sent in one statement.
const MAX_BATCH: usize = 1024;

/// The shortest time between two batches. Each batch is a transaction that takes NOTIFY's
/// commit lock; under a stream of starts, sending one per round trip cost a quarter of a
/// transaction per start (measured with `zart-load --only c,z1`: 1.29 transactions per start
/// unpaced, 1.04 with 2 ms, and about 9% more starts per second).
const PACE: std::time::Duration = std::time::Duration::from_millis(2);

/// Queues notifications for the background sender.
pub(crate) struct Notifier {
    tx: mpsc::UnboundedSender<(&'static str, String)>,
    /// Notifications queued or in flight.
    pending: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Notifier {
    /// Starts the sender task on the current runtime.
    pub(crate) fn start(pool: Pool) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(send_loop(pool, rx, pending.clone()));
        Notifier { tx, pending, task }
    }

    /// Queues one notification. Payloads are ids and queue names only (at most 255 bytes).
    pub(crate) fn notify(&self, channel: &'static str, payload: String) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send((channel, payload)).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether nothing is queued or being sent.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }
}

async fn send_loop(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<(&'static str, String)>,
    pending: Arc<AtomicUsize>,
) {
    let mut batch = Vec::with_capacity(64);
    let mut last_sent: Option<tokio::time::Instant> = None;
    loop {
        let mut taken = rx.recv_many(&mut batch, MAX_BATCH).await;
        if taken == 0 {
            return;
        }
        if let Some(at) = last_sent.filter(|at| at.elapsed() < PACE) {
            // Trailing debounce: the first wake-up after a quiet spell goes at once; under
            // load, batches go at most every PACE, each carrying everything queued meanwhile.
            tokio::time::sleep_until(at + PACE).await;
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(item) => {
                        batch.push(item);
                        taken += 1;
                    }
                    Err(_) => break,
                }
            }
        }
        send_batch(&pool, &mut batch).await;
        last_sent = Some(tokio::time::Instant::now());
        pending.fetch_sub(taken, Ordering::SeqCst);
    }
}

/// Sends one batch (duplicates once, finished executions in shared payloads), retrying a
/// failed send twice.
async fn send_batch(pool: &Pool, batch: &mut Vec<(&'static str, String)>) {
    let (channels, payloads) = coalesce(batch.drain(..));
    for attempt in 1..=3 {
        match send(pool, &channels, &payloads).await {
            Ok(()) => break,
            Err(err) => {
                tracing::warn!(
                    attempt,
                    count = channels.len(),
                    error = %err,
                    "could not send wake-up notifications (sweeps will cover them)"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            }
        }
    }
}

/// The notifications of one batch as (channels, payloads): duplicates once, in order of first
/// appearance, and every `zart_done` id gathered into [`done_payloads`] at the end.
fn coalesce(
    batch: impl IntoIterator<Item = (&'static str, String)>,
) -> (Vec<&'static str>, Vec<String>) {
    let mut seen = HashSet::new();
    let mut done = Vec::new();
    let (mut channels, mut payloads) = (Vec::new(), Vec::new());
    for (channel, payload) in batch {
        if !seen.insert((channel, payload.clone())) {
            continue;
        }
        if channel == queries::CHANNEL_DONE {
            done.push(payload);
        } else {
            channels.push(channel);
            payloads.push(payload);
        }
    }
    for payload in done_payloads(&done) {
        channels.push(queries::CHANNEL_DONE);
        payloads.push(payload);
    }
    (channels, payloads)
}

/// The payload limit of one `zart_done` notification, in bytes; NOTIFY's own is 8000.
pub(crate) const DONE_PAYLOAD_BYTES: usize = 7000;

/// `ids` as `zart_done` payloads: JSON arrays of ids, each at most [`DONE_PAYLOAD_BYTES`] (an
/// id is at most 255 bytes, so even one made of escapes fits). The listener reads them back
/// with [`crate::listener`]'s parser.
pub(crate) fn done_payloads(ids: &[String]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::from("[");
    for id in ids {
        let quoted = serde_json::Value::from(id.as_str()).to_string();
        if current.len() > 1 && current.len() + 1 + quoted.len() + 1 > DONE_PAYLOAD_BYTES {
            current.push(']');
            payloads.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&quoted);
    }
    if current.len() > 1 {
        current.push(']');
        payloads.push(current);
    }
    payloads
}

async fn send(pool: &Pool, channels: &[&str], payloads: &[String]) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    client
        .query_typed(
            queries::NOTIFY_BATCH,
            &[
                (&channels, postgres_types::Type::TEXT_ARRAY),
                (&payloads, postgres_types::Type::TEXT_ARRAY),
            ],
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
