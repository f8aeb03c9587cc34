//! The dedicated LISTEN connection: one per [`crate::PostgresScheduler`], outside the pool
//! (pooled connections drop notifications), reconnecting with back-off and fanning out to
//! in-process subscribers as [`Wakeup`]s. Once LISTEN is in effect (first connect and every
//! reconnect) it sends [`Wakeup::Resync`], because notifications sent before are lost.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use zart::scheduler::Wakeup;
use zart::Backoff;

use crate::queries;
use crate::tls::Tls;

/// Runs the listener task; aborts it when dropped.
pub(crate) struct Listener {
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Starts listening on the current runtime, connecting with `config` and `tls` (the pool's).
    pub(crate) fn start(
        config: tokio_postgres::Config,
        tls: Tls,
        tx: broadcast::Sender<Wakeup>,
    ) -> Self {
        Listener {
            task: tokio::spawn(listen_loop(config, tls, tx)),
        }
    }
}

async fn listen_loop(config: tokio_postgres::Config, tls: Tls, tx: broadcast::Sender<Wakeup>) {
    let mut backoff = Backoff::new();
    let mut first = true;
    loop {
        match listen_once(&config, &tls, &tx, &mut backoff, first).await {
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

/// Connects, LISTENs, and forwards notifications until the connection ends.
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &Tls,
    tx: &broadcast::Sender<Wakeup>,
    backoff: &mut Backoff,
    first: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.connector()).await?;
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
    let _ = tx.send(Wakeup::Resync);
    while let Some(msg) = messages.next().await {
        match msg? {
            AsyncMessage::Notification(n) => {
                let payload = n.payload().to_owned();
                let wakeup = match n.channel() {
                    queries::CHANNEL_WORK => Wakeup::Work { queue: payload },
                    queries::CHANNEL_TIMER => Wakeup::Timer { queue: payload },
                    queries::CHANNEL_DONE => Wakeup::Finished {
                        execution_ids: finished_ids(payload),
                    },
                    _ => continue,
                };
                let _ = tx.send(wakeup);
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
