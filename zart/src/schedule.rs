//! Cron schedules: a task started on a cron expression in a time zone, exactly once per
//! firing across the fleet.
//!
//! A schedule is stored by its backend ([`crate::Scheduler::upsert_schedule`]); workers that
//! run its task fire it. Each firing starts the execution `<schedule id>@<fire time>` (the time
//! in UTC, RFC 3339, to the second), so two workers that fire the same time start one
//! execution: exactly once by construction, like any start by id. The cron expression is
//! evaluated here, in Rust (croner), not in the database: the backends store the schedule, its
//! next fire time and who is firing it, and take the fire times they are given.
//!
//! Time zones and daylight saving time: a fixed-time expression (`0 30 2 * * *`) whose time
//! does not exist on a spring-forward day fires at the first valid time after the gap, that
//! day; on a fall-back day it fires once, at the first of the two times. An interval
//! expression (`*/15 * * * *`) skips the occurrences inside a gap and fires for each
//! occurrence in a repeated hour. (This is Vixie cron's behaviour, which croner follows.)

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::limits::{check_name, MAX_NAME_BYTES};
use crate::Error;

/// What a schedule does when a firing comes while the execution it started last is still
/// unfinished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Overlap {
    /// The firing is skipped (the default): never two executions of one schedule at once.
    #[default]
    Skip,
    /// The firing starts its execution beside the previous one.
    Allow,
    /// The previous execution (and its unfinished children) is cancelled first.
    CancelPrevious,
}

impl Overlap {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
            Overlap::CancelPrevious => "cancel_previous",
        }
    }

    /// Parses a stored name.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for another name.
    pub fn parse(name: &str) -> Result<Self, Error> {
        match name {
            "skip" => Ok(Overlap::Skip),
            "allow" => Ok(Overlap::Allow),
            "cancel_previous" => Ok(Overlap::CancelPrevious),
            other => Err(Error::invalid(
                "overlap",
                format!("{other:?} is not skip, allow or cancel_previous"),
            )),
        }
    }
}

/// What a schedule does with the fire times it missed (no worker ran its task then: a
/// deployment, an outage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy", content = "limit")]
#[non_exhaustive]
pub enum CatchUp {
    /// Missed times are dropped: only a time less than [`CATCH_UP_GRACE`] late fires.
    Skip,
    /// Only the latest missed time fires (the default): one run for the gap.
    #[default]
    Latest,
    /// Every missed time fires, oldest first, but at most this many (the latest ones). Each
    /// firing meets the overlap policy: with [`Overlap::Skip`] the first one's execution is
    /// still running when the next fires, so only the first starts; use [`Overlap::Allow`] to
    /// start them all.
    All(u32),
}

/// How late a fire time may be and still fire under [`CatchUp::Skip`]: a worker that wakes a
/// little late (a busy machine, a restart) still fires the time it woke for.
pub const CATCH_UP_GRACE: Duration = Duration::from_secs(60);

/// The largest [`CatchUp::All`] limit.
pub const CATCH_UP_MAX: u32 = 1000;

impl CatchUp {
    /// The policy name stored in the database (`skip`, `latest`, `all`).
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Skip => "skip",
            CatchUp::Latest => "latest",
            CatchUp::All(_) => "all",
        }
    }

    /// The limit stored beside the name (1 for `skip` and `latest`).
    pub fn limit(self) -> u32 {
        match self {
            CatchUp::All(n) => n,
            _ => 1,
        }
    }

    /// Parses a stored name and limit.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for another name, or a limit outside 1 to [`CATCH_UP_MAX`].
    pub fn parse(name: &str, limit: u32) -> Result<Self, Error> {
        let policy = match name {
            "skip" => CatchUp::Skip,
            "latest" => CatchUp::Latest,
            "all" => CatchUp::All(limit),
            other => {
                return Err(Error::invalid(
                    "catch-up",
                    format!("{other:?} is not skip, latest or all"),
                ))
            }
        };
        policy.check()?;
        Ok(policy)
    }

    fn check(self) -> Result<(), Error> {
        if let CatchUp::All(n) = self {
            if !(1..=CATCH_UP_MAX).contains(&n) {
                return Err(Error::invalid(
                    "catch-up limit",
                    format!("{n} is outside 1 to {CATCH_UP_MAX}"),
                ));
            }
        }
        Ok(())
    }
}

/// A cron schedule as declared: which task to start, with what input, when.
///
/// # Examples
/// ```
/// use zart::schedule::{CatchUp, Overlap, Schedule};
///
/// let nightly = Schedule::new("nightly-report", "0 2 * * *", "build-report")
///     .input(serde_json::json!({ "scope": "all" }))
///     .time_zone("Europe/Paris")
///     .overlap(Overlap::Skip)
///     .catch_up(CatchUp::Latest);
/// nightly.check().unwrap();
/// assert!(Schedule::new("bad", "61 * * * *", "t").check().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Schedule {
    /// The schedule's stable id: what pause, resume and delete name, and the prefix of the ids
    /// of the executions it starts (`<id>@<fire time>`).
    pub id: String,
    /// The cron expression: five fields (minute hour day-of-month month day-of-week) or six
    /// with seconds first; names (`MON`, `JAN`), ranges, lists, steps and `L`/`#` as croner
    /// reads them.
    pub cron: String,
    /// The IANA time zone the expression is read in (`UTC` by default, `Europe/Paris`).
    pub time_zone: String,
    /// The task each firing starts.
    pub task_name: String,
    /// The input of each execution.
    pub input: serde_json::Value,
    /// The queue its executions run on (`default`).
    pub queue: String,
    /// A firing while the previous execution is unfinished.
    pub overlap: Overlap,
    /// Fire times missed while no worker ran the task.
    pub catch_up: CatchUp,
}

/// The longest schedule id: room for `@` and the fire time in an execution id.
pub const MAX_SCHEDULE_ID_BYTES: usize = MAX_NAME_BYTES - 21;

impl Schedule {
    /// A schedule of `task` on `cron` (UTC, input `{}`, queue `default`, overlap skip,
    /// catch-up latest).
    pub fn new(id: impl Into<String>, cron: impl Into<String>, task: impl Into<String>) -> Self {
        Schedule {
            id: id.into(),
            cron: cron.into(),
            time_zone: "UTC".to_owned(),
            task_name: task.into(),
            input: serde_json::json!({}),
            queue: "default".to_owned(),
            overlap: Overlap::default(),
            catch_up: CatchUp::default(),
        }
    }

    /// Sets the input.
    pub fn input(mut self, input: serde_json::Value) -> Self {
        self.input = input;
        self
    }

    /// Sets the time zone (an IANA name).
    pub fn time_zone(mut self, tz: impl Into<String>) -> Self {
        self.time_zone = tz.into();
        self
    }

    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Sets the overlap policy.
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// Sets the catch-up policy.
    pub fn catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// Checks every field; the clock it computes with.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field: an id that is empty, too long (over
    /// [`MAX_SCHEDULE_ID_BYTES`]) or holds `@`; a cron expression croner does not read, or
    /// one that never fires; an unknown time zone; a bad task or queue name; a catch-up limit
    /// out of range.
    pub fn check(&self) -> Result<Clock, Error> {
        check_name("schedule id", &self.id)?;
        if self.id.len() > MAX_SCHEDULE_ID_BYTES {
            return Err(Error::invalid(
                "schedule id",
                format!(
                    "{} bytes is over the limit of {MAX_SCHEDULE_ID_BYTES} bytes",
                    self.id.len()
                ),
            ));
        }
        if self.id.contains('@') {
            return Err(Error::invalid(
                "schedule id",
                "must not contain @ (it separates the schedule from the fire time in \
                 execution ids)",
            ));
        }
        check_name("task name", &self.task_name)?;
        check_name("queue", &self.queue)?;
        self.catch_up.check()?;
        Clock::new(&self.cron, &self.time_zone)
    }
}

/// A parsed cron expression in its time zone: the fire times of a schedule.
#[derive(Debug, Clone)]
pub struct Clock {
    cron: Cron,
    tz: Tz,
}

/// At most this many fire times are looked at in one catch-up (a schedule of every second
/// that missed a week does not walk 600,000 times: the oldest are dropped unseen).
pub const MAX_WALK: usize = 10_000;

impl Clock {
    /// Parses `cron` in time zone `tz`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (field `cron` or `time zone`) when either does not parse, or
    /// the expression never fires.
    pub fn new(cron: &str, tz: &str) -> Result<Self, Error> {
        let tz: Tz = tz.parse().map_err(|_| {
            Error::invalid(
                "time zone",
                format!("{tz:?} is not an IANA time zone name (UTC, Europe/Paris, ...)"),
            )
        })?;
        let cron = Cron::from_str(cron.trim())
            .map_err(|e| Error::invalid("cron", format!("{cron:?}: {e}")))?;
        let clock = Clock { cron, tz };
        if clock.next_after(SystemTime::now()).is_none() {
            return Err(Error::invalid("cron", "it never fires"));
        }
        Ok(clock)
    }

    /// The first fire time strictly after `t`. Fire times are whole seconds.
    pub fn next_after(&self, t: SystemTime) -> Option<SystemTime> {
        let from = whole_second(t, false)?;
        let first = self.find(from, false)?;
        // The search runs on wall-clock time, so when the clocks go back between `from` and
        // that time, a wall-clock time of the repeated hour can come earlier in real time:
        // walk the occurrences (croner yields both copies of a repeated time) from an hour
        // before, and take the earliest after `from`. Twice a year at most.
        let first_utc = to_utc(first)?;
        let offset = |at: DateTime<Utc>| self.tz.offset_from_utc_datetime(&at.naive_utc()).fix();
        // (Also when the search, from a time in the second copy of a repeated hour, resolved
        // a wall-clock time to its first copy, which is in the past.)
        if first_utc > from && offset(first_utc).local_minus_utc() >= offset(from).local_minus_utc()
        {
            return Some(first);
        }
        let start = from - chrono::Duration::hours(2);
        let local = self.tz.from_utc_datetime(&start.naive_utc());
        let bound = first_utc.max(from) + chrono::Duration::hours(3);
        self.cron
            .iter_after(local)
            .map(|at| at.with_timezone(&Utc))
            .take_while(|at| *at <= bound)
            .take(100_000)
            .filter(|at| *at > from)
            .min()
            .map(from_utc)
    }

    /// The first fire time at or after `t`.
    fn first_from(&self, t: SystemTime) -> Option<SystemTime> {
        self.find(whole_second(t, true)?, true)
    }

    fn find(&self, t: DateTime<Utc>, inclusive: bool) -> Option<SystemTime> {
        let local = self.tz.from_utc_datetime(&t.naive_utc());
        let next = self.cron.find_next_occurrence(&local, inclusive).ok()?;
        Some(from_utc(next.with_timezone(&Utc)))
    }

    /// The fire times from `from` (included) up to `to` (included), oldest first; at most the
    /// latest [`MAX_WALK`]. After a very long gap the walk starts closer to `to`: at most
    /// [`MAX_WALK`] times the interval between the first two fire times before it.
    pub fn between(&self, from: SystemTime, to: SystemTime) -> Vec<SystemTime> {
        let mut times: Vec<SystemTime> = Vec::new();
        let mut next = self.first_from(from);
        if let Some(a) = next {
            if let Some(b) = self.next_after(a) {
                let step = b.duration_since(a).unwrap_or(Duration::from_secs(1));
                let span = step.saturating_mul(u32::try_from(MAX_WALK).unwrap_or(u32::MAX));
                if let Some(late) = to.checked_sub(span).filter(|late| *late > from) {
                    next = self.first_from(late);
                }
            }
        }
        while let Some(at) = next {
            if at > to {
                break;
            }
            if times.len() == MAX_WALK {
                times.remove(0);
            }
            times.push(at);
            next = self.next_after(at);
        }
        times
    }
}

/// The fire times a catch-up policy keeps from `due` (oldest first, all at or before `now`).
pub fn to_fire(policy: CatchUp, due: &[SystemTime], now: SystemTime) -> Vec<SystemTime> {
    match policy {
        CatchUp::Skip => due
            .last()
            .filter(|t| now.duration_since(**t).unwrap_or_default() <= CATCH_UP_GRACE)
            .copied()
            .into_iter()
            .collect(),
        CatchUp::Latest => due.last().copied().into_iter().collect(),
        CatchUp::All(limit) => {
            let keep = usize::try_from(limit).unwrap_or(usize::MAX).min(due.len());
            due[due.len() - keep..].to_vec()
        }
    }
}

/// The id of the execution a schedule starts for a fire time: `<schedule id>@<UTC time>`
/// (`nightly@2026-12-07T02:00:00Z`). Fire times are whole seconds.
pub fn execution_id(schedule_id: &str, fire_at: SystemTime) -> String {
    let time = to_utc(fire_at).map_or_else(
        || "1970-01-01T00:00:00Z".to_owned(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    format!("{schedule_id}@{time}")
}

/// `t` as a whole second: rounded down, or up when `up` and it has a fraction.
fn whole_second(t: SystemTime, up: bool) -> Option<DateTime<Utc>> {
    let since = t.duration_since(UNIX_EPOCH).ok()?;
    let mut secs = i64::try_from(since.as_secs()).ok()?;
    if up && since.subsec_nanos() > 0 {
        secs += 1;
    }
    Utc.timestamp_opt(secs, 0).single()
}

fn to_utc(t: SystemTime) -> Option<DateTime<Utc>> {
    let since = t.duration_since(UNIX_EPOCH).ok()?;
    let secs = i64::try_from(since.as_secs()).ok()?;
    Utc.timestamp_opt(secs, since.subsec_nanos()).single()
}

fn from_utc(t: DateTime<Utc>) -> SystemTime {
    let secs = u64::try_from(t.timestamp()).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, t.timestamp_subsec_nanos())
}

/// A stored schedule, as listed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScheduleRow {
    /// The declaration.
    pub schedule: Schedule,
    /// Paused: it does not fire until resumed (times missed meanwhile follow its catch-up).
    pub paused: bool,
    /// The next fire time, once a worker has computed it.
    pub next_fire_at: Option<SystemTime>,
    /// The latest fire time that started an execution.
    pub last_fire_at: Option<SystemTime>,
    /// The execution that firing started.
    pub last_execution_id: Option<String>,
    /// Why a worker could not compute its fire times (a schedule written from SQL with an
    /// expression or time zone that does not parse); it does not fire until it is fixed.
    pub error: Option<String>,
}

impl ScheduleRow {
    /// A row for `schedule`, not yet fired.
    pub fn new(schedule: Schedule) -> Self {
        ScheduleRow {
            schedule,
            paused: false,
            next_fire_at: None,
            last_fire_at: None,
            last_execution_id: None,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(text: &str) -> SystemTime {
        from_utc(
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc),
        )
    }

    fn show(times: &[SystemTime]) -> Vec<String> {
        times.iter().map(|t| execution_id("s", *t)).collect()
    }

    #[test]
    fn fire_times_follow_the_expression_in_utc_by_default() {
        let clock = Clock::new("*/15 * * * *", "UTC").unwrap();
        assert_eq!(
            clock.next_after(at("2026-12-07T10:07:00Z")),
            Some(at("2026-12-07T10:15:00Z"))
        );
        assert_eq!(
            show(&clock.between(at("2026-12-07T10:15:00Z"), at("2026-12-07T11:00:00Z"))),
            [
                "s@2026-12-07T10:15:00Z",
                "s@2026-12-07T10:30:00Z",
                "s@2026-12-07T10:45:00Z",
                "s@2026-12-07T11:00:00Z"
            ]
        );
        let every_second = Clock::new("* * * * * *", "UTC").unwrap();
        assert_eq!(
            every_second.next_after(at("2026-12-07T10:07:00.250Z")),
            Some(at("2026-12-07T10:07:01Z"))
        );
    }

    /// Europe/Paris springs forward on 2027-03-28 (02:00 local does not exist) and falls back
    /// on 2027-10-31 (02:00-03:00 local happens twice).
    #[test]
    fn daylight_saving_time_follows_vixie_cron() {
        // A fixed time inside the gap fires right after it, that day (03:00 CEST = 01:00Z).
        let at_2_30 = Clock::new("30 2 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            at_2_30.next_after(at("2027-03-27T12:00:00Z")),
            Some(at("2027-03-28T01:00:00Z"))
        );
        // On the fall-back day it fires once, at the first 02:30 (CEST, 00:30Z).
        assert_eq!(
            show(&at_2_30.between(at("2027-10-30T12:00:00Z"), at("2027-10-31T12:00:00Z"))),
            ["s@2027-10-31T00:30:00Z"]
        );
        // An interval expression skips the gap and fires in both copies of the repeated hour.
        let half_hourly = Clock::new("*/30 * * * *", "Europe/Paris").unwrap();
        assert_eq!(
            show(&half_hourly.between(at("2027-03-28T00:30:00Z"), at("2027-03-28T01:30:00Z"))),
            [
                "s@2027-03-28T00:30:00Z",
                "s@2027-03-28T01:00:00Z",
                "s@2027-03-28T01:30:00Z"
            ],
            "01:30, 03:00, 03:30 local: nothing in the gap, no extra firing"
        );
        assert_eq!(
            show(&half_hourly.between(at("2027-10-30T23:30:00Z"), at("2027-10-31T01:30:00Z"))),
            [
                "s@2027-10-30T23:30:00Z",
                "s@2027-10-31T00:00:00Z",
                "s@2027-10-31T00:30:00Z",
                "s@2027-10-31T01:00:00Z",
                "s@2027-10-31T01:30:00Z"
            ],
            "01:30 CEST, 02:00 CEST, 02:30 CEST, 02:00 CET, 02:30 CET"
        );
    }

    #[test]
    fn catch_up_policies_choose_from_the_missed_times() {
        let now = at("2026-12-07T10:00:30Z");
        let due = [
            at("2026-12-07T09:58:00Z"),
            at("2026-12-07T09:59:00Z"),
            at("2026-12-07T10:00:00Z"),
        ];
        assert_eq!(
            show(&to_fire(CatchUp::Skip, &due, now)),
            ["s@2026-12-07T10:00:00Z"]
        );
        assert!(
            to_fire(CatchUp::Skip, &due[..2], now).is_empty(),
            "over a minute late: dropped"
        );
        assert_eq!(
            show(&to_fire(CatchUp::Latest, &due[..2], now)),
            ["s@2026-12-07T09:59:00Z"]
        );
        assert_eq!(
            show(&to_fire(CatchUp::All(2), &due, now)),
            ["s@2026-12-07T09:59:00Z", "s@2026-12-07T10:00:00Z"]
        );
        assert!(to_fire(CatchUp::Latest, &[], now).is_empty());
    }

    #[test]
    fn bad_declarations_name_the_field() {
        let field = |s: Schedule| match s.check().unwrap_err() {
            Error::InvalidInput { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(Schedule::new("a", "nope", "t")), "cron");
        assert_eq!(
            field(Schedule::new("a", "* * * * *", "t").time_zone("Mars/Olympus")),
            "time zone"
        );
        assert_eq!(field(Schedule::new("a@b", "* * * * *", "t")), "schedule id");
        assert_eq!(field(Schedule::new("", "* * * * *", "t")), "schedule id");
        assert_eq!(
            field(Schedule::new("x".repeat(235), "* * * * *", "t")),
            "schedule id"
        );
        assert_eq!(
            field(Schedule::new("a", "* * * * *", "t").catch_up(CatchUp::All(0))),
            "catch-up limit"
        );
        assert_eq!(field(Schedule::new("a", "* * * * *", "")), "task name");
        assert_eq!(field(Schedule::new("a", "0 0 30 2 *", "t")), "cron");
        let id = execution_id(
            &"x".repeat(MAX_SCHEDULE_ID_BYTES),
            at("2026-12-07T10:00:00Z"),
        );
        assert!(id.len() <= MAX_NAME_BYTES, "{}", id.len());
    }
}
