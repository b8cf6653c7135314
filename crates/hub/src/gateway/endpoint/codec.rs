//! MQTT 5 framing for the endpoint: rumqttc's codec, plus the one valid packet its
//! reader refuses. A DISCONNECT with remaining length 0 (`E0 00`, "normal
//! disconnection", what most clients send when they leave) is rejected by rumqttc
//! 0.25 as "payload required"; a device leaving politely would be counted as sending
//! a malformed packet.

use bytes::{Buf, BytesMut};
use rumqttc::v5::mqttbytes::v5::{Codec, Disconnect, DisconnectReasonCode, Packet};
use rumqttc::v5::mqttbytes::Error;
use tokio_util::codec::{Decoder, Encoder};

#[derive(Debug, Clone)]
pub struct DeviceCodec(pub Codec);

impl DeviceCodec {
    pub fn new(max_incoming: u32) -> DeviceCodec {
        DeviceCodec(Codec {
            max_incoming_size: Some(max_incoming),
            max_outgoing_size: None,
        })
    }
}

impl Decoder for DeviceCodec {
    type Item = Packet;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, Error> {
        if src.len() >= 2 && src[0] == 0xE0 && src[1] == 0x00 {
            src.advance(2);
            return Ok(Some(Packet::Disconnect(Disconnect::new(
                DisconnectReasonCode::NormalDisconnection,
            ))));
        }
        self.0.decode(src)
    }
}

impl Encoder<Packet> for DeviceCodec {
    type Error = Error;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), Error> {
        self.0.encode(item, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::PingReq;

    #[test]
    fn a_bare_disconnect_is_a_normal_disconnection() {
        let mut c = DeviceCodec::new(1024);
        let mut buf = BytesMut::from(&[0xE0u8, 0x00, 0xC0, 0x00][..]);
        assert!(matches!(
            c.decode(&mut buf),
            Ok(Some(Packet::Disconnect(d))) if d.reason_code == DisconnectReasonCode::NormalDisconnection
        ));
        assert_eq!(
            c.decode(&mut buf).ok(),
            Some(Some(Packet::PingReq(PingReq)))
        );
        assert!(matches!(c.decode(&mut buf), Ok(None)));
    }

    #[test]
    fn oversized_and_garbage_packets_are_errors_not_panics() {
        let mut c = DeviceCodec::new(16);
        // A PUBLISH announcing 1 MiB.
        let mut buf = BytesMut::from(&[0x30u8, 0x80, 0x80, 0x40][..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(Error::PayloadSizeLimitExceeded { .. })
        ));
        for junk in [&[0x00u8, 0x00][..], &[0xF0, 0x00], &[0x20, 0x01, 0xFF]] {
            let mut buf = BytesMut::from(junk);
            let _ = c.decode(&mut buf);
        }
    }
}
