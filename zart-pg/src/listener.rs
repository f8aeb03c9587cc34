//! The dedicated LISTEN connection: one per [`crate::PostgresScheduler`], outside the pool
//! (pooled connections drop notifications), reconnecting with back-off and fanning out to
//! in-process subscribers as [`Wakeup`]s. Once LISTEN is in effect (first connect and every
//! reconnect) it sends [`Wakeup::Resync`], because notifications sent before are lost.
//!
//! Each time LISTEN takes effect it also checks that notifications arrive: it sends a probe
//! (`zart_probe`) through the pool, the way wake-ups travel, and expects it back within
//! [`PROBE_TIMEOUT`]. If it does not come (a transaction-mode pooler such as PgBouncer between
//! this process and the server drops LISTEN), it logs a warning that says what to do, and
//! [`ListenHealth`] says so; wake-ups then wait for the workers' safety sweep.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use postgres_types::Type;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use zart::scheduler::Wakeup;
use zart::Backoff;

use crate::queries;
use crate::tls::Tls;

/// How long the listener waits for its probe before it warns.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the listener's probe came back, shared with the scheduler.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListenHealth(Arc<AtomicU8>);

// 0 (the default): not known yet.
const DELIVERED: u8 = 1;
const MISSING: u8 = 2;

impl ListenHealth {
    /// `Some(true)`: the last probe came back; `Some(false)`: it did not; `None`: not known yet.
    pub(crate) fn delivered(&self) -> Option<bool> {
        match self.0.load(Ordering::Acquire) {
            DELIVERED => Some(true),
            MISSING => Some(false),
            _ => None,
        }
    }

    fn set(&self, state: u8) -> u8 {
        self.0.swap(state, Ordering::AcqRel)
    }
}

/// Runs the listener task; aborts it when dropped.
pub(crate) struct Listener {
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the listener needs: where to connect, the pool its probes go through, where
/// wake-ups go, and where it reports whether notifications arrive.
pub(crate) struct ListenerSetup {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Tls,
    pub(crate) pool: deadpool_postgres::Pool,
    pub(crate) tx: broadcast::Sender<Wakeup>,
    pub(crate) health: ListenHealth,
}

impl Listener {
    /// Starts listening on the current runtime.
    pub(crate) fn start(setup: ListenerSetup) -> Self {
        Listener {
            task: tokio::spawn(listen_loop(setup)),
        }
    }
}

async fn listen_loop(setup: ListenerSetup) {
    let mut backoff = Backoff::new();
    let mut first = true;
    loop {
        match listen_once(&setup, &mut backoff, first).await {
            Ok(()) => tracing::warn!("zart listener connection closed; reconnecting"),
            Err(err) => tracing::warn!(
                error = %zart::error::error_chain(&err),
                "zart listener connection failed; reconnecting"
            ),
        }
        first = false;
        tokio::time::sleep(backoff.next()).await;
    }
}

/// A payload no other probe sends: process, time and a counter.
fn probe_token() -> String {
    static PROBES: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
        PROBES.fetch_add(1, Ordering::Relaxed)
    )
}

/// Sends a probe through the pool, as the after-commit wake-ups go.
async fn send_probe(pool: deadpool_postgres::Pool, token: String) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    client
        .query_typed(queries::PROBE_NOTIFY, &[(&token, Type::TEXT)])
        .await
        .map_err(|e| zart::error::error_chain(&e))?;
    Ok(())
}

/// Connects, LISTENs, and forwards notifications until the connection ends.
async fn listen_once(
    setup: &ListenerSetup,
    backoff: &mut Backoff,
    first: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = setup.config.connect(setup.tls.connector()).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    // The connection must be driven for LISTEN to complete, so run both together.
    {
        let listen = client.batch_execute(queries::LISTEN);
        tokio::pin!(listen);
        loop {
            tokio::select! {
                result = &mut listen => { result?; break; }
                msg = messages.next() => match msg {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
            }
        }
    }
    backoff.reset();
    if !first {
        tracing::info!("zart listener reconnected");
    }
    // Anything sent before LISTEN took effect was missed (on the first connect too, since
    // subscribers may already be waiting): tell them to look again.
    let _ = setup.tx.send(Wakeup::Resync);

    let token = probe_token();
    let probe = tokio::spawn(send_probe(setup.pool.clone(), token.clone()));
    let deadline = tokio::time::sleep(PROBE_TIMEOUT);
    tokio::pin!(deadline);
    let mut probing = Some(probe);
    loop {
        let msg = tokio::select! {
            msg = messages.next() => msg,
            () = &mut deadline, if probing.is_some() => {
                if let Some(probe) = probing.take() {
                    probe_missed(setup, probe).await;
                }
                continue;
            }
        };
        let Some(msg) = msg else { break };
        match msg? {
            AsyncMessage::Notification(n) => {
                let payload = n.payload().to_owned();
                let wakeup = match n.channel() {
                    queries::CHANNEL_WORK => Wakeup::Work { queue: payload },
                    queries::CHANNEL_TIMER => Wakeup::Timer { queue: payload },
                    queries::CHANNEL_DONE => Wakeup::Finished {
                        execution_ids: finished_ids(payload),
                    },
                    queries::CHANNEL_PROBE => {
                        if probing.is_some() && payload == token {
                            probing = None;
                            if setup.health.set(DELIVERED) == MISSING {
                                tracing::info!(
                                    "zart listener: notifications arrive again on the LISTEN \
                                     connection"
                                );
                            }
                        }
                        continue;
                    }
                    _ => continue,
                };
                let _ = setup.tx.send(wakeup);
            }
            AsyncMessage::Notice(notice) => {
                tracing::debug!(message = notice.message(), "notice on listener connection");
            }
            _ => {}
        }
    }
    // The client must live as long as the connection is read: dropping it closes the session.
    drop(client);
    Ok(())
}

/// The probe did not come back in time: warn, unless it could not even be sent (then the
/// pool's own errors say why, and nothing is known about LISTEN).
async fn probe_missed(setup: &ListenerSetup, probe: JoinHandle<Result<(), String>>) {
    let sent = if probe.is_finished() {
        probe.await.unwrap_or_else(|e| Err(e.to_string()))
    } else {
        probe.abort();
        Err("the probe's NOTIFY did not return in time".to_owned())
    };
    if let Err(reason) = sent {
        tracing::debug!(reason = %reason, "zart listener could not send its LISTEN/NOTIFY probe");
        return;
    }
    setup.health.set(MISSING);
    tracing::warn!(
        timeout_ms = PROBE_TIMEOUT.as_millis() as u64,
        "zart listener: a notification sent through the pool did not reach the LISTEN \
         connection, so wake-ups will wait for the safety sweep (a worker's sweep_interval, 5 s \
         by default) instead of arriving at once. A pooler in transaction mode (PgBouncer's \
         pool_mode = transaction) cannot carry LISTEN: send the LISTEN connection straight to \
         the server with ZART_LISTEN_URL or PgPool::with_listen_url (or use a session-mode \
         pool); `zart doctor` checks this"
    );
}

/// The execution ids of a `zart_done` payload: a JSON array of ids (what Zart sends, see
/// [`crate::notifier::done_payloads`]), or else the payload itself as one id (a NOTIFY written
/// by hand, or by an older Zart).
fn finished_ids(payload: String) -> Arc<[String]> {
    match serde_json::from_str::<Vec<String>>(&payload) {
        Ok(ids) => ids.into(),
        Err(_) => Arc::from([payload]),
    }
}

#[cfg(test)]
mod tests {
    use super::finished_ids;
    use crate::notifier::{done_payloads, DONE_PAYLOAD_BYTES};

    #[test]
    fn finished_ids_read_back_what_the_notifier_sends() {
        // Awkward ids: quotes, commas, brackets, newlines, control characters, non-ASCII, and
        // the longest allowed (255 bytes), many enough to need several payloads.
        let mut ids: Vec<String> = vec![
            "plain".into(),
            "with \"quotes\", commas, [brackets]".into(),
            "line\nbreak\ttab\u{1}".into(),
            "ünïcödé-✓".into(),
            "[\"looks\",\"like\",\"json\"]".into(),
        ];
        ids.extend((0..200).map(|i| format!("{i:0>255}")));
        ids.push("\u{1}".repeat(255));
        let payloads = done_payloads(&ids);
        assert!(payloads.len() > 1, "200 long ids need several payloads");
        for payload in &payloads {
            assert!(
                payload.len() <= DONE_PAYLOAD_BYTES,
                "{} bytes",
                payload.len()
            );
        }
        let back: Vec<String> = payloads
            .into_iter()
            .flat_map(|p| finished_ids(p).to_vec())
            .collect();
        assert_eq!(back, ids);
    }

    #[test]
    fn a_payload_that_is_not_a_json_array_is_one_id() {
        assert_eq!(&*finished_ids("order-17".into()), ["order-17".to_owned()]);
        assert_eq!(&*finished_ids("[not json".into()), ["[not json".to_owned()]);
        assert_eq!(&*finished_ids("[1, 2]".into()), ["[1, 2]".to_owned()]);
    }

    #[test]
    fn no_ids_means_no_payload() {
        assert!(done_payloads(&[]).is_empty());
    }
}
