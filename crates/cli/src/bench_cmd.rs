//! `threshold bench liveness` and its device process `threshold bench liveness-devices`
//! (see `threshold_hub::bench_liveness`): the simulated cameras run in a second
//! process, because one process may hold at most 20000 open files here.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct LivenessArgs {
    /// Simulated cameras (each its own key, broker connection and home with an open
    /// delivery session).
    #[arg(long, default_value_t = 1000)]
    pub cameras: usize,
    /// Signed heartbeats per second per camera.
    #[arg(long, default_value_t = 2.0)]
    pub hz: f64,
    /// Measured run, seconds (after all cameras are live).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Share of cameras silenced at random instants.
    #[arg(long, default_value_t = 0.01)]
    pub silence: f64,
    /// Live window in ms (default: the hub's default, as a user runs it).
    #[arg(long)]
    pub live_window_ms: Option<i64>,
    /// External broker, e.g. mqtt://127.0.0.1:1883 (default: the embedded broker).
    #[arg(long)]
    pub mqtt_url: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct LivenessDevicesArgs {
    #[arg(long)]
    pub creds: PathBuf,
    #[arg(long)]
    pub broker: String,
    #[arg(long)]
    pub prefix: String,
    #[arg(long)]
    pub hz: f64,
    #[arg(long)]
    pub duration: u64,
    #[arg(long)]
    pub silence: f64,
    #[arg(long)]
    pub seed: u64,
}

pub fn liveness(a: LivenessArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let b = threshold_hub::bench_liveness::LivenessBench {
        cameras: a.cameras,
        hz: a.hz,
        duration_s: a.duration,
        silence_fraction: a.silence,
        live_window_ms: a.live_window_ms,
        mqtt_url: a.mqtt_url,
        devices_command: vec![
            OsString::from(exe),
            OsString::from("bench"),
            OsString::from("liveness-devices"),
        ],
    };
    let v = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(threshold_hub::bench_liveness::run(b))
    })?;
    println!("{}", serde_json::to_string(&v)?);
    Ok(ExitCode::SUCCESS)
}

pub fn liveness_devices(a: LivenessDevicesArgs) -> anyhow::Result<ExitCode> {
    let d = threshold_hub::bench_liveness::DevicesArgs {
        creds: a.creds,
        broker: a.broker,
        prefix: a.prefix,
        hz: a.hz,
        duration_s: a.duration,
        silence_fraction: a.silence,
        seed: a.seed,
    };
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(threshold_hub::bench_liveness::run_devices(d))
    })?;
    Ok(ExitCode::SUCCESS)
}
