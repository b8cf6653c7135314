//! Release-mode benchmark of the Wi-Fi detector.
//!
//! ```text
//! cargo run --release -p threshold-wids --example bench -- /tmp/wids-bench.pcap 1000000
//! ```
//! Generates the file when it does not exist (deterministic), then runs `bench_file` three
//! times and prints one JSON line per run.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().unwrap_or_else(|| "/tmp/wids-bench.pcap".into()));
    let frames: u64 = match args.next() {
        Some(n) => n.parse()?,
        None => 1_000_000,
    };
    if !path.exists() {
        let t0 = std::time::Instant::now();
        let info = threshold_wids::generator::write_large(&path, frames)?;
        eprintln!(
            "generated {} ({} frames, {} deauth frames, {} attacks expected) in {:.1} s",
            path.display(),
            info.frames,
            info.disconnect_frames,
            info.attacks,
            t0.elapsed().as_secs_f64()
        );
    }
    for _ in 0..3 {
        let r = threshold_wids::bench_file(&path)?;
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}
