//! Time as Zart's MySQL tables store it, and the clock every call reads.
//!
//! Times are milliseconds since the Unix epoch in Rust and fixed-width ISO-8601 UTC text with
//! milliseconds in the tables (`2026-12-06T22:00:00.123Z`), so `select` shows them readably
//! and text order is time order. [`INFINITY`] stands for "never". The clock is the server's
//! (`UTC_TIMESTAMP(6)`), plus the offset in `zart_clock` when the scheduler was built with a
//! test clock; it is read once per call inside its transaction, so every worker process sees one
//! clock, and moving it applies to every connection at once.

pub(crate) use zart::stored_time::{duration, millis, parse_stored, system_ms, to_system, MAX_MS};
pub use zart::stored_time::{format, parse, INFINITY};

use mysql_async::Conn;
use zart::Error;

use crate::queries;

/// The current time in milliseconds: the server's clock (`UTC_TIMESTAMP(6)`), plus the test
/// clock's offset in `zart_clock` when `test_clock` is on; one statement, inside the caller's
/// transaction.
pub(crate) async fn now(conn: &mut Conn, test_clock: bool) -> Result<i64, Error> {
    let sql = if test_clock {
        queries::NOW_WITH_OFFSET
    } else {
        queries::NOW
    };
    let now: Option<i64> = crate::ops::first(conn, sql, Vec::new(), "reading the clock").await?;
    Ok(now.unwrap_or(0).clamp(0, MAX_MS))
}
