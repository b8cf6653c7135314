//! `threshold bench unlock --homes N --concurrency C --duration S`: entry decisions
//! and unlock-to-bolt latency (see `threshold_hub::bench_unlock`). Prints one JSON
//! line.

use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct UnlockBenchArgs {
    /// Homes, each with a simulated lock and camera.
    #[arg(long, default_value_t = 1000)]
    pub homes: usize,
    /// Courier clients asking to enter at the same time.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds of timed load.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Database (default: SQLite in a temporary folder).
    #[arg(long)]
    pub database_url: Option<String>,
    /// External broker, mqtt://host:port (default: the embedded broker).
    #[arg(long)]
    pub mqtt_url: Option<String>,
    /// MQTT connections shared by the simulated devices.
    #[arg(long, default_value_t = 4)]
    pub device_connections: usize,
    /// Open loop: start this many requests per second on a fixed schedule (at most
    /// --concurrency in flight) and time each from its scheduled start. Without it,
    /// each client asks again as soon as it is answered (closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
}

/// Runs inside the CLI's multi-thread runtime.
pub fn run(a: UnlockBenchArgs) -> anyhow::Result<ExitCode> {
    let args = threshold_hub::bench_unlock::BenchArgs {
        homes: a.homes,
        concurrency: a.concurrency,
        duration: Duration::from_secs(a.duration.max(1)),
        database_url: a.database_url,
        mqtt_url: a.mqtt_url,
        device_connections: a.device_connections,
        rate: a.rate,
    };
    let v = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(threshold_hub::bench_unlock::run(args))
    })?;
    println!("{}", serde_json::to_string(&v)?);
    Ok(ExitCode::SUCCESS)
}
