//! The `zart-load` report: one row per measured number, each with its baseline from the same
//! run, the ratio and the target of issue #8; the per-phase database counts; the top
//! statements; tables as markdown and aligned text; and the comparison of two saved runs.
//!
//! Targets are printed with "met" or "not met"; nothing here fails a run over a timing.

use serde::Serialize;

use crate::dbstats::{Delta, TopStatement};
use crate::history::RelationSize;

/// One measured number.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// Stable key, e.g. `z2` or `z4.p99`; `--compare` matches runs on it.
    pub key: String,
    /// What was measured.
    pub name: String,
    /// The value, in `unit`.
    pub value: f64,
    /// `commits/s`, `ms`, `statements/s`, ...
    pub unit: String,
    /// The baseline's label (`C`, `B`, `F p50`, `Z2`), if the target is relative to one.
    pub baseline: Option<String>,
    /// The baseline's value from the same run; `None` if it was not measured (`--only`).
    pub baseline_value: Option<f64>,
    /// `value / baseline_value`.
    pub ratio: Option<f64>,
    /// The target of issue #8, as text.
    pub target: Option<String>,
    /// `met`, `not met`, or `n/a` (baseline not measured).
    pub outcome: Option<String>,
    /// The least and the most of its rounds when the figure was taken several times (the
    /// value is then their median).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
}

/// The range of a figure taken in several rounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// The lowest round.
    pub min: f64,
    /// The highest round.
    pub max: f64,
    /// How many rounds.
    pub runs: usize,
}

impl Spread {
    /// The range of `values`, when there are at least two.
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.len() < 2 {
            return None;
        }
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread {
            min,
            max,
            runs: values.len(),
        })
    }
}

impl Metric {
    /// A number without baseline or target.
    pub fn new(key: &str, name: &str, value: f64, unit: &str) -> Metric {
        Metric {
            key: key.to_owned(),
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            baseline: None,
            baseline_value: None,
            ratio: None,
            target: None,
            outcome: None,
            spread: None,
        }
    }

    /// Sets the baseline `label` and its value (if measured), and the ratio.
    pub fn against(mut self, label: &str, baseline: Option<f64>) -> Metric {
        self.baseline = Some(label.to_owned());
        self.baseline_value = baseline;
        self.ratio = baseline
            .filter(|b| *b != 0.0 && b.is_finite())
            .map(|b| self.value / b);
        self
    }

    /// Target: at least `factor` times the baseline (and a stretch goal, if any).
    pub fn at_least(mut self, factor: f64, stretch: Option<f64>) -> Metric {
        let label = self.baseline.clone().unwrap_or_default();
        let mut text = format!("≥ {factor}×{label}");
        if let Some(s) = stretch {
            text.push_str(&format!(" (stretch {s}×{label})"));
        }
        self.target = Some(text);
        self.outcome = Some(match self.ratio {
            None => "n/a".to_owned(),
            Some(r) => match (r >= factor, stretch) {
                (false, _) => "not met".to_owned(),
                (true, None) => "met".to_owned(),
                (true, Some(s)) if r >= s => "met, stretch met".to_owned(),
                (true, Some(_)) => "met, stretch not met".to_owned(),
            },
        });
        self
    }

    /// Target: at most `factor` times the baseline.
    pub fn at_most_ratio(mut self, factor: f64) -> Metric {
        let label = self.baseline.clone().unwrap_or_default();
        self.target = Some(format!("≤ {factor}×{label}"));
        self.outcome = Some(match self.ratio {
            None => "n/a".to_owned(),
            Some(r) => met(r <= factor),
        });
        self
    }

    /// Target: at most `limit` (in the metric's unit).
    pub fn at_most(mut self, limit: f64) -> Metric {
        self.target = Some(format!("≤ {limit} {}", self.unit).trim_end().to_owned());
        self.outcome = Some(met(self.value <= limit));
        self
    }

    /// Target: exactly `want`.
    pub fn exactly(mut self, want: f64) -> Metric {
        self.target = Some(format!("= {want} {}", self.unit).trim_end().to_owned());
        self.outcome = Some(met(self.value == want));
        self
    }

    fn cells(&self) -> Vec<String> {
        let dash = || "-".to_owned();
        let unit = if self.unit == "ms" { "ms" } else { "" };
        let baseline = match (&self.baseline, self.baseline_value) {
            (Some(label), Some(v)) => format!("{label} = {}", format_value(v, unit)),
            (Some(label), None) => format!("{label}: not run"),
            (None, _) => dash(),
        };
        let value = match self.spread {
            Some(s) => format!(
                "{} ({}-{}, median of {})",
                format_value(self.value, &self.unit),
                format_value(s.min, ""),
                format_value(s.max, ""),
                s.runs
            ),
            None => format_value(self.value, &self.unit),
        };
        vec![
            format!("{} {}", figure_of(&self.key), self.name),
            value,
            baseline,
            self.ratio.map_or_else(dash, |r| format!("{r:.2}×")),
            self.target.clone().unwrap_or_else(dash),
            self.outcome.clone().unwrap_or_else(dash),
        ]
    }
}

/// The figure a metric key belongs to, as printed: `z4.p99` -> `Z4`.
pub fn figure_of(key: &str) -> String {
    key.split('.').next().unwrap_or(key).to_uppercase()
}

fn met(ok: bool) -> String {
    if ok { "met" } else { "not met" }.to_owned()
}

/// `value` with its unit: throughputs as whole numbers with thousands separators, times in ms
/// with three decimals.
pub fn format_value(value: f64, unit: &str) -> String {
    let number = if unit == "ms" {
        format!("{value:.3}")
    } else if value.abs() >= 100.0 || (value.fract() == 0.0 && value.abs() < 1e15) {
        thousands(value)
    } else {
        format!("{value:.2}")
    };
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

/// A number rounded to an integer, with `,` between thousands.
pub fn thousands(value: f64) -> String {
    let rounded = value.round();
    let digits = format!("{}", rounded.abs() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

const METRIC_HEADERS: [&str; 6] = ["figure", "value", "baseline", "ratio", "target", "outcome"];

/// The figures as a markdown table.
pub fn metrics_markdown(metrics: &[Metric]) -> String {
    markdown(&METRIC_HEADERS, metrics.iter().map(Metric::cells), "lrrrll")
}

/// The figures as an aligned text table.
pub fn metrics_text(metrics: &[Metric]) -> String {
    text(&METRIC_HEADERS, metrics.iter().map(Metric::cells), "lrrrll")
}

/// The database's work during one phase (item 4 of issue #8).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseCounts {
    /// The figure's key (`c`, `z2`, ...).
    pub phase: String,
    /// What one unit is (`row`, `start`, `execution`).
    pub unit: String,
    /// Units done in the phase.
    pub units: u64,
    /// Steps per unit (0 when a unit has no steps).
    pub steps_per_unit: u32,
    /// The window's statistics.
    pub delta: Delta,
}

impl PhaseCounts {
    /// Counts of `units` units of `steps_per_unit` steps each.
    pub fn new(phase: &str, unit: &str, units: u64, steps_per_unit: u32, delta: Delta) -> Self {
        PhaseCounts {
            phase: phase.to_owned(),
            unit: unit.to_owned(),
            units,
            steps_per_unit,
            delta,
        }
    }

    fn cells(&self) -> Vec<String> {
        let per = |x: Option<i64>, n: u64| match x {
            Some(x) if n > 0 => format!("{:.3}", x as f64 / n as f64),
            _ => "n/a".to_owned(),
        };
        let steps = self.units * u64::from(self.steps_per_unit);
        let d = &self.delta;
        let mut phase = self.phase.to_uppercase();
        if !d.settled {
            phase.push_str(" (unsettled)");
        }
        vec![
            phase,
            format!("{} {}s", thousands(self.units as f64), self.unit),
            thousands(d.xacts as f64),
            thousands(d.tuples as f64),
            d.statements
                .map_or_else(|| "n/a".to_owned(), |s| thousands(s as f64)),
            per(Some(d.xacts), self.units),
            per(Some(d.tuples), self.units),
            per(d.statements, self.units),
            per(Some(d.xacts), steps),
            per(Some(d.tuples), steps),
            per(d.statements, steps),
        ]
    }
}

const COUNT_HEADERS: [&str; 11] = [
    "phase",
    "done",
    "xacts",
    "tuples",
    "statements",
    "xacts/unit",
    "tuples/unit",
    "stmts/unit",
    "xacts/step",
    "tuples/step",
    "stmts/step",
];

/// The per-phase counts as a markdown table.
pub fn counts_markdown(counts: &[PhaseCounts]) -> String {
    markdown(&COUNT_HEADERS, counts.iter().map(PhaseCounts::cells), "ll")
}

/// The per-phase counts as an aligned text table.
pub fn counts_text(counts: &[PhaseCounts]) -> String {
    text(&COUNT_HEADERS, counts.iter().map(PhaseCounts::cells), "ll")
}

const TOP_HEADERS: [&str; 5] = ["calls", "mean ms", "rows/call", "total ms", "statement"];

fn top_cells(s: &TopStatement) -> Vec<String> {
    vec![
        thousands(s.calls as f64),
        format!("{:.3}", s.mean_ms),
        format!("{:.1}", s.rows_per_call),
        thousands(s.total_ms),
        format!("`{}`", s.query.replace('|', "\\|").replace('`', "'")),
    ]
}

/// The top statements as a markdown table.
pub fn top_markdown(top: &[TopStatement]) -> String {
    markdown(&TOP_HEADERS, top.iter().map(top_cells), "rrrrl")
}

/// The top statements as text, one per line.
pub fn top_text(top: &[TopStatement]) -> String {
    top.iter()
        .map(|s| {
            format!(
                "{:>8} calls {:>9.3} ms mean {:>7.1} rows/call  {}",
                thousands(s.calls as f64),
                s.mean_ms,
                s.rows_per_call,
                crate::dbstats::one_line(&s.query, 100)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const SIZE_HEADERS: [&str; 4] = ["relation", "kind", "rows", "size"];

fn size_cells(s: &RelationSize) -> Vec<String> {
    vec![
        s.name.clone(),
        s.kind.to_owned(),
        s.rows
            .map_or_else(|| "-".to_owned(), |r| thousands(r as f64)),
        s.pretty.clone(),
    ]
}

/// Relation sizes as a markdown table.
pub fn sizes_markdown(sizes: &[RelationSize]) -> String {
    markdown(&SIZE_HEADERS, sizes.iter().map(size_cells), "llrl")
}

/// Relation sizes as an aligned text table.
pub fn sizes_text(sizes: &[RelationSize]) -> String {
    text(&SIZE_HEADERS, sizes.iter().map(size_cells), "llrl")
}

/// Whether column `c` is left-aligned: `align` has one `l` or `r` per column (missing ones
/// are right-aligned).
fn left_aligned(align: &str, c: usize) -> bool {
    align.as_bytes().get(c) == Some(&b'l')
}

/// A markdown table, aligned per column as `align` says (`l`/`r` per column).
pub fn markdown(headers: &[&str], rows: impl Iterator<Item = Vec<String>>, align: &str) -> String {
    let mut out = format!("| {} |\n|", headers.join(" | "));
    for i in 0..headers.len() {
        out.push_str(if left_aligned(align, i) {
            "---|"
        } else {
            "---:|"
        });
    }
    out.push('\n');
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// An aligned text table, aligned per column as `align` says (`l`/`r` per column).
pub fn text(headers: &[&str], rows: impl Iterator<Item = Vec<String>>, align: &str) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    let width = |c: usize| {
        rows.iter()
            .filter_map(|r| r.get(c))
            .map(|s| s.chars().count())
            .chain(headers.get(c).map(|h| h.chars().count()))
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..headers.len()).map(width).collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                let pad = w.saturating_sub(cell.chars().count());
                if left_aligned(align, c) {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(&headers.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
    out.push('\n');
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    for row in &rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

/// Compares two saved `zart-load` runs (their `--json` files, as JSON values): a note for each
/// difference in the run's setting, then one row per figure of `new` with the old value, the
/// new one and new/old. Markdown.
pub fn compare(old: &serde_json::Value, new: &serde_json::Value) -> String {
    let mut out = String::new();
    for field in ["profile", "postgres_version", "cores", "smoke", "plan"] {
        let (a, b) = (&old[field], &new[field]);
        if a != b {
            out.push_str(&format!("- note: `{field}` differs: old {a}, new {b}\n"));
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let empty = Vec::new();
    let old_metrics = old["metrics"].as_array().unwrap_or(&empty);
    let rows = new["metrics"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter_map(|m| {
            let key = m["key"].as_str()?;
            let unit = m["unit"].as_str().unwrap_or("");
            let value = m["value"].as_f64()?;
            let old_value = old_metrics
                .iter()
                .find(|o| o["key"].as_str() == Some(key))
                .and_then(|o| o["value"].as_f64());
            Some(vec![
                format!("{} {}", figure_of(key), m["name"].as_str().unwrap_or("")),
                old_value.map_or_else(|| "-".to_owned(), |v| format_value(v, unit)),
                format_value(value, unit),
                old_value
                    .filter(|v| *v != 0.0)
                    .map_or_else(|| "-".to_owned(), |v| format!("{:.2}×", value / v)),
            ])
        });
    out.push_str(&markdown(&["figure", "old", "new", "new/old"], rows, "l"));
    out
}

/// `--json` / `--markdown` of a driver, or `<target>/zart-load/<tool>-<UTC time>.{json,md}`
/// (target: `$CARGO_TARGET_DIR`, else `target` under the current directory); the markdown goes
/// next to `--json` when only that is given.
pub fn output_paths(
    tool: &str,
    json: Option<&std::path::Path>,
    markdown: Option<&std::path::Path>,
    unix: u64,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target"));
    let stamp = utc_stamps(unix).0;
    let default = target.join("zart-load").join(format!("{tool}-{stamp}"));
    let markdown = markdown
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| {
            json.map_or_else(|| default.with_extension("md"), |j| j.with_extension("md"))
        });
    let json = json.map_or_else(
        || default.with_extension("json"),
        std::path::Path::to_path_buf,
    );
    (json, markdown)
}

/// Reads a saved run's JSON file.
///
/// # Errors
/// When the file cannot be read or is not JSON.
pub fn read_json(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Writes each `(path, text)`, creating missing directories, and prints `wrote <path>`.
///
/// # Errors
/// When a directory or file cannot be written.
pub fn write_files(files: &[(&std::path::Path, String)]) -> anyhow::Result<()> {
    use anyhow::Context;
    for (path, text) in files {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// `YYYYMMDD-HHMMSS` and `YYYY-MM-DD HH:MM:SS UTC` for a Unix time.
pub fn utc_stamps(unix: u64) -> (String, String) {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (secs / 3600, secs % 3600 / 60, secs % 60);
    (
        format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}"),
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_outcomes() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(format_value(12_345.6, "rows/s"), "12,346 rows/s");
        assert_eq!(format_value(0.4, "statements/s"), "0.40 statements/s");
        assert_eq!(format_value(1.23456, "ms"), "1.235 ms");
        let m = Metric::new("z2", "drain", 5_000.0, "executions/s")
            .against("B", Some(10_000.0))
            .at_least(0.4, Some(0.55));
        assert_eq!(m.ratio, Some(0.5));
        assert_eq!(m.outcome.as_deref(), Some("met, stretch not met"));
        let m = Metric::new("z1", "start", 1.0, "starts/s")
            .against("C", None)
            .at_least(0.5, None);
        assert_eq!(m.outcome.as_deref(), Some("n/a"));
        let m = Metric::new("z4.p99", "p99", 5.0, "ms").at_most(4.0);
        assert_eq!(m.outcome.as_deref(), Some("not met"));
    }

    #[test]
    fn utc_stamps_are_civil_dates() {
        assert_eq!(utc_stamps(0).0, "19700101-000000");
        assert_eq!(utc_stamps(1_709_210_096).1, "2024-02-29 12:34:56 UTC");
    }

    #[test]
    fn compare_matches_on_keys() {
        let old = serde_json::json!({"profile": "release", "metrics": [
            {"key": "z2", "name": "drain", "value": 100.0, "unit": "executions/s"}]});
        let new = serde_json::json!({"profile": "debug", "metrics": [
            {"key": "z2", "name": "drain", "value": 150.0, "unit": "executions/s"},
            {"key": "z9", "name": "new", "value": 1.0, "unit": "ms"}]});
        let out = compare(&old, &new);
        assert!(out.contains("`profile` differs"));
        assert!(out.contains("| Z2 drain | 100 executions/s | 150 executions/s | 1.50× |"));
        assert!(out.contains("| Z9 new | - | 1.000 ms | - |"));
    }
}
