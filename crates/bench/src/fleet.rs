//! `threshold bench liveness --nodes N --database-url postgres://... --mqtt-url
//! mqtt://...`: the liveness bench against a fleet of N `threshold serve --fleet-node`
//! processes sharing one PostgreSQL schema (created for the run) and one broker, with
//! the simulated cameras in their own process as in [`crate::liveness`].
//!
//! Halfway through the measured run (`--kill-at`), the node holding the most
//! partitions is killed with SIGKILL; the bench measures how long until every
//! partition is held again by a live node (the failover time), and the alerts of the
//! whole run are judged as in the single-hub bench: latency from each silenced
//! camera's last message to its alert row (cameras silenced while their node was dead
//! wait for the takeover, and that counts), missed, false, and duplicate alerts (a
//! second row for one silenced camera). Per node: heartbeats accepted per second (every
//! node verifies every message), CPU and memory, partitions held.

use crate::liveness::{
    cpu_seconds_of, judge, now_ms, percentile, silenced_of, status_bytes_of, ChildGuard, Devices,
    Verdicts,
};
use serde_json::json;
use std::ffi::OsString;
use std::io::BufRead as _;
use std::time::Duration;

/// What to run.
#[derive(Clone, Debug)]
pub struct FleetBench {
    pub nodes: usize,
    pub cameras: usize,
    pub hz: f64,
    pub duration_s: u64,
    pub silence_fraction: f64,
    /// The PostgreSQL server; the run gets a schema of its own there.
    pub database_url: String,
    /// The broker every node and camera uses (`mqtt://host:port`).
    pub mqtt_url: String,
    /// Seconds into the measured run to kill one node (`None`: none is killed).
    pub kill_at_s: Option<u64>,
    /// The `threshold` binary (each node is `threshold serve`).
    pub hub_program: OsString,
    /// See `LivenessBench::devices_command`.
    pub devices_command: Vec<OsString>,
}

/// One node: its process, HTTP address and name.
struct Node {
    name: String,
    child: Option<ChildGuard>,
    pid: u32,
    base: String,
}

/// The sum of a metric family's samples in a node's /metrics whose line contains
/// `label` ("" for all).
async fn metric(base: &str, family: &str, label: &str) -> f64 {
    let url = format!("{base}/metrics");
    let text = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .timeout(Duration::from_secs(5))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    text.lines()
        .filter(|l| {
            (l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
                && l.contains(label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn start_node(
    b: &FleetBench,
    name: &str,
    db_url: &str,
    prefix: &str,
    data: &std::path::Path,
) -> anyhow::Result<Node> {
    let mut child = ChildGuard(
        std::process::Command::new(&b.hub_program)
            .args(["serve", "--fleet-node", name, "--database-url", db_url])
            .args(["--mqtt-url", &b.mqtt_url, "--mqtt-topic-prefix", prefix])
            .args(["--http-addr", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("THRESHOLD_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    let pid = child.0.id();
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(addr) = l
                .split("listening on http://")
                .nth(1)
                .and_then(|r| r.split(' ').next())
            {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| anyhow::anyhow!("node {name} did not start"))?;
    Ok(Node {
        name: name.to_owned(),
        child: Some(child),
        pid,
        base: format!("http://{addr}"),
    })
}

/// Live partitions per node now (expired leases count for nobody).
async fn holders(store: &threshold_store::Store) -> anyhow::Result<Vec<(String, usize)>> {
    let now_db = now_ms();
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for l in store.fleet_leases().await? {
        if l.expires_ms > now_db {
            *by.entry(l.node_id).or_default() += 1;
        }
    }
    Ok(by.into_iter().collect())
}

pub async fn run(b: FleetBench) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(b.nodes >= 1 && b.nodes <= 16, "--nodes must be 1..=16");
    anyhow::ensure!(
        b.cameras >= 1 && b.cameras <= 19_000,
        "--cameras must be 1..=19000"
    );
    anyhow::ensure!(b.hz > 0.0 && b.hz <= 20.0, "--hz must be in (0, 20]");
    anyhow::ensure!(b.duration_s >= 10, "--duration must be at least 10 s");
    let window = threshold_hub::HubConfig::default().live_window_ms;
    let period_ms = (1000.0 / b.hz).round() as i64;
    anyhow::ensure!(
        period_ms * 2 <= window,
        "a heartbeat every {period_ms} ms cannot keep the {window} ms live window"
    );
    let db_url = threshold_store::Store::new_schema(&b.database_url, "bench").await?;
    let dir = threshold_store::testing::TempDir::new("bench-fleet")?;
    let prefix = format!("bench-{}", &threshold_store::new_id()[..8]);
    eprintln!("bench: enrolling {} cameras", b.cameras);
    let store = threshold_store::Store::connect(&db_url).await?;
    let (creds, _, owner) = crate::liveness::seed_homes(&store, b.cameras, 0).await?;
    let creds_path = dir.path().join("creds.txt");
    std::fs::write(&creds_path, creds)?;

    eprintln!("bench: starting {} nodes", b.nodes);
    let mut nodes = Vec::new();
    for i in 0..b.nodes {
        nodes.push(start_node(
            &b,
            &format!("n{}", i + 1),
            &db_url,
            &prefix,
            dir.path(),
        )?);
    }
    // Every node holds its share before the cameras come.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while holders(&store).await?.len() < b.nodes {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the nodes did not share the partitions within 60 s: {:?}",
            holders(&store).await?
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let broker = b
        .mqtt_url
        .trim_start_matches("mqtt://")
        .trim_end_matches('/')
        .to_owned();
    let mut devices = Devices::spawn(
        &b.devices_command,
        &creds_path,
        &broker,
        &prefix,
        crate::liveness::Pace {
            hz: b.hz,
            duration_s: b.duration_s,
            silence: b.silence_fraction,
            hold: false,
        },
    )?;
    devices.ready().await?;
    let live = |base: String| async move {
        metric(&base, "threshold_devices", "state=\"live\"").await as usize
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for n in &nodes {
        while live(n.base.clone()).await < b.cameras {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "only {} of {} cameras live on {} after 120 s",
                live(n.base.clone()).await,
                b.cameras,
                n.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let accepted = |base: String| async move {
        metric(
            &base,
            "threshold_messages_accepted_total",
            "kind=\"heartbeat\"",
        )
        .await
    };
    let mut before = Vec::new();
    for n in &nodes {
        before.push((
            accepted(n.base.clone()).await,
            cpu_seconds_of(&n.pid.to_string()),
        ));
    }
    let t0 = now_ms();
    devices.go()?;

    // One node dies mid-run: the one holding the most partitions.
    // (node, takeover ms, partitions, killed at, takeover ms)
    let mut failover: Option<(String, i64, usize, i64, i64)> = None;
    if let Some(at) = b.kill_at_s.filter(|_| b.nodes >= 2) {
        tokio::time::sleep(Duration::from_secs(at.min(b.duration_s))).await;
        let held = holders(&store).await?;
        let victim = held
            .iter()
            .max_by_key(|(_, n)| *n)
            .map(|(name, _)| name.clone())
            .ok_or_else(|| anyhow::anyhow!("nobody holds a partition"))?;
        let parts = held
            .iter()
            .find(|(n, _)| *n == victim)
            .map_or(0, |(_, p)| *p);
        let killed_at = now_ms();
        if let Some(n) = nodes.iter_mut().find(|n| n.name == victim) {
            eprintln!("bench: killing node {victim} (SIGKILL), which holds {parts} partitions");
            n.child = None;
        }
        // Until every partition is held by a live node again.
        let total = threshold_hub::HubConfig::default().fleet_partitions as usize;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let h = holders(&store).await?;
            let alive: usize = h.iter().filter(|(n, _)| *n != victim).map(|(_, p)| p).sum();
            if alive == total {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the partitions of {victim} were not taken over within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = now_ms() - killed_at;
        failover = Some((victim, took, parts, killed_at, took));
    }

    let result = devices
        .result(Duration::from_secs(b.duration_s + 120))
        .await?;
    let t1 = now_ms();
    let secs = ((t1 - t0) as f64 / 1000.0).max(0.001);
    let mut per_node = Vec::new();
    for (n, (acc0, cpu0)) in nodes.iter().zip(&before) {
        if n.child.is_none() {
            per_node.push(json!({"node": n.name, "killed": true}));
            continue;
        }
        let acc1 = accepted(n.base.clone()).await;
        per_node.push(json!({
            "node": n.name,
            "heartbeats_per_s": ((acc1 - acc0) / secs).round(),
            "cpu_percent": (((cpu_seconds_of(&n.pid.to_string()) - cpu0) / secs) * 1000.0).round() / 10.0,
            "rss_bytes": status_bytes_of(&n.pid.to_string(), "VmRSS:"),
            "partitions": metric(&n.base, "threshold_fleet_partitions", "").await,
        }));
    }
    // Late alerts for cameras silenced near the end.
    tokio::time::sleep(Duration::from_millis((3 * window).max(3000) as u64)).await;
    let alerts: Vec<(String, i64)> = store
        .alerts(&owner, 1_000_000)
        .await?
        .into_iter()
        .filter(|a| a.kind == "camera_lost_during_delivery" && a.created_ms >= t0)
        .filter_map(|a| Some((a.device_id?, a.created_ms)))
        .collect();
    let silenced = silenced_of(&result);
    let end = t0 + (b.duration_s * 1000) as i64;
    let Verdicts {
        latencies,
        false_alerts,
        missed,
        duplicates,
    } = judge(&alerts, &silenced, t0, end);
    // The cameras silenced while a node was dead or just taken over from: their alerts
    // wait for the takeover (and its one-window grace), measured apart.
    let around = failover.as_ref().map(|(_, _, _, killed_at, took)| {
        let (from, to) = (killed_at - window, killed_at + took + window);
        let near: std::collections::HashMap<String, i64> = silenced
            .iter()
            .filter(|(_, last)| (from..=to).contains(*last))
            .map(|(d, l)| (d.clone(), *l))
            .collect();
        let theirs: Vec<(String, i64)> = alerts
            .iter()
            .filter(|(d, _)| near.contains_key(d))
            .cloned()
            .collect();
        let v = judge(&theirs, &near, t0, end);
        json!({"silenced": near.len(), "p50": percentile(&v.latencies, 0.5), "max": v.latencies.last()})
    });
    // When each node said it was behind with its devices' messages.
    let mut behind: std::collections::BTreeMap<String, Vec<[f64; 2]>> = Default::default();
    for a in store.system_alerts(1_000).await? {
        if a.kind == "hub_behind" && a.raised_ms >= t0 {
            let node = serde_json::from_str::<serde_json::Value>(&a.evidence)
                .ok()
                .and_then(|e| e["node"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let secs = |t: i64| ((t - t0) as f64 / 100.0).round() / 10.0;
            behind
                .entry(node)
                .or_default()
                .push([secs(a.raised_ms), secs(a.resolved_ms.unwrap_or(t1))]);
        }
    }
    drop(nodes);
    store.close().await;
    Ok(json!({
        "nodes": b.nodes,
        "cameras": b.cameras,
        "hz": b.hz,
        "duration_s": b.duration_s,
        "offered_per_s": (result["sent"].as_u64().unwrap_or(0) as f64 / secs).round(),
        "per_node": per_node,
        "alert_latency_ms": {
            "p50": percentile(&latencies, 0.50),
            "p99": percentile(&latencies, 0.99),
            "max": latencies.last(),
        },
        "silenced": silenced.len(),
        "missed_alerts": missed,
        "false_alerts": false_alerts,
        "duplicate_alerts": duplicates,
        "failover": failover.map(|(node, ms, parts, _, _)| json!({"killed": node, "partitions": parts, "taken_over_ms": ms})),
        "alert_latency_around_failover_ms": around,
        "hub_behind_periods_s": behind,
        "live_window_ms": window,
        "broker": b.mqtt_url,
    }))
}
