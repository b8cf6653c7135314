//! `threshold agent camera|lock|contact|garage|wifi-sensor`: run a device agent next to real hardware or a
//! simulator.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use threshold_agent::camera::rtsp::{redact, RtspConfig};
use threshold_agent::{
    CameraConfig, CommonConfig, ContactConfig, ContactDriverConfig, GarageConfig,
    GarageDriverConfig, LockConfig, LockDriverConfig, OpenerDialect, OpenerMqttConfig,
    SimulatedGarage, SimulatedHome, SourceConfig, Z2mConfig,
};

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Folder for this device's key, enrolment, outbox and counters.
    #[arg(long, env = "THRESHOLD_AGENT_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Hub URL for the first start's enrolment, e.g. http://127.0.0.1:8080 (kept in the
    /// enrolment; also used to renew the broker credentials when the broker refuses them).
    #[arg(long, env = "THRESHOLD_HUB_URL")]
    pub hub: Option<String>,
    /// One-time pairing code from the owner's app (first start only).
    #[arg(long, env = "THRESHOLD_PAIRING_CODE")]
    pub pairing_code: Option<String>,
    /// The hub's CA certificate (PEM; a hub with its own CA serves it at /ca.pem),
    /// trusted for HTTPS enrolment and MQTT over TLS besides the public roots.
    #[arg(long, env = "THRESHOLD_HUB_CA")]
    pub hub_ca: Option<PathBuf>,
}

impl Common {
    fn into_config(self) -> CommonConfig {
        let mut c = CommonConfig::new(self.data_dir);
        c.hub_url = self.hub;
        c.pairing_code = self.pairing_code;
        c.hub_ca_file = self.hub_ca;
        c
    }
}

/// Credentials of an RTSP camera, kept out of the URL (and so out of the process
/// list). The password can also come from the environment variable
/// `THRESHOLD_RTSP_PASSWORD`; it is never a command-line argument of its own.
#[derive(Args, Debug, Clone, Default)]
pub struct RtspCredentials {
    /// The RTSP camera's user name (instead of `user@` in the URL).
    #[arg(long, env = "THRESHOLD_RTSP_USER")]
    pub rtsp_user: Option<String>,
    /// A file holding the RTSP camera's password (one line).
    #[arg(long, env = "THRESHOLD_RTSP_PASSWORD_FILE")]
    pub rtsp_password_file: Option<PathBuf>,
}

/// The environment variable an RTSP camera's password may come from.
pub const RTSP_PASSWORD_ENV: &str = "THRESHOLD_RTSP_PASSWORD";

#[derive(Subcommand, Debug)]
pub enum AgentCmd {
    /// A camera: synthetic test pattern, a folder of JPEGs, an HTTP snapshot URL, an
    /// MJPEG stream or an RTSP camera (H.264).
    Camera {
        #[command(flatten)]
        common: Common,
        /// synthetic | folder:PATH | snapshot:URL | mjpeg:URL | rtsp://[user@]host[:port]/path
        #[arg(long, default_value = "synthetic")]
        source: String,
        #[command(flatten)]
        rtsp: RtspCredentials,
        /// Frames captured per second.
        #[arg(long, default_value_t = 5)]
        fps: u32,
        /// The camera's wpa_supplicant control socket (e.g. /var/run/wpa_supplicant/wlan0):
        /// detect deauthentication attacks on its own link and report them (law 7).
        #[arg(long)]
        wpa_ctrl: Option<PathBuf>,
    },
    /// A Wi-Fi sensor: reports deauthentication attacks seen by a wpa_supplicant control
    /// socket (and, built with `wifi-live`, a monitor-mode interface).
    WifiSensor {
        #[command(flatten)]
        common: Common,
        /// wpa_supplicant control socket, e.g. /var/run/wpa_supplicant/wlan0.
        #[arg(long)]
        wpa_ctrl: Option<PathBuf>,
        /// Monitor-mode interface, e.g. wlan1mon (needs the `wifi-live` build feature).
        #[arg(long)]
        iface: Option<String>,
    },
    /// A lock (with its door contact): simulator or Zigbee2MQTT.
    Lock {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        driver: Driver,
        #[command(flatten)]
        rules: LockRules,
    },
    /// A garage-door opener: simulator, a Zigbee2MQTT cover, ratgdo or an ESPHome cover
    /// over MQTT. The garage door is the barrier: tokens open it, the hub closes it.
    Garage {
        #[command(flatten)]
        common: Common,
        /// simulator | zigbee2mqtt:NAME | ratgdo:TOPIC_PREFIX | esphome:NODE/COVER_ID
        #[arg(long, default_value = "simulator")]
        opener: String,
        /// The home's broker where the opener publishes, mqtt://[user:password@]host:port.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        opener_mqtt_url: String,
        /// Zigbee2MQTT base topic.
        #[arg(long, default_value = "zigbee2mqtt")]
        z2m_base_topic: String,
        /// ESPHome: object id of the obstruction binary sensor, if the node has one.
        #[arg(long)]
        esphome_obstruction: Option<String>,
        /// Close a door opened for a token that is still open after this long (ms),
        /// and again every this long (60000 to 3600000).
        #[arg(long, default_value_t = 300_000)]
        auto_close_ms: i64,
        #[command(flatten)]
        statements: StatementRules,
    },
    /// A door contact sensor: simulator or Zigbee2MQTT.
    Contact {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        driver: Driver,
    },
}

/// The lock's own rules (docs/protocol.md §10.3).
#[derive(Args, Debug, Clone)]
pub struct LockRules {
    /// Relock after this long unlocked if the door was never opened (at most 60000).
    #[arg(long, default_value_t = 10_000)]
    pub unlock_timeout_ms: i64,
    #[command(flatten)]
    pub statements: StatementRules,
}

/// How a lock or opener judges the camera statement a token carries.
#[derive(Args, Debug, Clone)]
pub struct StatementRules {
    /// Refuse an unlock whose camera statement is older than this by the lock's clock.
    #[arg(long, default_value_t = 3_000)]
    pub camera_statement_max_age_ms: i64,
    /// Refuse an unlock whose camera statement's capture time is further than this
    /// ahead of the lock's clock.
    #[arg(long, default_value_t = 2_000)]
    pub camera_statement_max_future_ms: i64,
    /// Refuse every unlock that carries the owner's waiver instead of a camera
    /// statement (the owner then cannot unlock without a watching camera).
    #[arg(long)]
    pub refuse_camera_waiver: bool,
}

#[derive(Args, Debug, Clone)]
pub struct Driver {
    /// simulator | zigbee2mqtt
    #[arg(long, default_value = "simulator")]
    pub driver: String,
    /// Zigbee2MQTT broker, mqtt://host:port.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub z2m_url: String,
    /// Zigbee2MQTT base topic.
    #[arg(long, default_value = "zigbee2mqtt")]
    pub z2m_base_topic: String,
    /// Friendly name of the lock in Zigbee2MQTT.
    #[arg(long)]
    pub z2m_lock: Option<String>,
    /// Friendly name of the door contact sensor in Zigbee2MQTT.
    #[arg(long)]
    pub z2m_contact: Option<String>,
}

fn z2m(d: &Driver) -> anyhow::Result<Z2mConfig> {
    let url = threshold_hub::broker_url::BrokerUrl::parse(&d.z2m_url)
        .map_err(|e| anyhow::anyhow!("--z2m-url: {e}"))?;
    let mut c = Z2mConfig::new(&url.host, url.port);
    c.username = url.username;
    c.password = url.password;
    c.base_topic = d.z2m_base_topic.clone();
    c.lock = d.z2m_lock.clone();
    c.contact = d.z2m_contact.clone();
    Ok(c)
}

impl StatementRules {
    fn apply(&self, rules: &mut threshold_agent::lock::logic::Rules) -> anyhow::Result<()> {
        anyhow::ensure!(
            (500..=10_000).contains(&self.camera_statement_max_age_ms),
            "--camera-statement-max-age-ms must be between 500 and 10000"
        );
        anyhow::ensure!(
            (500..=10_000).contains(&self.camera_statement_max_future_ms),
            "--camera-statement-max-future-ms must be between 500 and 10000"
        );
        rules.camera_statement_max_age_ms = self.camera_statement_max_age_ms;
        rules.camera_statement_max_future_ms = self.camera_statement_max_future_ms;
        rules.allow_camera_waiver = !self.refuse_camera_waiver;
        Ok(())
    }
}

/// `--opener`: which driver, and the names the opener's firmware uses.
pub fn parse_opener(
    spec: &str,
    mqtt_url: &str,
    z2m_base: &str,
    esphome_obstruction: Option<&str>,
) -> anyhow::Result<GarageDriverConfig> {
    if spec == "simulator" {
        return Ok(GarageDriverConfig::Simulator(SimulatedGarage::new()));
    }
    let named = |what: &str, v: &str| -> anyhow::Result<String> {
        anyhow::ensure!(
            !v.is_empty() && !v.contains(['#', '+']) && !v.starts_with('/') && !v.ends_with('/'),
            "--opener {what}: give a topic name without wildcards or leading/trailing '/'"
        );
        Ok(v.to_owned())
    };
    let dialect = match spec.split_once(':') {
        Some(("zigbee2mqtt", name)) => OpenerDialect::Zigbee2Mqtt {
            base: z2m_base.to_owned(),
            name: named("zigbee2mqtt:NAME", name)?,
        },
        Some(("ratgdo", prefix)) => OpenerDialect::Ratgdo {
            prefix: named("ratgdo:TOPIC_PREFIX", prefix)?,
        },
        Some(("esphome", rest)) => {
            let (node, cover) = rest
                .rsplit_once('/')
                .ok_or_else(|| anyhow::anyhow!("--opener esphome:NODE/COVER_ID, e.g. esphome:garage-door/garage_door"))?;
            OpenerDialect::Esphome {
                node: named("esphome:NODE", node)?,
                cover: named("esphome:COVER_ID", cover)?,
                obstruction: esphome_obstruction.map(str::to_owned),
            }
        }
        _ => anyhow::bail!(
            "--opener must be simulator, zigbee2mqtt:NAME, ratgdo:TOPIC_PREFIX or esphome:NODE/COVER_ID"
        ),
    };
    let url = threshold_hub::broker_url::BrokerUrl::parse(mqtt_url)
        .map_err(|e| anyhow::anyhow!("--opener-mqtt-url: {e}"))?;
    Ok(GarageDriverConfig::Mqtt(OpenerMqttConfig {
        host: url.host,
        port: url.port,
        username: url.username,
        password: url.password,
        dialect,
    }))
}

/// Read `--source`. Every error names what is wrong without repeating a password that
/// may be in the text.
pub fn parse_source(s: &str) -> anyhow::Result<SourceConfig> {
    if s == "synthetic" {
        return Ok(SourceConfig::Synthetic {
            width: 320,
            height: 240,
        });
    }
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
        return RtspConfig::parse(s)
            .map(SourceConfig::Rtsp)
            .map_err(anyhow::Error::msg);
    }
    let http = |kind: &str, u: &str| -> anyhow::Result<String> {
        let l = u.to_ascii_lowercase();
        if l.starts_with("http://") || l.starts_with("https://") {
            Ok(u.to_owned())
        } else if l.starts_with("rtsp") {
            anyhow::bail!(
                "{kind}: needs an http(s):// URL; for an RTSP camera give --source rtsp://…"
            )
        } else {
            anyhow::bail!(
                "{kind}: needs an http:// or https:// URL, not {}",
                redact(u)
            )
        }
    };
    match s.split_once(':') {
        Some(("folder", p)) => Ok(SourceConfig::Folder(PathBuf::from(p))),
        Some(("snapshot", u)) => Ok(SourceConfig::HttpSnapshot {
            url: http("snapshot", u)?,
        }),
        Some(("mjpeg", u)) => Ok(SourceConfig::Mjpeg {
            url: http("mjpeg", u)?,
        }),
        // `rtsp:URL`, in the style of the others.
        Some(("rtsp", u)) => RtspConfig::parse(u)
            .map(SourceConfig::Rtsp)
            .map_err(anyhow::Error::msg),
        _ => anyhow::bail!(
            "--source must be synthetic, folder:PATH, snapshot:URL, mjpeg:URL or rtsp://[user@]host[:port]/path"
        ),
    }
}

/// Add the credentials given apart from the URL to an RTSP source: `--rtsp-user`,
/// the password from `--rtsp-password-file` or `env_password`
/// (`THRESHOLD_RTSP_PASSWORD`). Each may be given in one place only.
pub fn apply_rtsp_credentials(
    source: &mut SourceConfig,
    given: &RtspCredentials,
    env_password: Option<String>,
) -> anyhow::Result<()> {
    let SourceConfig::Rtsp(cfg) = source else {
        anyhow::ensure!(
            given.rtsp_user.is_none() && given.rtsp_password_file.is_none(),
            "--rtsp-user and --rtsp-password-file are for an rtsp:// source"
        );
        return Ok(());
    };
    if let Some(u) = &given.rtsp_user {
        anyhow::ensure!(
            cfg.username.as_ref().is_none_or(|x| x == u),
            "the RTSP user name is given twice (in the URL and --rtsp-user) and differs"
        );
        cfg.username = Some(u.clone());
    }
    let from_file = match &given.rtsp_password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--rtsp-password-file {}: {e}", path.display()))?;
            let line = text.lines().next().unwrap_or("").to_owned();
            anyhow::ensure!(
                !line.is_empty(),
                "--rtsp-password-file {} is empty",
                path.display()
            );
            Some(line)
        }
        None => None,
    };
    let env_password = env_password.filter(|p| !p.is_empty());
    let places = [
        cfg.password.is_some(),
        from_file.is_some(),
        env_password.is_some(),
    ];
    anyhow::ensure!(
        places.iter().filter(|x| **x).count() <= 1,
        "the RTSP password is given more than once (URL, --rtsp-password-file, {RTSP_PASSWORD_ENV}): give it in one place"
    );
    if let Some(p) = from_file.or(env_password) {
        cfg.password = Some(p);
    }
    anyhow::ensure!(
        cfg.password.is_none() || cfg.username.is_some(),
        "an RTSP password needs a user name (user@ in the URL, or --rtsp-user)"
    );
    Ok(())
}

pub async fn run(c: AgentCmd) -> anyhow::Result<ExitCode> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::hub_cmd::shutdown_signal().await;
        let _ = tx.send(true);
        // Keep the sender alive until the agent has seen the signal.
        std::future::pending::<()>().await;
    });
    match c {
        AgentCmd::Camera {
            common,
            source,
            rtsp,
            fps,
            wpa_ctrl,
        } => {
            let mut cfg = CameraConfig::new(common.data_dir.clone());
            cfg.common = common.into_config();
            cfg.source = parse_source(&source)?;
            apply_rtsp_credentials(
                &mut cfg.source,
                &rtsp,
                std::env::var(RTSP_PASSWORD_ENV).ok(),
            )?;
            cfg.capture_fps = fps.clamp(1, 30);
            cfg.wifi = wpa_ctrl.map(threshold_agent::WifiSensorConfig::supplicant);
            threshold_agent::run_camera(cfg, rx).await?;
        }
        AgentCmd::Lock {
            common,
            driver,
            rules,
        } => {
            anyhow::ensure!(
                (1_000..=60_000).contains(&rules.unlock_timeout_ms),
                "--unlock-timeout-ms must be between 1000 and 60000"
            );
            let d = match driver.driver.as_str() {
                "simulator" => LockDriverConfig::Simulator(SimulatedHome::new()),
                "zigbee2mqtt" => LockDriverConfig::Zigbee2Mqtt(z2m(&driver)?),
                other => {
                    anyhow::bail!("unknown lock driver {other:?}: use simulator or zigbee2mqtt")
                }
            };
            let mut cfg = LockConfig::new(common.data_dir.clone(), d);
            cfg.common = common.into_config();
            cfg.rules.unlock_timeout_ms = rules.unlock_timeout_ms;
            rules.statements.apply(&mut cfg.rules)?;
            threshold_agent::run_lock(cfg, rx).await?;
        }
        AgentCmd::Garage {
            common,
            opener,
            opener_mqtt_url,
            z2m_base_topic,
            esphome_obstruction,
            auto_close_ms,
            statements,
        } => {
            anyhow::ensure!(
                (60_000..=3_600_000).contains(&auto_close_ms),
                "--auto-close-ms must be between 60000 and 3600000"
            );
            let d = parse_opener(
                &opener,
                &opener_mqtt_url,
                &z2m_base_topic,
                esphome_obstruction.as_deref(),
            )?;
            let mut cfg = GarageConfig::new(common.data_dir.clone(), d);
            cfg.common = common.into_config();
            cfg.rules.garage_auto_close_ms = auto_close_ms;
            statements.apply(&mut cfg.rules)?;
            threshold_agent::run_garage(cfg, rx).await?;
        }
        AgentCmd::Contact { common, driver } => {
            let d = match driver.driver.as_str() {
                "simulator" => ContactDriverConfig::Simulator(SimulatedHome::new()),
                "zigbee2mqtt" => ContactDriverConfig::Zigbee2Mqtt(z2m(&driver)?),
                other => {
                    anyhow::bail!("unknown contact driver {other:?}: use simulator or zigbee2mqtt")
                }
            };
            let mut cfg = ContactConfig::new(common.data_dir.clone(), d);
            cfg.common = common.into_config();
            threshold_agent::run_contact(cfg, rx).await?;
        }
        AgentCmd::WifiSensor {
            common,
            wpa_ctrl,
            iface,
        } => {
            #[allow(unused_mut)]
            let mut wifi = threshold_agent::WifiSensorConfig {
                supplicant_ctrl: wpa_ctrl,
                ..Default::default()
            };
            match iface {
                #[cfg(feature = "wifi-live")]
                Some(i) => wifi.capture_iface = Some(i),
                #[cfg(not(feature = "wifi-live"))]
                Some(_) => {
                    anyhow::bail!("--iface needs a build with `--features wifi-live` (libpcap)")
                }
                None if wifi.supplicant_ctrl.is_none() => {
                    anyhow::bail!("give --wpa-ctrl PATH or --iface IFACE")
                }
                None => {}
            }
            let mut cfg =
                threshold_agent::WifiSensorAgentConfig::new(common.data_dir.clone(), wifi);
            cfg.common = common.into_config();
            threshold_agent::run_wifi_sensor(cfg, rx).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect(spec: &str) -> anyhow::Result<OpenerDialect> {
        match parse_opener(
            spec,
            "mqtt://u:secret@broker.local:1884",
            "z2m",
            Some("obstruction"),
        )? {
            GarageDriverConfig::Mqtt(m) => {
                assert_eq!((m.host.as_str(), m.port), ("broker.local", 1884));
                assert_eq!(m.password.as_deref(), Some("secret"));
                assert!(
                    !format!("{m:?}").contains("secret"),
                    "the password stays out of logs"
                );
                Ok(m.dialect)
            }
            GarageDriverConfig::Simulator(_) => anyhow::bail!("simulator"),
        }
    }

    #[test]
    fn openers_are_named_by_their_firmware() {
        assert!(matches!(
            parse_opener("simulator", "", "", None),
            Ok(GarageDriverConfig::Simulator(_))
        ));
        assert_eq!(
            dialect("ratgdo:ratgdo/garage").unwrap(),
            OpenerDialect::Ratgdo {
                prefix: "ratgdo/garage".into()
            }
        );
        assert_eq!(
            dialect("zigbee2mqtt:Garage door").unwrap(),
            OpenerDialect::Zigbee2Mqtt {
                base: "z2m".into(),
                name: "Garage door".into()
            }
        );
        assert_eq!(
            dialect("esphome:home/gdo/garage_door").unwrap(),
            OpenerDialect::Esphome {
                node: "home/gdo".into(),
                cover: "garage_door".into(),
                obstruction: Some("obstruction".into())
            }
        );
        for bad in [
            "ratgdo:",
            "ratgdo:a/#",
            "esphome:gdo",
            "zigbee2mqtt:/x",
            "garage",
            "homekit:x",
        ] {
            assert!(dialect(bad).is_err(), "{bad}");
        }
        assert!(parse_opener("ratgdo:x", "http://nope", "z", None).is_err());
    }

    fn rtsp(s: &str) -> RtspConfig {
        match parse_source(s).unwrap() {
            SourceConfig::Rtsp(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rtsp_sources_are_read_and_what_is_not_rtsp_is_refused_at_start() {
        let c = rtsp("rtsp://admin:pw-9@192.0.2.4:554/h264");
        assert_eq!(c.url, "rtsp://192.0.2.4:554/h264");
        assert_eq!(c.password.as_deref(), Some("pw-9"));
        assert_eq!(rtsp("rtsp:rtsp://cam/s").url, "rtsp://cam/s");
        for bad in [
            "rtsp:http://admin:pw-9@cam/s",
            "rtsps://admin:pw-9@cam/s",
            "snapshot:rtsp://admin:pw-9@cam/s",
            "mjpeg:ftp://admin:pw-9@cam/s",
            "rtsp://admin:pw-9@",
            "camera://admin:pw-9@cam",
        ] {
            let e = parse_source(bad).unwrap_err().to_string();
            assert!(!e.contains("pw-9"), "{bad}: {e}");
        }
        assert!(parse_source("rtsp:http://cam/s")
            .unwrap_err()
            .to_string()
            .contains("not an RTSP URL"));
        assert!(matches!(
            parse_source("snapshot:http://cam/snap.jpg").unwrap(),
            SourceConfig::HttpSnapshot { .. }
        ));
        // Debug output of the configuration never shows the password.
        let dbg = format!("{:?}", parse_source("rtsp://a:pw-9@cam/s").unwrap());
        assert!(!dbg.contains("pw-9"), "{dbg}");
    }

    #[test]
    fn rtsp_credentials_from_a_file_or_the_environment_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let creds = |user: Option<&str>, file: Option<&std::path::Path>| RtspCredentials {
            rtsp_user: user.map(str::to_owned),
            rtsp_password_file: file.map(|f| f.to_owned()),
        };
        let mut s = parse_source("rtsp://cam/s").unwrap();
        apply_rtsp_credentials(&mut s, &creds(Some("admin"), Some(&file)), None).unwrap();
        let SourceConfig::Rtsp(c) = &s else { panic!() };
        assert_eq!(c.username.as_deref(), Some("admin"));
        assert_eq!(c.password.as_deref(), Some("from-file"));
        let mut s = parse_source("rtsp://admin@cam/s").unwrap();
        apply_rtsp_credentials(&mut s, &creds(None, None), Some("from-env".into())).unwrap();
        let SourceConfig::Rtsp(c) = &s else { panic!() };
        assert_eq!(c.password.as_deref(), Some("from-env"));
        // Twice, or without a user, or for another source: refused.
        let mut s = parse_source("rtsp://admin:pw@cam/s").unwrap();
        assert!(apply_rtsp_credentials(&mut s, &creds(None, None), Some("x".into())).is_err());
        let mut s = parse_source("rtsp://cam/s").unwrap();
        assert!(apply_rtsp_credentials(&mut s, &creds(None, None), Some("x".into())).is_err());
        let mut s = parse_source("rtsp://bob@cam/s").unwrap();
        assert!(apply_rtsp_credentials(&mut s, &creds(Some("admin"), None), None).is_err());
        let mut s = parse_source("synthetic").unwrap();
        assert!(apply_rtsp_credentials(&mut s, &creds(Some("admin"), None), None).is_err());
        // An unset or empty environment variable is no password.
        let mut s = parse_source("synthetic").unwrap();
        apply_rtsp_credentials(&mut s, &creds(None, None), Some(String::new())).unwrap();
    }
}
