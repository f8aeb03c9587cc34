//! docs/metrics.md documents every metric of `zart::telemetry::METRICS`, with the same type,
//! unit and labels, and nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use zart::telemetry::METRICS;

#[test]
fn docs_metrics_md_lists_every_metric_as_emitted() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
        .unwrap();
    let rows: Vec<Vec<String>> = doc
        .lines()
        .filter(|l| l.starts_with("| `zart_"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect();
    let documented: Vec<String> = rows
        .iter()
        .map(|r| r[0].trim_matches('`').to_owned())
        .collect();
    for m in METRICS {
        let row = rows
            .iter()
            .find(|r| r[0] == format!("`{}`", m.name))
            .unwrap_or_else(|| panic!("{} is not in docs/metrics.md", m.name));
        assert_eq!(row[1], m.kind.as_str(), "type of {}", m.name);
        assert_eq!(row[2], m.unit, "unit of {}", m.name);
        let labels: Vec<String> = m.labels.iter().map(|l| format!("`{l}`")).collect();
        assert_eq!(row[3], labels.join(", "), "labels of {}", m.name);
    }
    for name in &documented {
        assert!(
            METRICS.iter().any(|m| m.name == name),
            "docs/metrics.md lists {name}, which zart does not emit"
        );
    }
}
