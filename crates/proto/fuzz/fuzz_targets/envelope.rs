//! Any bytes: decoding never panics; whatever decodes re-encodes to the same bytes
//! when re-signed with the same key; every split of the input decodes no differently
//! from the input itself (framing is length-exact); bodies parse without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threshold_proto::body::{decode_frame_body, Event, Heartbeat, State};
use threshold_proto::{DeviceKey, SignedMessage, UnverifiedMessage};

fuzz_target!(|data: &[u8]| {
    let key = DeviceKey::from_seed(&[7u8; 32]);
    if let Ok(m) = UnverifiedMessage::decode(data) {
        let resigned = SignedMessage::sign(&key, m.kind, m.device, m.seq, m.time_ms, m.body.clone());
        let back = UnverifiedMessage::decode(resigned.as_bytes()).expect("own encoding decodes");
        assert_eq!((back.kind, back.device, back.seq, back.time_ms, &back.body), (m.kind, m.device, m.seq, m.time_ms, &m.body));
        assert!(back.verify(&key.public()).is_ok());
        let _ = serde_json::from_slice::<Heartbeat>(&m.body);
        let _ = serde_json::from_slice::<State>(&m.body);
        let _ = serde_json::from_slice::<Event>(&m.body);
        let _ = decode_frame_body(&m.body);
        // A strict prefix of a valid message is never valid.
        for cut in 0..data.len() {
            assert!(UnverifiedMessage::decode(&data[..cut]).is_err());
        }
    }
    let _ = decode_frame_body(data);
});
