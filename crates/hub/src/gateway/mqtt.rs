//! The hub's own MQTT 5 connection: subscribes to every device's uplink and feeds
//! workers. Messages are sharded by device id, so one device's messages are handled in
//! the order the broker delivered them while different devices proceed in parallel.

use crate::gateway::broker_log;
use crate::gateway::connected::Connected;
use crate::gateway::dynsec::{commands, Dynsec, RESPONSE_TOPIC};
use crate::gateway::ingest;
use crate::state::AppState;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use threshold_proto::envelope::MAX_BATCH;
use tokio::sync::mpsc;

pub struct MqttTarget {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Provision each device's rights through Mosquitto's dynamic-security plugin.
    pub dynsec: bool,
    /// `mqtts://`: the TLS client configuration for the broker.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

pub fn spawn(state: AppState, target: MqttTarget, connected: Arc<Connected>) {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
        * 2;
    let mut senders = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, mut rx) = mpsc::channel::<(String, bytes::Bytes)>(4096);
        senders.push(tx);
        let st = state.clone();
        tokio::spawn(async move {
            // What has arrived for this worker is handled together: its signatures
            // are checked in one batch (`gateway::verifier`).
            let mut arrived = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut arrived, MAX_BATCH).await > 0 {
                let _ = ingest::handle_all(&st, &arrived).await;
                arrived.clear();
            }
        });
    }
    let mut id = [0u8; 6];
    let _ = getrandom::getrandom(&mut id);
    let mut opts = MqttOptions::new(
        format!("threshold-hub-{}", hex::encode(id)),
        target.host,
        target.port,
    );
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_clean_start(true);
    opts.set_max_packet_size(Some((threshold_proto::MAX_MESSAGE_BYTES + 1024) as u32));
    // Downlinks (unlock tokens) are small packets on a busy connection: without
    // TCP_NODELAY, Nagle holds each one until the broker acknowledges earlier data.
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    opts.set_network_options(net);
    let hub_user = target.username.clone();
    if let Some(tls) = &target.tls {
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.clone()),
        ));
    }
    if let (Some(u), Some(p)) = (target.username, target.password) {
        opts.set_credentials(u, p);
    }
    // Downlinks (unlock tokens, lock commands) go out on a connection of their own:
    // the uplink loop below waits when the ingest workers fall behind, and while it
    // waits rumqttc sends nothing queued on its connection.
    let mut down_opts = opts.clone();
    down_opts.set_client_id(format!("threshold-hub-{}-down", hex::encode(id)));
    let (down_client, mut down_loop) = AsyncClient::new(down_opts, 10_000);
    let dynsec = target
        .dynsec
        .then(|| Arc::new(Dynsec::new(down_client.clone())));
    let dynsec_for_setup = dynsec.clone();
    state.downlink.connect(std::sync::Arc::new(MqttLink {
        client: down_client.clone(),
        prefix: state.config.mqtt_topic_prefix.clone(),
        dynsec: dynsec.clone(),
    }));
    let st = state.clone();
    let refusals = crate::gateway::endpoint::RefusalLog::default();
    tokio::spawn(async move {
        loop {
            if st.stopped() {
                let _ = down_client.disconnect().await;
                return;
            }
            match down_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    // The broker's notices, to count the clients it refuses (a broker
                    // that does not publish them, or denies the hub them, sends none).
                    let mut topics = vec![Filter::new(broker_log::NOTICE_TOPIC, QoS::AtMostOnce)];
                    if dynsec.is_some() {
                        topics.push(Filter::new(RESPONSE_TOPIC, QoS::AtLeastOnce));
                    }
                    let _ = down_client.subscribe_many(topics).await;
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == RESPONSE_TOPIC.as_bytes() => {
                    if let Some(d) = &dynsec {
                        d.on_response(&p.payload);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p)))
                    if p.topic == broker_log::NOTICE_TOPIC.as_bytes() =>
                {
                    if let Some(reason) = broker_log::refusal(&p.payload) {
                        st.metrics.broker_refusal(reason);
                        refusals.note(reason, None, None);
                    }
                }
                // The only subscription on this connection: the answers' topic and the
                // notices, in one packet.
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(d) = &dynsec {
                        d.set_ready(true);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(d) = &dynsec {
                        d.set_ready(false);
                    }
                    tracing::debug!(error = %e, "MQTT downlink connection; reconnecting");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
    let filter = threshold_proto::topic::uplink_filter(&state.config.mqtt_topic_prefix);
    let st = state.clone();
    let prefix = state.config.mqtt_topic_prefix.clone();
    let setup = dynsec_for_setup;
    tokio::spawn(async move {
        // With dynamic security, the hub's own rights on its prefix come first, on the
        // downlink connection: giving a user a role makes Mosquitto drop that user's
        // connections, so the uplink connects only once its rights are in place.
        if let (Some(d), Some(user)) = (&setup, &hub_user) {
            for attempt in 1..=5 {
                match d.run(commands::hub_setup(&prefix, user)).await {
                    Ok(()) => {
                        tracing::info!("broker rights set up (dynamic security)");
                        break;
                    }
                    // The answer may be lost when the role change drops the connection
                    // it travels on; running it again is harmless.
                    Err(e) if attempt < 5 => {
                        tracing::debug!(error = %e, attempt, "setting up the hub's broker rights again")
                    }
                    Err(e) => tracing::error!(error = %e, "cannot set up the hub's broker rights"),
                }
            }
        }
        // Since when the broker connection is lost (an open system alert).
        let mut lost_since: Option<i64> = None;
        loop {
            if st.stopped() {
                let _ = client.disconnect().await;
                return;
            }
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!("connected to MQTT broker");
                    if let Err(e) = client.subscribe(filter.clone(), QoS::AtLeastOnce).await {
                        tracing::error!(error = %e, "could not subscribe to device uplinks");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(since) = lost_since.take() {
                        let (st, at) = (st.clone(), st.clock.now_ms());
                        tokio::spawn(async move {
                            crate::alerts::system::resolve(&st, BROKER_LOST, since, at).await;
                        });
                    }
                    connected.0.store(true, Ordering::SeqCst);
                    st.access.set_vouching(true, st.clock.now_ms());
                    connected.1.notify_waiters();
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    let shard = shard_of(&topic, senders.len());
                    if let Some(tx) = senders.get(shard) {
                        if tx.send((topic, p.payload)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    st.access.set_vouching(false, st.clock.now_ms());
                    if connected.0.swap(false, Ordering::SeqCst) {
                        tracing::warn!(error = %e, "lost MQTT broker connection; reconnecting");
                        let since = st.clock.now_ms();
                        lost_since = Some(since);
                        let st = st.clone();
                        tokio::spawn(async move {
                            crate::alerts::system::raise(
                                &st,
                                BROKER_LOST,
                                "The hub lost its connection to the MQTT broker: it hears no device and vouches for no camera (entries are refused, no camera is called lost) until it is back.",
                                serde_json::json!({}),
                                since,
                            )
                            .await;
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
}

/// The system alert raised while the broker connection is lost.
const BROKER_LOST: &str = "broker_unreachable";

/// Devices map to workers by a hash of the topic (which names the device).
fn shard_of(topic: &str, n: usize) -> usize {
    let h = topic.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % n.max(1) as u64) as usize
}

/// The running hub's way out to devices: its downlink connection to the broker, one
/// topic per device, QoS 1.
#[derive(Debug)]
struct MqttLink {
    client: AsyncClient,
    prefix: String,
    dynsec: Option<Arc<Dynsec>>,
}

impl crate::gateway::downlink::DeviceLink for MqttLink {
    fn send(
        &self,
        device: threshold_proto::DeviceId,
        msg: threshold_proto::SignedMessage,
    ) -> crate::gateway::downlink::Sending<'_> {
        let topic = threshold_proto::topic::downlink(&self.prefix, &device);
        Box::pin(async move {
            self.client
                .publish(
                    topic,
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    false,
                    msg.into_bytes(),
                )
                .await
                .is_ok()
        })
    }

    fn grant<'a>(
        &'a self,
        device: threshold_proto::DeviceId,
        password: &'a str,
    ) -> crate::gateway::downlink::Granting<'a> {
        Box::pin(async move {
            match &self.dynsec {
                Some(d) => d
                    .run(commands::grant(&self.prefix, &device.to_hex(), password))
                    .await
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            }
        })
    }

    fn renew<'a>(
        &'a self,
        device: threshold_proto::DeviceId,
        password: &'a str,
    ) -> crate::gateway::downlink::Granting<'a> {
        Box::pin(async move {
            match &self.dynsec {
                Some(d) => d
                    .run_with(
                        commands::renew(&self.prefix, &device.to_hex(), password),
                        commands::harmless_on_renew,
                    )
                    .await
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            }
        })
    }

    fn revoke(&self, device: threshold_proto::DeviceId) -> crate::gateway::downlink::Granting<'_> {
        Box::pin(async move {
            match &self.dynsec {
                Some(d) => d
                    .run(commands::revoke(&device.to_hex()))
                    .await
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            }
        })
    }
}
