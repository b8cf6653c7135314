#![allow(clippy::indexing_slicing)]
//! The wpa_supplicant client against a test peer that binds a real Unix datagram socket
//! and speaks the control-interface protocol.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;
use threshold_wids::supplicant::{
    LinkDetectorConfig, LinkEvent, LinkEventDetector, LinkFindingKind, SupplicantClient,
};

const BSSID: &str = "02:00:00:00:01:00";

/// A tiny wpa_supplicant control interface: answers PING, ATTACH, DETACH, SIGNAL_POLL;
/// after ATTACH it sends `script` as unsolicited events, `gap` apart, and one more event
/// in the middle of the next request (before its reply), as the real one may.
fn spawn_peer(
    path: PathBuf,
    script: Vec<String>,
    gap: Duration,
) -> thread::JoinHandle<Vec<String>> {
    let sock = UnixDatagram::bind(&path).expect("bind peer");
    thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut sent_script = false;
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Some(client) = from.as_pathname().map(Path::to_path_buf) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&buf[..n]).to_string();
            seen.push(cmd.clone());
            let reply: &str = match cmd.as_str() {
                "PING" => "PONG\n",
                "ATTACH" | "DETACH" => "OK\n",
                "SIGNAL_POLL" => {
                    // an unsolicited event arrives before the reply
                    let _ = sock.send_to(
                        b"<3>CTRL-EVENT-SIGNAL-CHANGE above=1 signal=-47 noise=-92 txrate=144000",
                        &client,
                    );
                    "RSSI=-47\nLINKSPEED=144\nNOISE=9999\nFREQUENCY=2437\n"
                }
                _ => "UNKNOWN COMMAND\n",
            };
            sock.send_to(reply.as_bytes(), &client).expect("reply");
            if cmd == "ATTACH" && !sent_script {
                sent_script = true;
                for ev in &script {
                    thread::sleep(gap);
                    sock.send_to(ev.as_bytes(), &client).expect("event");
                }
            }
            if cmd == "DETACH" {
                break;
            }
        }
        let _ = std::fs::remove_file(&path);
        seen
    })
}

fn run(script: Vec<String>) -> (Vec<threshold_wids::supplicant::LinkFinding>, Vec<String>) {
    let dir = common::temp_dir("wpa");
    let ctrl = dir.join("wlan0");
    let peer = spawn_peer(ctrl.clone(), script.clone(), Duration::from_millis(5));
    let mut client = SupplicantClient::connect_from(&ctrl, &dir).expect("connect");
    assert!(client.ping().expect("ping"));
    client.attach().expect("attach");
    let mut det = LinkEventDetector::new(LinkDetectorConfig {
        quick_reconnect_s: 1.0,
        ..LinkDetectorConfig::default()
    });
    let mut found = Vec::new();
    let start = std::time::Instant::now();
    let mut got = 0;
    while got < script.len() {
        let ev = client
            .next_event(Duration::from_secs(5))
            .expect("recv")
            .expect("an event");
        got += 1;
        let t = 1000.0 + start.elapsed().as_secs_f64();
        found.extend(det.observe(t, &ev));
    }
    let poll = client.signal_poll().expect("signal poll");
    assert_eq!(poll.rssi_dbm, Some(-47));
    assert_eq!(poll.frequency_mhz, Some(2437));
    // the event that arrived before the SIGNAL_POLL reply was queued, not lost
    assert_eq!(
        client.next_event(Duration::from_millis(100)).expect("recv"),
        Some(LinkEvent::SignalChange {
            signal_dbm: Some(-47)
        })
    );
    client.detach().expect("detach");
    drop(client);
    let seen = peer.join().expect("peer");
    found.extend(det.finish(1000.0 + start.elapsed().as_secs_f64() + 1.0));
    let _ = std::fs::remove_dir_all(&dir);
    (found, seen)
}

#[test]
fn repeated_reason_7_disconnects_are_a_deauth_attack() {
    let mut script = Vec::new();
    for _ in 0..4 {
        script.push(format!("<3>CTRL-EVENT-DISCONNECTED bssid={BSSID} reason=7"));
        script.push(format!(
            "<3>CTRL-EVENT-CONNECTED - Connection to {BSSID} completed [id=0 id_str=]"
        ));
    }
    let (found, seen) = run(script);
    assert_eq!(seen, ["PING", "ATTACH", "SIGNAL_POLL", "DETACH"]);
    let alerts: Vec<_> = found.iter().filter(|f| f.ongoing).collect();
    assert_eq!(alerts.len(), 1, "{found:#?}");
    let last = found.last().expect("final");
    assert_eq!(last.kind, LinkFindingKind::DeauthAttack);
    assert_eq!(last.bssid.as_deref(), Some(BSSID));
    assert_eq!(last.disconnects, 4);
    assert_eq!(last.quick_reconnects, 4);
    assert_eq!(last.reason_codes.get(&7), Some(&4));
}

#[test]
fn beacon_loss_without_deauth_is_jamming() {
    let script = vec![
        format!("<3>CTRL-EVENT-CONNECTED - Connection to {BSSID} completed [id=0 id_str=]"),
        "<3>CTRL-EVENT-SIGNAL-CHANGE above=1 signal=-45 noise=-92 txrate=144000".to_string(),
        "<3>CTRL-EVENT-BEACON-LOSS".to_string(),
        "<3>CTRL-EVENT-BEACON-LOSS".to_string(),
        format!("<3>CTRL-EVENT-DISCONNECTED bssid={BSSID} reason=4 locally_generated=1"),
    ];
    let (found, _) = run(script);
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(f.kind, LinkFindingKind::JammingSuspected);
    assert_eq!(f.beacon_losses, 2);
    assert_eq!(f.disconnects, 1);
}

#[test]
fn a_client_leaving_is_not_an_attack() {
    let script = vec![
        format!("<3>CTRL-EVENT-DISCONNECTED bssid={BSSID} reason=3 locally_generated=1"),
        format!("<3>CTRL-EVENT-CONNECTED - Connection to {BSSID} completed [id=0 id_str=]"),
        format!("<3>CTRL-EVENT-DISCONNECTED bssid={BSSID} reason=4"),
    ];
    let (found, _) = run(script);
    assert!(found.is_empty(), "{found:#?}");
}
