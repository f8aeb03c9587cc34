//! Time as Zart's SQLite tables store it, and the clock every call reads.
//!
//! Times are milliseconds since the Unix epoch in Rust and fixed-width ISO-8601 UTC text with
//! milliseconds in the tables (`2026-12-06T22:00:00.123Z`), so `sqlite3` shows them readably
//! and text order is time order. [`INFINITY`] stands for "never". The clock is the process's
//! system time, plus the offset in `zart_clock` when the scheduler was built with a test clock;
//! it is read inside each transaction, so moving it applies to every connection at once.

use std::time::SystemTime;

pub(crate) use zart::stored_time::{duration, millis, parse_stored, system_ms, to_system};
pub use zart::stored_time::{format, parse, INFINITY};

use crate::ops::Cached;

use rusqlite::{Connection, OptionalExtension};
use zart::Error;

use crate::errors::SqlResult;
use crate::queries;

/// The current time in milliseconds: the system time, plus the test clock's offset when
/// `test_clock` is on (read from `zart_clock` on `conn`, inside the caller's transaction).
pub(crate) fn now(conn: &Connection, test_clock: bool) -> Result<i64, Error> {
    let system = system_ms(SystemTime::now());
    if !test_clock {
        return Ok(system);
    }
    let offset: Option<i64> = conn
        .row_cached(queries::CLOCK_OFFSET, [], |r| r.get(0))
        .optional()
        .or_db(conn, "reading the test clock")?;
    Ok(system.saturating_add(offset.unwrap_or(0)))
}
