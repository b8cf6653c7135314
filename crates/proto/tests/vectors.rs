//! `docs/protocol.md` is the normative protocol description and holds the test vectors.
//! These tests read the document, re-create every vector with `threshold_proto` from the
//! inputs the document states, and require the bytes and signatures to match exactly;
//! they also check that the document names every message kind and rejection reason the
//! code knows, and that its JSON examples are what the code reads and writes.
//!
//! To regenerate the vector blocks after a deliberate wire-format change:
//! `cargo run -p threshold-proto --example protocol_vectors`.

use ed25519_dalek::Signature;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use threshold_proto::body::{
    self, Ack, DoorCameras, Event, FrameHeader, Heartbeat, Hello, LockCommand, State, Stream,
    Unlock,
};
use threshold_proto::envelope::DecodeError;
use threshold_proto::{
    DeviceId, DeviceKey, Kind, PublicKey, SeqSpace, UnverifiedMessage, HEADER_LEN,
    MAX_MESSAGE_BYTES, SIGNATURE_LEN,
};

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");

fn doc() -> String {
    std::fs::read_to_string(DOC_PATH).unwrap_or_else(|e| panic!("cannot read {DOC_PATH}: {e}"))
}

/// A fenced code block: its info string, its lines, and the last non-blank line before it.
struct Block {
    lang: String,
    lines: Vec<String>,
    preceded_by: String,
}

fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    let mut last_text = String::new();
    for line in doc.lines() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            match current.take() {
                Some(b) => out.push(b),
                None => {
                    current = Some(Block {
                        lang: info.trim().to_string(),
                        lines: Vec::new(),
                        preceded_by: last_text.clone(),
                    })
                }
            }
            continue;
        }
        match current.as_mut() {
            Some(b) => b.lines.push(trimmed.to_string()),
            None if !line.trim().is_empty() => last_text = line.trim().to_string(),
            None => {}
        }
    }
    assert!(current.is_none(), "unterminated code block in {DOC_PATH}");
    out
}

/// `name: value` lines of one vector (or one key entry). Duplicate names are an error.
type Fields = BTreeMap<String, String>;

fn fields(lines: &[String]) -> Fields {
    let mut f = Fields::new();
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("vector line without `name: value`: {line}"));
        assert!(
            f.insert(k.to_string(), v.to_string()).is_none(),
            "field `{k}` given twice"
        );
    }
    f
}

fn get<'a>(f: &'a Fields, key: &str) -> &'a str {
    f.get(key)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("vector {:?} lacks `{key}`", f.get("vector")))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

fn seed(f: &Fields) -> [u8; 32] {
    unhex(get(f, "seed"))
        .try_into()
        .unwrap_or_else(|_| panic!("seed is not 32 bytes"))
}

/// The key list of §15.1, by name.
fn keys(doc: &str) -> BTreeMap<String, Fields> {
    let mut keys = BTreeMap::new();
    for b in blocks(doc)
        .iter()
        .filter(|b| b.lines.first().is_some_and(|l| l.starts_with("key: ")))
    {
        for entry in b
            .lines
            .split(|l| l.trim().is_empty())
            .filter(|e| !e.is_empty())
        {
            let f = fields(entry);
            keys.insert(get(&f, "key").to_string(), f);
        }
    }
    keys
}

fn vectors(doc: &str) -> Vec<Fields> {
    blocks(doc)
        .iter()
        .filter(|b| b.lines.first().is_some_and(|l| l.starts_with("vector: ")))
        .map(|b| fields(&b.lines))
        .collect()
}

fn kind_named(name: &str) -> Kind {
    Kind::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .unwrap_or_else(|| panic!("unknown kind {name}"))
}

/// The body text must be exactly what the reference serializer writes for the typed value.
fn assert_canonical<T: Serialize + DeserializeOwned>(label: &str, text: &str) {
    let typed: T =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{label}: body does not parse: {e}"));
    let again = serde_json::to_string(&typed).unwrap_or_default();
    assert_eq!(
        again, text,
        "{label}: body is not what threshold_proto serializes"
    );
}

fn check_body_schema(label: &str, kind: Kind, text: &str) {
    match kind {
        Kind::Hello => assert_canonical::<Hello>(label, text),
        Kind::Heartbeat => assert_canonical::<Heartbeat>(label, text),
        Kind::State => assert_canonical::<State>(label, text),
        Kind::Event => assert_canonical::<Event>(label, text),
        Kind::Ack => assert_canonical::<Ack>(label, text),
        Kind::Stream => assert_canonical::<Stream>(label, text),
        Kind::Unlock => assert_canonical::<Unlock>(label, text),
        Kind::Lock => assert_canonical::<LockCommand>(label, text),
        Kind::Cameras => assert_canonical::<DoorCameras>(label, text),
        Kind::Frame => {
            panic!("{label}: a frame body is binary, give frame_header/jpeg_hex/body_hex")
        }
    }
}

const MESSAGE_FIELDS: &[&str] = &[
    "vector",
    "signer",
    "seed",
    "public_key",
    "kind",
    "kind_code",
    "device_id",
    "seq",
    "time_ms",
    "body",
    "frame_header",
    "jpeg_hex",
    "body_hex",
    "body_len",
    "message_len",
    "message_hex",
    "signature_hex",
    "expect",
    "bound_cameras",
    "lock_time_ms",
    "lock_allow_waiver",
    "lock_expect",
];

#[test]
fn keys_derive_their_public_keys_and_device_ids() {
    let keys = keys(&doc());
    assert_eq!(
        keys.keys().map(String::as_str).collect::<Vec<_>>(),
        ["camera", "forger", "hub", "lock"]
    );
    for (name, f) in &keys {
        let key = DeviceKey::from_seed(&seed(f));
        assert_eq!(
            key.public().to_hex(),
            get(f, "public_key"),
            "public key of {name}"
        );
        if let Some(id) = f.get("device_id") {
            assert_eq!(&key.device_id().to_hex(), id, "device id of {name}");
            let digest = Sha256::digest(key.public().0.as_bytes());
            assert_eq!(
                hex::encode(&digest[..16]),
                *id,
                "device id of {name} is not SHA-256(pk)[..16]"
            );
        }
    }
    // The seeds the document describes in words.
    let consecutive =
        |first: u8| -> String { hex::encode((0..32).map(|i| first + i).collect::<Vec<u8>>()) };
    assert_eq!(get(&keys["camera"], "seed"), consecutive(0x01));
    assert_eq!(get(&keys["lock"], "seed"), consecutive(0x21));
    assert_eq!(get(&keys["hub"], "seed"), consecutive(0xA0));
    assert_eq!(get(&keys["forger"], "seed"), consecutive(0xC0));
}

#[test]
fn message_vectors_are_reproduced_exactly_and_verify() {
    let doc = doc();
    let keys = keys(&doc);
    let device_ids: Vec<&str> = keys
        .values()
        .filter_map(|f| f.get("device_id").map(String::as_str))
        .collect();
    let hub_key: PublicKey = get(&keys["hub"], "public_key")
        .parse()
        .expect("hub public key");
    let mut kinds_seen = Vec::new();
    let mut labels = Vec::new();
    for f in vectors(&doc).iter().filter(|f| f.contains_key("kind")) {
        let label = get(f, "vector");
        labels.push(label.to_string());
        for k in f.keys() {
            assert!(
                MESSAGE_FIELDS.contains(&k.as_str()),
                "{label}: unknown field `{k}`"
            );
        }

        // Inputs.
        let signer = &keys[get(f, "signer")];
        assert_eq!(
            get(f, "seed"),
            get(signer, "seed"),
            "{label}: seed differs from the key list"
        );
        let key = DeviceKey::from_seed(&seed(f));
        assert_eq!(
            key.public().to_hex(),
            get(f, "public_key"),
            "{label}: public key"
        );
        let kind = kind_named(get(f, "kind"));
        kinds_seen.push(kind);
        assert_eq!(
            get(f, "kind_code"),
            kind.code().to_string(),
            "{label}: kind code"
        );
        let device: DeviceId = get(f, "device_id").parse().expect("device id");
        if kind.is_uplink() {
            assert_eq!(
                device,
                key.device_id(),
                "{label}: an uplink names its sender"
            );
        } else {
            let expected_signer = if f.contains_key("expect") {
                "forger"
            } else {
                "hub"
            };
            assert_eq!(
                get(f, "signer"),
                expected_signer,
                "{label}: downlinks are signed by the hub"
            );
            assert!(
                device_ids.contains(&get(f, "device_id")),
                "{label}: a downlink names a known recipient"
            );
        }
        let seq: u64 = get(f, "seq").parse().expect("seq");
        let time_ms: i64 = get(f, "time_ms").parse().expect("time_ms");
        let body = if kind == Kind::Frame {
            assert!(
                !f.contains_key("body"),
                "{label}: frame bodies are given as hex"
            );
            let header_text = get(f, "frame_header");
            let header: FrameHeader = serde_json::from_str(header_text).expect("frame header JSON");
            assert_eq!(
                serde_json::to_string(&header).unwrap_or_default(),
                header_text,
                "{label}: header text"
            );
            let jpeg = unhex(get(f, "jpeg_hex"));
            assert_eq!(
                header.sha256,
                hex::encode(Sha256::digest(&jpeg)),
                "{label}: header sha256"
            );
            let mut b = (header_text.len() as u32).to_be_bytes().to_vec();
            b.extend_from_slice(header_text.as_bytes());
            b.extend_from_slice(&jpeg);
            assert_eq!(
                b,
                body::encode_frame_body(&header, &jpeg),
                "{label}: frame body layout"
            );
            assert_eq!(b, unhex(get(f, "body_hex")), "{label}: body_hex");
            let (h2, j2) = body::decode_frame_body(&b).expect("frame body decodes");
            assert_eq!((h2, j2), (header, jpeg.as_slice()));
            b
        } else {
            let text = get(f, "body");
            check_body_schema(label, kind, text);
            text.as_bytes().to_vec()
        };
        assert_eq!(
            get(f, "body_len"),
            body.len().to_string(),
            "{label}: body_len"
        );

        // Re-create and compare.
        let m =
            threshold_proto::SignedMessage::sign(&key, kind, device, seq, time_ms, body.clone());
        assert_eq!(
            hex::encode(m.as_bytes()),
            get(f, "message_hex"),
            "{label}: message bytes"
        );
        assert_eq!(
            hex::encode(m.signature()),
            get(f, "signature_hex"),
            "{label}: signature"
        );
        assert_eq!(
            get(f, "message_len"),
            m.as_bytes().len().to_string(),
            "{label}: message_len"
        );
        assert_eq!(m.as_bytes().len(), HEADER_LEN + body.len() + SIGNATURE_LEN);
        let sig = unhex(get(f, "signature_hex"));
        let bytes = unhex(get(f, "message_hex"));
        assert!(
            bytes.ends_with(&sig),
            "{label}: signature_hex is the last 64 bytes"
        );

        // Decode and verify with the stated public key.
        let stated: PublicKey = get(f, "public_key").parse().expect("public key");
        let u =
            UnverifiedMessage::decode(&bytes).unwrap_or_else(|e| panic!("{label}: decode: {e}"));
        assert_eq!(
            (u.kind, u.device, u.seq, u.time_ms, &u.body),
            (kind, device, seq, time_ms, &body)
        );
        let verified = u
            .clone()
            .verify(&stated)
            .unwrap_or_else(|e| panic!("{label}: verify: {e}"));
        assert_eq!(verified.as_bytes(), bytes.as_slice());

        // Downlinks must verify with the hub key, unless the vector says they must not.
        match f.get("expect").map(String::as_str) {
            None if !kind.is_uplink() => assert!(u.verify(&hub_key).is_ok(), "{label}: hub key"),
            None => {}
            Some("bad_signature") => {
                assert_ne!(
                    get(f, "signer"),
                    "hub",
                    "{label}: a forgery is not signed by the hub"
                );
                assert!(
                    u.verify(&hub_key).is_err(),
                    "{label}: a forgery must not verify with the hub key"
                );
            }
            Some(other) => panic!("{label}: unknown expectation {other}"),
        }

        // An unlock a lock checks for its camera statement (§10.3): run the lock's
        // check with the stated camera keys at the stated lock time.
        if let Some(want) = f.get("lock_expect") {
            assert_eq!(kind, Kind::Unlock, "{label}: lock_expect on an unlock only");
            let token: Unlock = serde_json::from_str(get(f, "body")).expect("unlock body");
            let bound: Vec<PublicKey> = get(f, "bound_cameras")
                .split(',')
                .map(|k| k.trim().parse().expect("bound camera key"))
                .collect();
            let now: i64 = get(f, "lock_time_ms").parse().expect("lock_time_ms");
            let rules = threshold_proto::statement::CameraRules {
                allow_waiver: match f.get("lock_allow_waiver").map(String::as_str) {
                    None | Some("yes") => true,
                    Some("no") => false,
                    Some(other) => panic!("{label}: lock_allow_waiver {other}"),
                },
                ..Default::default()
            };
            // The token's own checks pass at the lock's time (§15: only check 9 differs).
            assert!(
                time_ms <= now + 5000 && now <= token.expires_at_ms + 5000,
                "{label}: checks 7 and 8 pass at lock_time_ms"
            );
            let got = threshold_proto::statement::check_token_camera(
                token.camera.as_deref(),
                token.camera_waived.as_deref(),
                &bound,
                now,
                &rules,
            );
            let got = match got {
                Ok(_) => "accepted",
                Err(reason) => reason,
            };
            assert_eq!(got, want.as_str(), "{label}: the lock's verdict");
        }
    }

    for k in Kind::ALL {
        assert!(kinds_seen.contains(&k), "no vector for kind {}", k.name());
    }
    for want in [
        "hello",
        "heartbeat",
        "frame",
        "state",
        "stream",
        "unlock",
        "event-token-accepted",
        "event-door-opened",
        "ack",
        "lock",
        "unlock-forged",
        "cameras",
        "unlock-statement-stale",
        "unlock-statement-future",
        "unlock-statement-foreign",
        "unlock-statement-altered",
        "unlock-statement-missing",
        "unlock-waived",
        "unlock-statement-no-frame",
        "unlock-statement-not-heartbeat",
        "unlock-statement-and-waiver",
        "unlock-waiver-unknown",
        "unlock-waiver-refused",
    ] {
        assert!(labels.iter().any(|l| l == want), "vector `{want}` missing");
    }
}

#[test]
fn vectors_tell_one_consistent_story() {
    let doc = doc();
    let v: BTreeMap<String, Fields> = vectors(&doc)
        .into_iter()
        .map(|f| (get(&f, "vector").to_string(), f))
        .collect();
    // The heartbeat announces the frame of the frame vector.
    let hb: Heartbeat = serde_json::from_str(get(&v["heartbeat"], "body")).expect("heartbeat");
    let frame = hb.frame.expect("heartbeat announces a frame");
    let header: FrameHeader =
        serde_json::from_str(get(&v["frame"], "frame_header")).expect("frame header");
    assert_eq!(frame.seq.to_string(), get(&v["frame"], "seq"));
    assert_eq!(frame.time_ms.to_string(), get(&v["frame"], "time_ms"));
    assert_eq!((frame.sha256, frame.thumb), (header.sha256, header.thumb));
    // The lock accepted the unlock's nonce, and the ack covers its two events.
    let unlock: Unlock = serde_json::from_str(get(&v["unlock"], "body")).expect("unlock");
    let accepted: Event =
        serde_json::from_str(get(&v["event-token-accepted"], "body")).expect("event");
    assert_eq!(accepted.detail["nonce"], unlock.nonce.as_str());
    assert_eq!(accepted.detail["grant"], unlock.grant.as_str());
    let ack: Ack = serde_json::from_str(get(&v["ack"], "body")).expect("ack");
    let acked = |s: &str| {
        ack.events
            .iter()
            .any(|&(a, b)| (a..=b).contains(&s.parse::<u64>().unwrap_or(0)))
    };
    assert!(
        acked(get(&v["event-token-accepted"], "seq")) && acked(get(&v["event-door-opened"], "seq"))
    );
    // Downlinks use one increasing counter; the token is short-lived.
    let unlock_time: i64 = get(&v["unlock"], "time_ms").parse().unwrap_or(0);
    assert!(unlock.expires_at_ms > unlock_time && unlock.expires_at_ms - unlock_time <= 120_000);
    assert_eq!(unlock.nonce.len(), 32);
    // The unlock's camera statement is the heartbeat vector, byte for byte; the lock
    // learned that camera's key from the `cameras` vector and names it on acceptance.
    let statement = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        unlock
            .camera
            .as_deref()
            .expect("the unlock carries a statement"),
    )
    .expect("base64");
    assert_eq!(hex::encode(statement), get(&v["heartbeat"], "message_hex"));
    let cams: body::DoorCameras =
        serde_json::from_str(get(&v["cameras"], "body")).expect("cameras");
    assert_eq!(
        cams.cameras,
        vec![get(&v["heartbeat"], "public_key").to_string()]
    );
    assert_eq!(get(&v["unlock"], "bound_cameras"), cams.cameras.join(","));
    assert_eq!(accepted.detail["camera"], get(&v["heartbeat"], "device_id"));
    assert_eq!(accepted.detail["capture_ms"], frame.time_ms);
}

#[test]
fn enrolment_proof_vector_is_reproduced_and_verifies() {
    let doc = doc();
    let f = vectors(&doc)
        .into_iter()
        .find(|f| get(f, "vector") == "enrol-proof")
        .expect("enrol-proof vector");
    let key = DeviceKey::from_seed(&seed(&f));
    let pk = key.public().to_hex();
    assert_eq!(pk, get(&f, "public_key"));
    assert_eq!(key.device_id().to_hex(), get(&f, "device_id"));
    let code = get(&f, "pairing_code");
    let message = format!("threshold-enrol-v1:{code}:{pk}");
    assert_eq!(message, get(&f, "proof_message"));
    assert_eq!(
        hex::encode(message.as_bytes()),
        get(&f, "proof_message_hex")
    );
    let sig = key.sign(message.as_bytes());
    assert_eq!(hex::encode(sig), get(&f, "signature_hex"));
    let stated: PublicKey = get(&f, "public_key").parse().expect("public key");
    assert!(stated
        .0
        .verify_strict(message.as_bytes(), &Signature::from_bytes(&sig))
        .is_ok());

    let req: serde_json::Value = serde_json::from_str(get(&f, "request")).expect("request JSON");
    assert_eq!(req["pairing_code"], code);
    assert_eq!(req["public_key"], pk.as_str());
    assert_eq!(req["kind"], get(&f, "device_kind"));
    assert_eq!(req["proof"], get(&f, "signature_hex"));
    assert!(body::DeviceKind::parse(get(&f, "device_kind")).is_some());
    // The request shown in §8.2 is this one.
    assert!(
        doc.contains(&format!("```json\n{}\n```", get(&f, "request"))),
        "§8.2 request differs from the vector"
    );
}

#[test]
fn renewal_proof_vector_is_reproduced_and_verifies() {
    let doc = doc();
    let f = vectors(&doc)
        .into_iter()
        .find(|f| get(f, "vector") == "renew-proof")
        .expect("renew-proof vector");
    let key = DeviceKey::from_seed(&seed(&f));
    assert_eq!(key.public().to_hex(), get(&f, "public_key"));
    let id = key.device_id().to_hex();
    assert_eq!(id, get(&f, "device_id"));
    let nonce = get(&f, "nonce");
    assert!(threshold_proto::renewal::valid_nonce(nonce));
    // The text as §8.6 states it, written out here, and as the library builds it.
    let message = format!("threshold-renew-v1:{id}:{nonce}");
    assert_eq!(message, get(&f, "proof_message"));
    assert_eq!(
        threshold_proto::renewal::message(&key.device_id(), nonce),
        message.as_bytes()
    );
    assert_eq!(
        hex::encode(message.as_bytes()),
        get(&f, "proof_message_hex")
    );
    let sig = key.sign(message.as_bytes());
    assert_eq!(hex::encode(sig), get(&f, "signature_hex"));
    let stated: PublicKey = get(&f, "public_key").parse().expect("public key");
    assert_eq!(
        threshold_proto::renewal::verify(&stated, nonce, get(&f, "signature_hex")),
        Ok(())
    );
    let req: serde_json::Value = serde_json::from_str(get(&f, "request")).expect("request JSON");
    assert_eq!(req["nonce"], nonce);
    assert_eq!(req["signature"], get(&f, "signature_hex"));
    // The request shown in §8.6 is this one.
    assert!(
        doc.contains(&format!("```json\n{}\n```", get(&f, "request"))),
        "§8.6 request differs from the vector"
    );
}

#[test]
fn heartbeat_layout_matches_the_vector_bytes() {
    let doc = doc();
    let hb = vectors(&doc)
        .into_iter()
        .find(|f| get(f, "vector") == "heartbeat")
        .expect("heartbeat vector");
    let bytes = unhex(get(&hb, "message_hex"));
    let all = blocks(&doc);
    let layout = all
        .iter()
        .find(|b| b.lines.first().is_some_and(|l| l == "layout: heartbeat"))
        .expect("layout block");
    let mut next = 0usize;
    for row in layout.lines.iter().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut parts = row.splitn(4, ' ');
        let off: usize = parts.next().and_then(|s| s.parse().ok()).expect("offset");
        let size: usize = parts.next().and_then(|s| s.parse().ok()).expect("size");
        let hex_bytes = parts.next().expect("bytes");
        assert_eq!(off, next, "layout rows must be contiguous: {row}");
        assert_eq!(
            hex::encode(&bytes[off..off + size]),
            hex_bytes,
            "layout row {row}"
        );
        next = off + size;
    }
    assert_eq!(next, bytes.len(), "layout must cover the whole message");
}

#[test]
fn doc_names_every_kind_with_its_code_direction_and_seq_space() {
    let doc = doc();
    for k in Kind::ALL {
        let dir = if k.is_uplink() {
            "device → hub"
        } else {
            "hub → device"
        };
        let space = match k.seq_space() {
            SeqSpace::Transport => "transport",
            SeqSpace::EventLog => "event log",
            SeqSpace::FrameLog => "frame log",
            SeqSpace::Downlink => "downlink",
        };
        let row = format!("| {} | `{}` | {dir} | {space} |", k.code(), k.name());
        assert!(
            doc.contains(&row),
            "kinds table lacks the row starting {row:?}"
        );
        let heading = format!("`{}`", k.name());
        assert!(
            doc.lines()
                .any(|l| l.starts_with("### 9.") && l.ends_with(&heading)),
            "no body section for {heading}"
        );
    }
}

#[test]
fn doc_lists_every_rejection_reason() {
    let doc = doc();
    let reasons = [
        "too_large",
        "truncated",
        "bad_magic",
        "unknown_kind",
        "bad_flags",
        "length_mismatch",
        "unknown_device",
        "revoked_device",
        "bad_signature",
        "topic_mismatch",
        "replay",
        "too_old",
        "time_backwards",
        "clock_skew",
        "bad_body",
        "wrong_direction",
    ];
    for r in reasons {
        assert!(
            doc.contains(&format!("| `{r}` |")),
            "hub pipeline table lacks `{r}`"
        );
    }
    // Every reason the decoder can give is in that list.
    let decode_errors = [
        DecodeError::TooLarge { len: 0, max: 0 },
        DecodeError::Truncated,
        DecodeError::BadMagic,
        DecodeError::UnknownKind(0),
        DecodeError::BadFlags(1),
        DecodeError::LengthMismatch,
    ];
    for e in decode_errors {
        assert!(
            reasons.contains(&e.reason()),
            "decoder reason {} is not documented",
            e.reason()
        );
    }
    assert!(doc.contains(&format!("| `MAX_MESSAGE_BYTES` | {MAX_MESSAGE_BYTES} ")));
    assert!(doc.contains(&format!("| `HEADER_LEN` | {HEADER_LEN} ")));
    assert!(doc.contains(&format!("| `SIGNATURE_LEN` | {SIGNATURE_LEN} ")));
}

#[test]
fn doc_describes_every_event_type() {
    let doc = doc();
    for t in [
        "door_opened",
        "door_closed",
        "bolt_locked",
        "bolt_unlocked",
        "bolt_jammed",
        "token_accepted",
        "token_refused",
        "relocked",
        "battery_low",
        "outbox_overflow",
        "link_lost",
        "link_restored",
        "wifi_attack",
    ] {
        assert!(
            doc.contains(&format!("| `{t}` |")),
            "event table lacks `{t}`"
        );
    }
}

fn round_trips<T: Serialize + DeserializeOwned>(v: &serde_json::Value) -> bool {
    serde_json::from_value::<T>(v.clone())
        .ok()
        .and_then(|t| serde_json::to_value(t).ok())
        .as_ref()
        == Some(v)
}

#[test]
fn json_examples_parse_and_match_the_body_types() {
    let doc = doc();
    let mut checked = 0;
    for b in blocks(&doc).iter().filter(|b| b.lang == "json") {
        let text = b.lines.join("\n");
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("invalid JSON example: {e}\n{text}"));
        let Some(what) = b
            .preceded_by
            .strip_prefix("<!-- check: ")
            .and_then(|s| s.strip_suffix(" -->"))
        else {
            continue;
        };
        let ok = match what {
            "hello" => round_trips::<Hello>(&v),
            "heartbeat" => round_trips::<Heartbeat>(&v),
            "state" => round_trips::<State>(&v),
            "event" => round_trips::<Event>(&v) && v["detail"].is_object(),
            "frame_header" => round_trips::<FrameHeader>(&v),
            "ack" => round_trips::<Ack>(&v),
            "stream" => round_trips::<Stream>(&v),
            "unlock" => round_trips::<Unlock>(&v),
            "lock" => round_trips::<LockCommand>(&v),
            "cameras" => round_trips::<DoorCameras>(&v),
            other => panic!("unknown check marker {other}"),
        };
        assert!(
            ok,
            "example for {what} is not read and written back unchanged by threshold_proto:\n{text}"
        );
        checked += 1;
    }
    assert!(
        checked >= 9,
        "expected checked examples for every JSON body, found {checked}"
    );
}
