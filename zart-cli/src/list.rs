//! `zart list`: one page of executions, read in chunks through the keyset cursor when it is
//! long, with a progress bar on standard error when that is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zart::admin::{Admin, ExecutionPage, ListExecutionsParams};

/// The most executions one read asks for; a longer `--limit` is read in chunks of this size,
/// so the bar moves and no single statement holds the database long.
pub const CHUNK: u32 = 1_000;

/// Reads `params.limit` executions (fewer at the end of the history) as one page; with `bar`
/// and more than one chunk to read, draws how many have been read so far.
///
/// # Errors
/// The first read that fails.
pub async fn read(
    admin: &dyn Admin,
    mut params: ListExecutionsParams,
    bar: bool,
) -> Result<ExecutionPage, zart::Error> {
    let wanted = params.limit;
    if wanted <= CHUNK {
        return admin.list_executions(params).await;
    }
    let bar = if bar && std::io::stderr().is_terminal() {
        let bar =
            ProgressBar::with_draw_target(Some(u64::from(wanted)), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "listing [{bar:30}] {human_pos:>7}/{human_len:<7} {elapsed:>4}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut executions = Vec::new();
    let mut next_after = None;
    let mut left = wanted;
    while left > 0 {
        params.limit = left.min(CHUNK);
        let page = admin.list_executions(params.clone()).await?;
        let read = u32::try_from(page.executions.len()).unwrap_or(u32::MAX);
        left = left.saturating_sub(read);
        bar.inc(u64::from(read));
        executions.extend(page.executions);
        next_after = page.next_after;
        match &next_after {
            Some(after) if read > 0 => params.after = Some(after.clone()),
            _ => break,
        }
    }
    bar.finish_and_clear();
    Ok(ExecutionPage::new(executions, next_after))
}
