//! The dedicated LISTEN connection: one per [`crate::PostgresScheduler`], outside the pool
//! (pooled connections drop notifications), reconnecting with back-off and fanning out to
//! in-process subscribers as [`Wakeup`]s. Once LISTEN is in effect (first connect and every
//! reconnect) it sends [`Wakeup::Resync`], because notifications sent before are lost.

use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};
use zart::scheduler::Wakeup;
use zart::Backoff;

use crate::queries;

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
    /// Starts listening on the current runtime.
    pub(crate) fn start(config: tokio_postgres::Config, tx: broadcast::Sender<Wakeup>) -> Self {
        Listener {
            task: tokio::spawn(listen_loop(config, tx)),
        }
    }
}

async fn listen_loop(config: tokio_postgres::Config, tx: broadcast::Sender<Wakeup>) {
    let mut backoff = Backoff::new();
    let mut first = true;
    loop {
        match listen_once(&config, &tx, &mut backoff, first).await {
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
    tx: &broadcast::Sender<Wakeup>,
    backoff: &mut Backoff,
    first: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
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
                        execution_id: payload,
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
