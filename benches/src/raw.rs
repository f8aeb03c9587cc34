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
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::progress::Bar;
use crate::stats::{Gap, Rng};

/// The channel F notifies on.
const CHANNEL: &str = "zart_bench_f";

/// The table [`NotifyProbe::commit_sample`] inserts into (created when a probe opens).
const COMMIT_TABLE: &str = "zart_bench_idle_commits";

/// The queue of [`NotifyProbe::start_sample`]'s executions: no worker serves it, and the probe
/// deletes them when it closes.
const START_QUEUE: &str = "zart-bench-idle-starts";

/// The task name of those executions.
const START_TASK: &str = "zart-bench-idle-start";

/// How long one notification may take before the run fails.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A notification's payload and the instant the listener read it.
type Received = (String, Instant);

/// An open LISTEN/NOTIFY pair: a listener connection driven on its own task and a sender
/// connection with `pg_notify` and a single-row insert prepared. [`NotifyProbe::sample`] takes
/// one round trip, [`NotifyProbe::commit_sample`] one durable commit.
pub struct NotifyProbe {
    listener: tokio_postgres::Client,
    sender: tokio_postgres::Client,
    notify: tokio_postgres::Statement,
    commit: tokio_postgres::Statement,
    rx: mpsc::UnboundedReceiver<Received>,
    tasks: [JoinHandle<Result<(), tokio_postgres::Error>>; 2],
    sent: u64,
    /// The executions [`NotifyProbe::start_sample`] created, deleted when the probe closes.
    started: Vec<String>,
}

impl NotifyProbe {
    /// Opens both connections to the database at `config` and LISTENs.
    ///
    /// # Errors
    /// When a connection or a statement fails.
    pub async fn open(config: &tokio_postgres::Config) -> Result<NotifyProbe> {
        let (listener, connection) = config
            .connect(NoTls)
            .await
            .context("F: opening the listener connection")?;
        let (tx, rx) = mpsc::unbounded_channel::<Received>();
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
        sender
            .batch_execute(&format!(
                "create table if not exists {COMMIT_TABLE} (id bigserial primary key, payload text not null)"
            ))
            .await
            .with_context(|| format!("creating {COMMIT_TABLE}"))?;
        let commit = sender
            .prepare(&format!("insert into {COMMIT_TABLE} (payload) values ($1)"))
            .await
            .with_context(|| format!("preparing the insert into {COMMIT_TABLE}"))?;
        Ok(NotifyProbe {
            listener,
            sender,
            notify,
            commit,
            rx,
            tasks: [driver, sender_task],
            sent: 0,
            started: Vec::new(),
        })
    }

    /// One round trip: from just before the send to the listener reading the notification.
    /// `nonce` makes the payload unique to this run.
    ///
    /// # Errors
    /// When the send fails or no notification arrives within 30 s.
    pub async fn sample(&mut self, nonce: &str) -> Result<Duration> {
        let i = self.sent;
        self.sent += 1;
        let payload = format!("{nonce}-{i}");
        let sent = Instant::now();
        self.sender
            .execute(&self.notify, &[&payload])
            .await
            .with_context(|| format!("F: sample {i}: pg_notify"))?;
        let received = receive(&mut self.rx, &payload)
            .await
            .with_context(|| format!("F: sample {i}"))?;
        Ok(received.saturating_duration_since(sent))
    }

    /// One durable commit: a single-row autocommit insert on the sender connection, from just
    /// before the send to its return (the least a durable `start` can cost).
    ///
    /// # Errors
    /// When the insert fails.
    pub async fn commit_sample(&mut self, nonce: &str) -> Result<Duration> {
        let payload = format!("{nonce}-{}", self.sent);
        self.sent += 1;
        let sent = Instant::now();
        self.sender
            .execute(&self.commit, &[&payload])
            .await
            .with_context(|| format!("inserting into {COMMIT_TABLE}"))?;
        Ok(sent.elapsed())
    }

    /// Zart's start statement alone: `zart_start_execution` with its notification, sent as
    /// `PostgresScheduler` sends it to start an execution (unnamed, parsed and planned on each
    /// call, one round trip), from just before the send to its return, on the sender
    /// connection. The execution is of a task in a queue no worker serves.
    ///
    /// # Errors
    /// When the statement fails or does not create the execution.
    pub async fn start_sample(&mut self, nonce: &str) -> Result<Duration> {
        let id = format!("idle-start-{nonce}-{}", self.sent);
        self.sent += 1;
        let input = serde_json::json!({ "bench": true });
        let none_text: Option<&str> = None;
        let none_int8: Option<i64> = None;
        let none_time: Option<std::time::SystemTime> = None;
        let priority: i16 = 0;
        let debounce = false;
        let sent = Instant::now();
        let row = self
            .sender
            .query_typed(
                zart_pg::queries::START_EXECUTION_NOTIFY,
                &[
                    (&id, Type::TEXT),
                    (&START_TASK, Type::TEXT),
                    (&input, Type::JSONB),
                    (&START_QUEUE, Type::TEXT),
                    (&none_text, Type::TEXT),
                    (&none_int8, Type::INT8),
                    (&none_int8, Type::INT8),
                    (&none_time, Type::TIMESTAMPTZ),
                    (&priority, Type::INT2),
                    (&none_text, Type::TEXT),
                    (&none_text, Type::TEXT),
                    (&none_int8, Type::INT8),
                    (&debounce, Type::BOOL),
                ],
            )
            .await
            .with_context(|| format!("S: starting {id}"))?;
        let took = sent.elapsed();
        let created = row
            .first()
            .map(|r| r.try_get::<_, bool>(0))
            .transpose()?
            .unwrap_or(false);
        if !created {
            bail!("S: {id} was not created");
        }
        self.started.push(id);
        Ok(took)
    }

    /// Closes both connections and waits for their tasks.
    ///
    /// # Errors
    /// When a connection ended with an error or did not close within 5 s.
    pub async fn close(self) -> Result<()> {
        // The executions of start_sample (no worker serves their queue), by key.
        if !self.started.is_empty() {
            for (table, id) in [("zart_tasks", "execution_id"), ("zart_executions", "id")] {
                self.sender
                    .execute(
                        &format!(
                            "delete from public.{table} t using unnest($1::text[]) as u(id)
                              where t.bucket = public.zart_bucket(u.id) and t.{id} = u.id"
                        ),
                        &[&self.started],
                    )
                    .await
                    .with_context(|| format!("S: deleting the probe's executions from {table}"))?;
            }
        }
        // Dropping a client ends its connection cleanly; then the tasks finish on their own.
        drop(self.listener);
        drop(self.sender);
        for task in self.tasks {
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Err(e).context("F: closing a connection"),
                Ok(Err(e)) => return Err(e).context("F: a connection task failed"),
                Err(_) => bail!("F: a connection did not close within 5 s"),
            }
        }
        Ok(())
    }
}

/// Measures `samples` round trips (after `warmup` unmeasured ones) on the database at
/// `config`, sleeping a random `gap` between them; `bar` advances once per round trip.
///
/// # Errors
/// When the probe fails (see [`NotifyProbe`]).
pub async fn round_trips(
    config: &tokio_postgres::Config,
    nonce: &str,
    warmup: usize,
    samples: usize,
    gap: Gap,
    rng: &mut Rng,
    bar: &Bar,
) -> Result<Vec<Duration>> {
    let mut probe = NotifyProbe::open(config).await?;
    let mut out = Vec::with_capacity(samples);
    for i in 0..warmup + samples {
        let took = probe.sample(nonce).await?;
        if i >= warmup {
            out.push(took);
        }
        bar.inc(1);
        gap.sleep(rng).await;
    }
    probe.close().await?;
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
