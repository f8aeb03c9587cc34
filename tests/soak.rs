//! Overload and a short soak: the `zart-soak` driver on a small run (the hour-long run is on
//! demand, see docs/reliability.md). A steady mix, a burst of 10x the steady rate, the
//! recovery: nothing lost, no worker over its slots, connections and memory bounded, pickup
//! back to its steady level once the backlog drains, retention keeping up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use zart_tests::{init_tracing, server_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_small() {
    init_tracing();
    let server = server_url();
    let report = zart_tests::run_driver(
        env!("CARGO_BIN_EXE_zart-soak"),
        &[
            "--steady-s",
            "20",
            "--rate",
            "100",
            "--overload-s",
            "10",
            "--recovery-s",
            "10",
            "--sample-s",
            "5",
            "--retention-s",
            "15",
            "--database-url",
            &server,
        ],
        &[],
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(report["ok"], true);
    let phases: Vec<&str> = report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["phase"].as_str().unwrap())
        .collect();
    for phase in ["steady", "overload", "recovery", "recovered", "drained"] {
        assert!(phases.contains(&phase), "a {phase} sample: {phases:?}");
    }
    // The burst did outrun the workers: a backlog built up.
    let most_backlog = report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["backlog"].as_i64())
        .max()
        .unwrap();
    assert!(most_backlog > 0, "the burst never outran the workers");
}
