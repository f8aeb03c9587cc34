//! The exit codes of a sidecar process, so a supervisor can tell what happened. The numbers
//! that mean the same thing as the `zart` command's (2, 4, 5) are the same.

/// Clean shutdown: a SIGTERM or SIGINT stopped the workers; running executions finished within
/// the grace period or had their leases released for another worker. Also `--help`.
pub const OK: u8 = 0;
/// A worker stopped with an error while running (or by itself), the workers did not stop in
/// time, or the process could not set itself up (a metrics recorder was already installed, the
/// tokio runtime could not start): look at the log.
pub const FAILURE: u8 = 1;
/// Bad configuration: an invalid or missing flag or environment variable, an unsupported
/// database URL, no task registered. Restarting will not help.
pub const CONFIG: u8 = 2;
/// The database could not be reached (or refused the login) within `ZART_CONNECT_TIMEOUT` at
/// start. Restarting later may help.
pub const UNAVAILABLE: u8 = 4;
/// The database has no Zart schema, or an older one than this binary needs: run
/// `zart migrate` (or start with `ZART_MIGRATE=true`).
pub const SCHEMA: u8 = 5;
/// The HTTP endpoints could not listen on `ZART_LISTEN` (address in use, not allowed).
pub const LISTEN: u8 = 6;

/// The exit codes, for `--help`.
pub const HELP: &str = "Exit codes:
  0  clean shutdown after SIGTERM or SIGINT (running executions finished or released)
  1  a worker failed while running, or the process could not set itself up
  2  bad configuration (flags, environment variables, database URL, no task registered)
  4  the database could not be reached at start within ZART_CONNECT_TIMEOUT
  5  no Zart schema, or an older one: run `zart migrate` (or set ZART_MIGRATE=true)
  6  cannot listen on ZART_LISTEN";

/// Why the sidecar stopped: an exit code and the message logged with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The exit code (one of the constants of this module).
    pub code: u8,
    /// What happened, in one line.
    pub message: String,
}

impl Exit {
    /// An exit with `code` and `message`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Exit {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (exit code {})", self.message, self.code)
    }
}

impl std::error::Error for Exit {}
