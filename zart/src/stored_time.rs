//! Times as the SQL backends without a time type of their own store them (zart-sqlite,
//! zart-mysql): milliseconds since the Unix epoch in Rust, fixed-width ISO-8601 UTC text with
//! milliseconds in the tables (`2026-12-06T22:00:00.123Z`), so a query shows them readably and
//! text order is time order. [`INFINITY`] stands for "never". The same form is what operators
//! see ([`crate::view::time`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Error;

/// The stored form of "never" (a wait without a time): the largest time the format holds.
pub const INFINITY: &str = "9999-12-31T23:59:59.999Z";

/// [`INFINITY`] in milliseconds since the epoch.
pub const MAX_MS: i64 = 253_402_300_799_999;

const DAY_MS: i64 = 86_400_000;

/// A system time in milliseconds since the epoch (times before it are the epoch).
pub fn system_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(MAX_MS))
        .unwrap_or(0)
        .min(MAX_MS)
}

/// Milliseconds since the epoch as a system time.
pub fn to_system(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A duration in milliseconds (saturating).
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds as a duration; negative is zero.
pub fn duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// `ms` as stored: `YYYY-MM-DDTHH:MM:SS.mmmZ`, clamped to the years 1970 to 9999.
pub fn format(ms: i64) -> String {
    let ms = ms.clamp(0, MAX_MS);
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    let rem = ms.rem_euclid(DAY_MS);
    // Digit by digit into a fixed buffer: `format!` with padding cost ~3,000 instructions a
    // call, and every write formats the time at least once.
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, value: i64| {
        let mut v = value;
        for i in (at..at + width).rev() {
            out[i] = b'0' + u8::try_from(v % 10).unwrap_or(0);
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, rem / 3_600_000);
    put(14, 2, rem / 60_000 % 60);
    put(17, 2, rem / 1000 % 60);
    put(20, 3, rem % 1000);
    out.iter().map(|&b| char::from(b)).collect()
}

/// Reads a stored time back; `None` if it is not in the stored format.
pub fn parse(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> { text.get(from..to)?.parse().ok() };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, min, s, milli) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || min > 59 || s > 59 {
        return None;
    }
    Some(days_from_civil(y, m, d) * DAY_MS + ((h * 60 + min) * 60 + s) * 1000 + milli)
}

/// A stored time, or a database error naming what held it.
pub fn parse_stored(text: &str, what: &str) -> Result<i64, Error> {
    parse(text).ok_or_else(|| Error::Database {
        message: format!("{what}: {text:?} is not a time in Zart's format"),
        source: None,
    })
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_read_back_as_written_and_sort_as_text() {
        for ms in [
            0,
            1,
            999,
            86_399_999,
            1_796_594_400_123,
            951_782_400_000,
            MAX_MS,
        ] {
            assert_eq!(parse(&format(ms)), Some(ms), "{}", format(ms));
        }
        assert_eq!(format(1_796_594_400_123), "2026-12-06T22:00:00.123Z");
        assert_eq!(format(MAX_MS), INFINITY);
        assert_eq!(format(i64::MAX), INFINITY);
        assert!(format(1_000) < format(10_000));
        assert_eq!(parse("2026-12-06 22:00:00"), None);
    }
}
