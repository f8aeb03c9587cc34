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
    let json = std::env::temp_dir().join(format!("zart-soak-small-{}.json", std::process::id()));
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_zart-soak"))
        .args([
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
            &server_url(),
            "--json",
        ])
        .arg(&json)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("zart-soak did not finish within 300 s")
        .expect("run zart-soak");
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.status.success(), "zart-soak failed: {}", out.status);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report")).unwrap();
    let _ = std::fs::remove_file(&json);
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
