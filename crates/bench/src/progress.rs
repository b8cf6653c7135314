//! Progress on a terminal while a benchmark sets up and runs (indicatif draws only on
//! a terminal; elsewhere the bars are hidden and the result line stays the only
//! output on stdout, since bars go to stderr).

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// A bar counting `len` things (`what`: "cameras live", "homes enrolled").
pub fn count(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

/// A bar for a measured run of `run`, ticked once a second by its own task until the
/// bar is finished (dropped ticks are harmless: it only draws).
pub fn timed(run: Duration, what: &str) -> ProgressBar {
    let secs = run.as_secs().max(1);
    let bar = ProgressBar::new(secs);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} s {msg}") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    let b = bar.clone();
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(Duration::from_secs(1));
        iv.tick().await;
        while !b.is_finished() && b.position() < secs {
            iv.tick().await;
            b.inc(1);
        }
    });
    bar
}
