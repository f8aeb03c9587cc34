//! Cron schedules in a worker: fires the schedules of its queue and tasks when they are due.
//!
//! Every worker runs this loop; the backend holds each schedule for one worker at a time
//! (`claim_schedules`), and the execution ids are derived from the fire times, so two workers
//! never start a firing twice. The loop sleeps until the next schedule is due (by the backend's
//! clock), waking early when a schedule is declared or resumed (a wake-up for its queue; at
//! most one look per second) and at least every minute.

use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::schedule::{execution_id, to_fire, Clock};
use crate::scheduler::{
    ClaimSchedulesParams, DueSchedule, DynScheduler, FireOutcome, FireScheduleParams,
    NextRunAtParams, Wakeup,
};
use crate::{telemetry, Error};

/// The longest sleep between two looks.
const SWEEP: Duration = Duration::from_secs(60);
/// The shortest time between two looks woken by wake-ups (a busy queue sends many).
const MIN_GAP: Duration = Duration::from_secs(1);
/// How long a worker holds a schedule while it fires it.
const HOLD: Duration = Duration::from_secs(30);
/// Schedules taken per look.
const BATCH: u32 = 16;
/// How far ahead of its fire time a schedule is claimed: the worker then waits for the time
/// itself, so the firing's own transaction starts on time instead of a claim's round trip late.
const AHEAD: Duration = Duration::from_millis(20);

/// Fires the schedules of `queue` and `task_names` until aborted.
pub(super) async fn schedule_loop(
    scheduler: DynScheduler,
    worker_id: String,
    queue: String,
    task_names: Vec<String>,
) {
    let mut wakeups = scheduler.subscribe();
    let mut backoff = Backoff::new();
    loop {
        let looked = Instant::now();
        let wait = match look(&scheduler, &worker_id, &queue, &task_names).await {
            // Due now, yet nothing to take (held by a worker that is firing it): not a spin.
            Ok((0, Some(next))) if next.is_zero() => MIN_GAP,
            Ok((_, next)) => {
                backoff.reset();
                next.map_or(SWEEP, |d| d.saturating_sub(AHEAD).min(SWEEP))
            }
            Err(err) => {
                let delay = backoff.next();
                tracing::warn!(
                    error = %crate::error::error_chain(&err),
                    retry_in_ms = delay.as_millis() as u64,
                    "zart could not fire cron schedules; trying again"
                );
                delay
            }
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                wakeup = wakeups.recv() => match wakeup {
                    Ok(Wakeup::Work { queue: q }) if q != queue => continue,
                    Ok(Wakeup::Finished { .. }) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep_until(deadline).await;
                        break;
                    }
                    _ => {
                        // A schedule may have been declared or resumed: look again, but not
                        // more than once a second.
                        let earliest = looked + MIN_GAP;
                        if earliest > Instant::now() {
                            tokio::time::sleep_until(tokio::time::Instant::from_std(earliest).min(deadline))
                                .await;
                        }
                        // The one look about to happen answers every wake-up that came
                        // meanwhile: a burst of work queues thousands, and taking them one
                        // look a second kept an idle worker looking for minutes after it.
                        drain(&mut wakeups);
                        break;
                    }
                },
            }
        }
    }
}

/// Drops the wake-ups already queued.
fn drain(wakeups: &mut tokio::sync::broadcast::Receiver<Wakeup>) {
    use tokio::sync::broadcast::error::TryRecvError;
    loop {
        match wakeups.try_recv() {
            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

/// Fires every due schedule, batch by batch; returns how many it took, and how long until the
/// next is due.
async fn look(
    scheduler: &DynScheduler,
    worker_id: &str,
    queue: &str,
    task_names: &[String],
) -> Result<(usize, Option<Duration>), Error> {
    let mut taken = 0;
    loop {
        let due = scheduler
            .claim_schedules(ClaimSchedulesParams {
                worker_id: worker_id.to_owned(),
                queue: queue.to_owned(),
                task_names: task_names.to_vec(),
                limit: BATCH,
                lease: HOLD,
                ahead: AHEAD,
            })
            .await?;
        let claimed_at = tokio::time::Instant::now();
        let full = due.len() == BATCH as usize;
        taken += due.len();
        for schedule in due {
            let id = schedule.row.schedule.id.clone();
            let outcome = fire(scheduler, worker_id, schedule, claimed_at).await?;
            count(&id, &outcome);
        }
        if !full {
            break;
        }
    }
    let next = scheduler
        .next_schedule_at(NextRunAtParams {
            queue: queue.to_owned(),
            task_names: task_names.to_vec(),
        })
        .await?;
    Ok((taken, next))
}

/// Fires one held schedule: the fire times from its next one up to [`AHEAD`] after the claim
/// that its catch-up policy keeps (waiting, from `claimed_at`, until the latest of them has
/// come by the backend's clock), then its next fire time after those. A first look (no next
/// fire time yet) starts from the time it was declared. An expression or time zone that does
/// not read (a schedule written from SQL) is stored as the schedule's error, which stops it.
async fn fire(
    scheduler: &DynScheduler,
    worker_id: &str,
    due: DueSchedule,
    claimed_at: tokio::time::Instant,
) -> Result<FireOutcome, Error> {
    let schedule = &due.row.schedule;
    let mut params = FireScheduleParams {
        worker_id: worker_id.to_owned(),
        id: schedule.id.clone(),
        fires: Vec::new(),
        next_fire_at: None,
        error: None,
    };
    match Clock::new(&schedule.cron, &schedule.time_zone) {
        Err(err) => {
            tracing::warn!(schedule.id = %schedule.id, error = %err, "zart schedule stopped");
            params.error = Some(err.to_string());
        }
        Ok(clock) => {
            let from = due
                .row
                .next_fire_at
                .or_else(|| clock.next_after(due.declared_at));
            let until = due.now + AHEAD;
            match from {
                None => params.error = Some("the cron expression has no fire time left".into()),
                Some(from) if from > until => params.next_fire_at = Some(from),
                Some(from) => {
                    let times = clock.between(from, until);
                    params.fires = to_fire(schedule.catch_up, &times, due.now)
                        .into_iter()
                        .map(|t| (t, execution_id(&schedule.id, t)))
                        .collect();
                    // Claimed a little early: not started before its time.
                    if let Some((last, _)) = params.fires.last() {
                        if let Ok(early) = last.duration_since(due.now) {
                            tokio::time::sleep_until(claimed_at + early).await;
                        }
                    }
                    params.next_fire_at = clock.next_after(until);
                    if params.next_fire_at.is_none() {
                        params.error = Some("the cron expression has no fire time left".into());
                    }
                    let missed = times.len().saturating_sub(params.fires.len());
                    if missed > 0 {
                        tracing::info!(
                            schedule.id = %schedule.id,
                            missed,
                            policy = schedule.catch_up.as_str(),
                            "zart schedule missed fire times (no worker ran its task then)"
                        );
                    }
                }
            }
        }
    }
    scheduler.fire_schedule(params).await
}

fn count(id: &str, outcome: &FireOutcome) {
    for (label, n) in [
        ("started", outcome.started.len()),
        ("skipped", outcome.skipped.len()),
        ("cancelled_previous", outcome.cancelled.len()),
    ] {
        if n > 0 {
            metrics::counter!(telemetry::SCHEDULE_FIRINGS, "outcome" => label).increment(n as u64);
        }
    }
    if !outcome.started.is_empty() || !outcome.skipped.is_empty() {
        tracing::debug!(
            schedule.id = id,
            started = ?outcome.started,
            skipped = ?outcome.skipped,
            "zart schedule fired"
        );
    }
}
