//! Hub configuration: built-in defaults, then a TOML file (unknown keys refused), then
//! `THRESHOLD_*` environment variables, then command-line flags. The CLI resolves flags
//! and environment into [`Overrides`]; [`HubConfig::resolve`] layers the rest.
//!
//! With no configuration at all the hub runs embedded: SQLite in the data folder, its
//! own MQTT broker on 127.0.0.1:18830 (never 1883, which belongs to a system broker)
//! and media on local disk.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Every option, with its default. Each field is documented in docs/operations.md.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Folder for the SQLite database, the hub key and media.
    pub data_dir: PathBuf,
    /// Where the HTTP API and web apps listen.
    pub http_addr: SocketAddr,
    /// `sqlite://...` or `postgres://...`; default: SQLite in the data folder.
    pub database_url: Option<String>,
    /// External broker, `mqtt://[user[:password]@]host[:port]`; default: the hub's own
    /// device endpoint. Credentials in the URL are used unless `mqtt_username` /
    /// `mqtt_password` are set, and are never printed.
    pub mqtt_url: Option<String>,
    /// Where the hub's own device endpoint listens (used only without `mqtt_url`).
    pub embedded_mqtt_addr: SocketAddr,
    /// Topic prefix, so several deployments can share one broker.
    pub mqtt_topic_prefix: String,
    /// Username/password the hub uses on an external broker, if it needs them.
    pub mqtt_username: Option<String>,
    pub mqtt_password: Option<String>,
    /// With `mqtts://`: a PEM file of CA certificates to trust for the broker (besides
    /// the public web's roots).
    pub mqtt_ca_file: Option<PathBuf>,
    /// With `mqtts://`: a client certificate chain and key (PEM, the key 0600) the hub
    /// presents to the broker.
    pub mqtt_client_cert_file: Option<PathBuf>,
    pub mqtt_client_key_file: Option<PathBuf>,
    /// Give every device its own rights on the external broker through Mosquitto's
    /// dynamic-security plugin (the hub's broker user must be the plugin's admin).
    pub mqtt_dynsec: bool,
    /// Address devices are told to connect to (host:port); default: the broker's.
    pub device_mqtt_addr: Option<String>,
    /// A camera is live only while its newest frame was captured (camera clock, mapped
    /// onto the hub's) within this window; a lock's state is fresh while its report
    /// was signed within it. The hub's alert on a camera lost mid-delivery follows one
    /// window after its last frame.
    pub live_window_ms: i64,
    /// No verified message at all for this long: offline.
    pub offline_after_ms: i64,
    /// Heartbeat period devices are told to use.
    pub heartbeat_ms: i64,
    /// Largest difference between a device clock and the hub's.
    pub max_clock_skew_ms: i64,
    /// A picture unchanged beyond noise this long is flagged "possibly frozen".
    pub frozen_after_ms: i64,
    /// Outside deliveries, a camera offline this long is reported to the owner.
    pub offline_grace_ms: i64,
    /// Sign an audit checkpoint every this many entries.
    pub audit_checkpoint_every: u64,
    /// An external witness of the signed checkpoints: a file path (a JSON line per
    /// checkpoint, fsync'd) or an `https://` URL (each checkpoint POSTed as JSON).
    pub audit_witness: Option<String>,
    /// A gap in a device's event log is an alert only if still open after this long
    /// (records reorder briefly around a reconnect).
    pub gap_alert_grace_ms: i64,
    /// Hub signing key; default `<data_dir>/hub.key`.
    pub hub_key_file: Option<PathBuf>,
    /// Serve HTTPS on `http_addr` (with `tls_cert_file`/`tls_key_file`, or else a
    /// certificate from the hub's own local CA in `<data_dir>/tls/`).
    pub tls: bool,
    /// PEM certificate chain and key for HTTPS (the key file must be 0600).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Extra names (host names, LAN addresses) the local CA's certificate is for.
    pub tls_names: Vec<String>,
    /// With TLS: also listen here on plain HTTP, only to redirect to HTTPS.
    pub http_redirect_addr: Option<SocketAddr>,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For`, `-Proto`
    /// and `-Host` name the client (`http::forwarded`). Empty: no one's.
    pub trusted_proxies: Vec<String>,
    /// A PEM file of CA certificates the hub also trusts for webhooks and Web Push
    /// (receivers on a private PKI); the public web's roots are always trusted.
    pub outbound_ca_file: Option<PathBuf>,
    /// Allow `http://` webhooks to hosts other than loopback (a LAN receiver without
    /// TLS; the payloads and their signatures then cross the network in clear).
    pub webhooks_allow_http: bool,
    /// With TLS and the hub's own endpoint: devices may also connect here with MQTT
    /// over TLS (same certificate as HTTPS; 8883 is the usual port).
    pub mqtt_tls_addr: Option<SocketAddr>,
    /// Session lifetime for owners and couriers.
    pub session_ttl_ms: i64,
    /// A delivered session not confirmed closed and locked by a fresh signed report
    /// within this long is an alert.
    pub session_secure_limit_ms: i64,
    /// After the camera is lost mid-delivery, the door must be confirmed closed and
    /// locked by a fresh signed report within this long, or the owner is told the door
    /// may be unlocked (a second critical alert) and the lock is commanded again.
    pub incident_secure_limit_ms: i64,
    /// A garage door the hub commanded closed after a delivery must report closed
    /// (fresh, signed) within this long, or the owner gets `garage_left_open` with the
    /// door's last frame and the opener a second close command.
    pub garage_close_limit_ms: i64,
    /// Lifetime of an unlock token.
    pub unlock_token_ttl_ms: i64,
    /// A delivery's recording continues this long after its session ends.
    pub recording_tail_ms: i64,
    /// A recording whose session never ends stops after this long.
    pub recording_max_ms: i64,
    /// Stored frames older than this (hub receive time) are deleted.
    pub media_max_age_ms: i64,
    /// When stored frames exceed this many bytes, the oldest are deleted.
    pub media_max_bytes: u64,
    /// A webhook delivery is retried (exponential backoff from 1 s, capped at 10 min)
    /// up to this many attempts, then marked failed.
    pub webhook_max_attempts: u32,
    /// Run as one node of a fleet under this name, unique among the nodes
    /// (docs/operations.md "Run a fleet"). Needs PostgreSQL and an external broker.
    pub fleet_node: Option<String>,
    /// How many partitions the fleet's homes are hashed into; every node must agree.
    pub fleet_partitions: u32,
    /// A node's lease on a partition lasts this long unless renewed (a third of it).
    pub fleet_lease_ms: i64,
    /// Home Assistant's broker, `mqtt[s]://[user[:password]@]host[:port]`: the hub
    /// publishes MQTT discovery there (docs/home-assistant.md). Off when unset.
    /// Credentials in the URL are used unless `ha_mqtt_username` / `ha_mqtt_password`
    /// are set, and are never printed.
    pub ha_mqtt_url: Option<String>,
    pub ha_mqtt_username: Option<String>,
    pub ha_mqtt_password: Option<String>,
    /// With `mqtts://`: a PEM file of CA certificates to trust for Home Assistant's
    /// broker (besides the public web's roots).
    pub ha_mqtt_ca_file: Option<PathBuf>,
    /// Home Assistant's discovery prefix (its MQTT integration's setting).
    pub ha_discovery_prefix: String,
    /// Prefix of the topics the hub publishes states on for Home Assistant.
    pub ha_topic_prefix: String,
    /// At most one picture per camera this often to Home Assistant.
    pub ha_picture_interval_ms: i64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            data_dir: PathBuf::from("threshold-data"),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            mqtt_url: None,
            embedded_mqtt_addr: SocketAddr::from(([127, 0, 0, 1], 18830)),
            mqtt_topic_prefix: "threshold".into(),
            mqtt_username: None,
            mqtt_password: None,
            mqtt_dynsec: false,
            mqtt_ca_file: None,
            mqtt_client_cert_file: None,
            mqtt_client_key_file: None,
            device_mqtt_addr: None,
            live_window_ms: 1000,
            offline_after_ms: 5000,
            heartbeat_ms: 250,
            max_clock_skew_ms: 2000,
            frozen_after_ms: 10_000,
            offline_grace_ms: 60_000,
            audit_checkpoint_every: 100,
            audit_witness: None,
            gap_alert_grace_ms: 5000,
            hub_key_file: None,
            tls: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_names: Vec::new(),
            http_redirect_addr: None,
            trusted_proxies: Vec::new(),
            mqtt_tls_addr: None,
            outbound_ca_file: None,
            webhooks_allow_http: false,
            session_ttl_ms: 7 * 24 * 3600 * 1000,
            unlock_token_ttl_ms: 30_000,
            session_secure_limit_ms: 120_000,
            incident_secure_limit_ms: 60_000,
            garage_close_limit_ms: 60_000,
            recording_tail_ms: 10_000,
            recording_max_ms: 3_600_000,
            media_max_age_ms: 30 * 24 * 3600 * 1000,
            media_max_bytes: 10 * 1024 * 1024 * 1024,
            webhook_max_attempts: 10,
            fleet_node: None,
            fleet_partitions: 64,
            fleet_lease_ms: 3000,
            ha_mqtt_url: None,
            ha_mqtt_username: None,
            ha_mqtt_password: None,
            ha_mqtt_ca_file: None,
            ha_discovery_prefix: "homeassistant".into(),
            ha_topic_prefix: "threshold".into(),
            ha_picture_interval_ms: 2000,
        }
    }
}

/// Values from flags or the environment; `None` leaves the lower layer in force.
/// Shown without secrets: the broker URL's password and `mqtt_password` are masked.
impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("data_dir", &self.data_dir)
            .field("http_addr", &self.http_addr)
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::broker_url::redact),
            )
            .field(
                "mqtt_url",
                &self.mqtt_url.as_deref().map(crate::broker_url::redact),
            )
            .field("embedded_mqtt_addr", &self.embedded_mqtt_addr)
            .field("mqtt_topic_prefix", &self.mqtt_topic_prefix)
            .field("mqtt_username", &self.mqtt_username)
            .field("mqtt_password", &self.mqtt_password.as_ref().map(|_| "***"))
            .field("device_mqtt_addr", &self.device_mqtt_addr)
            .field("live_window_ms", &self.live_window_ms)
            .field("heartbeat_ms", &self.heartbeat_ms)
            .field(
                "ha_mqtt_url",
                &self.ha_mqtt_url.as_deref().map(crate::broker_url::redact),
            )
            .field(
                "ha_mqtt_password",
                &self.ha_mqtt_password.as_ref().map(|_| "***"),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub http_addr: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub mqtt_url: Option<String>,
    pub mqtt_username: Option<String>,
    /// From the environment or a file, never a command-line flag (other users of
    /// the machine can read a process's arguments).
    pub mqtt_password: Option<String>,
    pub mqtt_dynsec: bool,
    pub tls: bool,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_names: Vec<String>,
    pub http_redirect_addr: Option<SocketAddr>,
    /// Replaces the file's list when not empty.
    pub trusted_proxies: Vec<String>,
    pub mqtt_tls_addr: Option<SocketAddr>,
    pub embedded_mqtt_addr: Option<SocketAddr>,
    pub mqtt_topic_prefix: Option<String>,
    pub live_window_ms: Option<i64>,
    pub heartbeat_ms: Option<i64>,
    pub fleet_node: Option<String>,
    pub ha_mqtt_url: Option<String>,
    pub ha_mqtt_username: Option<String>,
    /// From the environment or a file, never a command-line flag.
    pub ha_mqtt_password: Option<String>,
    pub ha_mqtt_ca_file: Option<PathBuf>,
    pub ha_discovery_prefix: Option<String>,
    pub ha_topic_prefix: Option<String>,
    pub audit_witness: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl HubConfig {
    /// Defaults, then `file` if given, then `over`.
    pub fn resolve(file: Option<&Path>, over: Overrides) -> Result<HubConfig, ConfigError> {
        let mut c = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                Self::from_toml(&text).map_err(|message| ConfigError::Parse {
                    path: p.to_owned(),
                    message,
                })?
            }
            None => HubConfig::default(),
        };
        if let Some(v) = over.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = over.http_addr {
            c.http_addr = v;
        }
        if over.database_url.is_some() {
            c.database_url = over.database_url;
        }
        if over.mqtt_url.is_some() {
            c.mqtt_url = over.mqtt_url;
        }
        if over.mqtt_username.is_some() {
            c.mqtt_username = over.mqtt_username;
        }
        if over.mqtt_password.is_some() {
            c.mqtt_password = over.mqtt_password;
        }
        if over.mqtt_dynsec {
            c.mqtt_dynsec = true;
        }
        if over.tls {
            c.tls = true;
        }
        if over.tls_cert_file.is_some() {
            c.tls_cert_file = over.tls_cert_file;
        }
        if over.tls_key_file.is_some() {
            c.tls_key_file = over.tls_key_file;
        }
        if !over.tls_names.is_empty() {
            c.tls_names = over.tls_names;
        }
        if over.http_redirect_addr.is_some() {
            c.http_redirect_addr = over.http_redirect_addr;
        }
        if !over.trusted_proxies.is_empty() {
            c.trusted_proxies = over.trusted_proxies;
        }
        if over.mqtt_tls_addr.is_some() {
            c.mqtt_tls_addr = over.mqtt_tls_addr;
        }
        if let Some(v) = over.embedded_mqtt_addr {
            c.embedded_mqtt_addr = v;
        }
        if let Some(v) = over.mqtt_topic_prefix {
            c.mqtt_topic_prefix = v;
        }
        if let Some(v) = over.live_window_ms {
            c.live_window_ms = v;
        }
        if let Some(v) = over.heartbeat_ms {
            c.heartbeat_ms = v;
        }
        if over.fleet_node.is_some() {
            c.fleet_node = over.fleet_node;
        }
        if over.ha_mqtt_url.is_some() {
            c.ha_mqtt_url = over.ha_mqtt_url;
        }
        if over.ha_mqtt_username.is_some() {
            c.ha_mqtt_username = over.ha_mqtt_username;
        }
        if over.ha_mqtt_password.is_some() {
            c.ha_mqtt_password = over.ha_mqtt_password;
        }
        if over.ha_mqtt_ca_file.is_some() {
            c.ha_mqtt_ca_file = over.ha_mqtt_ca_file;
        }
        if let Some(v) = over.ha_discovery_prefix {
            c.ha_discovery_prefix = v;
        }
        if let Some(v) = over.ha_topic_prefix {
            c.ha_topic_prefix = v;
        }
        if over.audit_witness.is_some() {
            c.audit_witness = over.audit_witness;
        }
        c.validate()?;
        Ok(c)
    }

    pub fn from_toml(text: &str) -> Result<HubConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.mqtt_url.is_none() && self.embedded_mqtt_addr.port() == 1883 {
            return bad("the embedded broker must not take port 1883 (a system broker's port); choose another embedded_mqtt_addr");
        }
        if self.live_window_ms < 100 || self.live_window_ms > 60_000 {
            return bad("live_window_ms must be between 100 and 60000");
        }
        if self.offline_after_ms <= self.live_window_ms {
            return bad("offline_after_ms must be larger than live_window_ms");
        }
        if self.heartbeat_ms < 20 || self.heartbeat_ms >= self.live_window_ms {
            return bad("heartbeat_ms must be at least 20 and below live_window_ms");
        }
        let prefix_ok = !self.mqtt_topic_prefix.is_empty()
            && self.mqtt_topic_prefix.len() <= 64
            && self
                .mqtt_topic_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '/');
        if !prefix_ok {
            return bad("mqtt_topic_prefix must be 1-64 characters of [A-Za-z0-9_-/]");
        }
        if !ha_prefix_ok(&self.ha_discovery_prefix) || !ha_prefix_ok(&self.ha_topic_prefix) {
            return bad(
                "ha_discovery_prefix and ha_topic_prefix must be 1-64 characters of [A-Za-z0-9_-/], with no empty level",
            );
        }
        if let Some(u) = &self.ha_mqtt_url {
            crate::broker_url::BrokerUrl::parse_setting(u, "ha_mqtt_url")
                .map_err(ConfigError::Invalid)?;
        }
        if !(500..=600_000).contains(&self.ha_picture_interval_ms) {
            return bad("ha_picture_interval_ms must be between 500 and 600000");
        }
        if !(1000..=120_000).contains(&self.unlock_token_ttl_ms) {
            return bad(
                "unlock_token_ttl_ms must be between 1000 and 120000 (locks refuse longer tokens)",
            );
        }
        if let Some(u) = &self.mqtt_url {
            crate::broker_url::BrokerUrl::parse(u).map_err(ConfigError::Invalid)?;
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return bad("tls_cert_file and tls_key_file go together");
        }
        if self.mqtt_tls_addr.is_some() && (!self.https() || self.mqtt_url.is_some()) {
            return bad(
                "mqtt_tls_addr is the hub's own endpoint over TLS: set tls, and no mqtt_url",
            );
        }
        if self.http_redirect_addr.is_some() && !self.https() {
            return bad("http_redirect_addr redirects to HTTPS: set tls too");
        }
        self.trusted_proxies()?;
        if self.mqtt_client_cert_file.is_some() != self.mqtt_client_key_file.is_some() {
            return bad("mqtt_client_cert_file and mqtt_client_key_file go together");
        }
        if self.mqtt_dynsec && self.mqtt_url.is_none() {
            return bad("mqtt_dynsec provisions an external broker: set mqtt_url too");
        }
        if self.session_secure_limit_ms < 1000
            || self.incident_secure_limit_ms < 1000
            || self.garage_close_limit_ms < 1000
        {
            return bad(
                "session_secure_limit_ms, incident_secure_limit_ms and garage_close_limit_ms must be at least 1000",
            );
        }
        if self.recording_tail_ms < 0 || self.recording_max_ms < 1000 {
            return bad("recording_tail_ms must be >= 0 and recording_max_ms >= 1000");
        }
        if self.media_max_age_ms < 60_000 {
            return bad("media_max_age_ms must be at least 60000");
        }
        if let Some(w) = &self.audit_witness {
            crate::audit::witness::Target::parse(w).map_err(ConfigError::Invalid)?;
        }
        if self.webhook_max_attempts == 0 || self.webhook_max_attempts > 30 {
            return bad("webhook_max_attempts must be between 1 and 30");
        }
        if let Some(node) = &self.fleet_node {
            let name_ok = !node.is_empty()
                && node.len() <= 64
                && node
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !name_ok {
                return bad("fleet_node must be 1-64 characters of [A-Za-z0-9._-]");
            }
            let postgres = self
                .database_url
                .as_deref()
                .is_some_and(|u| u.starts_with("postgres:") || u.starts_with("postgresql:"));
            if !postgres || self.mqtt_url.is_none() {
                return bad("a fleet node shares its database and broker with the other nodes: set database_url to PostgreSQL (postgres://...) and mqtt_url to the fleet's broker; SQLite and the embedded broker serve one node only");
            }
            if !(1..=4096).contains(&self.fleet_partitions) {
                return bad("fleet_partitions must be between 1 and 4096");
            }
            if !(1000..=60_000).contains(&self.fleet_lease_ms) {
                return bad("fleet_lease_ms must be between 1000 and 60000");
            }
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("threshold.db").display()
            )
        })
    }

    /// `trusted_proxies`, parsed.
    pub fn trusted_proxies(&self) -> Result<crate::http::forwarded::TrustedProxies, ConfigError> {
        crate::http::forwarded::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// Whether the hub serves HTTPS.
    pub fn https(&self) -> bool {
        self.tls || self.tls_cert_file.is_some()
    }

    pub fn hub_key_file(&self) -> PathBuf {
        self.hub_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("hub.key"))
    }

    pub fn liveness(&self) -> threshold_core::liveness::LivenessConfig {
        threshold_core::liveness::LivenessConfig {
            live_window_ms: self.live_window_ms,
            offline_after_ms: self.offline_after_ms,
            max_clock_skew_ms: self.max_clock_skew_ms,
            frozen_after_ms: self.frozen_after_ms,
            ..Default::default()
        }
    }

    /// The delivery state machine's time limits.
    pub fn delivery_limits(&self) -> threshold_core::delivery::Limits {
        threshold_core::delivery::Limits {
            secure_ms: self.session_secure_limit_ms,
            incident_ms: self.incident_secure_limit_ms,
            garage_close_ms: self.garage_close_limit_ms,
        }
    }
}

/// A Home Assistant topic prefix: no wildcards, no empty level, nothing outside
/// `[A-Za-z0-9_-/]`.
fn ha_prefix_ok(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && !p.starts_with('/')
        && !p.ends_with('/')
        && !p.contains("//")
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_carries_no_secrets() {
        let c = HubConfig {
            mqtt_url: Some("mqtt://hub:url-secret@broker:1883".into()),
            mqtt_password: Some("field-secret".into()),
            database_url: Some("postgres://app:db-secret@db/threshold".into()),
            ..Default::default()
        };
        let shown = format!("{c:?}");
        for secret in ["url-secret", "field-secret", "db-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("broker:1883"), "{shown}");
    }

    #[test]
    fn defaults_are_valid_and_avoid_1883() {
        let c = HubConfig::default();
        c.validate().unwrap();
        assert_ne!(c.embedded_mqtt_addr.port(), 1883);
        assert_eq!(c.live_window_ms, 1000);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = HubConfig::from_toml("live_window_ms = 1000\nlive_widnow_ms = 3\n").unwrap_err();
        assert!(e.contains("live_widnow_ms"), "{e}");
    }

    #[test]
    fn file_values_apply_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("thr-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("hub.toml");
        std::fs::write(
            &f,
            "live_window_ms = 1000\nheartbeat_ms = 200\nmqtt_topic_prefix = \"site-a\"\n",
        )
        .unwrap();
        let c = HubConfig::resolve(
            Some(&f),
            Overrides {
                heartbeat_ms: Some(100),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (
                c.live_window_ms,
                c.heartbeat_ms,
                c.mqtt_topic_prefix.as_str()
            ),
            (1000, 100, "site-a")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn home_assistant_settings_are_checked_and_their_secrets_hidden() {
        let c = HubConfig {
            ha_mqtt_url: Some("mqtts://ha:url-secret@ha.lan:8883".into()),
            ha_mqtt_password: Some("field-secret".into()),
            ..Default::default()
        };
        c.validate().unwrap();
        let shown = format!("{c:?}");
        for secret in ["url-secret", "field-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("ha.lan:8883"), "{shown}");
        let err = |f: &dyn Fn(&mut HubConfig)| {
            let mut c = HubConfig::default();
            f(&mut c);
            c.validate().err().map(|e| e.to_string())
        };
        let bad_url = err(&|c| c.ha_mqtt_url = Some("http://ha:pw-secret@ha.lan".into())).unwrap();
        assert!(
            bad_url.contains("ha_mqtt_url") && !bad_url.contains("pw-secret"),
            "{bad_url}"
        );
        for prefix in ["", "home/#", "a/+/b", "/a", "a/", "a//b", "a b"] {
            assert!(
                err(&|c| c.ha_discovery_prefix = prefix.into()).is_some(),
                "{prefix:?}"
            );
            assert!(
                err(&|c| c.ha_topic_prefix = prefix.into()).is_some(),
                "{prefix:?}"
            );
        }
        assert!(err(&|c| c.ha_topic_prefix = "site-a/threshold".into()).is_none());
        assert!(err(&|c| c.ha_picture_interval_ms = 10).is_some());
        let c = HubConfig::from_toml(
            "ha_mqtt_url = \"mqtt://127.0.0.1:1883\"\nha_discovery_prefix = \"ha\"\n",
        )
        .unwrap();
        assert_eq!(
            (
                c.ha_mqtt_url.as_deref(),
                c.ha_discovery_prefix.as_str(),
                c.ha_topic_prefix.as_str()
            ),
            (Some("mqtt://127.0.0.1:1883"), "ha", "threshold")
        );
    }

    #[test]
    fn embedded_broker_on_1883_is_refused() {
        let c = HubConfig {
            embedded_mqtt_addr: "127.0.0.1:1883".parse().unwrap(),
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn a_fleet_node_needs_postgres_and_an_external_broker() {
        let node = |db: Option<&str>, mqtt: Option<&str>| HubConfig {
            fleet_node: Some("a".into()),
            database_url: db.map(str::to_owned),
            mqtt_url: mqtt.map(str::to_owned),
            ..Default::default()
        };
        let err = |c: HubConfig| c.validate().err().map(|e| e.to_string());
        assert!(err(node(None, Some("mqtt://127.0.0.1:1883")))
            .is_some_and(|e| e.contains("PostgreSQL")));
        assert!(err(node(
            Some("sqlite:///tmp/x.db"),
            Some("mqtt://127.0.0.1:1883")
        ))
        .is_some());
        assert!(err(node(Some("postgres://h/db"), None)).is_some());
        assert_eq!(
            err(node(Some("postgres://h/db"), Some("mqtt://127.0.0.1:1883"))),
            None
        );
        let mut bad_name = node(Some("postgres://h/db"), Some("mqtt://127.0.0.1:1883"));
        bad_name.fleet_node = Some("a b".into());
        assert!(err(bad_name).is_some());
    }

    #[test]
    fn trusted_proxies_come_from_the_file_or_the_flags_and_bad_ones_stop_the_start() {
        let c =
            HubConfig::from_toml("trusted_proxies = [\"127.0.0.1/32\", \"fd00::/8\"]\n").unwrap();
        let t = c.trusted_proxies().unwrap();
        assert!(t.contains("fd00::1".parse().unwrap()) && !t.contains("10.0.0.1".parse().unwrap()));
        assert!(HubConfig::default().trusted_proxies().unwrap().is_empty());
        let over = |list: &[&str]| {
            HubConfig::resolve(
                None,
                Overrides {
                    trusted_proxies: list.iter().map(|s| (*s).to_owned()).collect(),
                    ..Default::default()
                },
            )
        };
        let c = over(&["10.0.0.0/8,192.168.0.0/16", "::1"]).unwrap();
        assert!(c
            .trusted_proxies()
            .unwrap()
            .contains("192.168.4.4".parse().unwrap()));
        let e = over(&["10.0.0.0/8", "proxy.lan"]).unwrap_err().to_string();
        assert!(
            e.contains("trusted_proxies") && e.contains("proxy.lan") && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn the_audit_witness_is_a_file_or_an_https_url() {
        let c = HubConfig::from_toml("audit_witness = \"/srv/witness/hub.jsonl\"\n").unwrap();
        c.validate().unwrap();
        let over = |w: &str| {
            HubConfig::resolve(
                None,
                Overrides {
                    audit_witness: Some(w.into()),
                    ..Default::default()
                },
            )
        };
        assert!(over("https://witness.example/cp").is_ok());
        let e = over("http://192.168.1.9/cp").unwrap_err().to_string();
        assert!(e.contains("audit_witness"), "{e}");
        assert!(over("ftp://x/y").is_err());
    }
}
