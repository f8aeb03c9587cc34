//! Criterion: starting and claiming executions through the `Scheduler` trait.
//!
//! - `start_execution`: one `Scheduler::start_execution` (what `DurableScheduler::start`
//!   sends), a new id each iteration. Their tasks are deleted before the claims are timed.
//! - `claim/N`: `Scheduler::claim_tasks` of N due executions (N = 1, 16, 128: one, a batch,
//!   the default worker's slots). Each iteration first starts N executions in one untimed SQL
//!   statement, then times the claim, then deletes the claimed tasks (untimed) so the queue
//!   stays as small as a drained one.
//!
//! Needs `DATABASE_URL`; creates and drops its own scratch database.

use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use criterion::{BenchmarkId, Criterion, Throughput};
use zart::scheduler::StartExecutionParams;
use zart_benches::drain::start_many;
use zart_benches::micro::{self, FirstError, LONG_LEASE};
use zart_benches::scratch::connect;

fn main() -> ExitCode {
    micro::main_with_db("claim", |rt, config| {
        let scheduler = micro::scheduler(config)?;
        let client = rt.block_on(connect(config))?;
        let next_id = AtomicI64::new(1);
        let failure = FirstError::default();

        let mut criterion = Criterion::default().configure_from_args();
        let mut group = criterion.benchmark_group("start");
        group.throughput(Throughput::Elements(1));
        group.bench_function("start_execution", |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (scheduler, next_id, failure) = (&scheduler, &next_id, &failure);
                async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        if failure.failed() {
                            return Duration::from_nanos(iters);
                        }
                        let n = next_id.fetch_add(1, Ordering::Relaxed);
                        let result = scheduler
                            .start_execution(StartExecutionParams {
                                id: format!("bench-start-{n}"),
                                task_name: "bench-start".to_owned(),
                                input: serde_json::json!({ "n": n }),
                                queue: "default".to_owned(),
                                parent_id: None,
                                deadline: None,
                                start: None,
                                ..Default::default()
                            })
                            .await;
                        failure.record(result);
                    }
                    started.elapsed()
                }
            });
        });
        group.finish();
        // The started executions stay due; clear them so the claim benches below start from
        // an empty queue.
        rt.block_on(async {
            client
                .batch_execute("delete from public.zart_tasks where task_name = 'bench-start'")
                .await?;
            client
                .batch_execute("vacuum analyze public.zart_tasks")
                .await
        })?;

        let mut group = criterion.benchmark_group("claim");
        group
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for n in [1u32, 16, 128] {
            let task = format!("bench-claim-{n}");
            group.throughput(Throughput::Elements(u64::from(n)));
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
                b.to_async(rt).iter_custom(|iters| {
                    let (scheduler, client, next_id, failure, task) =
                        (&scheduler, &client, &next_id, &failure, &task);
                    async move {
                        let mut timed = Duration::ZERO;
                        for _ in 0..iters {
                            if failure.failed() {
                                return Duration::from_nanos(iters);
                            }
                            let from = next_id.fetch_add(i64::from(n), Ordering::Relaxed);
                            if failure
                                .record(start_many(client, task, 1, from, n).await)
                                .is_none()
                            {
                                continue;
                            }
                            let started = Instant::now();
                            let claimed = micro::claim(scheduler, task, n, LONG_LEASE).await;
                            timed += started.elapsed();
                            let claimed = failure.record(claimed).map_or(0, |c| c.len());
                            if claimed != n as usize {
                                failure.record::<(), _>(Err(anyhow::anyhow!(
                                    "claimed {claimed} of {n} executions"
                                )));
                            }
                            let deleted = client
                                .execute(
                                    "delete from public.zart_tasks where task_name = $1",
                                    &[task],
                                )
                                .await;
                            failure.record(deleted);
                        }
                        timed
                    }
                });
            });
        }
        group.finish();
        criterion.final_summary();
        if failure.failed() {
            return failure.into_result();
        }
        if next_id.load(Ordering::Relaxed) <= 1 {
            bail!("no iteration ran");
        }
        Ok(())
    })
}
