//! The device's MQTT 5 link to the hub.
//!
//! One task owns the connection. It connects (clean start, client id = username =
//! device id), subscribes to the downlink topic, sends `hello`, and then serves, in
//! strict priority order: incoming downlinks, live uplink messages, and the backlog of
//! unacknowledged outbox records (oldest first, a few in flight at a time, and only
//! while no live message waits), so a long backlog after an outage never delays a
//! heartbeat. After a lost connection it reconnects with a short backoff (200 ms ..
//! 2 s); after the hub refused the device or another agent took its session, slowly
//! (1 s .. 60 s, with jitter; `backoff`); forever. When the broker refuses the
//! device's credentials and the agent can reach its hub, it asks for new ones
//! (`renewal`, docs/protocol.md §8.6) once per refusal episode, then rarely, and
//! connects with them.
//!
//! A failed connection is never the agent's problem: agents keep capturing and logging
//! to the outbox; the link catches up when it can.
//!
//! [`LinkControl::set_blocked`] cuts the connection and keeps it down: tests and
//! benchmarks use it to play the jammer.

pub mod backoff;
pub mod renewal;
pub mod verify;

use crate::clock::now_ms;
use crate::outbox::{Outbox, Space};
use crate::signer::Signer;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use threshold_proto::body::Hello;
use threshold_proto::{topic, Kind, PublicKey};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
pub use verify::{Downlink, DownlinkVerifier, Rejected};

/// Where and as whom to connect.
#[derive(Clone)]
pub struct LinkSettings {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub topic_prefix: String,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// MQTT keep-alive. Liveness is judged by the hub from heartbeats, not from this;
    /// it only bounds how long a dead TCP connection goes unnoticed by the device.
    pub keep_alive: Duration,
    /// Connect with TLS (to `port`, the hub's TLS port) with this configuration.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for LinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("topic_prefix", &self.topic_prefix)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl LinkSettings {
    /// The link the enrolment describes: over TLS (trusting `tls`) when the hub
    /// offered a TLS port, plain otherwise.
    pub fn from_enrolment(
        m: &crate::identity::MqttSettings,
        tls: &std::sync::Arc<rustls::ClientConfig>,
    ) -> Self {
        LinkSettings {
            host: m.host.clone(),
            port: m.tls_port.unwrap_or(m.port),
            tls: m.tls_port.map(|_| tls.clone()),
            username: m.username.clone(),
            password: m.password.clone(),
            topic_prefix: m.topic_prefix.clone(),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
            keep_alive: Duration::from_secs(5),
        }
    }
}

/// A switch to cut the link on purpose (jamming in tests, benches and the demo).
/// Cloning shares the switch.
#[derive(Clone, Debug)]
pub struct LinkControl {
    blocked: Arc<watch::Sender<bool>>,
}

impl Default for LinkControl {
    fn default() -> Self {
        Self::new()
    }
}

impl LinkControl {
    pub fn new() -> Self {
        LinkControl {
            blocked: Arc::new(watch::channel(false).0),
        }
    }
    /// `true`: drop the MQTT connection now and do not reconnect until unblocked.
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.send_replace(blocked);
    }
    pub fn is_blocked(&self) -> bool {
        *self.blocked.borrow()
    }
    fn subscribe(&self) -> watch::Receiver<bool> {
        self.blocked.subscribe()
    }
}

/// What the link tells the device logic.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkEvent {
    Connected { at_ms: i64 },
    Disconnected { at_ms: i64 },
    Downlink(Downlink),
    Rejected(Rejected),
}

/// Counters, readable at any time.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub connects: AtomicU64,
    pub published: AtomicU64,
    pub backlog_sent: AtomicU64,
    pub live_dropped: AtomicU64,
    pub downlinks_accepted: AtomicU64,
    pub downlinks_rejected: AtomicU64,
}

/// Handle the agents use to send live messages.
#[derive(Clone, Debug)]
pub struct Link {
    live_tx: mpsc::Sender<Vec<u8>>,
    connected: watch::Receiver<bool>,
    pub stats: Arc<LinkStats>,
}

impl Link {
    /// Queue a live message. Returns false (and counts it) if the link is down or the
    /// queue is full: live messages are worthless once stale, and durable records are
    /// in the outbox anyway.
    pub fn send_live(&self, bytes: Vec<u8>) -> bool {
        if !self.is_connected() || self.live_tx.try_send(bytes).is_err() {
            self.stats.live_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// A receiver that changes on every connect and disconnect.
    pub fn watch_connected(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }
}

/// Everything the link task needs.
pub struct LinkParts {
    pub settings: LinkSettings,
    pub signer: Arc<Signer>,
    pub outbox: Arc<Mutex<Outbox>>,
    pub hub_key: PublicKey,
    pub hello: Hello,
    pub control: LinkControl,
    pub shutdown: watch::Receiver<bool>,
    /// Asks the hub for new broker credentials when the broker refuses these
    /// (`None`: the agent does not know its hub; it only retries slowly).
    pub renewer: Option<Arc<dyn renewal::Renewer>>,
}

/// Records in flight (published, no PUBACK yet) above which the backlog waits.
const BACKLOG_WINDOW: u64 = 4;
/// Re-offer records still unacknowledged after this long (a lost QoS 1 delivery or a
/// hub that dropped them, e.g. while it restarted behind an external broker that kept
/// the device connected): they are sent again, behind live traffic.
const RESCAN_EVERY: Duration = Duration::from_secs(5);

/// Resolve when `rx` says shut down. A dropped sender never shuts down.
pub async fn shutdown_signalled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolve when the flag equals `want` (false if the sender is gone).
async fn wait_flag(rx: &mut watch::Receiver<bool>, want: bool) -> bool {
    rx.wait_for(|b| *b == want).await.is_ok()
}

/// Start the link task.
pub fn spawn(parts: LinkParts) -> (Link, mpsc::Receiver<LinkEvent>, JoinHandle<()>) {
    let (live_tx, live_rx) = mpsc::channel(64);
    let (conn_tx, conn_rx) = watch::channel(false);
    let (ev_tx, ev_rx) = mpsc::channel(256);
    let stats = Arc::new(LinkStats::default());
    let task = LinkTask {
        verifier: DownlinkVerifier::new(parts.hub_key, parts.signer.device_id()),
        parts,
        live_rx,
        conn_tx,
        ev_tx,
        stats: stats.clone(),
    };
    let handle = tokio::spawn(task.run());
    (
        Link {
            live_tx,
            connected: conn_rx,
            stats,
        },
        ev_rx,
        handle,
    )
}

struct LinkTask {
    parts: LinkParts,
    verifier: DownlinkVerifier,
    live_rx: mpsc::Receiver<Vec<u8>>,
    conn_tx: watch::Sender<bool>,
    ev_tx: mpsc::Sender<LinkEvent>,
    stats: Arc<LinkStats>,
}

enum SessionEnd {
    Shutdown,
    /// The connection ended; how, for the wait before the next (`backoff`).
    Lost(backoff::Ending),
}

const LOST: SessionEnd = SessionEnd::Lost(backoff::Ending::Lost);

/// Per-connection backlog position in each space.
struct Backlog {
    /// Only records below these seqs are backlog; newer ones were sent live.
    before: [u64; 2],
    cursor: [u64; 2],
    done: bool,
}

impl Backlog {
    fn new(outbox: &Arc<Mutex<Outbox>>) -> Self {
        let before = match outbox.lock() {
            Ok(mut o) => [
                o.space(Space::Events).next_seq(),
                o.space(Space::Frames).next_seq(),
            ],
            Err(_) => [0, 0],
        };
        Backlog {
            before,
            cursor: [0, 0],
            done: false,
        }
    }
}

impl LinkTask {
    async fn run(mut self) {
        let mut blocked = self.parts.control.subscribe();
        let mut shutdown = self.parts.shutdown.clone();
        let mut backoff = backoff::Backoff::new(
            self.parts.settings.backoff_min,
            self.parts.settings.backoff_max,
        );
        let mut renewals = renewal::RenewalPolicy::default();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let is_blocked = *blocked.borrow_and_update();
            if is_blocked {
                tokio::select! {
                    _ = shutdown_signalled(&mut shutdown) => return,
                    ok = wait_flag(&mut blocked, false) => if !ok { return },
                }
                continue;
            }
            let wait = match self.session(&mut blocked, &mut shutdown).await {
                (SessionEnd::Shutdown, _) => return,
                (SessionEnd::Lost(ending), was_connected) => {
                    if was_connected {
                        backoff.connected();
                        renewals.connected();
                    }
                    let ending = backoff.judge(ending);
                    match ending {
                        backoff::Ending::Lost | backoff::Ending::Unanswered => {}
                        backoff::Ending::Refused => tracing::warn!(
                            "the broker refused this device (revoked, its credentials changed, or the broker closes its every connection unanswered); retrying slowly"
                        ),
                        backoff::Ending::TakenOver => tracing::warn!(
                            "another agent with this device's key took the connection; retrying slowly"
                        ),
                    }
                    let renewed = ending == backoff::Ending::Refused
                        && self.renew(&mut renewals, &mut shutdown).await;
                    if *shutdown.borrow() {
                        return;
                    }
                    if renewed {
                        // New credentials: try them at once.
                        self.parts.settings.backoff_min
                    } else {
                        backoff::jitter(backoff.after(ending))
                    }
                }
            };
            tokio::select! {
                _ = shutdown_signalled(&mut shutdown) => return,
                _ = tokio::time::sleep(wait) => {}
                _ = blocked.changed() => {}
            }
        }
    }

    /// After a refusal: ask for new credentials if there is a way to and the policy
    /// allows it now; whether the link got them (and will use them next).
    async fn renew(
        &mut self,
        policy: &mut renewal::RenewalPolicy,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let Some(renewer) = self.parts.renewer.clone() else {
            return false;
        };
        if !policy.on_refused(std::time::Instant::now()) {
            return false;
        }
        tracing::info!("asking the hub for new broker credentials");
        let answer = tokio::select! {
            _ = shutdown_signalled(shutdown) => return false,
            a = renewer.renew() => a,
        };
        match answer {
            Ok(next) => {
                let s = &mut self.parts.settings;
                *s = LinkSettings {
                    backoff_min: s.backoff_min,
                    backoff_max: s.backoff_max,
                    keep_alive: s.keep_alive,
                    ..next
                };
                tracing::info!(host = %s.host, port = s.port, "got new broker credentials; connecting with them");
                true
            }
            Err(e) => {
                if e.unanswered {
                    policy.unanswered(std::time::Instant::now());
                    tracing::warn!(error = %e, "could not renew the broker credentials now; asking again later");
                } else {
                    tracing::warn!(error = %e, "the hub refused to renew the broker credentials; the device may need pairing again");
                }
                false
            }
        }
    }

    async fn emit(&self, ev: LinkEvent) {
        let _ = self.ev_tx.send(ev).await;
    }

    /// One connection, from connect to loss. Returns whether it got connected.
    async fn session(
        &mut self,
        blocked: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> (SessionEnd, bool) {
        let s = &self.parts.settings;
        let me = self.parts.signer.device_id();
        let up = topic::uplink(&s.topic_prefix, &me);
        let down = topic::downlink(&s.topic_prefix, &me);
        let mut opts = MqttOptions::new(me.to_hex(), s.host.clone(), s.port);
        opts.set_credentials(s.username.clone(), s.password.clone());
        opts.set_clean_start(true);
        // rumqttc's default (65 535 publishes in flight) allocates ~13 MB of slots at
        // connect; a device has a handful in flight, and past 64 it should wait.
        opts.set_outgoing_inflight_upper_limit(64);
        opts.set_keep_alive(s.keep_alive);
        opts.set_connection_timeout(3);
        opts.set_max_packet_size(Some(256 * 1024));
        if let Some(tls) = &s.tls {
            opts.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.clone()),
            ));
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        // The event loop is polled by its own task so that publishing never has to wait
        // for (or cancel) a poll in progress.
        let (net_tx, mut net_rx) =
            mpsc::channel::<Result<Event, rumqttc::v5::ConnectionError>>(256);
        let poller = tokio::spawn(async move {
            loop {
                let r = eventloop.poll().await;
                let failed = r.is_err();
                if net_tx.send(r).await.is_err() || failed {
                    return;
                }
            }
        });
        let _abort = AbortOnDrop(poller);

        // Wait for CONNACK.
        let connack = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match net_rx.recv().await {
                    Some(Ok(Event::Incoming(Incoming::ConnAck(_)))) => return Ok(()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(Some(e)),
                    None => return Err(None),
                }
            }
        });
        tokio::select! {
            _ = shutdown_signalled(shutdown) => return (SessionEnd::Shutdown, false),
            _ = wait_flag(blocked, true) => return (LOST, false),
            r = connack => match r {
                Ok(Ok(())) => {}
                Ok(Err(Some(e))) => {
                    tracing::debug!(error = %e, "mqtt connect failed");
                    let ending = if backoff::unanswered(&e) {
                        backoff::Ending::Unanswered
                    } else {
                        backoff::classify(&e)
                    };
                    return (SessionEnd::Lost(ending), false);
                }
                Ok(Err(None)) | Err(_) => return (LOST, false),
            }
        }
        if client
            .try_subscribe(down.clone(), QoS::AtLeastOnce)
            .is_err()
        {
            return (LOST, false);
        }
        // Live messages queued while disconnected are stale now.
        while self.live_rx.try_recv().is_ok() {}
        let mut in_flight: u64 = 0;
        let hello_body = serde_json::to_vec(&self.parts.hello).unwrap_or_default();
        let hello = self.parts.signer.live(Kind::Hello, now_ms(), hello_body);
        if client
            .try_publish(up.clone(), QoS::AtLeastOnce, false, hello)
            .is_ok()
        {
            in_flight += 1;
        }
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        let at_ms = now_ms();
        tracing::info!(host = %s.host, port = s.port, "link up");
        self.conn_tx.send_replace(true);
        self.emit(LinkEvent::Connected { at_ms }).await;

        let mut backlog = Backlog::new(&self.parts.outbox);
        let mut rescan_snapshot = backlog.before;
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rescan = tokio::time::interval(RESCAN_EVERY);
        rescan.tick().await;
        let end = loop {
            tokio::select! {
                biased;
                _ = shutdown_signalled(shutdown) => break SessionEnd::Shutdown,
                _ = wait_flag(blocked, true) => {
                    tracing::warn!("link blocked on purpose; dropping the connection");
                    break LOST;
                }
                ev = net_rx.recv() => match ev {
                    Some(Ok(Event::Incoming(Incoming::Publish(p)))) => {
                        if p.topic.as_ref() == down.as_bytes() {
                            self.on_downlink(&p.payload).await;
                        }
                    }
                    Some(Ok(Event::Incoming(Incoming::PubAck(_)))) => in_flight = in_flight.saturating_sub(1),
                    Some(Ok(Event::Incoming(Incoming::Disconnect(d)))) => {
                        tracing::warn!(reason = ?d.reason_code, "broker disconnected us");
                        break SessionEnd::Lost(backoff::on_disconnect(d.reason_code));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "link lost");
                        break SessionEnd::Lost(backoff::classify(&e));
                    }
                    None => break LOST,
                },
                Some(msg) = self.live_rx.recv() => {
                    if client.try_publish(up.clone(), QoS::AtLeastOnce, false, msg).is_ok() {
                        in_flight += 1;
                        self.stats.published.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.stats.live_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ = rescan.tick(), if backlog.done => {
                    backlog = Backlog { before: rescan_snapshot, cursor: [0, 0], done: false };
                    rescan_snapshot = Backlog::new(&self.parts.outbox).before;
                }
                _ = tick.tick(), if !backlog.done && in_flight < BACKLOG_WINDOW => {
                    if self.live_rx.is_empty() {
                        let room = BACKLOG_WINDOW - in_flight;
                        for (seq, bytes) in self.next_backlog(&mut backlog, room as usize) {
                            if client.try_publish(up.clone(), QoS::AtLeastOnce, false, bytes).is_err() {
                                break;
                            }
                            tracing::trace!(seq, "backlog record sent");
                            in_flight += 1;
                            self.stats.backlog_sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        };
        self.conn_tx.send_replace(false);
        let _ = client.try_disconnect();
        self.emit(LinkEvent::Disconnected { at_ms: now_ms() }).await;
        (end, true)
    }

    /// Next backlog records: events before frames (a door event matters more than one
    /// more frame), each space oldest first.
    fn next_backlog(&self, b: &mut Backlog, room: usize) -> Vec<(u64, Vec<u8>)> {
        let Ok(mut outbox) = self.parts.outbox.lock() else {
            b.done = true;
            return Vec::new();
        };
        for (i, space) in [Space::Events, Space::Frames].into_iter().enumerate() {
            let (Some(cursor), Some(before)) = (b.cursor.get(i).copied(), b.before.get(i).copied())
            else {
                continue;
            };
            let recs = outbox.space(space).pending(cursor, before, room);
            if let Some((last, _)) = recs.last() {
                if let Some(c) = b.cursor.get_mut(i) {
                    *c = *last;
                }
                return recs;
            }
            if let Some(c) = b.cursor.get_mut(i) {
                *c = before;
            }
        }
        b.done = true;
        Vec::new()
    }

    async fn on_downlink(&mut self, payload: &[u8]) {
        match self.verifier.check(payload, now_ms()) {
            Ok(d) => {
                self.stats
                    .downlinks_accepted
                    .fetch_add(1, Ordering::Relaxed);
                if let Downlink::Ack(ack) = &d {
                    if let Ok(mut o) = self.parts.outbox.lock() {
                        o.ack(ack);
                    }
                }
                self.emit(LinkEvent::Downlink(d)).await;
            }
            Err(r) => {
                self.stats
                    .downlinks_rejected
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(reason = r.reason, kind = ?r.kind.map(|k| k.name()), "downlink rejected");
                self.emit(LinkEvent::Rejected(r)).await;
            }
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
