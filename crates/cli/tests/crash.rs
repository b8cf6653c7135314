//! Crash truth through the real binary: `threshold serve` is killed with SIGKILL at
//! different moments (before the hub has read the last messages, right after it acted
//! on them, and after it has been idle), three rounds on the same data folder. After
//! each restart every captured device message (heartbeats, lock reports, hellos) is
//! replayed byte for byte: none may be accepted, so the camera never looks live and the
//! lock never looks locked on the strength of a replay. The devices then prove
//! themselves with fresh messages and are believed again.

#[path = "../../hub/tests/support/mod.rs"]
mod support;

use serde_json::Value;
use support::process::{serve, Running};
use support::sim::{enrol_request, SimDevice};
use support::wire::Wire;
use support::{call, eventually, now_ms, until};
use threshold_proto::body::{BoltState, DoorState};
use threshold_proto::SignedMessage;

const BIN: &str = env!("CARGO_BIN_EXE_threshold");
const PASSWORD: &str = "a-long-password";

/// A running `threshold serve` on the test's data folder (ports 0, read back).
struct Hub {
    process: Running,
    base: String,
    mqtt_port: u16,
}

impl Hub {
    fn start(dir: &std::path::Path) -> Hub {
        let (process, base, mqtt_port) = serve(BIN, dir);
        Hub {
            process,
            base,
            mqtt_port,
        }
    }

    /// SIGKILL: no shutdown path runs, nothing is flushed.
    fn kill(mut self) {
        self.process.kill();
    }

    async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.base);
        tokio::task::spawn_blocking(move || ureq::get(&url).call().unwrap().into_string().unwrap())
            .await
            .unwrap()
    }

    /// The sum of a counter family in /metrics, over the labels that `keep` accepts.
    async fn counter(&self, family: &str, keep: impl Fn(&str) -> bool) -> u64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with(&format!("{family}{{")) && keep(l))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    async fn rejected(&self) -> u64 {
        self.counter("threshold_messages_rejected_total", |_| true)
            .await
    }

    /// Accepted live messages (hello, heartbeat, state).
    async fn accepted_live(&self) -> u64 {
        self.counter("threshold_messages_accepted_total", |l| {
            ["hello", "heartbeat", "state"]
                .iter()
                .any(|k| l.contains(&format!("kind=\"{k}\"")))
        })
        .await
    }

    async fn devices(&self, owner: &str, home: &str) -> Vec<Value> {
        let (s, d) = call(
            "GET",
            format!("{}/api/v1/homes/{home}/devices", self.base),
            Some(owner),
            None,
        )
        .await;
        assert_eq!(s, 200, "{d}");
        d.as_array().cloned().unwrap_or_default()
    }
}

/// Where in the hub's life the kill lands.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// Straight after the last publish: the hub may not have read it yet.
    BeforeReading,
    /// As soon as the hub has acted on the last messages (inside the span its replay
    /// high-water mark had not been saved for yet).
    RightAfterActing,
    /// After the devices have been heard and then fell silent for a live window.
    AfterSilence,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_no_replayed_device_message_is_believed() {
    let dir = tempfile::tempdir().unwrap();
    support::process::user_add(BIN, dir.path(), "owner", "ann", PASSWORD);

    let mut hub = Hub::start(dir.path());
    let owner = support::login(&hub.base, "ann", PASSWORD).await;
    let home = support::home(&hub.base, &owner, "Flat", 52.37, 4.89).await;
    let enrol = |kind: &'static str| {
        let (base, owner, home) = (hub.base.clone(), owner.clone(), home.clone());
        async move {
            let code = support::pairing_code(&base, &owner, &home, kind, kind).await;
            let key = threshold_proto::DeviceKey::generate().unwrap();
            let (s, e) = call(
                "POST",
                format!("{base}/api/v1/enrol"),
                None,
                Some(enrol_request(&key, &code, kind)),
            )
            .await;
            assert_eq!(s, 201, "{e}");
            SimDevice::enrolled(key, e)
        }
    };
    let mut camera = enrol("camera").await;
    let mut lock = enrol("lock").await;
    // Every message the devices sent, in order: what an eavesdropper would hold.
    let captured = std::sync::Mutex::new(Vec::<SignedMessage>::new());
    let keep = |m: &SignedMessage| captured.lock().unwrap().push(m.clone());
    let mut shade = 0u8;

    for moment in [
        Moment::BeforeReading,
        Moment::RightAfterActing,
        Moment::AfterSilence,
    ] {
        // The devices talk to the hub: hello, a stream of frames, a locked bolt.
        let (cam_wire, lock_wire) = (
            Wire::connect(&camera, hub.mqtt_port).await,
            Wire::connect(&lock, hub.mqtt_port).await,
        );
        let hello = (
            camera.hello(now_ms(), "camera"),
            lock.hello(now_ms(), "lock"),
        );
        cam_wire.send(&hello.0).await;
        lock_wire.send(&hello.1).await;
        keep(&hello.0);
        keep(&hello.1);
        let mut beat = |camera: &mut SimDevice, lock: &mut SimDevice| {
            shade = shade.wrapping_add(17);
            let t = now_ms();
            (
                camera.heartbeat(t, t, shade),
                lock.state(t, Some(BoltState::Locked), Some(DoorState::Closed)),
            )
        };
        eventually(30, "camera live and lock locked", || {
            let (c, l) = beat(&mut camera, &mut lock);
            let (cam_wire, lock_wire, hub, owner, home) =
                (&cam_wire, &lock_wire, &hub, &owner, &home);
            let keep = &keep;
            async move {
                cam_wire.send(&c).await;
                lock_wire.send(&l).await;
                keep(&c);
                keep(&l);
                let devs = hub.devices(owner, home).await;
                let live = devs
                    .iter()
                    .any(|d| d["kind"] == "camera" && d["liveness"] == "live");
                let locked = devs
                    .iter()
                    .any(|d| d["kind"] == "lock" && d["state"]["bolt"] == "locked");
                (live && locked).then_some(())
            }
        })
        .await;

        // The last messages before the crash, and the crash.
        let accepted_before = hub.accepted_live().await;
        let (c, l) = beat(&mut camera, &mut lock);
        cam_wire.send(&c).await;
        lock_wire.send(&l).await;
        keep(&c);
        keep(&l);
        match moment {
            Moment::BeforeReading => {}
            Moment::RightAfterActing => {
                until(20, "the hub acted on the last messages", || async {
                    hub.accepted_live().await >= accepted_before + 2
                })
                .await
            }
            Moment::AfterSilence => {
                until(20, "the camera is no longer live", || async {
                    hub.devices(&owner, &home)
                        .await
                        .iter()
                        .any(|d| d["kind"] == "camera" && d["liveness"] != "live")
                })
                .await
            }
        }
        hub.kill();

        // Restart; an attacker with the devices' broker credentials replays it all.
        hub = Hub::start(dir.path());
        let (rejected_before, accepted_before) = (hub.rejected().await, hub.accepted_live().await);
        let (cam_wire, lock_wire) = (
            Wire::connect(&camera, hub.mqtt_port).await,
            Wire::connect(&lock, hub.mqtt_port).await,
        );
        let replay = captured.lock().unwrap().clone();
        for m in &replay {
            let wire = if m.device == camera.id {
                &cam_wire
            } else {
                &lock_wire
            };
            wire.send(m).await;
        }
        let n = replay.len() as u64;
        let settled = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while hub.rejected().await < rejected_before + n {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await;
        if settled.is_err() {
            let text = hub.metrics().await;
            let lines: Vec<&str> = text.lines().filter(|l| l.contains("messages_")).collect();
            panic!(
                "{moment:?}: {n} replayed, not all refused:\n{}",
                lines.join("\n")
            );
        }
        assert_eq!(
            hub.accepted_live().await,
            accepted_before,
            "{moment:?}: a replayed message was accepted"
        );
        for d in hub.devices(&owner, &home).await {
            assert_ne!(d["liveness"], "live", "{moment:?}: believed a replay: {d}");
            if d["kind"] == "lock" {
                assert_eq!(d["state"]["bolt"], "unknown", "{moment:?}: {d}");
            }
        }
        let reasons = hub
            .counter("threshold_messages_rejected_total", |l| {
                l.contains("reason=\"before_restart\"") || l.contains("reason=\"replay\"")
            })
            .await;
        assert!(
            reasons >= n,
            "{moment:?}: replays refused for the wrong reason ({reasons} of {n})"
        );

        // The real devices, signing fresh messages, are believed again at once.
        let fresh = (
            camera.hello(now_ms(), "camera"),
            lock.hello(now_ms(), "lock"),
        );
        cam_wire.send(&fresh.0).await;
        lock_wire.send(&fresh.1).await;
        eventually(30, "fresh messages believed after the restart", || {
            let (c, _) = beat(&mut camera, &mut lock);
            let (cam_wire, hub, owner, home) = (&cam_wire, &hub, &owner, &home);
            async move {
                cam_wire.send(&c).await;
                hub.devices(owner, home)
                    .await
                    .iter()
                    .any(|d| d["kind"] == "camera" && d["liveness"] == "live")
                    .then_some(())
            }
        })
        .await;
    }
    hub.kill();
}
