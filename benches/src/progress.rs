//! Progress bars on stdout, drawn only when stdout is a terminal (never in CI logs).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// True when stdout is a terminal, so progress bars are worth drawing.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// One phase's progress bar, or nothing. Cheap to clone (clones share the bar).
#[derive(Debug, Clone, Default)]
pub struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar that draws nothing.
    pub fn hidden() -> Bar {
        Bar(None)
    }

    /// A bar of `len` units tagged `prefix` (the figure's key) and labelled `label`, drawn on
    /// stdout when `enabled`.
    pub fn new(enabled: bool, len: u64, prefix: &str, label: &str) -> Bar {
        if !enabled {
            return Bar(None);
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template(
            "{prefix:<3} {msg:<30} [{bar:25}] {pos:>9}/{len:<9} {elapsed:>4} (eta {eta})",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(prefix.to_owned());
        bar.set_message(label.to_owned());
        Bar(Some(bar))
    }

    /// Sets the position.
    pub fn set(&self, pos: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(pos);
        }
    }

    /// Advances by `n`.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    /// Changes the length (for phases whose size is known late).
    pub fn set_len(&self, len: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(len);
        }
    }

    /// Changes the label.
    pub fn set_label(&self, label: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(label.to_owned());
        }
    }

    /// Removes the bar from the screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }

    /// Removes the bar and prints a phase's result `line` in its place.
    pub fn done(&self, line: &str) {
        self.finish();
        println!("{line}");
    }
}
