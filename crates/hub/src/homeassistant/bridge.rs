//! The hub's connection to Home Assistant's broker: publishes what `view::desired`
//! says (the difference since the last publication, everything again after a
//! reconnect), alerts as events, fresh pictures at a bounded rate, and obeys only
//! `LOCK` on a lock's command topic.
//!
//! Its last will (`offline`, retained, on `<p>/hub/status`) is set at connect, so a
//! hub that dies or loses the broker turns every entity unavailable; `online` follows
//! the first full publication; a clean stop publishes `offline` before disconnecting.

use super::states;
use super::topics::Topics;
use super::view::{self, Known, Retained};
use crate::broker_url::BrokerUrl;
use crate::state::AppState;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use threshold_core::delivery::DeliveryState;
use threshold_proto::DeviceId;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How often everything is judged again (a lock going quiet turns unknown without
/// any event).
const TICK_MS: u64 = 250;
/// How often each camera's live state is sent even when unchanged.
pub const LIVE_REPEAT_MS: u64 = 3_000;
/// How often unfinished deliveries are read again (one query), and the homes.
const DELIVERIES_EVERY_MS: u64 = 2_000;
const HOMES_EVERY_MS: u64 = 10_000;
/// An event about a home not read yet reads the homes again, at most this often.
const HOMES_SOON_MS: u64 = 1_000;
/// At most one lock command from Home Assistant per door this often (in hub time).
const COMMAND_EVERY_MS: i64 = 2_000;
/// Events lead to a publication at most this often (the hub's bus can be busy).
const EVENT_MIN_MS: u64 = 50;
/// A clean stop waits this long for `offline` to reach the broker.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The running bridge.
#[derive(Debug)]
pub struct Bridge {
    stop: watch::Sender<bool>,
    main: tokio::task::JoinHandle<()>,
    poll: tokio::task::JoinHandle<()>,
    status_topic: String,
}

impl Bridge {
    /// Stop cleanly: `offline` on the hub's status topic, then disconnect.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_WAIT, &mut self.main)
            .await
            .is_err()
        {
            self.main.abort();
        }
        if tokio::time::timeout(STOP_WAIT, &mut self.poll)
            .await
            .is_err()
        {
            self.poll.abort();
        }
    }

    /// Stop without a word, as a crash would: the broker publishes the last will once
    /// it notices the connection is gone.
    pub fn abort(self) {
        self.main.abort();
        self.poll.abort();
    }

    /// Where the hub's own availability is published.
    pub fn status_topic(&self) -> &str {
        &self.status_topic
    }
}

/// What the broker connection reports to the bridge.
enum Conn {
    Up,
    Down,
    Command(String, bytes::Bytes),
}

/// Start the bridge when `ha_mqtt_url` is set.
pub fn spawn(state: &AppState) -> anyhow::Result<Option<Bridge>> {
    let cfg = &state.config;
    let Some(url) = &cfg.ha_mqtt_url else {
        return Ok(None);
    };
    let url = BrokerUrl::parse_setting(url, "ha_mqtt_url").map_err(anyhow::Error::msg)?;
    let topics = Topics::new(
        &cfg.ha_discovery_prefix,
        &cfg.ha_topic_prefix,
        state.fleet.node_id(),
    );
    let mut id = [0u8; 6];
    let _ = getrandom::getrandom(&mut id);
    let mut opts = MqttOptions::new(
        format!("threshold-ha-{}", hex::encode(id)),
        url.host.clone(),
        url.port,
    );
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_clean_session(true);
    // Pictures go out; only small commands come in.
    opts.set_max_packet_size(64 * 1024, threshold_proto::MAX_MESSAGE_BYTES + 64 * 1024);
    opts.set_last_will(LastWill::new(
        topics.status(),
        states::OFFLINE,
        QoS::AtLeastOnce,
        true,
    ));
    if url.tls {
        let tls = crate::outbound::with_client_cert(
            cfg.ha_mqtt_ca_file.as_deref(),
            "ha_mqtt_ca_file",
            None,
        )
        .map_err(anyhow::Error::msg)?;
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        ));
    }
    let user = cfg.ha_mqtt_username.clone().or(url.username.clone());
    let password = cfg.ha_mqtt_password.clone().or(url.password.clone());
    if let Some(u) = user {
        opts.set_credentials(u, password.unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    let (conn_tx, conn_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    tracing::info!(broker = %url, discovery_prefix = %cfg.ha_discovery_prefix, "Home Assistant discovery on");

    let sub_client = client.clone();
    let filters = topics.command_filters();
    let shown = url.to_string();
    let poll = tokio::spawn(async move {
        let mut up = false;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!(broker = %shown, "connected to Home Assistant's broker");
                    for f in &filters {
                        let _ = sub_client.try_subscribe(f.clone(), QoS::AtLeastOnce);
                    }
                    up = true;
                    let _ = conn_tx.send(Conn::Up);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = conn_tx.send(Conn::Command(p.topic, p.payload));
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    // Let the DISCONNECT reach the broker (a dropped connection would
                    // make it publish the last will as well): poll until the broker
                    // closes the connection, briefly.
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while eventloop.poll().await.is_ok() {}
                    })
                    .await;
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    if up {
                        tracing::warn!(broker = %shown, error = %e, "lost Home Assistant's broker; reconnecting");
                        up = false;
                    } else {
                        tracing::debug!(broker = %shown, error = %e, "Home Assistant's broker not reachable");
                    }
                    if conn_tx.send(Conn::Down).is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    let status_topic = topics.status().to_owned();
    let main = tokio::spawn(run(state.clone(), topics, client, conn_rx, stop_rx));
    Ok(Some(Bridge {
        stop: stop_tx,
        main,
        poll,
        status_topic,
    }))
}

/// What was last published on each retained topic, and for which home.
struct Sent {
    home: String,
    payload: Vec<u8>,
}

struct Worker {
    state: AppState,
    topics: Topics,
    client: AsyncClient,
    connected: bool,
    known: Known,
    /// Whether `known.homes` was read at least once (nothing is removed before).
    homes_loaded: bool,
    /// When the homes were last read, and whether an event named a home not read.
    last_homes_read: Instant,
    homes_stale: bool,
    /// Unfinished deliveries per home (read again every `DELIVERIES_EVERY_MS`), and
    /// each home's most recently finished one.
    unfinished: HashMap<String, Vec<states::DeliverySeen>>,
    finished: HashMap<String, states::DeliverySeen>,
    /// Owners whose finished deliveries were read.
    owners_loaded: HashSet<String>,
    sent: HashMap<String, Sent>,
    last_repeat: Instant,
    /// When changes were last published (events publish at most every `EVENT_MIN_MS`;
    /// the tick catches up).
    last_publish: Instant,
    /// Per camera: hub time of the last picture sent.
    picture_sent_at: HashMap<DeviceId, i64>,
    /// Per door: hub time of the last command obeyed or refused.
    command_at: HashMap<String, i64>,
}

async fn run(
    state: AppState,
    topics: Topics,
    client: AsyncClient,
    mut conn: mpsc::UnboundedReceiver<Conn>,
    mut stop: watch::Receiver<bool>,
) {
    let mut shutdown = state.shutdown.subscribe();
    let mut events = state.bus.subscribe();
    let mut local = state.bus.subscribe_local();
    let mut frames = state.live.subscribe();
    let mut b = Worker {
        state,
        topics,
        client,
        connected: false,
        known: Known::default(),
        homes_loaded: false,
        last_homes_read: Instant::now(),
        homes_stale: false,
        unfinished: HashMap::new(),
        finished: HashMap::new(),
        owners_loaded: HashSet::new(),
        sent: HashMap::new(),
        last_repeat: Instant::now(),
        last_publish: Instant::now(),
        picture_sent_at: HashMap::new(),
        command_at: HashMap::new(),
    };
    b.load_homes().await;
    b.load_unfinished().await;
    let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_deliveries = Instant::now() + Duration::from_millis(DELIVERIES_EVERY_MS);
    let mut next_homes = Instant::now() + Duration::from_millis(HOMES_EVERY_MS);
    loop {
        use tokio::sync::broadcast::error::RecvError;
        tokio::select! {
            _ = stop.changed() => break,
            _ = shutdown.changed() => break,
            c = conn.recv() => match c {
                Some(Conn::Up) => b.on_connected(),
                Some(Conn::Down) => b.connected = false,
                Some(Conn::Command(topic, payload)) => b.on_command(&topic, &payload).await,
                None => break,
            },
            e = events.recv() => match e {
                Ok(e) => {
                    // A home the bridge has not read yet (created since): read the
                    // homes soon rather than at the next periodic read.
                    if !b.known.homes.iter().any(|h| h.id == e.home_id) {
                        b.homes_stale = true;
                    }
                    if e.event_type.starts_with("delivery.") {
                        if let Some(id) = e.data["delivery_id"].as_str() {
                            b.delivery_changed(id).await;
                        }
                    }
                    b.soon();
                }
                Err(RecvError::Lagged(_)) => b.soon(),
                Err(RecvError::Closed) => break,
            },
            e = local.recv() => match e {
                Ok(e) if e.event_type == "alert" => b.on_alert(&e.home_id, &e.data),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            f = frames.recv() => match f {
                Ok(f) => b.on_frame(&f),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let soon = b.homes_stale
                    && b.last_homes_read.elapsed() >= Duration::from_millis(HOMES_SOON_MS);
                if now >= next_homes || soon {
                    next_homes = now + Duration::from_millis(HOMES_EVERY_MS);
                    b.load_homes().await;
                }
                if now >= next_deliveries {
                    next_deliveries = now + Duration::from_millis(DELIVERIES_EVERY_MS);
                    b.load_unfinished().await;
                }
                b.publish_changes();
            }
        }
    }
    b.go_offline().await;
}

impl Worker {
    fn now(&self) -> i64 {
        self.state.clock.now_ms()
    }

    fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool, qos: QoS) -> bool {
        match self.client.try_publish(topic, qos, retain, payload) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, topic, "Home Assistant: not published (queue full or closed)");
                false
            }
        }
    }

    /// Connected (again): the broker may have lost everything, so everything is
    /// published again before the hub says it is online.
    fn on_connected(&mut self) {
        self.connected = true;
        self.sent.clear();
        self.publish_changes();
        self.publish(
            self.topics.status(),
            states::ONLINE.into(),
            true,
            QoS::AtLeastOnce,
        );
    }

    /// After an event: publish now unless that was done a moment ago.
    fn soon(&mut self) {
        if self.last_publish.elapsed() >= Duration::from_millis(EVENT_MIN_MS) {
            self.publish_changes();
        }
    }

    /// Publish what changed since the last publication; clear what no longer exists.
    fn publish_changes(&mut self) {
        if !self.connected {
            return;
        }
        self.last_publish = Instant::now();
        let now = self.now();
        self.known.deliveries = self.deliveries_by_home();
        let desired = view::desired(&self.state, &self.topics, &self.known, now);
        let repeat = self.last_repeat.elapsed() >= Duration::from_millis(LIVE_REPEAT_MS);
        if repeat {
            self.last_repeat = Instant::now();
        }
        let mut wanted: HashSet<&str> = HashSet::with_capacity(desired.len());
        for r in &desired {
            wanted.insert(r.topic.as_str());
            let same = self
                .sent
                .get(&r.topic)
                .is_some_and(|s| s.payload == r.payload);
            if (!same || (repeat && r.repeat)) && self.send_retained(r) {
                self.sent.insert(
                    r.topic.clone(),
                    Sent {
                        home: r.home.clone(),
                        payload: r.payload.clone(),
                    },
                );
            }
        }
        // Gone: an entity removed (a camera revoked, a lock unpaired, a home deleted)
        // is cleared, configs last so Home Assistant removes the entity. A home this
        // node no longer acts for is only forgotten: its new node publishes it.
        let homes: HashSet<&str> = self.known.homes.iter().map(|h| h.id.as_str()).collect();
        let mut gone: Vec<(bool, String)> = Vec::new();
        let mut forget: Vec<String> = Vec::new();
        for (topic, s) in &self.sent {
            if wanted.contains(topic.as_str()) {
                continue;
            }
            let exists = homes.contains(s.home.as_str());
            if exists && !self.state.fleet.owns_home(&s.home) {
                forget.push(topic.clone());
            } else if self.homes_loaded {
                gone.push((topic.ends_with("/config"), topic.clone()));
            }
        }
        for t in forget {
            self.sent.remove(&t);
        }
        gone.sort();
        for (_, topic) in gone {
            if self.publish(&topic, Vec::new(), true, QoS::AtLeastOnce) {
                self.sent.remove(&topic);
            }
        }
    }

    fn send_retained(&self, r: &Retained) -> bool {
        self.publish(&r.topic, r.payload.clone(), true, QoS::AtLeastOnce)
    }

    async fn go_offline(&mut self) {
        if self.connected {
            self.publish(
                self.topics.status(),
                states::OFFLINE.into(),
                true,
                QoS::AtLeastOnce,
            );
        }
        let _ = self.client.disconnect().await;
    }

    /// An alert raised on this node: one event on its home's alert topic.
    fn on_alert(&self, home: &str, alert: &serde_json::Value) {
        if !self.connected {
            tracing::warn!(
                home,
                "alert not forwarded to Home Assistant: its broker is not connected"
            );
            return;
        }
        let event = states::alert_event(alert);
        self.publish(
            &self.topics.alert(home),
            event.to_string().into_bytes(),
            false,
            QoS::AtLeastOnce,
        );
    }

    /// A new verified frame: sent as the camera's picture if it is fresh and the
    /// camera's last picture is at least `ha_picture_interval_ms` old.
    fn on_frame(&mut self, f: &crate::media::live::LiveFrame) {
        if !self.connected {
            return;
        }
        let Some((home, _, _, _)) = self.state.registry.identity(&f.device) else {
            return;
        };
        if !self.state.fleet.owns_home(&home) {
            return;
        }
        let now = self.now();
        let Some(captured) = self
            .state
            .registry
            .with(&f.device, |e| e.liveness.to_hub_time(f.capture_ms, now))
        else {
            return;
        };
        // A backlog frame uploaded after an outage is evidence, not a picture of now.
        if now.saturating_sub(captured) > self.state.config.live_window_ms {
            return;
        }
        let due = self
            .picture_sent_at
            .get(&f.device)
            .is_none_or(|at| now.saturating_sub(*at) >= self.state.config.ha_picture_interval_ms);
        if !due {
            return;
        }
        if self.publish(
            &self.topics.camera_picture(&f.device.to_hex()),
            f.jpeg.to_vec(),
            false,
            QoS::AtMostOnce,
        ) {
            self.picture_sent_at.insert(f.device, now);
            self.known.pictures.insert(f.device, captured);
            self.publish_changes();
        }
    }

    /// A command on a lock's or a garage door's command topic. Only `LOCK` (a lock)
    /// and `CLOSE` (a garage door) are obeyed: securing a door is always safe; anything
    /// else is refused and recorded: Home Assistant is not a way around the entry rule
    /// (docs/home-assistant.md).
    async fn on_command(&mut self, topic: &str, payload: &[u8]) {
        let (door_id, wanted) = match (
            self.topics.parse_lock_command(topic),
            self.topics.parse_garage_command(topic),
        ) {
            (Some(d), _) => (d, states::LOCK),
            (_, Some(d)) => (d, states::CLOSE),
            _ => return,
        };
        let Some(door) = self.state.access.doors.get(door_id) else {
            tracing::debug!(door = door_id, "Home Assistant command for an unknown door");
            return;
        };
        // In a fleet every node hears the command; the node acting for the home obeys.
        if !self.state.fleet.owns_home(&door.home_id) {
            return;
        }
        let now = self.now();
        if self
            .command_at
            .get(&door.id)
            .is_some_and(|at| now.saturating_sub(*at) < COMMAND_EVERY_MS)
        {
            tracing::debug!(door = %door.id, "Home Assistant command ignored (too soon after the last one)");
            return;
        }
        self.command_at.insert(door.id.clone(), now);
        let command: String = String::from_utf8_lossy(payload)
            .chars()
            .take(32)
            .filter(|c| !c.is_control())
            .collect();
        // The command must be the one that secures this kind of door.
        let garage = crate::access::doors::is_garage(&self.state, &door);
        let secures = if garage { states::CLOSE } else { states::LOCK };
        match (command == secures && wanted == secures, door.lock) {
            (true, Some(lock)) => {
                tracing::info!(door = %door.id, command = %command, "Home Assistant asked to secure the door: lock (close) commanded");
                crate::access::unlock::send_lock(
                    &self.state,
                    lock,
                    "home_assistant",
                    "home_assistant",
                )
                .await;
            }
            _ => {
                tracing::warn!(door = %door.id, command = %command.escape_debug(), "Home Assistant command refused: only LOCK (a lock) and CLOSE (a garage door) are obeyed (opening must go through the entry rule in Threshold's app)");
                crate::audit::record(
                    &self.state,
                    "home_assistant.command_refused",
                    "home_assistant",
                    &format!("door:{}", door.id),
                    serde_json::json!({"command": command}),
                )
                .await;
            }
        }
    }

    /// The homes (names change, homes come and go), and the finished deliveries of
    /// owners not read yet.
    async fn load_homes(&mut self) {
        self.last_homes_read = Instant::now();
        self.homes_stale = false;
        match self.state.store.all_homes().await {
            Ok(rows) => {
                self.known.homes = rows
                    .iter()
                    .map(|h| super::discovery::HomeInfo {
                        id: h.id.clone(),
                        name: h.name.clone(),
                    })
                    .collect();
                self.homes_loaded = true;
                let owners: HashSet<String> = rows.iter().map(|h| h.owner_id.clone()).collect();
                for owner in owners {
                    if self.owners_loaded.contains(&owner) {
                        continue;
                    }
                    match self.state.store.owner_deliveries(&owner, 500).await {
                        Ok(ds) => {
                            for d in &ds {
                                self.note(states::DeliverySeen::from(d));
                            }
                            self.owners_loaded.insert(owner);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "Home Assistant: could not read deliveries")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "Home Assistant: could not read the homes"),
        }
    }

    /// Every unfinished delivery (one query); one that finished since is read once.
    async fn load_unfinished(&mut self) {
        let names = DeliveryState::unfinished_names();
        let rows = match self.state.store.deliveries_in_states(&names, 10_000).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "Home Assistant: could not read deliveries");
                return;
            }
        };
        let before: HashSet<String> = self
            .unfinished
            .values()
            .flatten()
            .map(|d| d.id.clone())
            .collect();
        let mut now_unfinished: HashMap<String, Vec<states::DeliverySeen>> = HashMap::new();
        for r in &rows {
            now_unfinished
                .entry(r.home_id.clone())
                .or_default()
                .push(states::DeliverySeen::from(r));
        }
        let still: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let ended: Vec<String> = before
            .into_iter()
            .filter(|id| !still.contains(id.as_str()))
            .collect();
        self.unfinished = now_unfinished;
        for id in ended {
            self.delivery_changed(&id).await;
        }
    }

    /// A delivery changed: read it and keep it where it belongs.
    async fn delivery_changed(&mut self, id: &str) {
        match self.state.store.delivery_any(id).await {
            Ok(d) => self.note(states::DeliverySeen::from(&d)),
            Err(e) => {
                tracing::debug!(error = %e, delivery = id, "Home Assistant: delivery not read")
            }
        }
    }

    fn note(&mut self, d: states::DeliverySeen) {
        let list = self.unfinished.entry(d.home_id.clone()).or_default();
        list.retain(|x| x.id != d.id);
        let finished = DeliveryState::parse(&d.state).is_none_or(DeliveryState::is_terminal);
        if finished {
            let newer = self
                .finished
                .get(&d.home_id)
                .is_none_or(|f| (f.updated_ms, &f.id) <= (d.updated_ms, &d.id));
            if newer {
                self.finished.insert(d.home_id.clone(), d);
            }
        } else {
            list.push(d);
        }
    }

    fn deliveries_by_home(&self) -> HashMap<String, Vec<states::DeliverySeen>> {
        let mut out = self.unfinished.clone();
        for (home, d) in &self.finished {
            out.entry(home.clone()).or_default().push(d.clone());
        }
        out
    }
}
