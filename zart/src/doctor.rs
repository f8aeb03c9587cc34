//! The report of `zart doctor`: checks that a database and a login are ready for Zart, each
//! with a level and a sentence. Each backend runs its own checks (`zart_pg::doctor`,
//! `zart_mysql::doctor`) and fills this report; the CLI prints it.

use std::time::{Duration, SystemTime};

/// A clock difference between this machine and the server above which doctor warns.
pub const CLOCK_SKEW_WARNING: Duration = Duration::from_secs(1);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Level {
    /// As it should be.
    Ok,
    /// Worth knowing, not a problem (a login that is not a worker cannot claim).
    Info,
    /// Works, but probably not as intended.
    Warn,
    /// Zart cannot work this way.
    Fail,
}

impl Level {
    /// The level's name: `ok`, `info`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One check of a [`DoctorReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Check {
    /// What was checked: `server`, `schema`, `roles`, `client`, `worker`, `reader`,
    /// `durability`, `clock`, `notify`, `tables`.
    pub name: &'static str,
    /// How it came out.
    pub level: Level,
    /// What was found, in a sentence.
    pub detail: String,
}

impl Check {
    /// A check named `name` with its level and what was found.
    pub fn new(name: &'static str, level: Level, detail: impl Into<String>) -> Self {
        Check {
            name,
            level,
            detail: detail.into(),
        }
    }
}

/// Everything a doctor found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DoctorReport {
    /// The checks, in the order run.
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// A report of `checks`.
    pub fn new(checks: Vec<Check>) -> Self {
        DoctorReport { checks }
    }

    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.level != Level::Fail)
    }
}

/// The `clock` check: how far the server's clock is from this machine's, given when the
/// question was sent, how long the round trip took and the time the server answered. Warns
/// past [`CLOCK_SKEW_WARNING`] (Zart times everything by the database's clock, so a skew only
/// misleads people reading local logs next to the database's times).
pub fn clock_check(sent: SystemTime, round_trip: Duration, server: SystemTime) -> Check {
    let local = sent + round_trip / 2;
    let (ahead, skew) = match server.duration_since(local) {
        Ok(d) => ("ahead of", d),
        Err(e) => ("behind", e.duration()),
    };
    let detail = format!(
        "the server's clock is {} ms {ahead} this machine's (Zart times everything by the database clock)",
        skew.as_millis()
    );
    let level = if skew > CLOCK_SKEW_WARNING {
        Level::Warn
    } else {
        Level::Ok
    };
    Check::new("clock", level, detail)
}

/// The `schema` check: the installed schema version (`None`: no Zart schema) against the one
/// this build needs.
pub fn schema_check(installed: Option<i64>, required: i64) -> Check {
    match installed {
        None => Check::new(
            "schema",
            Level::Fail,
            "no Zart schema in this database (or this login may not see it): run `zart migrate`",
        ),
        Some(v) if v < required => Check::new(
            "schema",
            Level::Fail,
            format!("version {v}, older than this binary's {required}: run `zart migrate`"),
        ),
        Some(v) if v > required => Check::new(
            "schema",
            Level::Warn,
            format!("version {v}, newer than this binary's {required}: upgrade the zart binary"),
        ),
        Some(v) => Check::new(
            "schema",
            Level::Ok,
            format!("version {v}, as this binary needs"),
        ),
    }
}

/// The `durability` check: `ok` with the `settings` as read when nothing in `lost` (each a
/// setting that lets the server lose a commit it acknowledged), else `warn` naming them, then
/// `advice`.
pub fn durability_check(settings: String, lost: &[String], advice: &str) -> Check {
    if lost.is_empty() {
        return Check::new("durability", Level::Ok, settings);
    }
    Check::new(
        "durability",
        Level::Warn,
        format!(
            "{}: a server crash can lose step results and outcomes that workers were told are \
             stored, after the executions went on past them{advice}",
            lost.join(" and ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_passes_unless_a_check_failed() {
        let ok = Check::new("server", Level::Ok, "fine");
        let warn = Check::new("clock", Level::Warn, "skewed");
        assert!(DoctorReport::new(vec![ok.clone(), warn]).passed());
        let fail = schema_check(None, 2);
        assert_eq!(fail.level, Level::Fail);
        assert!(!DoctorReport::new(vec![ok, fail]).passed());
        assert_eq!(schema_check(Some(3), 2).level, Level::Warn);
        assert_eq!(schema_check(Some(2), 2).level, Level::Ok);
    }

    #[test]
    fn the_clock_check_warns_past_a_second() {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let rt = Duration::from_millis(10);
        let near = clock_check(sent, rt, sent + Duration::from_millis(505));
        assert_eq!(near.level, Level::Ok);
        assert!(near.detail.contains("500 ms ahead of"), "{}", near.detail);
        let far = clock_check(sent, rt, sent - Duration::from_secs(3));
        assert_eq!(far.level, Level::Warn);
        assert!(far.detail.contains("behind"), "{}", far.detail);
    }
}
