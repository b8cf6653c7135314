//! `threshold bench ...`: the command-line glue of the benchmarks in crates/bench.
//! Each prints one JSON line; what they measure and the current figures are in
//! docs/performance.md.

use clap::{Args, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Detector throughput on a capture: prints {"frames","frames_per_s","attacks"}.
    Wids(WidsArgs),
    /// Entry decisions and unlock-to-bolt latency: prints {"homes","decisions_per_s",
    /// "decision_latency_ms","unlock_to_bolt_ms",...}.
    Unlock(UnlockArgs),
    /// Camera liveness at scale: prints {"cameras","hz","messages_per_s",
    /// "alert_latency_ms","missed_alerts","false_alerts","hub_cpu_percent","hub_rss_bytes"}.
    Liveness(LivenessArgs),
    /// (internal) the simulated cameras of `bench liveness`, in their own process.
    #[command(hide = true)]
    LivenessDevices(LivenessDevicesArgs),
}

#[derive(Args, Debug)]
pub struct WidsArgs {
    /// The capture to scan.
    pub file: PathBuf,
    /// First write the benchmark file with this many records (deterministic; 1000000
    /// is the file of docs/performance.md) to FILE, then scan it.
    #[arg(long)]
    pub generate: Option<u64>,
}

#[derive(Args, Debug)]
pub struct UnlockArgs {
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
    /// MQTT connections shared by the simulated devices on an external broker (on
    /// the hub's own endpoint each device has its own connection).
    #[arg(long, default_value_t = 4)]
    pub device_connections: usize,
    /// Open loop: start this many requests per second on a fixed schedule (at most
    /// --concurrency in flight) and time each from its scheduled start. Without it,
    /// each client asks again as soon as it is answered (closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
}

#[derive(Args, Debug)]
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
    /// Run against a fleet of this many `threshold serve --fleet-node` processes
    /// (needs --database-url and --mqtt-url); prints per-node load, duplicates and the
    /// failover time.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// With --nodes: the PostgreSQL server (the run gets a schema of its own).
    #[arg(long)]
    pub database_url: Option<String>,
    /// With --nodes: kill (SIGKILL) the node holding the most partitions this many
    /// seconds into the run (default: half the run; 0 or more than the run: at its end).
    #[arg(long)]
    pub kill_at: Option<u64>,
    /// Overload: this many more cameras (homes without a delivery) flood the hub for
    /// part of the run; the JSON line's `overload` says what the hub did meanwhile.
    #[arg(long, conflicts_with = "nodes")]
    pub flood_cameras: Option<usize>,
    /// Heartbeats a second per flood camera.
    #[arg(long, default_value_t = 20.0, requires = "flood_cameras")]
    pub flood_hz: f64,
    /// When the flood starts, seconds into the measured run.
    #[arg(long, default_value_t = 10, requires = "flood_cameras")]
    pub flood_from: u64,
    /// How long the flood lasts, seconds (it must end before the run does).
    #[arg(long, default_value_t = 20, requires = "flood_cameras")]
    pub flood_for: u64,
}

#[derive(Args, Debug)]
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
    #[arg(long)]
    pub hold: bool,
}

pub async fn run(c: BenchCmd) -> anyhow::Result<ExitCode> {
    let line = match c {
        BenchCmd::Wids(a) => {
            if let Some(n) = a.generate {
                eprintln!("{}", threshold_bench::wids::generate(&a.file, n)?);
            }
            serde_json::to_value(threshold_bench::wids::run(&a.file)?)?
        }
        BenchCmd::Unlock(a) => {
            threshold_bench::unlock::run(threshold_bench::unlock::BenchArgs {
                homes: a.homes,
                concurrency: a.concurrency,
                duration: Duration::from_secs(a.duration.max(1)),
                database_url: a.database_url,
                mqtt_url: a.mqtt_url,
                device_connections: a.device_connections,
                rate: a.rate,
            })
            .await?
        }
        BenchCmd::Liveness(a) if a.nodes.is_some() => {
            let exe = std::env::current_exe()?;
            let (Some(database_url), Some(mqtt_url)) = (a.database_url, a.mqtt_url) else {
                anyhow::bail!(
                    "--nodes needs --database-url postgres://... and --mqtt-url mqtt://..."
                );
            };
            threshold_bench::fleet::run(threshold_bench::fleet::FleetBench {
                nodes: a.nodes.unwrap_or(1),
                cameras: a.cameras,
                hz: a.hz,
                duration_s: a.duration,
                silence_fraction: a.silence,
                database_url,
                mqtt_url,
                kill_at_s: Some(a.kill_at.unwrap_or(a.duration / 2)),
                hub_program: exe.clone().into(),
                devices_command: vec![
                    OsString::from(exe),
                    OsString::from("bench"),
                    OsString::from("liveness-devices"),
                ],
            })
            .await?
        }
        BenchCmd::Liveness(a) => {
            let exe = std::env::current_exe()?;
            threshold_bench::liveness::run(threshold_bench::liveness::LivenessBench {
                cameras: a.cameras,
                hz: a.hz,
                duration_s: a.duration,
                silence_fraction: a.silence,
                live_window_ms: a.live_window_ms,
                mqtt_url: a.mqtt_url,
                flood: a
                    .flood_cameras
                    .map(|cameras| threshold_bench::overload::Flood {
                        cameras,
                        hz: a.flood_hz,
                        from_s: a.flood_from,
                        for_s: a.flood_for,
                    }),
                devices_command: vec![
                    OsString::from(exe),
                    OsString::from("bench"),
                    OsString::from("liveness-devices"),
                ],
            })
            .await?
        }
        BenchCmd::LivenessDevices(a) => {
            threshold_bench::liveness::run_devices(threshold_bench::liveness::DevicesArgs {
                creds: a.creds,
                broker: a.broker,
                prefix: a.prefix,
                hz: a.hz,
                duration_s: a.duration,
                silence_fraction: a.silence,
                seed: a.seed,
                hold: a.hold,
            })
            .await?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    println!("{}", serde_json::to_string(&line)?);
    Ok(ExitCode::SUCCESS)
}
