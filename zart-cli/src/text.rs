//! How the CLI writes and reads times, durations and tables.
//!
//! Times are UTC, ISO-8601 with milliseconds (`2026-12-06T22:00:00.123Z`), in tables and JSON
//! alike, so a time printed by one command can be given to another (`--since`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A time as the CLI prints it.
pub fn time(t: SystemTime) -> String {
    zart::view::time(t)
}

/// An optional time, `-` when absent.
pub fn time_or_dash(t: Option<SystemTime>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// A duration, short: `850ms`, `12.3s`, `4m05s`, `2h07m`, `3d04h`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else {
        format!("{}d{:02}h", s / 86_400, s / 3600 % 24)
    }
}

/// The time from `from` to `to`, short; `-` when `to` is earlier.
pub fn between(from: SystemTime, to: SystemTime) -> String {
    to.duration_since(from)
        .map_or_else(|_| "-".to_owned(), duration)
}

/// Reads a time given on the command line, relative to `now`: `2026-12-06`,
/// `2026-12-06T22:00:00Z` (a space instead of `T`, fractions of a second and a missing `Z` are
/// accepted; always UTC), or an age such as `90s`, `15m`, `2h`, `7d` (that long before `now`).
pub fn parse_time(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Some(age) = parse_age(text) {
        return now
            .checked_sub(age)
            .ok_or_else(|| format!("{text:?} is before 1970"));
    }
    let (date, clock) = match text.split_once(['T', ' ']) {
        Some((date, clock)) => (date, clock.trim_end_matches('Z')),
        None => (text, "00:00:00"),
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let hms = match hms.len() {
        5 => format!("{hms}:00"),
        _ => hms.to_owned(),
    };
    let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
    let stored = format!("{date}T{hms}.{millis}Z");
    let ms = zart_sqlite::clock::parse(&stored).ok_or_else(|| {
        format!(
            "{text:?} is not a time: use 2026-12-06, 2026-12-06T22:00:00Z (UTC) or an age \
             such as 90s, 15m, 2h, 7d"
        )
    })?;
    Ok(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// Reads a retention age given on the command line: `90s`, `15m`, `2h`, `7d`, or `never`
/// (`None`: keep forever). A negative age is refused with a message that says so.
pub fn parse_retention_age(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text == "never" {
        return Ok(None);
    }
    if text.starts_with('-') {
        return Err(format!(
            "{text:?} is negative: an age counts back from now, e.g. 7d (or never)"
        ));
    }
    match parse_age(text) {
        Some(age) if age <= zart::limits::MAX_WAIT => Ok(Some(age)),
        Some(_) => Err(format!("{text:?} is over 100 years")),
        None => Err(format!(
            "{text:?} is not an age: use 90s, 15m, 2h, 7d, or never"
        )),
    }
}

/// Reads a delay given on the command line: `90s`, `15m`, `2h`, `7d`, at most 100 years.
pub fn parse_delay(text: &str) -> Result<Duration, String> {
    match parse_age(text.trim()) {
        Some(delay) if delay <= zart::limits::MAX_WAIT => Ok(delay),
        Some(_) => Err(format!("{text:?} is over 100 years")),
        None => Err(format!("{text:?} is not a delay: use 90s, 15m, 2h or 7d")),
    }
}

/// Reads a start time given on the command line: `2026-12-06` or `2026-12-06T22:00:00Z`
/// (UTC), as [`parse_time`] does, but not an age (that would be a time in the past).
pub fn parse_start_time(text: &str) -> Result<SystemTime, String> {
    if parse_age(text.trim()).is_some() {
        return Err(format!(
            "{text:?} is a duration: use --delay {text} to start that long from now"
        ));
    }
    parse_time(text, SystemTime::now())
}

fn parse_age(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let n: u64 = text.get(..text.len() - 1)?.parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        'd' => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// JSON shortened to `max` characters for a table cell.
pub fn json_short(value: &serde_json::Value, max: usize) -> String {
    let text = value.to_string();
    if text.chars().count() <= max {
        return text;
    }
    let mut short: String = text.chars().take(max.saturating_sub(3)).collect();
    short.push_str("...");
    short
}

/// Rows under a header, columns padded to their widest cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_read_back_and_ages_count_back_from_now() {
        let now = UNIX_EPOCH + Duration::from_secs(1_796_594_400);
        let t = parse_time("2026-12-06T22:00:00.5Z", now).unwrap();
        assert_eq!(time(t), "2026-12-06T22:00:00.500Z");
        assert_eq!(
            time(parse_time("2026-12-06", now).unwrap()),
            "2026-12-06T00:00:00.000Z"
        );
        assert_eq!(
            time(parse_time("2026-12-06 22:05", now).unwrap()),
            "2026-12-06T22:05:00.000Z"
        );
        assert_eq!(
            parse_time("2h", now).unwrap(),
            now - Duration::from_secs(7200)
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("2026-13-01", now).is_err());
    }

    #[test]
    fn retention_ages_are_ages_or_never_and_never_negative() {
        assert_eq!(
            super::parse_retention_age("7d"),
            Ok(Some(Duration::from_secs(7 * 86_400)))
        );
        assert_eq!(super::parse_retention_age("0s"), Ok(Some(Duration::ZERO)));
        assert_eq!(super::parse_retention_age("never"), Ok(None));
        let negative = super::parse_retention_age("-7d").unwrap_err();
        assert!(negative.contains("negative"), "{negative}");
        assert!(super::parse_retention_age("7 days").is_err());
        assert!(super::parse_retention_age("").is_err());
        assert!(super::parse_retention_age("36501d").is_err());
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(duration(Duration::from_secs(7620)), "2h07m");
    }
}
