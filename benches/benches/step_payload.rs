//! Criterion: `TaskContext::step` recording outputs of 100 B, 10 KB and 1 MB (a JSON string of
//! pseudo-random letters, so compression does not flatter it), the user's path: serialising,
//! the size check, and the commit through `PostgresScheduler`. One claimed execution per size;
//! each iteration records a new step.
//!
//! Needs `DATABASE_URL`; creates and drops its own scratch database.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use criterion::{BenchmarkId, Criterion, Throughput};
use zart::TaskContext;
use zart_benches::micro::{self, FirstError, LONG_LEASE};

const TASK: &str = "bench-payload";

fn main() -> ExitCode {
    micro::main_with_db("step_payload", |rt, config| {
        let scheduler = micro::scheduler(config)?;
        let failure = FirstError::default();
        let seq = AtomicU32::new(0);

        let mut criterion = Criterion::default().configure_from_args();
        let mut group = criterion.benchmark_group("step_payload");
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        for (label, bytes) in [("100B", 100), ("10KB", 10_000), ("1MB", 1_000_000)] {
            let claimed = rt.block_on(async {
                micro::start_and_claim(
                    &scheduler,
                    &format!("payload-{label}"),
                    TASK,
                    serde_json::json!({}),
                    LONG_LEASE,
                )
                .await
            })?;
            let ctx = tokio::sync::Mutex::new(TaskContext::from_claim(
                scheduler.clone(),
                &claimed,
                Duration::from_secs(1),
            ));
            let payload = micro::payload(bytes);
            group.throughput(Throughput::Bytes(bytes as u64));
            group.bench_function(BenchmarkId::from_parameter(label), |b| {
                b.to_async(rt).iter_custom(|iters| {
                    let (ctx, payload, seq, failure) = (&ctx, &payload, &seq, &failure);
                    async move {
                        let mut ctx = ctx.lock().await;
                        let started = Instant::now();
                        for _ in 0..iters {
                            if failure.failed() {
                                return Duration::from_nanos(iters);
                            }
                            let n = seq.fetch_add(1, Ordering::Relaxed);
                            let value = payload.clone();
                            let result = ctx
                                .step(&format!("p{n}"), || async {
                                    Ok::<_, std::io::Error>(value)
                                })
                                .await;
                            failure.record(result.map_err(|e| anyhow!("step failed: {e}")));
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
