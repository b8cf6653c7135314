//! One device's connection to the endpoint, from CONNECT to close.
//!
//! MQTT 5 as the device protocol uses it (§2): Clean Start sessions, QoS 0/1, no
//! retained messages, no wills, no topic aliases. Every uplink is verified and
//! handled (`gateway::ingest`) before its PUBACK, so a device's messages are handled
//! in the order it sent them, and a hub that falls behind slows the device's socket
//! instead of queueing without bound.

use super::codec::DeviceCodec;
use super::rights::{self, Known, Refusal, Rights};
use super::sessions::{Outgoing, Sessions, Why};
use super::RefusalLog;
use crate::auth::{ct_eq, sha256_hex};
use crate::gateway::ingest;
use crate::state::AppState;
use futures_util::{SinkExt, StreamExt};
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectReturnCode, Disconnect, DisconnectProperties, DisconnectReasonCode, Packet,
    PingResp, PubAck, PubAckReason, Publish, SubAck, SubscribeReasonCode, UnsubAck, UnsubAckReason,
};
use rumqttc::v5::mqttbytes::{Error as WireError, QoS};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use threshold_proto::DeviceId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::codec::Framed;

/// A connection that has not sent CONNECT by then is closed.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// The largest packet a device may send: one protocol message and MQTT's framing.
pub const MAX_PACKET: u32 = (threshold_proto::MAX_MESSAGE_BYTES + 1024) as u32;

type Wire<S> = Framed<S, DeviceCodec>;

/// Bytes set aside per connection for reading and for writing. A device's packets are
/// a few hundred bytes (a heartbeat, a state report) and the hub writes acks of a few
/// bytes; the buffers grow when a larger packet (a frame record) needs it, and are
/// given back once it is handled. The codec's default of 8 KiB each is 16 KiB per
/// connection, 160 MB at 10 000 cameras (measured with heaptrack: `Framed::from_parts`
/// tops small buffers up to that default, so they are set after it).
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 256;

/// A buffer this much larger than its start, and empty, is replaced by a new small one.
const SHRINK_ABOVE: usize = 8;

fn small_wire<S: AsyncRead + AsyncWrite>(io: S) -> Wire<S> {
    let mut wire = Framed::with_capacity(io, DeviceCodec::new(MAX_PACKET), READ_BUFFER);
    *wire.write_buffer_mut() = bytes::BytesMut::with_capacity(WRITE_BUFFER);
    wire
}

/// Give back what a large packet made the buffers grow to, once nothing waits in them.
fn shrink_idle<S>(wire: &mut Wire<S>) {
    shrink(wire.read_buffer_mut(), READ_BUFFER);
    shrink(wire.write_buffer_mut(), WRITE_BUFFER);
}

fn shrink(buf: &mut bytes::BytesMut, start: usize) {
    if buf.is_empty() && buf.capacity() > start * SHRINK_ABOVE {
        *buf = bytes::BytesMut::with_capacity(start);
    }
}

/// Serve one connection until the device leaves, breaks the protocol, is revoked or
/// replaced, or the hub stops.
pub async fn serve<S>(
    io: S,
    peer: SocketAddr,
    state: AppState,
    sessions: Arc<Sessions>,
    log: Arc<RefusalLog>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut wire = small_wire(io);
    // The CONNECT and its checks in a future of their own, allocated while they run:
    // kept inline, their packets sat in every connection's task for its whole life.
    let Some((device, keep_alive_s)) = Box::pin(handshake(&mut wire, peer, &state, &log)).await
    else {
        return;
    };
    let rights = Rights::of(&state.config.mqtt_topic_prefix, &device);
    let (serial, queue) = sessions.open(device);
    state.metrics.broker_sessions.inc();
    let ok = Box::pin(wire.send(Packet::ConnAck(ConnAck {
        session_present: false,
        code: ConnectReturnCode::Success,
        properties: None,
    })))
    .await
    .is_ok();
    if ok {
        let keep_alive = Duration::from_millis(u64::from(keep_alive_s) * 1500);
        let mut s = Session {
            wire: &mut wire,
            device,
            peer,
            rights,
            state: &state,
            log: &log,
            next_pkid: 0,
        };
        s.run(queue, keep_alive).await;
    }
    sessions.closed(device, serial);
    state.metrics.broker_sessions.dec();
}

/// Read the device's CONNECT and admit it or refuse it (answering with the refusal's
/// CONNACK). Answers the device and the keep-alive it asked for (seconds).
async fn handshake<S>(
    wire: &mut Wire<S>,
    peer: SocketAddr,
    state: &AppState,
    log: &RefusalLog,
) -> Option<(DeviceId, u16)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (connect, login) = match tokio::time::timeout(CONNECT_WITHIN, wire.next()).await {
        Ok(Some(Ok(Packet::Connect(c, _will, login)))) => (c, login),
        Ok(Some(Err(WireError::InvalidProtocolLevel(_)))) => {
            // MQTT 3.1.1 and older: refused (CONNACK 0x84, unsupported protocol version).
            refuse(state, log, peer, "protocol");
            let _ = wire
                .send(Packet::ConnAck(ConnAck {
                    session_present: false,
                    code: ConnectReturnCode::UnsupportedProtocolVersion,
                    properties: None,
                }))
                .await;
            return None;
        }
        Ok(Some(_)) => {
            refuse(state, log, peer, "protocol");
            return None;
        }
        Ok(None) | Err(_) => return None,
    };
    let presented = login
        .as_ref()
        .map(|l| (l.username.as_str(), l.password.as_str()));
    let device = match rights::admit(&connect.client_id, presented, |id, pw| {
        lookup(state, id, pw)
    }) {
        Ok(id) => id,
        Err(r) => {
            refuse(state, log, peer, r.label());
            let code = match r {
                Refusal::BadCredentials => ConnectReturnCode::BadUserNamePassword,
                Refusal::ClientIdMismatch => ConnectReturnCode::ClientIdentifierNotValid,
                Refusal::Revoked => ConnectReturnCode::NotAuthorized,
            };
            let _ = wire
                .send(Packet::ConnAck(ConnAck {
                    session_present: false,
                    code,
                    properties: None,
                }))
                .await;
            return None;
        }
    };
    Some((device, connect.keep_alive))
}

fn lookup(state: &AppState, id: &DeviceId, password: &str) -> Known {
    let presented = sha256_hex(password);
    state
        .registry
        .with(id, |e| Known::Enrolled {
            password_ok: ct_eq(&e.mqtt_password_hash, &presented),
            revoked: e.revoked,
        })
        .unwrap_or(Known::Unknown)
}

fn refuse(state: &AppState, log: &RefusalLog, peer: SocketAddr, reason: &'static str) {
    state.metrics.broker_refusal(reason);
    log.note(reason, Some(peer), None);
}

struct Session<'a, S> {
    wire: &'a mut Wire<S>,
    device: DeviceId,
    peer: SocketAddr,
    rights: Rights,
    state: &'a AppState,
    log: &'a RefusalLog,
    next_pkid: u16,
}

/// How a session ends from the device's side.
enum Next {
    Continue,
    End,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    async fn run(&mut self, queue: flume::Receiver<Outgoing>, keep_alive: Duration) {
        let mut stop = self.state.shutdown.subscribe();
        let mut deadline = Instant::now() + keep_alive;
        loop {
            tokio::select! {
                incoming = self.wire.next() => {
                    let packet = match incoming {
                        None => return,
                        Some(Ok(p)) => p,
                        Some(Err(e)) => {
                            tracing::debug!(device = %self.device, error = %e, "unreadable packet from device");
                            let (reason, code) = match e {
                                WireError::PayloadSizeLimitExceeded { .. } => {
                                    ("packet_too_large", DisconnectReasonCode::PacketTooLarge)
                                }
                                _ => ("malformed", DisconnectReasonCode::MalformedPacket),
                            };
                            self.refuse(reason);
                            self.disconnect(code).await;
                            return;
                        }
                    };
                    deadline = Instant::now() + keep_alive;
                    // Boxed: a packet's handling (ingest included) is large and brief.
                    if let Next::End = Box::pin(self.on_packet(packet)).await {
                        return;
                    }
                    if !self.wire.read_buffer().is_empty() {
                        // One packet per turn while a backlog is buffered: tokio's
                        // cooperative budget counts socket reads, not packets, so a
                        // connection draining a backlog verified a whole read's worth
                        // in one poll, and every other task (the liveness pass, the
                        // sampler) waited for a round of such polls over thousands of
                        // connections: 19 s at the end of a flood
                        // (`threshold bench liveness --flood-cameras`).
                        tokio::task::yield_now().await;
                    }
                    shrink_idle(self.wire);
                }
                out = queue.recv_async() => match out.ok() {
                    Some(Outgoing::Message(payload)) => {
                        if !Box::pin(self.send_down(payload)).await {
                            return;
                        }
                    }
                    Some(Outgoing::Close(why)) => {
                        self.disconnect(match why {
                            Why::TakenOver => DisconnectReasonCode::SessionTakenOver,
                            Why::Revoked => DisconnectReasonCode::NotAuthorized,
                            Why::ShuttingDown => DisconnectReasonCode::ServerShuttingDown,
                        })
                        .await;
                        return;
                    }
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline), if !keep_alive.is_zero() => {
                    self.disconnect(DisconnectReasonCode::KeepAliveTimeout).await;
                    return;
                }
                _ = stop.changed() => {
                    self.disconnect(DisconnectReasonCode::ServerShuttingDown).await;
                    return;
                }
            }
        }
    }

    async fn on_packet(&mut self, packet: Packet) -> Next {
        match packet {
            Packet::Publish(p) => self.on_publish(p).await,
            Packet::Subscribe(s) => {
                let codes = s
                    .filters
                    .iter()
                    .map(|f| {
                        if self.rights.may_subscribe(&f.path) {
                            SubscribeReasonCode::Success(QoS::AtLeastOnce)
                        } else {
                            self.refuse("subscribe_not_allowed");
                            SubscribeReasonCode::NotAuthorized
                        }
                    })
                    .collect();
                self.send(Packet::SubAck(SubAck {
                    pkid: s.pkid,
                    return_codes: codes,
                    properties: None,
                }))
                .await
            }
            Packet::Unsubscribe(u) => {
                let reasons = u.filters.iter().map(|_| UnsubAckReason::Success).collect();
                self.send(Packet::UnsubAck(UnsubAck {
                    pkid: u.pkid,
                    reasons,
                    properties: None,
                }))
                .await
            }
            Packet::PingReq(_) => self.send(Packet::PingResp(PingResp)).await,
            // The device took a downlink; nothing is kept to re-send (§2.1).
            Packet::PubAck(_) => Next::Continue,
            Packet::Disconnect(_) => Next::End,
            _ => {
                self.refuse("protocol");
                self.disconnect(DisconnectReasonCode::ProtocolError).await;
                Next::End
            }
        }
    }

    async fn on_publish(&mut self, p: Publish) -> Next {
        if p.qos == QoS::ExactlyOnce {
            self.refuse("protocol");
            self.disconnect(DisconnectReasonCode::QoSNotSupported).await;
            return Next::End;
        }
        if !self.rights.may_publish(&p.topic) {
            self.refuse("publish_not_allowed");
            if p.qos == QoS::AtLeastOnce {
                let mut ack = PubAck::new(p.pkid, None);
                ack.reason = PubAckReason::NotAuthorized;
                return self.send(Packet::PubAck(ack)).await;
            }
            return Next::Continue;
        }
        // Rejections are counted and logged by ingest with their reason.
        // Boxed: the handling of one message (verification, storage, reactions) is a
        // large future, which a connection waiting for its next packet need not hold.
        let _ = Box::pin(ingest::handle(self.state, self.rights.uplink(), &p.payload)).await;
        if p.qos == QoS::AtLeastOnce {
            return self.send(Packet::PubAck(PubAck::new(p.pkid, None))).await;
        }
        Next::Continue
    }

    async fn send_down(&mut self, payload: bytes::Bytes) -> bool {
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        let mut publish = Publish::new(self.rights.downlink(), QoS::AtLeastOnce, payload, None);
        publish.pkid = self.next_pkid;
        matches!(self.send(Packet::Publish(publish)).await, Next::Continue)
    }

    async fn send(&mut self, packet: Packet) -> Next {
        match self.wire.send(packet).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::End,
        }
    }

    /// Tell the device why it is disconnected (MQTT 5 reason code and reason string).
    async fn disconnect(&mut self, code: DisconnectReasonCode) {
        // Always with a reason string: rumqttc 0.25 frames a DISCONNECT without
        // properties wrongly (one byte more than its length says), and one whose
        // length comes to 2 as a bare 0xE0 0x00 that its own reader then refuses.
        let reason = match code {
            DisconnectReasonCode::SessionTakenOver => "another connection of this device",
            DisconnectReasonCode::NotAuthorized => "device revoked",
            DisconnectReasonCode::ServerShuttingDown => "hub stopping",
            DisconnectReasonCode::KeepAliveTimeout => "keep-alive expired",
            DisconnectReasonCode::PacketTooLarge => "packet too large",
            DisconnectReasonCode::QoSNotSupported => "QoS 2 is not used",
            _ => "protocol error",
        };
        let _ = self
            .wire
            .send(Packet::Disconnect(Disconnect {
                reason_code: code,
                properties: Some(DisconnectProperties {
                    session_expiry_interval: None,
                    reason_string: Some(reason.to_owned()),
                    user_properties: Vec::new(),
                    server_reference: None,
                }),
            }))
            .await;
    }

    fn refuse(&self, reason: &'static str) {
        self.state.metrics.broker_refusal(reason);
        self.log.note(reason, Some(self.peer), Some(&self.device));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_sets_aside_small_buffers_not_the_codec_s_default() {
        let (io, _peer) = tokio::io::duplex(64);
        let mut wire = small_wire(io);
        assert!(wire.read_buffer_mut().capacity() <= 2 * READ_BUFFER);
        assert!(wire.write_buffer_mut().capacity() <= 2 * WRITE_BUFFER);
    }

    #[test]
    fn a_grown_buffer_is_given_back_only_when_empty() {
        let mut grown = bytes::BytesMut::with_capacity(64 * 1024);
        shrink(&mut grown, READ_BUFFER);
        assert!(grown.capacity() <= 2 * READ_BUFFER);

        let mut busy = bytes::BytesMut::with_capacity(64 * 1024);
        busy.extend_from_slice(b"half a packet");
        shrink(&mut busy, READ_BUFFER);
        assert!(busy.capacity() >= 64 * 1024, "a partial packet is kept");
        assert_eq!(&busy[..], b"half a packet");

        let mut small = bytes::BytesMut::with_capacity(READ_BUFFER * 2);
        let before = small.capacity();
        shrink(&mut small, READ_BUFFER);
        assert_eq!(small.capacity(), before, "no churn below the threshold");
    }
}
