//! A progress bar on stderr for `bootswarm boot` and `bootswarm publish`, drawn only when
//! stderr is a terminal.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar, or nothing when disabled. Cheap to clone; safe to share between tasks.
#[derive(Debug, Clone)]
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar on stderr when `enabled`, else a no-op.
    pub(crate) fn new(enabled: bool) -> Progress {
        if !enabled {
            return Progress(None);
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress(Some(bar))
    }

    fn restart(&self, total: u64, message: String) {
        if let Some(bar) = &self.0 {
            if let Ok(style) = ProgressStyle::with_template(
                "{msg:>12} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_length(total);
            bar.set_position(0);
            bar.set_message(message);
        }
    }

    /// Fetching `blocks` missing blocks of `total` bytes from the hub.
    pub(crate) fn fetching(&self, total: u64, blocks: usize) {
        self.restart(total, format!("fetch {blocks}"));
    }

    /// Chunking and hashing `total` bytes of package files.
    pub(crate) fn publishing(&self, total: u64) {
        self.restart(total, "publish".to_string());
    }

    /// Writing `total` bytes of files into the target.
    pub(crate) fn materialising(&self, total: u64) {
        self.restart(total, "install".to_string());
    }

    /// `n` more bytes done.
    pub(crate) fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    /// Done: the bar is removed.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }

    /// Failed: the bar is removed so that the error stands alone.
    pub(crate) fn abandon(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
