//! A progress line on stderr for long commands (`publish`), drawn only on a terminal and at
//! most ten times a second, and erased when done.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::units::format_size;

const REDRAW: Duration = Duration::from_millis(100);
const BAR: usize = 30;

/// Bytes done of a known total, shown as a bar.
#[derive(Debug)]
pub(crate) struct Progress {
    label: &'static str,
    total: u64,
    done: u64,
    drawn: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// A progress line for `total` bytes, drawn when stderr is a terminal.
    pub(crate) fn new(label: &'static str, total: u64) -> Self {
        Progress {
            label,
            total,
            done: 0,
            drawn: None,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// A progress line never drawn.
    pub(crate) fn hidden() -> Self {
        Progress {
            enabled: false,
            ..Progress::new("", 0)
        }
    }

    /// Counts `n` more bytes done.
    pub(crate) fn add(&mut self, n: u64) {
        self.done = self.done.saturating_add(n);
        if !self.enabled || self.drawn.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        self.drawn = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{}", line(self.label, self.done, self.total));
        let _ = err.flush();
    }

    /// Erases the line.
    pub(crate) fn finish(&mut self) {
        if self.drawn.take().is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `label [#####-----] done of total (pct%)`.
fn line(label: &str, done: u64, total: u64) -> String {
    let done = done.min(total);
    let part = |whole: u64| {
        (u128::from(done) * u128::from(whole))
            .checked_div(u128::from(total))
            .map_or(whole, |p| u64::try_from(p).unwrap_or(whole))
    };
    let filled = usize::try_from(part(BAR as u64)).unwrap_or(BAR);
    let pct = part(100);
    format!(
        "{label} [{}{}] {} of {} ({pct}%)",
        "#".repeat(filled),
        "-".repeat(BAR - filled),
        format_size(done),
        format_size(total),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_bytes_done() {
        assert_eq!(
            line("hashing", 0, 4 << 20),
            format!("hashing [{}] 0 B of 4.00 MiB (0%)", "-".repeat(30))
        );
        assert_eq!(
            line("hashing", 1 << 20, 4 << 20),
            format!(
                "hashing [{}{}] 1.00 MiB of 4.00 MiB (25%)",
                "#".repeat(7),
                "-".repeat(23)
            )
        );
        assert!(line("hashing", 9 << 20, 4 << 20).ends_with("4.00 MiB of 4.00 MiB (100%)"));
        assert!(line("hashing", 0, 0).ends_with("(100%)"));
    }
}
