//! Public entry points: one `run_*` per device kind, and the plumbing they share
//! (enrolment, outbox, signer, link).

mod camera;
mod garage;
mod lock;

pub use camera::run_camera;
pub use garage::run_garage;
pub use lock::{run_contact, run_lock};

use crate::camera::SourceConfig;
use crate::clock::now_ms;
use crate::identity::ensure_enrolled;
use crate::link::{self, Link, LinkControl, LinkEvent, LinkParts, LinkSettings};
use crate::lock::logic::Rules;
use crate::lock::simulator::SimulatedHome;
use crate::lock::zigbee::Z2mConfig;
use crate::outbox::{Outbox, SpaceConfig};
use crate::signer::Signer;
use crate::transport_seq::TransportSeq;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use threshold_proto::body::{DeviceKind, Event, Hello};
use threshold_proto::Kind;
use tokio::sync::{mpsc, watch};

/// Settings every agent has.
#[derive(Clone, Debug)]
pub struct CommonConfig {
    /// Key, enrolment, outbox, counters and nonces live here.
    pub data_dir: PathBuf,
    /// Enrol on first start (when there is no stored enrolment yet).
    pub hub_url: Option<String>,
    pub pairing_code: Option<String>,
    /// The hub's CA certificate (PEM), trusted besides the public roots for HTTPS
    /// enrolment and MQTT over TLS.
    pub hub_ca_file: Option<PathBuf>,
    /// Override the heartbeat/state period the hub gave at enrolment.
    pub heartbeat_ms: Option<u64>,
    /// Cut the link on purpose (tests, benches, demo).
    pub link_control: LinkControl,
    pub events_outbox: SpaceConfig,
    pub frames_outbox: SpaceConfig,
}

impl CommonConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        CommonConfig {
            data_dir: data_dir.into(),
            hub_url: None,
            pairing_code: None,
            hub_ca_file: None,
            heartbeat_ms: None,
            link_control: LinkControl::new(),
            events_outbox: SpaceConfig::events(),
            frames_outbox: SpaceConfig::frames(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CameraConfig {
    pub common: CommonConfig,
    pub source: SourceConfig,
    /// Frames captured (and stored) per second; default 5.
    pub capture_fps: u32,
    /// Wi-Fi attack evidence from the camera's own link (`crate::wifi`).
    pub wifi: Option<crate::wifi::WifiSensorConfig>,
}

impl CameraConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        CameraConfig {
            common: CommonConfig::new(data_dir),
            source: SourceConfig::default(),
            capture_fps: 5,
            wifi: None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum LockDriverConfig {
    Simulator(SimulatedHome),
    Zigbee2Mqtt(Z2mConfig),
}

#[derive(Clone, Debug)]
pub struct LockConfig {
    pub common: CommonConfig,
    pub driver: LockDriverConfig,
    pub rules: Rules,
}

impl LockConfig {
    pub fn new(data_dir: impl Into<PathBuf>, driver: LockDriverConfig) -> Self {
        LockConfig {
            common: CommonConfig::new(data_dir),
            driver,
            rules: Rules::default(),
        }
    }
}

#[derive(Clone, Debug)]
pub enum GarageDriverConfig {
    Simulator(crate::garage::simulator::SimulatedGarage),
    Mqtt(crate::garage::mqtt::OpenerMqttConfig),
}

#[derive(Clone, Debug)]
pub struct GarageConfig {
    pub common: CommonConfig,
    pub driver: GarageDriverConfig,
    pub rules: Rules,
}

impl GarageConfig {
    pub fn new(data_dir: impl Into<PathBuf>, driver: GarageDriverConfig) -> Self {
        GarageConfig {
            common: CommonConfig::new(data_dir),
            driver,
            rules: Rules::default(),
        }
    }
}

#[derive(Clone, Debug)]
pub enum ContactDriverConfig {
    Simulator(SimulatedHome),
    Zigbee2Mqtt(Z2mConfig),
}

#[derive(Clone, Debug)]
pub struct ContactConfig {
    pub common: CommonConfig,
    pub driver: ContactDriverConfig,
}

impl ContactConfig {
    pub fn new(data_dir: impl Into<PathBuf>, driver: ContactDriverConfig) -> Self {
        ContactConfig {
            common: CommonConfig::new(data_dir),
            driver,
        }
    }
}

/// Renews the device's broker credentials with its hub (`crate::renew`), stores them
/// in the enrolment, and hands them to the link.
struct HubRenewer {
    data_dir: PathBuf,
    hub_url: String,
    key: threshold_proto::DeviceKey,
    tls: Arc<rustls::ClientConfig>,
}

impl link::renewal::Renewer for HubRenewer {
    fn renew(&self) -> link::renewal::Renewing<'_> {
        Box::pin(async move {
            let (dir, url, key, tls) = (
                self.data_dir.clone(),
                self.hub_url.clone(),
                self.key.clone(),
                self.tls.clone(),
            );
            let e = tokio::task::spawn_blocking(move || {
                crate::renew::renew_and_save(&dir, &url, &key, &tls)
            })
            .await
            .map_err(|e| link::renewal::RenewFailure {
                unanswered: true,
                reason: e.to_string(),
            })?
            .map_err(|e| link::renewal::RenewFailure {
                unanswered: e.unanswered(),
                reason: e.to_string(),
            })?;
            Ok(LinkSettings::from_enrolment(&e.mqtt, &self.tls))
        })
    }
}

/// What every running agent holds.
pub(crate) struct Device {
    pub signer: Arc<Signer>,
    pub outbox: Arc<Mutex<Outbox>>,
    pub link: Link,
    pub link_events: mpsc::Receiver<LinkEvent>,
    pub heartbeat: Duration,
    /// What the hub said at enrolment.
    pub enrolment: crate::identity::Enrolment,
    link_task: tokio::task::JoinHandle<()>,
    lost_at_ms: Option<i64>,
}

impl Device {
    pub async fn start(
        common: &CommonConfig,
        kind: DeviceKind,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let c = common.clone();
        let tls = crate::tls::client_config(common.hub_ca_file.as_deref())?;
        let tls2 = tls.clone();
        let (key, enrolment) = tokio::task::spawn_blocking(move || {
            ensure_enrolled(
                &c.data_dir,
                c.hub_url.as_deref(),
                c.pairing_code.as_deref(),
                kind,
                &tls2,
            )
        })
        .await??;
        let hub_key = enrolment.hub_key().map_err(anyhow::Error::msg)?;
        let renewer = common
            .hub_url
            .clone()
            .or_else(|| enrolment.hub_url.clone())
            .map(|hub_url| {
                Arc::new(HubRenewer {
                    data_dir: common.data_dir.clone(),
                    hub_url,
                    key: key.clone(),
                    tls: tls.clone(),
                }) as Arc<dyn link::renewal::Renewer>
            });
        let outbox = Outbox::open(
            &common.data_dir,
            common.events_outbox.clone(),
            common.frames_outbox.clone(),
        )?;
        let tseq = TransportSeq::open(&common.data_dir.join("transport_seq"), now_ms())?;
        let signer = Arc::new(Signer::new(key, tseq));
        let outbox = Arc::new(Mutex::new(outbox));
        let mut boot = [0u8; 8];
        getrandom::getrandom(&mut boot).map_err(|e| anyhow::anyhow!("random: {e}"))?;
        let hello = Hello {
            agent: format!("threshold-agent/{}", env!("CARGO_PKG_VERSION")),
            kind,
            boot_id: hex::encode(boot),
        };
        let (link, link_events, link_task) = link::spawn(LinkParts {
            settings: LinkSettings::from_enrolment(&enrolment.mqtt, &tls),
            signer: signer.clone(),
            outbox: outbox.clone(),
            hub_key,
            hello,
            control: common.link_control.clone(),
            shutdown,
            renewer,
        });
        let hb = common
            .heartbeat_ms
            .unwrap_or(enrolment.heartbeat_ms)
            .clamp(20, 60_000);
        tracing::info!(device = %signer.device_id(), kind = kind.as_str(), "agent started");
        Ok(Device {
            signer,
            outbox,
            link,
            link_events,
            heartbeat: Duration::from_millis(hb),
            enrolment,
            link_task,
            lost_at_ms: None,
        })
    }

    pub fn with_outbox<R>(&self, f: impl FnOnce(&mut Outbox) -> R) -> R {
        match self.outbox.lock() {
            Ok(mut o) => f(&mut o),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Sign an event into the event log and send it live when connected. An outbox
    /// write error is logged and counted by the outbox; the event still goes live.
    pub fn record_event(&self, event: &Event) {
        let now = now_ms();
        let body = serde_json::to_vec(event).unwrap_or_default();
        let (msg, report) = self.with_outbox(|o| {
            let seq = o.events.next_seq();
            let msg = self.signer.record(Kind::Event, seq, now, body);
            let r = o.events.append(seq, now, true, &msg, now);
            (msg, r)
        });
        tracing::info!(event = %event.event_type, detail = %event.detail, "event");
        match report {
            Ok(r) => {
                if let Some((a, b)) = r.evicted_unacked {
                    self.record_overflow(a, b);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, event = %event.event_type, "could not store event on disk")
            }
        }
        self.link.send_live(msg);
    }

    /// `outbox_overflow` for evicted unacknowledged records.
    pub fn record_overflow(&self, from: u64, to: u64) {
        let e = Event {
            event_type: "outbox_overflow".into(),
            detail: serde_json::json!({ "dropped_from": from, "dropped_to": to }),
        };
        // Not via record_event's eviction path again: one level only.
        let now = now_ms();
        let body = serde_json::to_vec(&e).unwrap_or_default();
        let msg = self.with_outbox(|o| {
            let seq = o.events.next_seq();
            let msg = self.signer.record(Kind::Event, seq, now, body);
            let _ = o.events.append(seq, now, true, &msg, now);
            msg
        });
        self.link.send_live(msg);
    }

    /// Record link transitions as events (`link_lost`, `link_restored`).
    pub fn on_link_transition(&mut self, ev: &LinkEvent) {
        match ev {
            LinkEvent::Disconnected { at_ms } => {
                self.lost_at_ms = Some(*at_ms);
                self.record_event(&Event {
                    event_type: "link_lost".into(),
                    detail: serde_json::json!({ "from_ms": at_ms }),
                });
            }
            LinkEvent::Connected { at_ms } if self.lost_at_ms.take().is_some() => {
                self.record_event(&Event {
                    event_type: "link_restored".into(),
                    detail: serde_json::json!({ "at_ms": at_ms }),
                });
            }
            _ => {}
        }
    }

    pub fn send_live(&self, kind: Kind, body: Vec<u8>) {
        if self.link.is_connected() {
            let msg = self.signer.live(kind, now_ms(), body);
            self.link.send_live(msg);
        }
    }

    pub async fn stop(self) {
        self.with_outbox(|o| o.sync());
        let _ = tokio::time::timeout(Duration::from_secs(2), self.link_task).await;
    }
}
