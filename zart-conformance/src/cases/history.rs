//! Random histories of operations, each checked against the model of `crate::history`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::history::run_history;
use crate::Backend;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Seeded random histories (starts, claims by two workers, commits, completions and failures,
/// sleeps, event waits, children, events, cancels, releases, heartbeats, crashed workers,
/// zombie writes, backend restarts, clock moves)
/// agree with the model after every operation. By default histories of 120 operations run for
/// 4 s from a seed drawn from the clock (at least 3 histories); `ZART_HISTORY_SECS` sets the
/// time, `ZART_HISTORY_OPS` the length, and `ZART_HISTORY_SEED` replays exactly one history.
/// A failure names its seed.
pub async fn random_histories_hold_against_the_model(backend: &impl Backend) {
    let ops = env_number("ZART_HISTORY_OPS").unwrap_or(120) as usize;
    if let Some(seed) = env_number("ZART_HISTORY_SEED") {
        let report = run_history(backend, seed, ops)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("history seed {seed}: {report:?}");
        return;
    }
    let budget = Duration::from_secs(env_number("ZART_HISTORY_SECS").unwrap_or(4));
    let base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_000);
    let started = Instant::now();
    let (mut histories, mut operations, mut checks, mut restarts, mut children) =
        (0u64, 0, 0, 0, 0);
    while histories < 3 || started.elapsed() < budget {
        let seed = base + histories;
        let report = run_history(backend, seed, ops).await.unwrap_or_else(|e| {
            panic!("{e}\nreplay it with ZART_HISTORY_SEED={seed} ZART_HISTORY_OPS={ops}")
        });
        histories += 1;
        operations += report.operations;
        checks += report.checks;
        restarts += report.restarts;
        children += report.children;
    }
    eprintln!(
        "random histories: {histories} histories (seeds {base}..{}), {operations} operations \
         ({children} children, {restarts} backend restarts), {checks} store-wide checks in {:.1?}",
        base + histories - 1,
        started.elapsed()
    );
}
