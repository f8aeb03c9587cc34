//! Zart's sidecar mode: one call turns a [`TaskRegistry`] into a complete worker process.
//!
//! [`run`] reads its settings from the arguments and the environment (`DATABASE_URL` and
//! `ZART_*`, listed by `--help`; see [`Settings`]), writes logs with `tracing-subscriber` (text
//! or JSON), installs a Prometheus recorder, opens the database the URL names (zart-pg for
//! `postgres://`, zart-sqlite for `sqlite://`, zart-mysql for `mysql://`), runs one [`Worker`] per queue, and serves
//! `/livez`, `/readyz` and `/metrics` over HTTP. On SIGTERM or SIGINT it stops claiming, lets
//! running executions finish for up to `ZART_SHUTDOWN_GRACE`, releases the leases of the rest
//! and exits 0. Every other ending has its own exit code ([`exit`]).
//!
//! This crate exists so that the core crates install nothing global: the log subscriber and
//! the metrics recorder are installed here, by the explicit call, and nowhere else.
//!
//! ```no_run
//! use zart::{Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry};
//!
//! struct Ping;
//!
//! #[zart::async_trait]
//! impl TaskHandler for Ping {
//!     type Data = ();
//!     type Output = ();
//!     async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<(), TaskError> {
//!         ctx.step("pong", || async { Ok::<_, std::io::Error>(()) }).await
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let mut registry = TaskRegistry::new();
//!     if let Err(err) = registry.register("ping", Ping) {
//!         eprintln!("{err}");
//!         return std::process::ExitCode::from(zart_sidecar::exit::CONFIG);
//!     }
//!     zart_sidecar::run(registry)
//! }
//! ```
//!
//! # Why these crates
//!
//! - **axum** (over hyper) for the three endpoints: the tokio project's own HTTP framework,
//!   well kept, and with default features off it adds little beyond hyper, which any HTTP
//!   server here would bring.
//! - **metrics-exporter-prometheus**: the exporter of the `metrics` facade Zart already
//!   records through; it renders the text format, so its own HTTP listener stays off and
//!   `/metrics` is served by the same server as the health endpoints.
//! - **tracing-subscriber** (`fmt`, `env-filter`, `json`): the subscriber of the `tracing`
//!   crate Zart logs and spans through; its JSON formatter puts the spans' fields (execution
//!   id, step name) on every line.
//! - **clap** (`derive`, `env`): each setting is a flag and an environment variable at once,
//!   and `--help` lists both with the defaults.

pub mod exit;
mod http;
mod settings;
mod stats;
mod store;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinSet;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::EnvFilter;
use zart::{telemetry, ShutdownHandle, TaskRegistry, Worker};

pub use exit::Exit;
pub use settings::{parse_duration, LogFormat, LogSpans, Settings};

use http::Health;

/// The histogram buckets of the `_seconds` metrics.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The histogram buckets of `zart_group_commit_batch_size`.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// How long after the grace period the sidecar still waits for its workers to stop.
const STOP_MARGIN: Duration = Duration::from_secs(15);

/// How often the Prometheus recorder's histograms are compacted.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Runs `registry`'s tasks as a worker process with the settings of the arguments and
/// environment, until SIGTERM or SIGINT; returns the exit code for `main` to return.
///
/// Call it from a plain `fn main` (it builds its own tokio runtime); a program that has a
/// runtime already calls [`serve`]. `--help` prints the settings and exit codes and exits 0;
/// a bad setting prints why and exits [`exit::CONFIG`].
pub fn run(registry: TaskRegistry) -> ExitCode {
    run_with(Settings::from_env(), registry)
}

/// [`run`] with settings built by the caller.
pub fn run_with(settings: Settings, registry: TaskRegistry) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("zart-sidecar: cannot start the tokio runtime: {err}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(serve(settings, registry)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(exit) => ExitCode::from(exit.code),
    }
}

/// Runs `registry`'s tasks as a worker process until SIGTERM or SIGINT, inside the caller's
/// tokio runtime: installs the log subscriber (unless one is installed already) and the
/// Prometheus recorder, opens the database, serves the HTTP endpoints and runs the workers.
///
/// # Errors
/// An [`Exit`] with the code of what went wrong (see [`exit`]), already logged.
pub async fn serve(settings: Settings, registry: TaskRegistry) -> Result<(), Exit> {
    init_logging(&settings)?;
    let result = serve_logged(settings, registry).await;
    match &result {
        Ok(()) => tracing::info!(exit_code = exit::OK, "zart-sidecar stopped cleanly"),
        Err(exit) => tracing::error!(exit_code = exit.code, "zart-sidecar: {}", exit.message),
    }
    result
}

async fn serve_logged(settings: Settings, registry: TaskRegistry) -> Result<(), Exit> {
    let backend = settings
        .check()
        .map_err(|message| Exit::new(exit::CONFIG, message))?;
    registry
        .validate()
        .map_err(|e| Exit::new(exit::CONFIG, e.to_string()))?;
    let mut signals = Signals::new()?;
    let prometheus = install_recorder()?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| {
            Exit::new(
                exit::LISTEN,
                format!("cannot listen on ZART_LISTEN={}: {e}", settings.listen),
            )
        })?;

    let store = tokio::select! {
        opened = store::open(&settings, backend) => opened?,
        signal = signals.next() => {
            tracing::info!(signal, "stopped before the database was open");
            return Ok(());
        }
    };

    let health = Arc::new(Health {
        scheduler: store.scheduler.clone(),
        metrics: prometheus.clone(),
        workers: settings.queues.len(),
        running: Default::default(),
        stopping: Default::default(),
    });
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let app = http::router(health.clone());
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = http_stopped.await;
            })
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "the HTTP endpoints stopped");
        }
    });
    let upkeep = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            ticks.tick().await;
            prometheus.run_upkeep();
        }
    });
    let stats = (!settings.stats_interval.is_zero()).then(|| {
        tokio::spawn(stats::poll(
            store.admin.clone(),
            settings.queues.clone(),
            settings.stats_interval,
        ))
    });

    let registry = Arc::new(registry);
    let mut workers = JoinSet::new();
    let mut handles: Vec<ShutdownHandle> = Vec::new();
    for queue in &settings.queues {
        let worker = Worker::new(
            Arc::new(store.scheduler.clone()),
            registry.clone(),
            settings.worker_config(queue),
        );
        handles.push(worker.shutdown_handle());
        health.running.fetch_add(1, Ordering::AcqRel);
        let health = health.clone();
        let queue = queue.clone();
        workers.spawn(async move {
            let result = worker.run().await;
            health.running.fetch_sub(1, Ordering::AcqRel);
            (queue, result)
        });
    }
    tracing::info!(
        listen = %settings.listen,
        queues = ?settings.queues,
        tasks = ?registry.task_names(),
        "zart-sidecar ready"
    );

    // Run until a signal, or until a worker stops by itself (which is a failure).
    let mut failure = tokio::select! {
        signal = signals.next() => {
            tracing::info!(
                signal,
                grace_ms = settings.shutdown_grace.as_millis() as u64,
                "stopping: no new claims; running executions may finish within the grace period"
            );
            None
        }
        Some(ended) = workers.join_next() => {
            let exit = worker_ended(ended);
            Some(if exit.code == exit::OK {
                Exit::new(exit::FAILURE, "a worker stopped without being asked to")
            } else {
                exit
            })
        }
    };

    health.stopping.store(true, Ordering::Release);
    for handle in &handles {
        handle.shutdown();
    }
    let drained = tokio::time::timeout(settings.shutdown_grace + STOP_MARGIN, async {
        while let Some(ended) = workers.join_next().await {
            let exit = worker_ended(ended);
            if exit.code != exit::OK && failure.is_none() {
                failure = Some(exit);
            }
        }
    })
    .await;
    if drained.is_err() && failure.is_none() {
        failure = Some(Exit::new(
            exit::FAILURE,
            "the workers did not stop within the grace period; exiting anyway",
        ));
    }
    if let Some(stats) = stats {
        stats.abort();
    }
    upkeep.abort();
    let _ = stop_http.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    match failure {
        Some(exit) if exit.code != exit::OK => Err(exit),
        _ => Ok(()),
    }
}

/// The exit a worker's end calls for: [`exit::OK`] when it stopped cleanly after a shutdown.
fn worker_ended(ended: Result<(String, Result<(), zart::Error>), tokio::task::JoinError>) -> Exit {
    match ended {
        Ok((_, Ok(()))) => Exit::new(exit::OK, "worker stopped"),
        Ok((queue, Err(err))) => {
            let exit = store::exit_for(&err);
            let code = match exit.code {
                exit::UNAVAILABLE => exit::FAILURE,
                code => code,
            };
            Exit::new(
                code,
                format!("the worker of queue {queue:?} failed: {}", exit.message),
            )
        }
        Err(err) => Exit::new(exit::FAILURE, format!("a worker task failed: {err}")),
    }
}

/// Installs the log subscriber the settings ask for, unless the program installed one.
fn init_logging(settings: &Settings) -> Result<(), Exit> {
    let filter = EnvFilter::try_new(&settings.log_level).map_err(|e| {
        let exit = Exit::new(
            exit::CONFIG,
            format!("invalid ZART_LOG_LEVEL {:?}: {e}", settings.log_level),
        );
        eprintln!("zart-sidecar: {}", exit.message);
        exit
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_span_events(match settings.log_spans {
            LogSpans::None => FmtSpan::NONE,
            LogSpans::Close => FmtSpan::CLOSE,
        });
    let installed = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if installed.is_err() {
        tracing::info!("a log subscriber is installed already; ZART_LOG_FORMAT and ZART_LOG_LEVEL are not applied");
    }
    Ok(())
}

/// Installs the Prometheus recorder, with histogram buckets, and describes Zart's metrics.
fn install_recorder() -> Result<PrometheusHandle, Exit> {
    let failed = |e: metrics_exporter_prometheus::BuildError| {
        Exit::new(
            exit::FAILURE,
            format!("cannot install the Prometheus recorder: {e}"),
        )
    };
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(telemetry::GROUP_COMMIT_BATCH_SIZE.to_owned()),
                BATCH_BUCKETS,
            )
        })
        .map_err(failed)?
        .install_recorder()
        .map_err(failed)?;
    telemetry::describe();
    // Counters from zero, so rates work from the first scrape.
    for name in [
        telemetry::EXECUTIONS_STARTED,
        telemetry::CLAIMED,
        telemetry::LEASE_RENEWALS,
        telemetry::QUEUE_STATS_ERRORS,
    ] {
        metrics::counter!(name).increment(0);
    }
    for status in ["completed", "failed"] {
        metrics::counter!(telemetry::EXECUTIONS_FINISHED, "status" => status).increment(0);
    }
    for by in ["heartbeat", "write"] {
        metrics::counter!(telemetry::LEASE_LOSSES, "detected_by" => by).increment(0);
    }
    Ok(handle)
}

/// SIGTERM and SIGINT, as one stream.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals, Exit> {
        Ok(Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| Exit::new(exit::FAILURE, format!("cannot listen for SIGTERM: {e}")))?,
        })
    }

    /// Waits for the next signal; returns its name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
