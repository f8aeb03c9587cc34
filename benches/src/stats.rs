//! Summaries of latency samples (percentiles, mean), the random idle gaps between samples, and
//! the text and markdown tables the results are printed as.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use serde::Serialize;

/// p50, p90, p99, max and mean of one figure's samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// How many samples were measured.
    pub samples: usize,
    /// The fastest sample.
    pub min: Duration,
    /// The median (nearest rank).
    pub p50: Duration,
    /// The 90th percentile (nearest rank).
    pub p90: Duration,
    /// The 95th percentile (nearest rank).
    pub p95: Duration,
    /// The 99th percentile (nearest rank).
    pub p99: Duration,
    /// The slowest sample.
    pub max: Duration,
    /// The arithmetic mean.
    pub mean: Duration,
}

impl Summary {
    /// Summarises `samples`; fails when there are none.
    pub fn of(samples: &[Duration]) -> Result<Summary> {
        if samples.is_empty() {
            bail!("no samples to summarise");
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let total: Duration = sorted.iter().sum();
        let n = sorted.len();
        Ok(Summary {
            samples: n,
            min: percentile(&sorted, 0.0),
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p95: percentile(&sorted, 95.0),
            p99: percentile(&sorted, 99.0),
            max: percentile(&sorted, 100.0),
            mean: total / u32::try_from(n).unwrap_or(u32::MAX),
        })
    }
}

/// The nearest-rank percentile `p` (0..=100) of a sorted, non-empty slice.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, n.max(1)) - 1)
        .copied()
        .unwrap_or_default()
}

/// The machine and build a run measured on, as both drivers report it (flattened into their
/// JSON, so the fields stay top-level).
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// `std::thread::available_parallelism()` of this machine.
    pub cores: usize,
    /// Operating system and CPU architecture.
    pub platform: String,
    /// `release` or `debug` (debug numbers are not comparable).
    pub profile: &'static str,
}

impl Host {
    /// This process's machine and build.
    pub fn this() -> Host {
        Host {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        }
    }
}

impl std::fmt::Display for Host {
    /// `2 cores (linux/x86_64) | release build`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cores ({}) | {} build",
            self.cores, self.platform, self.profile
        )
    }
}

/// A duration in milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `x` rounded to three decimals (microseconds when `x` is in ms).
fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// One row of the result table, as printed and as written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Short stable key: `f`, `pickup`, `end_to_end`, `timer_lateness` or `event_wake`.
    pub key: &'static str,
    /// What was measured.
    pub name: &'static str,
    /// Sample count.
    pub samples: usize,
    /// Fastest sample, ms.
    pub min_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest sample, ms.
    pub max_ms: f64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// This figure's p50 over F's p50 (absent for F itself; negative if the p50 is).
    pub p50_over_f_p50: Option<f64>,
    /// This figure's p99 over F's p99 (absent for F itself).
    pub p99_over_f_p99: Option<f64>,
}

impl Figure {
    /// A row for `summary`; `baseline` is F's summary (`None` for F itself).
    pub fn new(
        key: &'static str,
        name: &'static str,
        summary: &Summary,
        baseline: Option<&Summary>,
    ) -> Figure {
        Figure::shifted(key, name, summary, Duration::ZERO, baseline)
    }

    /// A row for `summary` with `shift` subtracted from every time (the ratios included), for
    /// figures measured as an elapsed time minus a nominal one, such as a timer's lateness.
    /// The results may be negative; they are reported as measured.
    pub fn shifted(
        key: &'static str,
        name: &'static str,
        summary: &Summary,
        shift: Duration,
        baseline: Option<&Summary>,
    ) -> Figure {
        let at = |d: Duration| ms(d) - ms(shift);
        let over = |x: Duration, f: Duration| (!f.is_zero()).then(|| round3(at(x) / ms(f)));
        Figure {
            key,
            name,
            samples: summary.samples,
            min_ms: round3(at(summary.min)),
            p50_ms: round3(at(summary.p50)),
            p90_ms: round3(at(summary.p90)),
            p99_ms: round3(at(summary.p99)),
            max_ms: round3(at(summary.max)),
            mean_ms: round3(at(summary.mean)),
            p50_over_f_p50: baseline.and_then(|f| over(summary.p50, f.p50)),
            p99_over_f_p99: baseline.and_then(|f| over(summary.p99, f.p99)),
        }
    }

    fn cells(&self) -> Vec<String> {
        let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
        vec![
            self.name.to_owned(),
            self.samples.to_string(),
            format!("{:.3}", self.p50_ms),
            format!("{:.3}", self.p90_ms),
            format!("{:.3}", self.p99_ms),
            format!("{:.3}", self.max_ms),
            format!("{:.3}", self.mean_ms),
            ratio(self.p50_over_f_p50),
            ratio(self.p99_over_f_p99),
        ]
    }
}

/// The table's column titles (times in milliseconds).
const HEADERS: [&str; 9] = [
    "figure",
    "samples",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "mean ms",
    "p50/F p50",
    "p99/F p99",
];

/// The rows as an aligned plain-text table (figure names left-aligned, numbers right-aligned).
pub fn text_table(figures: &[Figure]) -> String {
    let rows: Vec<Vec<String>> = figures.iter().map(Figure::cells).collect();
    let widths: Vec<usize> = (0..HEADERS.len())
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .chain([HEADERS[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let mut out = line(HEADERS.iter().map(|h| (*h).to_owned()).collect());
    out.push('\n');
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    for row in rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

/// The rows as a GitHub-flavoured markdown table.
pub fn markdown_table(figures: &[Figure]) -> String {
    let mut out = format!("| {} |\n", HEADERS.join(" | "));
    out.push_str("|---|");
    out.push_str(&"---:|".repeat(HEADERS.len() - 1));
    for f in figures {
        out.push_str(&format!("\n| {} |", f.cells().join(" | ")));
    }
    out.push('\n');
    out
}

/// A small, non-cryptographic random generator (SplitMix64) for the idle gaps.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and the process id.
    pub fn from_clock() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A random idle gap between samples, uniform in `min..=max`.
#[derive(Debug, Clone, Copy)]
pub struct Gap {
    /// The shortest gap.
    pub min: Duration,
    /// The longest gap.
    pub max: Duration,
}

impl Gap {
    /// A gap of `min_ms..=max_ms` milliseconds.
    pub const fn ms(min_ms: u64, max_ms: u64) -> Gap {
        Gap {
            min: Duration::from_millis(min_ms),
            max: Duration::from_millis(max_ms),
        }
    }

    /// Sleeps for a random duration in the range.
    pub async fn sleep(&self, rng: &mut Rng) {
        let span = self.max.saturating_sub(self.min).as_micros() as u64;
        let extra = rng.next_u64() % (span + 1);
        tokio::time::sleep(self.min + Duration::from_micros(extra)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() -> Result<()> {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&samples)?;
        assert_eq!(s.min, Duration::from_millis(1));
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p90, Duration::from_millis(90));
        assert_eq!(s.p95, Duration::from_millis(95));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
        assert_eq!(s.mean, Duration::from_micros(50_500));
        let one = Summary::of(&[Duration::from_millis(7)])?;
        assert_eq!(
            (one.p50, one.p99),
            (Duration::from_millis(7), Duration::from_millis(7))
        );
        assert!(Summary::of(&[]).is_err());
        Ok(())
    }

    #[test]
    fn shifted_figures_subtract_the_nominal_time() -> Result<()> {
        let f = Summary::of(&[Duration::from_millis(2)])?;
        let late = Summary::of(&[Duration::from_millis(1004), Duration::from_millis(999)])?;
        let row = Figure::shifted("t", "t", &late, Duration::from_secs(1), Some(&f));
        assert_eq!((row.min_ms, row.p50_ms, row.max_ms), (-1.0, -1.0, 4.0));
        assert_eq!(row.mean_ms, 1.5);
        assert_eq!(
            (row.p50_over_f_p50, row.p99_over_f_p99),
            (Some(-0.5), Some(2.0))
        );
        let plain = Figure::new("p", "p", &late, Some(&f));
        assert_eq!((plain.p50_ms, plain.p50_over_f_p50), (999.0, Some(499.5)));
        Ok(())
    }
}
