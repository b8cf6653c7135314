//! `threshold wids ...`.

use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum WidsCmd {
    /// Scan pcap/pcapng captures for deauthentication/disassociation attacks. Exit
    /// status: 0 no attack, 1 attacks found, 2 an error (a file that is not a capture
    /// is skipped with a warning).
    Scan {
        /// The captures (files that are not captures are skipped with a warning).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per attack per line, nothing else on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Watch a monitor-mode interface (e.g. wlan0mon) live; needs a build with the
    /// `wifi-live` feature (libpcap). Each attack is printed when it crosses a threshold
    /// (`ongoing`) and again when it has ended.
    Watch {
        /// The monitor-mode interface.
        #[arg(long)]
        iface: String,
        /// One JSON object per report per line, nothing else on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Read wpa_supplicant's control socket (e.g. /var/run/wpa_supplicant/wlan0) and
    /// print link-event findings (deauthentication attack, suspected jamming) as JSON
    /// lines.
    Supplicant {
        /// wpa_supplicant's control socket of the camera's interface.
        #[arg(long)]
        ctrl: PathBuf,
        /// Stop after this many seconds (default: run until killed).
        #[arg(long)]
        seconds: Option<u64>,
    },
}

pub fn wids(c: WidsCmd) -> anyhow::Result<ExitCode> {
    let (files, json) = match c {
        WidsCmd::Scan { files, json } => (files, json),
        WidsCmd::Watch { iface, json } => return watch(&iface, json),
        WidsCmd::Supplicant { ctrl, seconds } => return supplicant(&ctrl, seconds),
    };
    let cfg = threshold_wids::DetectorConfig::default();
    let (mut reports, mut scanned, mut failed) = (Vec::new(), 0usize, 0usize);
    // Drawn on a terminal only (indicatif hides it otherwise).
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}") {
        bar.set_style(style);
    }
    for f in &files {
        bar.set_message(f.display().to_string());
        match threshold_wids::scan_file(f, &cfg) {
            Ok((r, _)) => {
                reports.extend(r);
                scanned += 1;
            }
            // Not a capture (a README caught by a glob): said, and the rest scanned.
            Err(e @ threshold_wids::WidsError::Format { .. }) => {
                bar.suspend(|| eprintln!("warning: skipped {e}"));
            }
            Err(e) => {
                bar.suspend(|| eprintln!("error: {e}"));
                failed += 1;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    if json {
        threshold_wids::write_reports_json(&reports, &mut out)?;
    } else {
        threshold_wids::write_reports_human(&reports, &mut out)?;
    }
    if scanned == 0 && failed == 0 {
        eprintln!("error: none of the files is a capture");
    }
    Ok(if failed > 0 || scanned == 0 {
        ExitCode::from(2)
    } else if !reports.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(feature = "wifi-live")]
fn watch(iface: &str, json: bool) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let mut failed = None;
    threshold_wids::watch_interface(iface, &threshold_wids::DetectorConfig::default(), |r| {
        let mut out = std::io::stdout().lock();
        let res = if json {
            threshold_wids::write_reports_json(std::slice::from_ref(r), &mut out)
        } else {
            threshold_wids::write_reports_human(std::slice::from_ref(r), &mut out)
        }
        .and_then(|()| out.flush());
        if let Err(e) = res {
            failed.get_or_insert(e);
        }
    })?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(not(feature = "wifi-live"))]
fn watch(_iface: &str, _json: bool) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "live capture is not in this build: rebuild with `cargo build -p threshold-cli --features wifi-live` (needs libpcap)"
    )
}

fn supplicant(ctrl: &std::path::Path, seconds: Option<u64>) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let run_for = seconds.map(std::time::Duration::from_secs);
    threshold_wids::supplicant::monitor(
        ctrl,
        threshold_wids::supplicant::LinkDetectorConfig::default(),
        run_for,
        |f| {
            let mut out = std::io::stdout().lock();
            if let Ok(line) = serde_json::to_string(f) {
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        },
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", ctrl.display()))?;
    Ok(ExitCode::SUCCESS)
}
