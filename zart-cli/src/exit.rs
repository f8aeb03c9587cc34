//! The exit codes of `zart`, and which error gets which.

use zart::Error;

/// Success (doctor: every check passed or only warned).
pub const OK: u8 = 0;
/// Any other failure: the database refused the call, a doctor check failed, ...
pub const ERROR: u8 = 1;
/// Bad usage or input: unknown flag, invalid JSON, time or name, no database URL.
pub const USAGE: u8 = 2;
/// No execution has the id.
pub const NOT_FOUND: u8 = 3;
/// The database cannot be reached.
pub const UNAVAILABLE: u8 = 4;
/// The database has no Zart schema, or an older one: run `zart migrate`.
pub const SCHEMA: u8 = 5;

/// The exit codes, for `--help`.
pub const HELP: &str = "Exit codes:
  0  success
  1  error (the database refused the call; doctor: a check failed)
  2  bad usage or input (flags, JSON, times, names, no database URL)
  3  no execution has the id
  4  the database cannot be reached
  5  no Zart schema, or an older one: run `zart migrate`";

/// A mistake in how the command was called (exit code [`USAGE`]).
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The exit code for an error: by the first [`Usage`] or [`zart::Error`] in its chain.
pub fn code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Usage>() {
            return USAGE;
        }
        if let Some(e) = cause.downcast_ref::<Error>() {
            return match e {
                Error::NotFound { .. } => NOT_FOUND,
                Error::Unavailable { .. } => UNAVAILABLE,
                Error::Schema(_) => SCHEMA,
                Error::InvalidInput { .. } => USAGE,
                _ => ERROR,
            };
        }
    }
    ERROR
}

/// A second line for the errors that have an obvious next step.
pub fn hint(code: u8) -> Option<&'static str> {
    match code {
        UNAVAILABLE => Some("is the server running, and are the host and port in the URL right?"),
        _ => None,
    }
}
