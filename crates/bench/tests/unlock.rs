//! `threshold bench unlock` end to end at a small size: every request is decided,
//! every accepted unlock reaches its simulated lock through the broker, and the line
//! carries the figures the issue names. Speed is not asserted here (that is what the
//! benchmark itself reports); correctness of what it measures is.

use std::time::Duration;
use threshold_bench::unlock::{run, BenchArgs};

fn ms(v: &serde_json::Value, group: &str, p: &str) -> f64 {
    v[group][p]
        .as_f64()
        .unwrap_or_else(|| panic!("{group}.{p} missing or not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_is_allowed_and_every_unlock_reaches_its_lock() {
    let v = run(BenchArgs {
        homes: 8,
        concurrency: 2,
        duration: Duration::from_secs(1),
        device_connections: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(v["homes"], 8);
    let allowed = v["allowed"].as_u64().unwrap();
    assert!(allowed > 0, "no decision allowed: {v}");
    assert_eq!(
        v["refused"], 0,
        "live camera and lock, right courier and place: {v}"
    );
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(
        v["unlocks_measured"].as_u64().unwrap(),
        allowed,
        "each accepted unlock retracted a simulated bolt: {v}"
    );
    assert!(v["decisions_per_s"].as_f64().unwrap() > 0.0, "{v}");
    for group in ["decision_latency_ms", "unlock_to_bolt_ms", "disk_fsync_ms"] {
        let (p50, p99) = (ms(&v, group, "p50"), ms(&v, group, "p99"));
        assert!(0.0 < p50 && p50 <= p99, "{group}: {v}");
    }
}

/// Open loop: requests start on the schedule, never faster, and each is decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_to_its_rate() {
    let v = run(BenchArgs {
        homes: 8,
        concurrency: 4,
        duration: Duration::from_secs(1),
        device_connections: 2,
        rate: Some(20.0),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(v["rate_per_s"], 20.0);
    let allowed = v["allowed"].as_u64().unwrap();
    let started = allowed + v["refused"].as_u64().unwrap() + v["errors"].as_u64().unwrap();
    assert!(allowed > 0, "{v}");
    assert!(
        started <= 20,
        "one second at 20 per second starts at most 20 requests, started {started}: {v}"
    );
    assert_eq!(v["refused"], 0, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["unlocks_measured"].as_u64().unwrap(), allowed, "{v}");
    assert_eq!(
        v["lock_refusals"], 0,
        "every token carried a statement the lock accepts: {v}"
    );
    let (p50, p99) = (
        ms(&v, "decision_latency_ms", "p50"),
        ms(&v, "decision_latency_ms", "p99"),
    );
    assert!(0.0 < p50 && p50 <= p99, "{v}");
}
