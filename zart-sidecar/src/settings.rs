//! [`Settings`]: every setting of the sidecar, from flags or `DATABASE_URL` and `ZART_*`
//! environment variables (a flag wins over its variable), and their checks.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use zart::WorkerConfig;

use crate::exit;

/// The settings of a sidecar process; `--help` lists each with its environment variable.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "zart-sidecar",
    version,
    about = "Runs this program's Zart tasks as a worker process: health and Prometheus \
             endpoints, logs, graceful shutdown.",
    after_help = exit::HELP
)]
#[non_exhaustive]
pub struct Settings {
    /// Database URL: postgres://user:pass@host/db (zart-pg), sqlite://path/to/zart.db
    /// (zart-sqlite) or mysql://user:pass@host:3306/db (zart-mysql; also mariadb://), chosen
    /// by the scheme.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// The queues to claim from, separated by commas; one worker per queue.
    #[arg(
        long,
        env = "ZART_QUEUES",
        value_delimiter = ',',
        default_value = "default"
    )]
    pub queues: Vec<String>,

    /// How many executions each queue's worker runs at once.
    #[arg(long, env = "ZART_CONCURRENCY", default_value_t = 512)]
    pub concurrency: usize,

    /// How long a claim holds an execution unless renewed (500ms, 30s, 2m, 1h; a bare number
    /// is seconds); leases are renewed every third of it.
    #[arg(long, env = "ZART_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub lease: Duration,

    /// On SIGTERM or SIGINT: how long running executions may take to finish before their
    /// leases are released for another worker.
    #[arg(
        long,
        env = "ZART_SHUTDOWN_GRACE",
        default_value = "30s",
        value_parser = parse_duration
    )]
    pub shutdown_grace: Duration,

    /// The longest an idle worker sleeps without looking for work.
    #[arg(
        long,
        env = "ZART_SWEEP_INTERVAL",
        default_value = "5s",
        value_parser = parse_duration
    )]
    pub sweep_interval: Duration,

    /// Take-overs from an expired lease after which an execution is failed, not run again.
    #[arg(long, env = "ZART_MAX_RECOVERIES", default_value_t = 10)]
    pub max_recoveries: u32,

    /// The worker id recorded as lease owner, with `:<queue>` appended for each queue's
    /// worker (default: host name, process id, a random part).
    #[arg(long, env = "ZART_WORKER_ID")]
    pub worker_id: Option<String>,

    /// PostgreSQL connections in the pool.
    #[arg(long, env = "ZART_POOL_SIZE", default_value_t = zart_pg::DEFAULT_POOL_SIZE)]
    pub pool_size: usize,

    /// At start, how long to keep trying to reach the database before giving up (exit 4).
    #[arg(
        long,
        env = "ZART_CONNECT_TIMEOUT",
        default_value = "30s",
        value_parser = parse_duration
    )]
    pub connect_timeout: Duration,

    /// Create or upgrade the Zart schema at start, as `zart migrate` does (true/false).
    #[arg(
        long,
        env = "ZART_MIGRATE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub migrate: bool,

    /// The address of the HTTP endpoints /livez, /readyz and /metrics.
    #[arg(long, env = "ZART_LISTEN", default_value = "0.0.0.0:9464")]
    pub listen: SocketAddr,

    /// How often the queue depth and oldest-due gauges are read from the database (0: never).
    #[arg(
        long,
        env = "ZART_STATS_INTERVAL",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub stats_interval: Duration,

    /// Log format: text (for people) or json (one object per line).
    #[arg(long, env = "ZART_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Which logs to write: a level (error, warn, info, debug, trace) or filter directives
    /// such as `info,zart_pg=debug` (`debug` shows the database-call spans).
    #[arg(long, env = "ZART_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Also log each span when it closes, with its busy and idle time: `close` (with
    /// `ZART_LOG_LEVEL=info,zart_pg=debug`, one line per database call), or `none`.
    #[arg(long, env = "ZART_LOG_SPANS", value_enum, default_value_t = LogSpans::None)]
    pub log_spans: LogSpans,
}

/// Which span events are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogSpans {
    /// Spans only give their fields to the events inside them.
    None,
    /// A line when each span closes, with its timings.
    Close,
}

/// How logs are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the spans (execution id, step name) as fields.
    Json,
}

/// The backend a database URL names, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Postgres,
    Sqlite,
    MySql,
}

impl Settings {
    /// The settings from the process's arguments and environment. `--help` and `--version`
    /// print and exit 0; a bad or missing setting prints why and exits with
    /// [`exit::CONFIG`].
    pub fn from_env() -> Settings {
        match Settings::try_parse() {
            Ok(settings) => settings,
            Err(err) => {
                let code = if err.use_stderr() {
                    exit::CONFIG
                } else {
                    exit::OK
                };
                // clap prints the message, or the help, itself.
                let _ = err.print();
                std::process::exit(i32::from(code));
            }
        }
    }

    /// The backend of [`Settings::database_url`].
    pub(crate) fn backend(&self) -> Result<Backend, String> {
        let url = &self.database_url;
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Ok(Backend::MySql)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(format!(
                "invalid DATABASE_URL: unsupported scheme {scheme:?}; use \
                 postgres://user:pass@host/db, sqlite://path/to/zart.db or \
                 mysql://user:pass@host:3306/db"
            ))
        }
    }

    /// The worker settings for `queue`.
    pub(crate) fn worker_config(&self, queue: &str) -> WorkerConfig {
        let mut config = WorkerConfig::default()
            .with_queue(queue)
            .with_concurrency(self.concurrency)
            .with_lease_duration(self.lease)
            .with_sweep_interval(self.sweep_interval)
            .with_shutdown_timeout(self.shutdown_grace)
            .with_max_recoveries(self.max_recoveries)
            // The sidecar listens for signals itself and stops every worker.
            .with_handle_signals(false);
        if let Some(id) = &self.worker_id {
            config = config.with_worker_id(format!("{id}:{queue}"));
        }
        config
    }

    /// Checks what clap cannot: the URL's scheme, the queues and the durations.
    pub(crate) fn check(&self) -> Result<Backend, String> {
        let backend = self.backend()?;
        if self.queues.is_empty() {
            return Err("invalid ZART_QUEUES: name at least one queue".to_owned());
        }
        for (i, queue) in self.queues.iter().enumerate() {
            zart::limits::check_name("queue", queue)
                .map_err(|e| format!("invalid ZART_QUEUES: {e}"))?;
            if self.queues[..i].contains(queue) {
                return Err(format!("invalid ZART_QUEUES: {queue:?} is listed twice"));
            }
        }
        if self.concurrency == 0 {
            return Err("invalid ZART_CONCURRENCY: must be at least 1".to_owned());
        }
        if self.lease < Duration::from_secs(1) {
            return Err("invalid ZART_LEASE: must be at least 1s".to_owned());
        }
        if self.sweep_interval.is_zero() {
            return Err("invalid ZART_SWEEP_INTERVAL: must be above zero".to_owned());
        }
        if self.pool_size == 0 {
            return Err("invalid ZART_POOL_SIZE: must be at least 1".to_owned());
        }
        if let Some(id) = &self.worker_id {
            zart::limits::check_name("worker id", id)
                .map_err(|e| format!("invalid ZART_WORKER_ID: {e}"))?;
        }
        Ok(backend)
    }
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds (fractions allowed: `0.5s`).
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => f64::NAN,
    };
    number
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|secs| secs.is_finite() && *secs >= 0.0 && *secs < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{text:?} is not a duration: use 500ms, 30s, 2m, 1h or seconds"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        Settings::try_parse_from(
            ["zart-sidecar", "--database-url", "sqlite://x.db"]
                .iter()
                .chain(args),
        )
    }

    #[test]
    fn durations_take_the_documented_forms() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        for bad in ["", "s", "-1s", "3 days", "1d", "1e99"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults_and_checks() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.queues, ["default"]);
        assert_eq!(s.lease, Duration::from_secs(30));
        assert!(!s.migrate);
        assert_eq!(s.check(), Ok(Backend::Sqlite));
        assert!(parse(&["--migrate"]).unwrap().migrate);

        let s = parse(&["--queues", "a,b,a"]).unwrap();
        assert!(s.check().unwrap_err().contains("listed twice"));
        let s = parse(&["--lease", "500ms"]).unwrap();
        assert!(s.check().unwrap_err().contains("ZART_LEASE"));
        let mut s = parse(&[]).unwrap();
        s.database_url = "mysql://x".to_owned();
        assert_eq!(s.check(), Ok(Backend::MySql));
        s.database_url = "redis://x".to_owned();
        assert!(s
            .check()
            .unwrap_err()
            .contains("unsupported scheme \"redis\""));
        assert!(parse(&["--lease", "forever"]).is_err());
        assert!(parse(&["--log-format", "xml"]).is_err());
    }
}
