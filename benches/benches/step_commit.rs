//! Criterion: one step commit, `Scheduler::commit_step` on `PostgresScheduler` through the
//! trait (the group-commit path, with a single writer so each batch holds one step), for one
//! execution claimed by the bench. Each iteration records a new step.
//!
//! Needs `DATABASE_URL`; creates and drops its own scratch database.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use zart_benches::micro::{self, FirstError, LONG_LEASE};

const TASK: &str = "bench-commit";

fn main() -> ExitCode {
    micro::main_with_db("step_commit", |rt, config| {
        let scheduler = micro::scheduler(config)?;
        let claimed = rt.block_on(async {
            micro::start_and_claim(
                &scheduler,
                "commit-1",
                TASK,
                serde_json::json!({}),
                LONG_LEASE,
            )
            .await
        })?;
        let lease = claimed.lease;
        let seq = AtomicU32::new(0);
        let failure = FirstError::default();

        let mut criterion = Criterion::default().configure_from_args();
        let mut group = criterion.benchmark_group("step_commit");
        group.throughput(Throughput::Elements(1));
        group.bench_function("commit_step", |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (scheduler, lease, seq, failure) = (&scheduler, &lease, &seq, &failure);
                async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        if failure.failed() {
                            return Duration::from_nanos(iters);
                        }
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        let result = scheduler.commit_step(micro::null_step(lease, n)).await;
                        failure.record(result);
                    }
                    started.elapsed()
                }
            });
        });
        group.finish();
        criterion.final_summary();
        failure.into_result()
    })
}
