//! The liveness benchmark without the CLI (same code as `threshold bench liveness`):
//!
//! ```text
//! cargo run --release -p threshold-hub --example bench_liveness -- --cameras 1000 --hz 2 --duration 30
//! ```
//!
//! Flags: `--cameras N --hz H --duration S [--silence F] [--live-window-ms MS]
//! [--mqtt-url mqtt://host:port]`. The same executable re-runs itself with `--devices`
//! as the device process.

use std::ffi::OsString;
use threshold_hub::bench_liveness::{run, run_devices, DevicesArgs, LivenessBench};

fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = if args.first().map(String::as_str) == Some("--devices") {
        let a = DevicesArgs {
            creds: flag(&args, "--creds").unwrap_or_default(),
            broker: flag(&args, "--broker").unwrap_or_default(),
            prefix: flag(&args, "--prefix").unwrap_or_default(),
            hz: flag(&args, "--hz").unwrap_or(2.0),
            duration_s: flag(&args, "--duration").unwrap_or(30),
            silence_fraction: flag(&args, "--silence").unwrap_or(0.01),
            seed: flag(&args, "--seed").unwrap_or(1),
        };
        rt.block_on(run_devices(a))
    } else {
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("current_exe: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let b = LivenessBench {
            cameras: flag(&args, "--cameras").unwrap_or(1000),
            hz: flag(&args, "--hz").unwrap_or(2.0),
            duration_s: flag(&args, "--duration").unwrap_or(30),
            silence_fraction: flag(&args, "--silence").unwrap_or(0.01),
            live_window_ms: flag(&args, "--live-window-ms"),
            mqtt_url: flag(&args, "--mqtt-url"),
            devices_command: vec![OsString::from(exe), OsString::from("--devices")],
        };
        rt.block_on(async move {
            let v = run(b).await?;
            println!("{v}");
            Ok(())
        })
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
