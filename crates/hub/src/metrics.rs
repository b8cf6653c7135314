//! Prometheus metrics, served at `/metrics` in the text exposition format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HeaderLabel {
    pub header: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LivenessLabel {
    pub kind: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub method: String,
    pub route: String,
    pub status: u16,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

pub struct Metrics {
    pub registry: Registry,
    /// The `process_*` metrics, without the `threshold_` prefix.
    process: Registry,
    pub accepted: Family<KindLabel, Counter>,
    pub rejected: Family<ReasonLabel, Counter>,
    pub duplicates: Family<KindLabel, Counter>,
    pub devices: Family<LivenessLabel, Gauge>,
    pub decisions: Family<OutcomeLabel, Counter>,
    pub alerts: Family<KindLabel, Counter>,
    /// Unlock tokens the locks reported refusing, by the lock's reason.
    pub tokens_refused: Family<ReasonLabel, Counter>,
    pub http: Family<RouteLabel, Histogram, fn() -> Histogram>,
    /// Liveness transitions detected but not yet applied (timeline, alerts).
    pub effects_pending: Gauge,
    /// What the device endpoint refused (connections, publishes, subscriptions).
    pub broker_refused: Family<ReasonLabel, Counter>,
    /// Devices connected to the endpoint now.
    pub broker_sessions: Gauge,
    /// How long after signing each live message was handled (`gateway::load`).
    pub ingest_lag: Histogram,
    /// 1 while the hub is behind with its devices' messages.
    pub hub_behind: Gauge,
    /// Fleet partitions this node holds (`fleet::leases`).
    pub fleet_partitions: Gauge,
    /// Partitions this node took over from another (or from nobody).
    pub fleet_takeovers: Counter,
    /// Forwarding headers from a trusted proxy that were malformed and ignored, by
    /// header (`http::forwarded`).
    pub forwarded_malformed: Family<HeaderLabel, Counter>,
    /// The audit witness: checkpoints it took, and failures (`audit::witness`).
    pub witness: crate::audit::witness::WitnessMetrics,
}

impl Metrics {
    /// One more alert of `kind` raised (home or system alerts).
    pub fn count_alert(&self, kind: &str) {
        self.alerts
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("threshold");
        let accepted = Family::<KindLabel, Counter>::default();
        let rejected = Family::<ReasonLabel, Counter>::default();
        let duplicates = Family::<KindLabel, Counter>::default();
        let devices = Family::<LivenessLabel, Gauge>::default();
        let decisions = Family::<OutcomeLabel, Counter>::default();
        let alerts = Family::<KindLabel, Counter>::default();
        let tokens_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "tokens_refused",
            "Unlock tokens a lock reported refusing, by the lock's reason",
            tokens_refused.clone(),
        );
        let http = Family::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "messages_accepted",
            "Device messages accepted, by kind",
            accepted.clone(),
        );
        registry.register(
            "messages_rejected",
            "Device messages rejected, by reason",
            rejected.clone(),
        );
        registry.register(
            "messages_duplicate",
            "Device messages seen before and ignored, by kind",
            duplicates.clone(),
        );
        registry.register(
            "devices",
            "Enrolled devices by kind and liveness state",
            devices.clone(),
        );
        registry.register("decisions", "Entry decisions by outcome", decisions.clone());
        registry.register("alerts", "Alerts raised, by kind", alerts.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http.clone(),
        );
        let effects_pending = Gauge::default();
        registry.register(
            "liveness_effects_pending",
            "Liveness transitions detected and not yet applied (timeline, alerts); grows after a mass reconnect",
            effects_pending.clone(),
        );
        let broker_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "broker_refused",
            "What the hub's device endpoint refused: a connection (bad_credentials, client_id_mismatch, revoked, protocol), a publish or a subscription outside the device's own topics",
            broker_refused.clone(),
        );
        let broker_sessions = Gauge::default();
        registry.register(
            "broker_sessions",
            "Devices connected to the hub's device endpoint",
            broker_sessions.clone(),
        );
        let ingest_lag = Histogram::new([
            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ]);
        registry.register(
            "ingest_lag_seconds",
            "How long after a device signed a live message the hub handled it (link, broker and hub queues together)",
            ingest_lag.clone(),
        );
        let (checked, batches) = crate::gateway::verifier::counters();
        registry.register(
            "signatures_checked",
            "Device signatures checked, in this process (its hubs share the checking threads)",
            checked,
        );
        registry.register(
            "signature_batches",
            "Batches the device signatures were checked in, a lone signature being a batch of one: signatures_checked over this is the mean batch",
            batches,
        );
        let hub_behind = Gauge::default();
        registry.register(
            "hub_behind",
            "1 while the hub is behind with its devices' messages (median ingest lag above half the live window): it blames no device and refuses entries",
            hub_behind.clone(),
        );
        let fleet_partitions = Gauge::default();
        registry.register(
            "fleet_partitions",
            "Partitions of homes this fleet node holds and acts for (a single hub: 1)",
            fleet_partitions.clone(),
        );
        let fleet_takeovers = Counter::default();
        registry.register(
            "fleet_takeovers",
            "Partitions this fleet node took over (first start, a node that stopped or died, rebalancing)",
            fleet_takeovers.clone(),
        );
        let forwarded_malformed = Family::<HeaderLabel, Counter>::default();
        registry.register(
            "http_forwarded_malformed",
            "Forwarding headers (X-Forwarded-For, -Proto, -Host) a trusted proxy sent malformed: ignored, the connection's own address, scheme or Host used instead",
            forwarded_malformed.clone(),
        );
        let witness = crate::audit::witness::WitnessMetrics::default();
        registry.register(
            "audit_witness_sent",
            "Signed audit checkpoints the external witness (audit_witness) took",
            witness.sent.clone(),
        );
        registry.register(
            "audit_witness_failures",
            "Audit witness failures: attempt (one try failed, retried), dropped (a checkpoint given up on, or the queue was full)",
            witness.failures.clone(),
        );
        registry.register(
            "build",
            "This hub's build: its version",
            prometheus_client::metrics::info::Info::new(vec![(
                "version",
                env!("CARGO_PKG_VERSION"),
            )]),
        );
        let mut process = Registry::default();
        process.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        Metrics {
            forwarded_malformed,
            witness,
            process,
            fleet_partitions,
            fleet_takeovers,
            ingest_lag,
            hub_behind,
            broker_refused,
            broker_sessions,
            effects_pending,
            registry,
            accepted,
            rejected,
            duplicates,
            devices,
            decisions,
            alerts,
            tokens_refused,
            http,
        }
    }

    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn accept(&self, kind: &str) {
        self.accepted
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// A message seen before: acknowledged again, not processed again.
    pub fn duplicate(&self, kind: &str) {
        self.duplicates
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub fn forwarded_malformed(&self, header: &str) {
        self.forwarded_malformed
            .get_or_create(&HeaderLabel {
                header: header.to_owned(),
            })
            .inc();
    }

    pub fn broker_refusal(&self, reason: &str) {
        self.broker_refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn rejected_count(&self, reason: &str) -> u64 {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .get()
    }

    /// Everything, in the `format` a scraper asked for (`metrics_text`).
    pub fn render(&self, format: crate::metrics_text::Format) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        let encoded = encode_registry(&mut out, &self.process)
            .and_then(|_| encode_registry(&mut out, &self.registry))
            .and_then(|_| encode_eof(&mut out));
        if encoded.is_err() {
            out.clear();
        }
        match format {
            crate::metrics_text::Format::OpenMetrics => out,
            crate::metrics_text::Format::Prometheus => crate::metrics_text::to_prometheus(&out),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}
