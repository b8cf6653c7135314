//! Shared hub state handed to every handler and task.

use crate::clock::Clock;
use crate::config::HubConfig;
use crate::events::EventBus;
use crate::gateway::downlink::Downlink;
use crate::gateway::registry::Registry;
use crate::media::live::LiveFrames;
use crate::metrics::Metrics;
use std::sync::Arc;
use threshold_proto::DeviceKey;
use threshold_store::Store;

#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub config: HubConfig,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    pub hub_key: DeviceKey,
    pub registry: Registry,
    pub bus: EventBus,
    pub downlink: Downlink,
    pub live: LiveFrames,
    /// Open and recent delivery recordings (see `recording`).
    pub recorder: crate::media::recorder::Recorder,
    /// How far each camera was last asked to stream (see `leases`).
    pub stream_leases: crate::media::leases::StreamLeases,
    /// Outgoing webhook signals (see `webhooks`).
    pub webhooks: crate::alerts::wake::Webhooks,
    /// Event-log gaps waiting for their grace period (`alerts::gaps`).
    pub gaps: crate::alerts::gaps::PendingGaps,
    /// Broker address handed to devices at enrolment.
    pub device_mqtt_host: String,
    pub device_mqtt_port: u16,
    /// Where devices may connect with MQTT over TLS, if the hub offers it.
    pub device_mqtt_tls_port: Option<u16>,
    /// Where liveness transitions go to be applied (set once by the monitor).
    pub mqtt_connected: Arc<crate::gateway::connected::Connected>,
    /// This process's one writer of the audit log (group commit; other hub processes
    /// are handled by the store's retry).
    pub journal: crate::audit::journal::Journal,
    /// Sign-in attempts per account and per source address (online guessing).
    pub sign_in_accounts: crate::auth::throttle::Throttle,
    pub sign_in_sources: crate::auth::throttle::Throttle,
    /// `trusted_proxies`: whose forwarding headers name the client (`http::client`).
    pub proxies: crate::http::proxies::Proxies,
    /// The TLS client configuration for webhooks and Web Push (`outbound`).
    pub outbound_tls: std::sync::Arc<rustls::ClientConfig>,
    /// The bounded pool password checks run on.
    pub password_checks: crate::auth::checks::PasswordChecks,
    /// Unlock attempts per guest grant (same limits, every attempt counts): a leaked
    /// or scripted guest secret cannot open the door over and over.
    pub guest_limiter: crate::auth::limiter::AttemptLimiter,
    /// Credential-renewal requests (challenges and answers) per device
    /// (`http::credentials`).
    pub credential_limiter: crate::auth::limiter::AttemptLimiter,
    /// Set when the hub stops: background loops end at their next turn.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The background tasks that write to the store and end when the hub stops (the
    /// effects tasks, the watcher, the recorder's tick): `Hub::stop` lets them finish
    /// what they hold, up to a bound, before it closes the store.
    pub tasks: tokio_util::task::TaskTracker,
    pub effects: std::sync::OnceLock<
        tokio::sync::mpsc::UnboundedSender<crate::gateway::transition::Transition>,
    >,
    /// Homes with recent Wi-Fi attack evidence (`wifi_recent`).
    pub wifi_attacks: crate::wifi_recent::RecentAttacks,
    /// Whether the hub keeps up with its devices' messages (`gateway::load`).
    pub load: crate::gateway::lag::Load,
    /// Doors, open deliveries waiting to be secured, whether the hub can vouch.
    pub access: crate::access::AccessState,
    /// Which homes this node acts for (all, unless it is one node of a fleet).
    pub fleet: crate::fleet::ownership::Ownership,
    /// What device happenings lead to (the gateway's port to the domain).
    pub reactions: std::sync::Arc<dyn crate::gateway::port::Reactions>,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }

    /// Whether the hub is stopping (background loops check this each turn).
    pub fn stopped(&self) -> bool {
        *self.shutdown.borrow()
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
