//! Criterion: resuming an execution with 100 recorded steps.
//!
//! Setup: one execution of a 100-step no-op workflow, claimed, its 100 steps committed.
//! Each iteration claims it (with a zero lease, so it is due again at once for the next
//! iteration), which returns the 100 recorded steps with the claim:
//!
//! - `claim_100_steps`: the claim alone (the query that aggregates the steps into JSON, and
//!   their decoding);
//! - `claim_and_replay_100_steps`: the claim, then the handler run to completion against the
//!   recorded steps (`TaskContext::from_claim` and 100 replayed `ctx.step`s, no writes).
//!
//! Needs `DATABASE_URL`; creates and drops its own scratch database.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use criterion::{Criterion, Throughput};
use zart::{TaskContext, TaskHandler};
use zart_benches::drain::{Entries, NoOp};
use zart_benches::micro::{self, FirstError, LONG_LEASE};

const TASK: &str = "bench-replay";
const STEPS: u32 = 100;

fn main() -> ExitCode {
    micro::main_with_db("replay", |rt, config| {
        let scheduler = micro::scheduler(config)?;
        rt.block_on(async {
            let claimed = micro::start_and_claim(
                &scheduler,
                "replay-1",
                TASK,
                serde_json::json!(STEPS),
                LONG_LEASE,
            )
            .await?;
            for n in 0..STEPS {
                scheduler
                    .commit_step(micro::null_step(&claimed.lease, n))
                    .await?;
            }
            // Hand it back: due at once.
            scheduler
                .release_tasks(zart::scheduler::ReleaseTasksParams {
                    worker_id: micro::WORKER_ID.to_owned(),
                    queue: "default".to_owned(),
                    leases: vec![claimed.lease],
                })
                .await?;
            anyhow::Ok(())
        })?;
        let handler = NoOp::new(Arc::new(Entries::new(u64::MAX)), None);
        let failure = FirstError::default();

        let mut criterion = Criterion::default().configure_from_args();
        let mut group = criterion.benchmark_group("replay");
        group.throughput(Throughput::Elements(u64::from(STEPS)));
        for replay in [false, true] {
            let name = if replay {
                "claim_and_replay_100_steps"
            } else {
                "claim_100_steps"
            };
            group.bench_function(name, |b| {
                b.to_async(rt).iter_custom(|iters| {
                    let (scheduler, handler, failure) = (&scheduler, &handler, &failure);
                    async move {
                        let started = Instant::now();
                        for _ in 0..iters {
                            if failure.failed() {
                                return Duration::from_nanos(iters);
                            }
                            let claimed = micro::claim_one(scheduler, TASK, Duration::ZERO).await;
                            let Some(claimed) = failure.record(claimed) else {
                                continue;
                            };
                            if claimed.steps.len() != STEPS as usize {
                                failure.record::<(), _>(Err(anyhow!(
                                    "the claim returned {} steps, not {STEPS}",
                                    claimed.steps.len()
                                )));
                                continue;
                            }
                            if replay {
                                let mut ctx = TaskContext::from_claim(
                                    scheduler.clone(),
                                    &claimed,
                                    Duration::from_secs(1),
                                );
                                let ran = handler.run(&mut ctx, STEPS).await;
                                failure.record(ran.map_err(|e| anyhow!("replay failed: {e}")));
                            }
                        }
                        started.elapsed()
                    }
                });
            });
        }
        group.finish();
        criterion.final_summary();
        failure.into_result()
    })
}
