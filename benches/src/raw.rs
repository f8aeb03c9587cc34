//! Figure F: the raw LISTEN/NOTIFY round trip with plain tokio-postgres, the floor any
//! notification-driven wake-up in Zart sits on.
//!
//! One dedicated listener connection is driven by [`tokio_postgres::Connection::poll_message`]
//! on its own task, which stamps each notification with the instant it was read and forwards it
//! over a channel. A second connection sends `select pg_notify(..)` (autocommit, prepared once).
//! A sample is the time from just before the send to the listener's stamp.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::progress::Bar;
use crate::stats::{Gap, Rng};

/// The channel F notifies on.
const CHANNEL: &str = "zart_bench_f";

/// How long one notification may take before the run fails.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A notification's payload and the instant the listener read it.
type Received = (String, Instant);

/// Measures `samples` round trips (after `warmup` unmeasured ones) on the database at
/// `config`, sleeping a random `gap` between them; `bar` advances once per round trip.
pub async fn round_trips(
    config: &tokio_postgres::Config,
    nonce: &str,
    warmup: usize,
    samples: usize,
    gap: Gap,
    rng: &mut Rng,
    bar: &Bar,
) -> Result<Vec<Duration>> {
    let (listener, connection) = config
        .connect(NoTls)
        .await
        .context("F: opening the listener connection")?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Received>();
    let driver = tokio::spawn(drive_listener(connection, tx));
    listener
        .batch_execute(&format!("listen {CHANNEL}"))
        .await
        .context("F: LISTEN")?;

    let (sender, connection) = config
        .connect(NoTls)
        .await
        .context("F: opening the sender connection")?;
    let sender_task: JoinHandle<Result<(), tokio_postgres::Error>> = tokio::spawn(connection);
    let notify = sender
        .prepare(&format!("select pg_notify('{CHANNEL}', $1)"))
        .await
        .context("F: preparing pg_notify")?;

    let mut out = Vec::with_capacity(samples);
    for i in 0..warmup + samples {
        let payload = format!("{nonce}-{i}");
        let sent = Instant::now();
        sender
            .execute(&notify, &[&payload])
            .await
            .with_context(|| format!("F: sample {i}: pg_notify"))?;
        let received = receive(&mut rx, &payload)
            .await
            .with_context(|| format!("F: sample {i}"))?;
        if i >= warmup {
            out.push(received.saturating_duration_since(sent));
        }
        bar.inc(1);
        gap.sleep(rng).await;
    }

    // Dropping a client ends its connection cleanly; then the tasks finish on their own.
    drop(listener);
    drop(sender);
    for task in [driver, sender_task] {
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e).context("F: closing a connection"),
            Ok(Err(e)) => return Err(e).context("F: a connection task failed"),
            Err(_) => bail!("F: a connection did not close within 5 s"),
        }
    }
    Ok(out)
}

/// Reads the listener connection until it closes, forwarding notifications with the instant
/// they were read.
async fn drive_listener(
    mut connection: tokio_postgres::Connection<
        tokio_postgres::Socket,
        tokio_postgres::tls::NoTlsStream,
    >,
    tx: mpsc::UnboundedSender<Received>,
) -> Result<(), tokio_postgres::Error> {
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(message) = messages.next().await {
        if let AsyncMessage::Notification(n) = message? {
            let at = Instant::now();
            // The receiver is gone only when the run has stopped; keep draining until close.
            let _ = tx.send((n.payload().to_owned(), at));
        }
    }
    Ok(())
}

/// Waits for the notification carrying `payload` (skipping any stale one) and returns the
/// instant the listener read it.
async fn receive(rx: &mut mpsc::UnboundedReceiver<Received>, payload: &str) -> Result<Instant> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => bail!("no notification within {TIMEOUT:?}"),
            Ok(None) => bail!("the listener connection closed"),
            Ok(Some((p, at))) if p == payload => return Ok(at),
            Ok(Some(_)) => {}
        }
    }
}
