//! Prints the test vectors of `docs/protocol.md` (section "Test vectors") from the
//! reference implementation. The doc is the single source of truth; this program only
//! exists to (re)generate it, and `tests/vectors.rs` checks the doc against the code.
//!
//! ```text
//! cargo run -p threshold-proto --example protocol_vectors
//! ```

use serde::Serialize;
use sha2::{Digest, Sha256};
use threshold_proto::body::{
    self, Ack, BoltState, DeviceKind, DoorCameras, DoorState, Event, FrameHeader, FrameSummary,
    Heartbeat, Hello, LockCommand, OutboxStats, State, Stream, Unlock,
};
use threshold_proto::statement::encode_statement;
use threshold_proto::{DeviceId, DeviceKey, Kind, SignedMessage};

/// Base time of every vector: 2023-11-14T22:13:20Z.
const T: i64 = 1_700_000_000_000;

fn seed(first: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = first.wrapping_add(i as u8);
    }
    s
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

struct Signer {
    name: &'static str,
    key: DeviceKey,
}

#[allow(clippy::too_many_arguments)]
fn print_message(
    label: &str,
    signer: &Signer,
    kind: Kind,
    device: DeviceId,
    seq: u64,
    time_ms: i64,
    body_lines: &[(&str, String)],
    body: Vec<u8>,
    expect: Option<&str>,
) -> SignedMessage {
    let m = SignedMessage::sign(&signer.key, kind, device, seq, time_ms, body);
    println!("```text");
    println!("vector: {label}");
    println!("signer: {}", signer.name);
    println!("seed: {}", hex::encode(signer.key.seed()));
    println!("public_key: {}", signer.key.public().to_hex());
    println!("kind: {}", kind.name());
    println!("kind_code: {}", kind.code());
    println!("device_id: {}", device.to_hex());
    println!("seq: {seq}");
    println!("time_ms: {time_ms}");
    for (k, v) in body_lines {
        println!("{k}: {v}");
    }
    println!("body_len: {}", m.body.len());
    println!("message_len: {}", m.as_bytes().len());
    println!("message_hex: {}", hex::encode(m.as_bytes()));
    println!("signature_hex: {}", hex::encode(m.signature()));
    if let Some(e) = expect {
        println!("expect: {e}");
    }
    println!("```");
    println!();
    m
}

fn json_message<T: Serialize>(
    label: &str,
    signer: &Signer,
    kind: Kind,
    device: DeviceId,
    seq: u64,
    time_ms: i64,
    body: &T,
) -> SignedMessage {
    let text = json(body);
    print_message(
        label,
        signer,
        kind,
        device,
        seq,
        time_ms,
        &[("body", text.clone())],
        text.into_bytes(),
        None,
    )
}

fn main() {
    let camera = Signer {
        name: "camera",
        key: DeviceKey::from_seed(&seed(0x01)),
    };
    let lock = Signer {
        name: "lock",
        key: DeviceKey::from_seed(&seed(0x21)),
    };
    let hub = Signer {
        name: "hub",
        key: DeviceKey::from_seed(&seed(0xA0)),
    };
    let forger = Signer {
        name: "forger",
        key: DeviceKey::from_seed(&seed(0xC0)),
    };
    let cam_id = camera.key.device_id();
    let lock_id = lock.key.device_id();

    println!("```text");
    for (i, (s, is_device)) in [
        (&camera, true),
        (&lock, true),
        (&hub, false),
        (&forger, false),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            println!();
        }
        println!("key: {}", s.name);
        println!("seed: {}", hex::encode(s.key.seed()));
        println!("public_key: {}", s.key.public().to_hex());
        if is_device {
            println!("device_id: {}", s.key.device_id().to_hex());
        }
    }
    println!("```");
    println!();

    // The frame both the heartbeat and the frame record describe.
    let jpeg: Vec<u8> = vec![0xff, 0xd8, 0xff, 0xd9];
    let sha = hex::encode(Sha256::digest(&jpeg));
    let thumb: Vec<u8> = (0u8..64).map(|i| i.wrapping_mul(4)).collect();
    let thumb = hex::encode(thumb);
    let frame_seq = 1042;
    let frame_time = T + 200;

    let hello = Hello {
        agent: "acme-cam/1.0.0".into(),
        kind: DeviceKind::Camera,
        boot_id: "00112233445566778899aabbccddeeff".into(),
    };
    let hello_msg = json_message(
        "hello",
        &camera,
        Kind::Hello,
        cam_id,
        1_700_000_000_000_000,
        T,
        &hello,
    );

    let hb = Heartbeat {
        frame: Some(FrameSummary {
            seq: frame_seq,
            time_ms: frame_time,
            sha256: sha.clone(),
            thumb: thumb.clone(),
        }),
        outbox: OutboxStats {
            records: 0,
            bytes: 0,
        },
    };
    let hb_msg = json_message(
        "heartbeat",
        &camera,
        Kind::Heartbeat,
        cam_id,
        1_700_000_000_000_001,
        T + 250,
        &hb,
    );

    let header = FrameHeader {
        width: 8,
        height: 8,
        sha256: sha,
        thumb,
    };
    let fbody = body::encode_frame_body(&header, &jpeg);
    print_message(
        "frame",
        &camera,
        Kind::Frame,
        cam_id,
        frame_seq,
        frame_time,
        &[
            ("frame_header", json(&header)),
            ("jpeg_hex", hex::encode(&jpeg)),
            ("body_hex", hex::encode(&fbody)),
        ],
        fbody,
        None,
    );

    let st = State {
        bolt: Some(BoltState::Locked),
        door: Some(DoorState::Closed),
        battery_pct: Some(87),
        outbox: OutboxStats {
            records: 0,
            bytes: 0,
        },
        ..Default::default()
    };
    json_message(
        "state",
        &lock,
        Kind::State,
        lock_id,
        1_700_000_000_500_000,
        T + 500,
        &st,
    );

    let stream = Stream {
        until_ms: T + 10_300,
        fps: 5,
    };
    json_message(
        "stream",
        &hub,
        Kind::Stream,
        cam_id,
        1_700_000_000_300_000,
        T + 300,
        &stream,
    );

    // The lock learns which cameras watch its door.
    let door_cameras = DoorCameras {
        door_id: "front-door".into(),
        cameras: vec![camera.key.public().to_hex()],
    };
    json_message(
        "cameras",
        &hub,
        Kind::Cameras,
        lock_id,
        1_700_000_000_100_000,
        T + 100,
        &door_cameras,
    );

    // The unlock carries the camera's heartbeat above as its liveness statement; the
    // lock checks it at its own time `lock_time_ms` with the keys it was given.
    let nonce = hex::encode((0x10u8..0x20).collect::<Vec<u8>>());
    let statement = encode_statement(hb_msg.as_bytes());
    let unlock = Unlock {
        grant: "delivery:d-1001".into(),
        nonce: nonce.clone(),
        expires_at_ms: T + 33_000,
        camera: Some(statement.clone()),
        camera_waived: None,
    };
    let bound = camera.key.public().to_hex();
    // A lock with the default rules, or (`lock_allow_waiver: no`) one that refuses
    // waivers.
    let lock_check_with = |token: &Unlock,
                           label: &str,
                           seq: u64,
                           lock_time: i64,
                           allow_waiver: bool,
                           expect: &str| {
        let text = json(token);
        let mut lines = vec![
            ("body", text.clone()),
            ("bound_cameras", bound.clone()),
            ("lock_time_ms", lock_time.to_string()),
        ];
        if !allow_waiver {
            lines.push(("lock_allow_waiver", "no".to_owned()));
        }
        lines.push(("lock_expect", expect.to_owned()));
        print_message(
            label,
            &hub,
            Kind::Unlock,
            lock_id,
            seq,
            T + 3000,
            &lines,
            text.into_bytes(),
            None,
        );
    };
    let lock_check = |token: &Unlock, label: &str, seq: u64, lock_time: i64, expect: &str| {
        lock_check_with(token, label, seq, lock_time, true, expect)
    };
    lock_check(
        &unlock,
        "unlock",
        1_700_000_003_000_000,
        T + 3050,
        "accepted",
    );

    let accepted = Event {
        event_type: "token_accepted".into(),
        detail: serde_json::json!({"grant": "delivery:d-1001", "nonce": nonce,
            "camera": cam_id.to_hex(), "frame_seq": frame_seq, "capture_ms": frame_time}),
    };
    json_message(
        "event-token-accepted",
        &lock,
        Kind::Event,
        lock_id,
        41,
        T + 3050,
        &accepted,
    );

    let opened = Event {
        event_type: "door_opened".into(),
        detail: serde_json::json!({}),
    };
    json_message(
        "event-door-opened",
        &lock,
        Kind::Event,
        lock_id,
        42,
        T + 5000,
        &opened,
    );

    // The camera set changing (device ids sorted, each once), and a token accepted on
    // the owner's waiver instead of a statement.
    let changed = Event {
        event_type: "cameras_changed".into(),
        detail: serde_json::json!({"door_id": "front-door", "cameras": [cam_id.to_hex()]}),
    };
    json_message(
        "event-cameras-changed",
        &lock,
        Kind::Event,
        lock_id,
        43,
        T + 6000,
        &changed,
    );
    let waived = Event {
        event_type: "token_accepted".into(),
        detail: serde_json::json!({"grant": "owner:u-17", "nonce": "202122232425262728292a2b2c2d2e2f",
            "camera_waived": "owner_override"}),
    };
    json_message(
        "event-token-accepted-waived",
        &lock,
        Kind::Event,
        lock_id,
        44,
        T + 7000,
        &waived,
    );

    let ack = Ack {
        events: vec![(41, 42)],
        frames: vec![],
    };
    json_message(
        "ack",
        &hub,
        Kind::Ack,
        lock_id,
        1_700_000_005_100_000,
        T + 5100,
        &ack,
    );

    let lock_cmd = LockCommand {
        reason: "owner".into(),
    };
    json_message(
        "lock",
        &hub,
        Kind::Lock,
        lock_id,
        1_700_000_060_000_000,
        T + 60_000,
        &lock_cmd,
    );

    // An unlock for the lock signed by a key that is not the hub's: must be refused.
    let text = json(&unlock);
    print_message(
        "unlock-forged",
        &forger,
        Kind::Unlock,
        lock_id,
        1_700_000_003_000_001,
        T + 3000,
        &[("body", text.clone())],
        text.into_bytes(),
        Some("bad_signature"),
    );

    // Hub-signed tokens the lock must refuse for their camera statement, each with its
    // reason, and the owner's waiver, which it accepts.
    let with_camera = |c: Option<String>, w: Option<&str>| Unlock {
        camera: c,
        camera_waived: w.map(str::to_owned),
        ..unlock.clone()
    };
    lock_check(
        &unlock,
        "unlock-statement-stale",
        1_700_000_003_000_002,
        T + 3201,
        "camera_statement_stale",
    );
    lock_check(
        &unlock,
        "unlock-statement-future",
        1_700_000_003_000_003,
        T - 1801,
        "camera_statement_from_future",
    );
    let foreign = SignedMessage::sign(
        &forger.key,
        Kind::Heartbeat,
        forger.key.device_id(),
        1_700_000_000_000_001,
        T + 250,
        json(&hb).into_bytes(),
    );
    lock_check(
        &with_camera(Some(encode_statement(foreign.as_bytes())), None),
        "unlock-statement-foreign",
        1_700_000_003_000_004,
        T + 3050,
        "camera_not_bound",
    );
    let mut altered = hb_msg.as_bytes().to_vec();
    if let Some(b) = altered.get_mut(60) {
        *b ^= 0x01;
    }
    lock_check(
        &with_camera(Some(encode_statement(&altered)), None),
        "unlock-statement-altered",
        1_700_000_003_000_005,
        T + 3050,
        "camera_statement_bad_signature",
    );
    lock_check(
        &with_camera(None, None),
        "unlock-statement-missing",
        1_700_000_003_000_006,
        T + 3050,
        "camera_statement_missing",
    );
    lock_check(
        &with_camera(None, Some("owner_override")),
        "unlock-waived",
        1_700_000_003_000_007,
        T + 3050,
        "accepted",
    );

    // The other reasons of the camera check: a camera heartbeat announcing no frame
    // (signed, bound, fresh), a camera message that is not a heartbeat (its `hello`),
    // a statement and a waiver at once, a waiver the lock does not know, and the
    // owner's waiver at a lock that refuses waivers.
    let no_frame = SignedMessage::sign(
        &camera.key,
        Kind::Heartbeat,
        cam_id,
        1_700_000_000_000_002,
        T + 2900,
        json(&Heartbeat {
            frame: None,
            outbox: OutboxStats {
                records: 0,
                bytes: 0,
            },
        })
        .into_bytes(),
    );
    lock_check(
        &with_camera(Some(encode_statement(no_frame.as_bytes())), None),
        "unlock-statement-no-frame",
        1_700_000_003_000_008,
        T + 3050,
        "camera_statement_no_frame",
    );
    lock_check(
        &with_camera(Some(encode_statement(hello_msg.as_bytes())), None),
        "unlock-statement-not-heartbeat",
        1_700_000_003_000_009,
        T + 3050,
        "camera_statement_malformed",
    );
    lock_check(
        &with_camera(Some(statement.clone()), Some("owner_override")),
        "unlock-statement-and-waiver",
        1_700_000_003_000_010,
        T + 3050,
        "malformed",
    );
    lock_check(
        &with_camera(None, Some("courier_says_so")),
        "unlock-waiver-unknown",
        1_700_000_003_000_011,
        T + 3050,
        "camera_statement_missing",
    );
    lock_check_with(
        &with_camera(None, Some("owner_override")),
        "unlock-waiver-refused",
        1_700_000_003_000_012,
        T + 3050,
        false,
        "camera_waiver_refused",
    );

    // Enrolment proof.
    let code = "ABCD-EFGH-JKLM";
    let pk = camera.key.public().to_hex();
    let proof_message = format!("threshold-enrol-v1:{code}:{pk}");
    let proof = hex::encode(camera.key.sign(proof_message.as_bytes()));
    let request = format!(
        r#"{{"pairing_code":"{code}","public_key":"{pk}","kind":"camera","proof":"{proof}"}}"#
    );
    println!("```text");
    println!("vector: enrol-proof");
    println!("signer: camera");
    println!("seed: {}", hex::encode(camera.key.seed()));
    println!("public_key: {pk}");
    println!("device_id: {}", cam_id.to_hex());
    println!("pairing_code: {code}");
    println!("device_kind: camera");
    println!("proof_message: {proof_message}");
    println!(
        "proof_message_hex: {}",
        hex::encode(proof_message.as_bytes())
    );
    println!("signature_hex: {proof}");
    println!("request: {request}");
    println!("```");
    println!();

    // Credential renewal proof (§8.6).
    let nonce: String = (0x40u8..0x60).map(|b| format!("{b:02x}")).collect();
    let renew_message = threshold_proto::renewal::message(&cam_id, &nonce);
    let renew_text = String::from_utf8_lossy(&renew_message).into_owned();
    let renew_sig = threshold_proto::renewal::sign(&camera.key, &nonce);
    println!("```text");
    println!("vector: renew-proof");
    println!("signer: camera");
    println!("seed: {}", hex::encode(camera.key.seed()));
    println!("public_key: {pk}");
    println!("device_id: {}", cam_id.to_hex());
    println!("nonce: {nonce}");
    println!("proof_message: {renew_text}");
    println!("proof_message_hex: {}", hex::encode(&renew_message));
    println!("signature_hex: {renew_sig}");
    println!(r#"request: {{"nonce":"{nonce}","signature":"{renew_sig}"}}"#);
    println!("```");
    println!();

    // Byte-by-byte layout of the heartbeat.
    let b = hb_msg.as_bytes();
    let n = hb_msg.body.len();
    let rows: [(usize, usize, &str); 9] = [
        (0, 4, "magic \"THR1\""),
        (4, 1, "kind = 2 (heartbeat)"),
        (5, 1, "flags = 0"),
        (6, 16, "device id (camera)"),
        (22, 8, "seq = 1700000000000001"),
        (30, 8, "time_ms = 1700000000250"),
        (38, 4, "body length"),
        (42, n, "body (the JSON text)"),
        (42 + n, 64, "Ed25519 signature over bytes 0..42+n"),
    ];
    println!("```text");
    println!("layout: heartbeat");
    for (off, len, what) in rows {
        let bytes = b.get(off..off + len).unwrap_or_default();
        println!("{off} {len} {} {what}", hex::encode(bytes));
    }
    println!("```");
}
