//! `threshold wids ...` and `threshold bench ...`.

use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum WidsCmd {
    /// Scan pcap/pcapng captures for deauthentication/disassociation attacks.
    Scan {
        files: Vec<PathBuf>,
        /// One JSON object per attack per line, nothing else on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Detector throughput on a capture: prints {"frames","frames_per_s","attacks"}.
    Wids { file: PathBuf },
}

pub fn wids(c: WidsCmd) -> anyhow::Result<ExitCode> {
    let WidsCmd::Scan { files, json } = c;
    if files.is_empty() {
        anyhow::bail!("give at least one capture file");
    }
    let reports = threshold_wids::scan_files(&files, &threshold_wids::DetectorConfig::default())?;
    let mut out = std::io::stdout().lock();
    if json {
        threshold_wids::write_reports_json(&reports, &mut out)?;
    } else {
        threshold_wids::write_reports_human(&reports, &mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn bench(c: BenchCmd) -> anyhow::Result<ExitCode> {
    match c {
        BenchCmd::Wids { file } => {
            let r = threshold_wids::bench_file(&file)?;
            println!("{}", serde_json::to_string(&r)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
