//! ZL: the admin list page (`Admin::list_executions`: `zart list`, the admin API and web UI)
//! over the large history Z7 fills, for each shape of query an operator sends: p50, p95 and
//! max of one call, through the scheduler as the API calls it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use zart::admin::{Admin, ListExecutionsParams};
use zart::ExecutionStatus;
use zart_pg::PostgresScheduler;

use crate::history::HISTORY_TASK;
use crate::stats::percentile;

/// The page size the web UI asks for.
pub const PAGE: u32 = 50;

/// One query shape's latencies.
#[derive(Debug, Clone, Serialize)]
pub struct ListShape {
    /// What the query asks for.
    pub shape: String,
    /// Calls measured.
    pub samples: usize,
    /// Rows the last call returned.
    pub rows: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile (nearest rank), ms.
    pub p95_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

/// The shapes: the first page; the 20th page by cursor; one task; a status no history row has
/// (`failed`: the partial index), the unfinished ones; an id prefix; a time window.
fn shapes(deep_cursor: Option<String>) -> Vec<(String, ListExecutionsParams)> {
    let page = || ListExecutionsParams::new(PAGE);
    let mut out = vec![("first page, no filter".to_owned(), page())];
    if let Some(after) = deep_cursor {
        let mut p = page();
        p.after = Some(after);
        out.push(("page 20 by cursor".to_owned(), p));
    }
    let mut p = page();
    p.task_name = Some(HISTORY_TASK.to_owned());
    out.push((format!("task = {HISTORY_TASK}"), p));
    let mut p = page();
    p.statuses = vec![ExecutionStatus::Failed];
    out.push(("status = failed (none)".to_owned(), p));
    let mut p = page();
    p.statuses = vec![ExecutionStatus::Failed, ExecutionStatus::Cancelled];
    out.push(("status = failed,cancelled (none)".to_owned(), p));
    let mut p = page();
    p.id_prefix = Some(format!("{HISTORY_TASK}-12345"));
    out.push(("id prefix (a few)".to_owned(), p));
    let mut p = page();
    let now = std::time::SystemTime::now();
    // The history is created a day ago, one row per millisecond: five minutes of it.
    let day = Duration::from_secs(24 * 3600);
    p.created_since = Some(now - day + Duration::from_secs(60));
    p.created_until = Some(now - day + Duration::from_secs(360));
    out.push(("created in a 5-minute window".to_owned(), p));
    out
}

/// Measures every shape `samples` times (after one warm-up call each).
///
/// # Errors
/// When a call fails.
pub async fn measure(scheduler: &PostgresScheduler, samples: u32) -> Result<Vec<ListShape>> {
    // The cursor of page 20, found by paging.
    let mut cursor = None;
    for _ in 0..19 {
        let mut p = ListExecutionsParams::new(PAGE);
        p.after = cursor.clone();
        cursor = scheduler
            .list_executions(p)
            .await
            .context("ZL: paging to page 20")?
            .next_after;
        if cursor.is_none() {
            break;
        }
    }
    let mut out = Vec::new();
    for (shape, params) in shapes(cursor) {
        scheduler
            .list_executions(params.clone())
            .await
            .with_context(|| format!("ZL: {shape}"))?;
        let mut times = Vec::with_capacity(samples as usize);
        let mut rows = 0;
        for _ in 0..samples {
            let t = Instant::now();
            let page = scheduler
                .list_executions(params.clone())
                .await
                .with_context(|| format!("ZL: {shape}"))?;
            times.push(t.elapsed());
            rows = page.executions.len();
        }
        times.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        out.push(ListShape {
            shape,
            samples: times.len(),
            rows,
            p50_ms: ms(percentile(&times, 50.0)),
            p95_ms: ms(percentile(&times, 95.0)),
            max_ms: ms(percentile(&times, 100.0)),
        });
    }
    Ok(out)
}
