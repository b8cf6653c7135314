//! Per-device rights on the hub's own MQTT endpoint (protocol §2.2), through a real
//! hub and real MQTT 5 clients: nobody connects without a device's credentials, a
//! device publishes and subscribes on its own two topics only, one spelling of a
//! device id, and revoking a device cuts its connection at once. Every refusal is
//! counted in /metrics.

mod support;
use support::*;

use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, DisconnectReasonCode, Packet, PubAckReason, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions, StateError};
use serde_json::Value;
use std::time::Duration;
use threshold_hub::HubConfig;
use threshold_proto::body::Heartbeat;
use threshold_proto::{DeviceKey, Kind, SignedMessage};
use threshold_store::testing;
use tokio::sync::mpsc;

/// How a raw client's connection went.
#[derive(Debug)]
enum Seen {
    Packet(Box<Packet>),
    Refused(ConnectReturnCode),
    Disconnected(DisconnectReasonCode),
    /// The connection ended otherwise (shown in a failing assertion).
    #[allow(dead_code)]
    Closed(String),
}

struct Client {
    client: AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Client {
    /// Connect and report everything the endpoint sends, until it closes.
    fn start(port: u16, client_id: &str, login: Option<(&str, &str)>) -> Client {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        if let Some((u, p)) = login {
            o.set_credentials(u, p);
        }
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = AsyncClient::new(o, 16);
        let (tx, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let s = match el.poll().await {
                    Ok(Event::Incoming(p)) => Seen::Packet(Box::new(p)),
                    Ok(Event::Outgoing(_)) => continue,
                    Err(ConnectionError::ConnectionRefused(code)) => Seen::Refused(code),
                    Err(ConnectionError::MqttState(StateError::ServerDisconnect {
                        reason_code,
                        ..
                    })) => Seen::Disconnected(reason_code),
                    Err(e) => Seen::Closed(e.to_string()),
                };
                let end = !matches!(s, Seen::Packet(_));
                if tx.send(s).is_err() || end {
                    return;
                }
            }
        });
        Client { client, seen }
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(10), self.seen.recv())
            .await
            .expect("the endpoint answered")
            .unwrap_or(Seen::Closed("gone".into()))
    }

    /// Connect and expect the endpoint to accept.
    async fn connected(port: u16, id: &str, password: &str) -> Client {
        let mut c = Client::start(port, id, Some((id, password)));
        match c.next().await {
            Seen::Packet(p) if matches!(&*p, Packet::ConnAck(a) if a.code == ConnectReturnCode::Success) => {
                c
            }
            other => panic!("{id} not admitted: {other:?}"),
        }
    }

    async fn refused(port: u16, id: &str, login: Option<(&str, &str)>) -> ConnectReturnCode {
        match Client::start(port, id, login).next().await {
            Seen::Refused(code) => code,
            other => panic!("{id} was not refused: {other:?}"),
        }
    }

    async fn subscribe(&mut self, filter: &str) -> SubscribeReasonCode {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        loop {
            match self.next().await {
                Seen::Packet(p) => match *p {
                    Packet::SubAck(a) => return a.return_codes[0],
                    _ => continue,
                },
                other => panic!("no SUBACK: {other:?}"),
            }
        }
    }

    async fn publish(&mut self, topic: &str, payload: Vec<u8>) -> PubAckReason {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        loop {
            match self.next().await {
                Seen::Packet(p) => match *p {
                    Packet::PubAck(a) => return a.reason,
                    _ => continue,
                },
                other => panic!("no PUBACK: {other:?}"),
            }
        }
    }
}

struct Paired {
    key: DeviceKey,
    password: String,
}

impl Paired {
    fn id(&self) -> String {
        self.key.device_id().to_hex()
    }

    /// The device's first signed heartbeat, as it would publish it.
    fn heartbeat(&self) -> SignedMessage {
        SignedMessage::sign(
            &self.key,
            Kind::Heartbeat,
            self.key.device_id(),
            1,
            now_ms(),
            serde_json::to_vec(&Heartbeat::default()).unwrap(),
        )
    }
}

/// An owner's camera, paired through the API.
async fn pair(base: &str, owner: &str, home: &str) -> Paired {
    let key = DeviceKey::generate().unwrap();
    let code = pairing_code(base, owner, home, "camera", "Camera").await;
    let (s, e) = call(
        "POST",
        format!("{base}/api/v1/enrol"),
        None,
        Some(support::sim::enrol_request(&key, &code, "camera")),
    )
    .await;
    assert_eq!(s, 201, "{e}");
    Paired {
        key,
        password: e["mqtt"]["password"].as_str().unwrap().to_owned(),
    }
}

fn refusals(metrics: &str, reason: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("threshold_broker_refused_total")
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn metrics(base: &str) -> String {
    let (_, body, _) = call_raw("GET", format!("{base}/metrics"), None, None).await;
    String::from_utf8(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_reads_and_writes_its_own_topics_only() {
    let dir = testing::TempDir::new("broker-rights").unwrap();
    let hub = threshold_hub::start(local_config(dir.path()))
        .await
        .unwrap();
    let base = format!("http://{}", hub.http_addr);
    let port = hub.mqtt_port;
    let prefix = hub.state.config.mqtt_topic_prefix.clone();
    let adm = admin(&hub).await;
    let t = accounts(&base, &adm, &[("owner", "ann"), ("owner", "bob")]).await;
    let (ann, bob) = (&t[0], &t[1]);
    let ann_home = home(&base, ann, "Ann's", 52.37, 4.89).await;
    let bob_home = home(&base, bob, "Bob's", 52.37, 4.89).await;
    let a = pair(&base, ann, &ann_home).await;
    let b = pair(&base, bob, &bob_home).await;
    let up = |d: &Paired| threshold_proto::topic::uplink(&prefix, &d.key.device_id());
    let down = |d: &Paired| threshold_proto::topic::downlink(&prefix, &d.key.device_id());

    // Nobody gets in without a device's credentials: anonymous, the hub's old
    // super-user name, a wrong password, an upper-cased id, a borrowed client id.
    let m0 = metrics(&base).await;
    assert_eq!(
        Client::refused(port, "nobody", None).await,
        ConnectReturnCode::BadUserNamePassword
    );
    assert_eq!(
        Client::refused(port, "threshold-hub", Some(("threshold-hub", "x"))).await,
        ConnectReturnCode::BadUserNamePassword
    );
    assert_eq!(
        Client::refused(port, &a.id(), Some((&a.id(), "not-the-password"))).await,
        ConnectReturnCode::BadUserNamePassword
    );
    let upper = a.id().to_uppercase();
    assert_eq!(
        Client::refused(port, &upper, Some((&upper, &a.password))).await,
        ConnectReturnCode::BadUserNamePassword
    );
    assert_eq!(
        Client::refused(port, &b.id(), Some((&a.id(), &a.password))).await,
        ConnectReturnCode::ClientIdentifierNotValid
    );
    let m1 = metrics(&base).await;
    assert_eq!(
        refusals(&m1, "bad_credentials") - refusals(&m0, "bad_credentials"),
        4
    );
    assert_eq!(
        refusals(&m1, "client_id_mismatch") - refusals(&m0, "client_id_mismatch"),
        1
    );

    // Bob's camera, connected as itself, cannot listen to Ann's camera...
    let mut bc = Client::connected(port, &b.id(), &b.password).await;
    for filter in ["#", &format!("{prefix}/v1/dev/+/up"), &down(&a), &up(&a)] {
        assert_eq!(
            bc.subscribe(filter).await,
            SubscribeReasonCode::NotAuthorized,
            "{filter}"
        );
    }
    assert_eq!(
        bc.subscribe(&down(&b)).await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    // ... nor speak on its topics or leave anything on Ann's downlink.
    let mut ac = Client::connected(port, &a.id(), &a.password).await;
    assert_eq!(
        ac.subscribe(&down(&a)).await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    assert_eq!(
        bc.publish(&up(&a), b"forged".to_vec()).await,
        PubAckReason::NotAuthorized
    );
    assert_eq!(
        bc.publish(&down(&a), b"forged".to_vec()).await,
        PubAckReason::NotAuthorized
    );
    // Ann's camera's own signed heartbeat is taken (and Bob's client hears nothing).
    let hb = a.heartbeat();
    assert_eq!(
        ac.publish(&up(&a), hb.as_bytes().to_vec()).await,
        PubAckReason::Success
    );
    let m2 = metrics(&base).await;
    assert_eq!(
        refusals(&m2, "subscribe_not_allowed") - refusals(&m1, "subscribe_not_allowed"),
        4
    );
    assert_eq!(
        refusals(&m2, "publish_not_allowed") - refusals(&m1, "publish_not_allowed"),
        2
    );
    assert!(
        bc.seen.try_recv().is_err(),
        "Bob's camera received nothing of Ann's"
    );

    // Leaving politely (DISCONNECT, reason 0) is not a protocol error.
    bc.client.disconnect().await.unwrap();
    until(10, "Bob's camera's session closed", || {
        let base = base.clone();
        async move {
            metrics(&base)
                .await
                .lines()
                .any(|l| l == "threshold_broker_sessions 1")
        }
    })
    .await;
    assert_eq!(refusals(&metrics(&base).await, "malformed"), 0);

    // A second connection of the same device replaces the first.
    let mut ac2 = Client::connected(port, &a.id(), &a.password).await;
    match ac.next().await {
        Seen::Disconnected(DisconnectReasonCode::SessionTakenOver) => {}
        other => panic!("first session not taken over: {other:?}"),
    }

    // Revoking Ann's camera closes its connection at once, and it cannot come back.
    let (s, body) = call(
        "DELETE",
        format!("{base}/api/v1/devices/{}", a.id()),
        Some(ann),
        None::<Value>,
    )
    .await;
    assert_eq!(s, 204, "{body}");
    match ac2.next().await {
        Seen::Disconnected(DisconnectReasonCode::NotAuthorized) => {}
        other => panic!("revoked camera still connected: {other:?}"),
    }
    assert_eq!(
        Client::refused(port, &a.id(), Some((&a.id(), &a.password))).await,
        ConnectReturnCode::NotAuthorized
    );
    assert_eq!(refusals(&metrics(&base).await, "revoked"), 1);
    hub.stop().await;
}

/// The same rights on an external Mosquitto, provisioned by the hub through the
/// dynamic-security plugin: a Mosquitto of the test's own, no anonymous clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_mosquitto_holds_each_device_to_its_own_topics() {
    let dir = testing::TempDir::new("broker-dynsec").unwrap();
    let Some(broker) = support::mosquitto::start(dir.path()) else {
        return;
    };
    let port = broker.port;
    let prefix = format!("thr-dyn-{}", threshold_store::new_id());
    let hub = threshold_hub::start(HubConfig {
        data_dir: dir.path().join("hub"),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        mqtt_url: Some(format!(
            "mqtt://{}@127.0.0.1:{port}",
            support::mosquitto::ADMIN
        )),
        mqtt_password: Some(broker.admin_password.clone()),
        mqtt_dynsec: true,
        mqtt_topic_prefix: prefix.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let base = format!("http://{}", hub.http_addr);
    let adm = admin(&hub).await;
    let t = accounts(&base, &adm, &[("owner", "ann"), ("owner", "bob")]).await;
    let (ann, bob) = (&t[0], &t[1]);
    let ann_home = home(&base, ann, "Ann's", 52.37, 4.89).await;
    let bob_home = home(&base, bob, "Bob's", 52.37, 4.89).await;
    let a = pair(&base, ann, &ann_home).await;
    let b = pair(&base, bob, &bob_home).await;
    let up = |d: &Paired| threshold_proto::topic::uplink(&prefix, &d.key.device_id());
    let down = |d: &Paired| threshold_proto::topic::downlink(&prefix, &d.key.device_id());

    assert!(
        matches!(
            Client::start(port, "nobody", None).next().await,
            Seen::Refused(_)
        ),
        "anonymous refused"
    );
    assert!(matches!(
        Client::start(port, &a.id(), Some((&a.id(), "wrong")))
            .next()
            .await,
        Seen::Refused(_)
    ));
    // Both refusals reach the hub's metrics through the broker's notices
    // (`log_dest topic`).
    support::until(10, "the broker's refusals counted by the hub", || async {
        refusals(&metrics(&base).await, "external_not_authorised") >= 2
    })
    .await;
    assert_eq!(
        refusals(&metrics(&base).await, "external_not_authorised"),
        2,
        "nothing else the broker said counts as a refusal"
    );

    let mut bc = Client::connected(port, &b.id(), &b.password).await;
    for filter in ["#", &format!("{prefix}/v1/dev/+/up"), &down(&a)] {
        assert_eq!(
            bc.subscribe(filter).await,
            SubscribeReasonCode::NotAuthorized,
            "{filter}"
        );
    }
    assert_eq!(
        bc.subscribe(&down(&b)).await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    // Device B cannot publish as device A, even A's own signed message.
    let hb = a.heartbeat();
    assert_eq!(
        bc.publish(&up(&a), hb.as_bytes().to_vec()).await,
        PubAckReason::NotAuthorized
    );
    assert_eq!(
        bc.publish(&down(&a), b"forged".to_vec()).await,
        PubAckReason::NotAuthorized
    );

    // Device A speaks on its own uplink, and the hub reaches it on its downlink.
    let mut ac = Client::connected(port, &a.id(), &a.password).await;
    assert_eq!(
        ac.subscribe(&down(&a)).await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    let st = hub.state.clone();
    let hello = st
        .downlink
        .sign(
            &st.hub_key,
            a.key.device_id(),
            Kind::Ack,
            &serde_json::json!({}),
            now_ms(),
        )
        .await
        .expect("numbered");
    let mut reached = false;
    for _ in 0..50 {
        st.downlink.publish(a.key.device_id(), hello.clone()).await;
        if let Ok(Some(Seen::Packet(p))) =
            tokio::time::timeout(Duration::from_millis(200), ac.seen.recv()).await
        {
            if matches!(&*p, Packet::Publish(m) if m.topic == down(&a).as_bytes()) {
                reached = true;
                break;
            }
        }
    }
    assert!(reached, "the hub's downlink reached device A");

    // Revoking A takes its client away: disconnected, and refused when it returns.
    let (s, body) = call(
        "DELETE",
        format!("{base}/api/v1/devices/{}", a.id()),
        Some(ann),
        None::<Value>,
    )
    .await;
    assert_eq!(s, 204, "{body}");
    loop {
        match ac.next().await {
            Seen::Packet(_) => continue,
            Seen::Disconnected(_) | Seen::Closed(_) => break,
            other => panic!("revoked device: {other:?}"),
        }
    }
    assert!(matches!(
        Client::start(port, &a.id(), Some((&a.id(), &a.password)))
            .next()
            .await,
        Seen::Refused(_)
    ));
    support::until(10, "the revoked device's refusal counted", || async {
        refusals(&metrics(&base).await, "external_not_authorised") >= 3
    })
    .await;
    assert_eq!(
        refusals(&metrics(&base).await, "external_not_authorised"),
        3
    );
    // The broker's log holds no device password.
    let log = std::fs::read_to_string(&broker.log).unwrap_or_default();
    assert!(!log.contains(&a.password) && !log.contains(&b.password));
    hub.stop().await;
}

/// The hub as a client of an external broker over TLS (`mqtts://`, the broker's CA
/// named with `mqtt_ca_file`): it connects, subscribes, and provisions a device's
/// rights through the TLS connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_reaches_an_external_broker_over_tls() {
    let dir = testing::TempDir::new("broker-tls").unwrap();
    let certs = dir.path().join("broker-tls");
    threshold_hub::tls::local_ca(&certs, &["127.0.0.1".to_owned()]).unwrap();
    let Some(broker) = support::mosquitto::start_with(
        dir.path(),
        Some((&certs.join("cert.pem"), &certs.join("key.pem"))),
    ) else {
        return;
    };
    let hub = threshold_hub::start(HubConfig {
        data_dir: dir.path().join("hub"),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        mqtt_url: Some(format!(
            "mqtts://{}@127.0.0.1:{}",
            support::mosquitto::ADMIN,
            broker.port
        )),
        mqtt_password: Some(broker.admin_password.clone()),
        mqtt_ca_file: Some(certs.join("ca.pem")),
        mqtt_dynsec: true,
        mqtt_topic_prefix: format!("thr-tls-{}", threshold_store::new_id()),
        ..Default::default()
    })
    .await
    .unwrap();
    let base = format!("http://{}", hub.http_addr);
    let (s, h) = call("GET", format!("{base}/healthz"), None, None).await;
    assert_eq!((s, h["status"].as_str()), (200, Some("ok")), "{h}");
    let adm = admin(&hub).await;
    let owner = accounts(&base, &adm, &[("owner", "ann")]).await.remove(0);
    let home_id = home(&base, &owner, "Ann's", 52.37, 4.89).await;
    // Enrolment succeeds only if the broker answered the provisioning over TLS.
    let a = pair(&base, &owner, &home_id).await;
    assert_eq!(a.id().len(), 32);
    hub.stop().await;
}
