//! `zart schedule`: declare, list, pause, resume and delete cron schedules.

use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;
use zart::schedule::{CatchUp, Overlap, Schedule, ScheduleRow};
use zart::view::ScheduleView;
use zart::Scheduler;

use crate::exit::Usage;
use crate::print_json;
use crate::text::{table, time_or_dash};

/// The `zart schedule` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// List the schedules with their next and last fire times.
    List,
    /// Declare a schedule, or replace the declaration of the one with this id.
    Set {
        /// The schedule id (the prefix of its executions' ids: `<id>@<fire time>`).
        id: String,
        /// The cron expression: `0 2 * * *` (minute hour day month weekday), or six fields
        /// with seconds first.
        cron: String,
        /// The task each firing starts.
        task: String,
        /// The input as JSON (default `{}`).
        #[arg(default_value = "{}")]
        input: String,
        /// The IANA time zone the expression is read in.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// The queue.
        #[arg(long, default_value = "default")]
        queue: String,
        /// A firing while the previous execution runs: skip, allow or cancel-previous.
        #[arg(long, default_value = "skip")]
        overlap: String,
        /// Missed fire times: skip, latest, or all:N (at most the latest N).
        #[arg(long, default_value = "latest")]
        catch_up: String,
    },
    /// Pause a schedule: it does not fire until resumed.
    Pause {
        /// The schedule id.
        id: String,
    },
    /// Resume a paused schedule (missed fire times follow its catch-up policy).
    Resume {
        /// The schedule id.
        id: String,
    },
    /// Delete a schedule; the executions it started stay.
    Delete {
        /// The schedule id.
        id: String,
    },
}

/// Runs a `zart schedule` subcommand.
pub async fn run(
    scheduler: Arc<dyn Scheduler>,
    command: ScheduleCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        ScheduleCommand::List => {
            let rows = scheduler.list_schedules().await?;
            if json {
                print_json(
                    &json!({ "schedules": rows.iter().map(ScheduleView::from).collect::<Vec<_>>() }),
                )?;
            } else if rows.is_empty() {
                outln!("zart: no schedules");
            } else {
                let lines: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        let s = &r.schedule;
                        vec![
                            s.id.clone(),
                            format!("{} ({})", s.cron, s.time_zone),
                            s.task_name.clone(),
                            state(r),
                            time_or_dash(r.next_fire_at),
                            r.last_execution_id
                                .clone()
                                .unwrap_or_else(|| "-".to_owned()),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table(
                        &["ID", "CRON", "TASK", "STATE", "NEXT", "LAST EXECUTION"],
                        &lines
                    )
                );
            }
        }
        ScheduleCommand::Set {
            id,
            cron,
            task,
            input,
            tz,
            queue,
            overlap,
            catch_up,
        } => {
            let input = crate::json_arg("input", input)?;
            let overlap = Overlap::parse(&overlap.replace('-', "_"))
                .map_err(|e| Usage(format!("--overlap: {e}")))?;
            let catch_up = parse_catch_up(&catch_up).map_err(Usage)?;
            let schedule = Schedule::new(id.clone(), cron, task)
                .input(input)
                .time_zone(tz)
                .queue(queue)
                .overlap(overlap)
                .catch_up(catch_up);
            schedule.check()?;
            let created = scheduler.upsert_schedule(schedule).await?;
            if json {
                print_json(&json!({"id": id, "created": created}))?;
            } else {
                outln!(
                    "zart: {} schedule {id:?}",
                    if created { "declared" } else { "updated" }
                );
            }
        }
        ScheduleCommand::Pause { id } => pause(&*scheduler, &id, true, json).await?,
        ScheduleCommand::Resume { id } => pause(&*scheduler, &id, false, json).await?,
        ScheduleCommand::Delete { id } => {
            let deleted = scheduler.delete_schedule(&id).await?;
            if !deleted {
                return Err(zart::Error::NotFound { id }.into());
            }
            if json {
                print_json(&json!({"id": id, "deleted": true}))?;
            } else {
                outln!("zart: deleted schedule {id:?} (its executions stay)");
            }
        }
    }
    Ok(())
}

async fn pause(
    scheduler: &dyn Scheduler,
    id: &str,
    paused: bool,
    json: bool,
) -> anyhow::Result<()> {
    scheduler.pause_schedule(id, paused).await?;
    if json {
        print_json(&json!({"id": id, "paused": paused}))?;
    } else {
        outln!(
            "zart: {} schedule {id:?}",
            if paused { "paused" } else { "resumed" }
        );
    }
    Ok(())
}

fn parse_catch_up(text: &str) -> Result<CatchUp, String> {
    let (name, limit) = match text.split_once(':') {
        Some((name, n)) => (
            name,
            n.parse::<u32>()
                .map_err(|_| format!("--catch-up: {n:?} is not a number (all:N)"))?,
        ),
        None => (text, 1),
    };
    CatchUp::parse(name, limit).map_err(|e| format!("--catch-up: {e}"))
}

fn state(r: &ScheduleRow) -> String {
    match (&r.error, r.paused) {
        (Some(error), _) => format!("error: {error}"),
        (None, true) => "paused".to_owned(),
        (None, false) => "active".to_owned(),
    }
}
