//! The device's identity and its enrolment with a hub.
//!
//! The private key is created once, on first start, and kept as a hex seed in
//! `{data_dir}/device.key` (mode 0600). Enrolment (docs/protocol.md §8) proves possession
//! of that key to the hub together with a one-time pairing code, and returns what the
//! agent needs to talk to the hub: the hub's public key (to verify downlinks) and MQTT
//! credentials. The result is kept in `{data_dir}/enrolment.json` (mode 0600, it holds
//! the MQTT password) so a restarted agent reconnects without a new pairing code.

use crate::fsutil::write_atomic;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use threshold_proto::body::DeviceKind;
use threshold_proto::{DeviceId, DeviceKey, PublicKey};

const KEY_FILE: &str = "device.key";
const ENROLMENT_FILE: &str = "enrolment.json";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: not a 64-character hex key seed")]
    BadKeyFile(PathBuf),
    #[error("{path}: not a valid enrolment: {reason}")]
    BadEnrolment { path: PathBuf, reason: String },
    #[error("no random source: {0}")]
    Random(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Load the device key from `data_dir`, creating it (and the directory) on first use.
pub fn load_or_create_key(data_dir: &Path) -> Result<DeviceKey, IdentityError> {
    std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut seed = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut seed)
                .map_err(|_| IdentityError::BadKeyFile(path.clone()))?;
            Ok(DeviceKey::from_seed(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = DeviceKey::generate().map_err(|e| IdentityError::Random(e.to_string()))?;
            write_atomic(&path, hex::encode(key.seed()).as_bytes(), true, true)
                .map_err(io_err(&path))?;
            tracing::info!(device = %key.device_id(), "created a new device key");
            Ok(key)
        }
        Err(e) => Err(IdentityError::Io { path, source: e }),
    }
}

/// MQTT connection details handed out by the hub at enrolment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// The hub's endpoint over TLS, when it offers it (protocol §2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_port: Option<u16>,
    pub username: String,
    pub password: String,
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
}

fn default_prefix() -> String {
    "threshold".to_string()
}

impl fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("topic_prefix", &self.topic_prefix)
            .finish()
    }
}

/// What the hub answered to a successful enrolment (the 201 body of
/// `POST /api/v1/enrol`), kept on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    pub device_id: String,
    #[serde(default)]
    pub home_id: String,
    pub hub_public_key: String,
    pub mqtt: MqttSettings,
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// For a lock: the door it is fitted to, and the public keys (hex) of the cameras
    /// that watch it, as the hub said at pairing.
    #[serde(default)]
    pub door_id: Option<String>,
    #[serde(default)]
    pub door_cameras: Vec<String>,
    /// The hub's base URL the device enrolled with (not part of the hub's answer;
    /// kept so that the device can renew its broker credentials, §8.6, when started
    /// later without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_url: Option<String>,
}

fn default_heartbeat() -> u64 {
    250
}

impl Enrolment {
    /// The hub key, parsed.
    pub fn hub_key(&self) -> Result<PublicKey, String> {
        self.hub_public_key
            .parse::<PublicKey>()
            .map_err(|e| format!("hub_public_key: {e}"))
    }

    /// Check that the enrolment is usable with `key`: the hub key parses and the device
    /// id the hub recorded is the one derived from our key.
    pub fn validate(&self, key: &DeviceKey) -> Result<(), String> {
        self.hub_key()?;
        let id: DeviceId = self
            .device_id
            .parse()
            .map_err(|e| format!("device_id: {e}"))?;
        if id != key.device_id() {
            return Err(format!(
                "device_id {id} is not this device's id {}",
                key.device_id()
            ));
        }
        if self.heartbeat_ms == 0 {
            return Err("heartbeat_ms is 0".into());
        }
        Ok(())
    }
}

/// Load the stored enrolment, if any.
pub fn load_enrolment(data_dir: &Path) -> Result<Option<Enrolment>, IdentityError> {
    let path = data_dir.join(ENROLMENT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| IdentityError::BadEnrolment {
                    path,
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IdentityError::Io { path, source: e }),
    }
}

/// Store an enrolment (mode 0600: it contains the MQTT password).
pub fn save_enrolment(data_dir: &Path, enrolment: &Enrolment) -> Result<(), IdentityError> {
    std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    let path = data_dir.join(ENROLMENT_FILE);
    let bytes = serde_json::to_vec_pretty(enrolment).map_err(|e| IdentityError::BadEnrolment {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_atomic(&path, &bytes, true, true).map_err(io_err(&path))
}

#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// The hub answered with an error body (`{"error":{"code","message"}}`).
    #[error("hub refused enrolment ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("could not reach the hub: {0}")]
    Transport(String),
    #[error("hub answered something unusable: {0}")]
    BadResponse(String),
}

/// The proof of key possession the hub checks: an Ed25519 signature over
/// `threshold-enrol-v1:{pairing_code}:{public_key_hex}`.
pub fn enrol_proof(key: &DeviceKey, pairing_code: &str) -> String {
    let msg = format!(
        "threshold-enrol-v1:{pairing_code}:{}",
        key.public().to_hex()
    );
    hex::encode(key.sign(msg.as_bytes()))
}

/// Enrol with a hub (blocking HTTP; call from a blocking thread).
pub fn enrol(
    hub_url: &str,
    pairing_code: &str,
    kind: DeviceKind,
    key: &DeviceKey,
    tls: &std::sync::Arc<rustls::ClientConfig>,
) -> Result<Enrolment, EnrolError> {
    let url = format!("{}/api/v1/enrol", hub_url.trim_end_matches('/'));
    let req = serde_json::json!({
        "pairing_code": pairing_code,
        "public_key": key.public().to_hex(),
        "kind": kind.as_str(),
        "proof": enrol_proof(key, pairing_code),
    });
    let agent = ureq::AgentBuilder::new()
        .tls_config(tls.clone())
        .timeout(std::time::Duration::from_secs(15))
        .build();
    match agent.post(&url).send_json(req) {
        Ok(resp) => {
            let text = resp
                .into_string()
                .map_err(|e| EnrolError::BadResponse(e.to_string()))?;
            let enrolment: Enrolment =
                serde_json::from_str(&text).map_err(|e| EnrolError::BadResponse(e.to_string()))?;
            enrolment.validate(key).map_err(EnrolError::BadResponse)?;
            Ok(enrolment)
        }
        Err(ureq::Error::Status(status, resp)) => {
            let (code, message) = error_body(resp);
            Err(EnrolError::Refused {
                status,
                code,
                message,
            })
        }
        Err(e) => Err(EnrolError::Transport(e.to_string())),
    }
}

/// `code` and `message` of the hub's error body (`{"error":{"code","message"}}`).
pub(crate) fn error_body(resp: ureq::Response) -> (String, String) {
    let body: serde_json::Value = resp.into_json().unwrap_or(serde_json::Value::Null);
    let text = |p: &str, default: &str| {
        body.pointer(p)
            .and_then(|v| v.as_str())
            .unwrap_or(default)
            .to_string()
    };
    (text("/error/code", "unknown"), text("/error/message", ""))
}

/// Load the key and the enrolment; enrol first if there is no enrolment yet and a hub
/// URL and pairing code were given. Blocking.
pub fn ensure_enrolled(
    data_dir: &Path,
    hub_url: Option<&str>,
    pairing_code: Option<&str>,
    kind: DeviceKind,
    tls: &std::sync::Arc<rustls::ClientConfig>,
) -> anyhow::Result<(DeviceKey, Enrolment)> {
    let key = load_or_create_key(data_dir)?;
    if let Some(e) = load_enrolment(data_dir)? {
        e.validate(&key)
            .map_err(|r| anyhow::anyhow!("stored enrolment unusable: {r}"))?;
        return Ok((key, e));
    }
    let (Some(url), Some(code)) = (hub_url, pairing_code) else {
        anyhow::bail!(
            "device {} is not enrolled: give a hub URL and a pairing code (data dir {})",
            key.device_id(),
            data_dir.display()
        );
    };
    let mut e = enrol(url, code, kind, &key, tls)?;
    e.hub_url = Some(url.to_owned());
    save_enrolment(data_dir, &e)?;
    tracing::info!(device = %key.device_id(), home = %e.home_id, "enrolled");
    Ok((key, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{http_server, Response};

    fn sample(key: &DeviceKey) -> Enrolment {
        Enrolment {
            device_id: key.device_id().to_hex(),
            home_id: "h1".into(),
            hub_public_key: DeviceKey::from_seed(&[5; 32]).public().to_hex(),
            mqtt: MqttSettings {
                host: "127.0.0.1".into(),
                port: 1883,
                tls_port: None,
                username: key.device_id().to_hex(),
                password: "s3cret-pw".into(),
                topic_prefix: "t".into(),
            },
            heartbeat_ms: 250,
            door_id: None,
            door_cameras: Vec::new(),
            hub_url: None,
        }
    }

    #[test]
    fn key_is_created_once_with_private_mode_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = load_or_create_key(dir.path()).unwrap();
        let k2 = load_or_create_key(dir.path()).unwrap();
        assert_eq!(k1.public(), k2.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(KEY_FILE), "garbage").unwrap();
        assert!(matches!(
            load_or_create_key(dir.path()),
            Err(IdentityError::BadKeyFile(_))
        ));
    }

    #[test]
    fn enrolment_round_trips_and_debug_hides_password() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create_key(dir.path()).unwrap();
        assert_eq!(load_enrolment(dir.path()).unwrap(), None);
        let e = sample(&key);
        save_enrolment(dir.path(), &e).unwrap();
        assert_eq!(load_enrolment(dir.path()).unwrap(), Some(e.clone()));
        let shown = format!("{e:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(e.validate(&key).is_ok());
        assert!(e.validate(&DeviceKey::from_seed(&[1; 32])).is_err());
        std::fs::write(dir.path().join(ENROLMENT_FILE), "{").unwrap();
        assert!(load_enrolment(dir.path()).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn enrol_posts_proof_and_parses_answer_and_errors() {
        let key = DeviceKey::from_seed(&[3; 32]);
        let good = serde_json::to_vec(&sample(&key)).unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
        let seen2 = seen.clone();
        let addr = http_server(move |req| {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            seen2.lock().unwrap().push(body.clone());
            if req.path != "/api/v1/enrol" || req.method != "POST" {
                return Response::status(404, b"{}".to_vec());
            }
            if body["pairing_code"] == "GOOD" {
                Response::json(201, good.clone())
            } else {
                Response::json(
                    404,
                    br#"{"error":{"code":"invalid_pairing_code","message":"no such code"}}"#
                        .to_vec(),
                )
            }
        })
        .await;
        let url = format!("http://{addr}");
        let k2 = key.clone();
        let u2 = url.clone();
        let e = tokio::task::spawn_blocking(move || {
            enrol(
                &u2,
                "GOOD",
                DeviceKind::Camera,
                &k2,
                &crate::tls::client_config(None).unwrap(),
            )
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(e.device_id, key.device_id().to_hex());
        let req = seen.lock().unwrap()[0].clone();
        assert_eq!(req["kind"], "camera");
        assert_eq!(req["public_key"], key.public().to_hex());
        // The proof verifies with the public key over the documented message.
        let sig: [u8; 64] = hex::decode(req["proof"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let msg = format!("threshold-enrol-v1:GOOD:{}", key.public().to_hex());
        key.public()
            .0
            .verify_strict(msg.as_bytes(), &ed25519_dalek_sig(&sig))
            .unwrap();
        let k3 = key.clone();
        let err = tokio::task::spawn_blocking(move || {
            enrol(
                &url,
                "BAD",
                DeviceKind::Camera,
                &k3,
                &crate::tls::client_config(None).unwrap(),
            )
        })
        .await
        .unwrap();
        match err {
            Err(EnrolError::Refused { status, code, .. }) => {
                assert_eq!(status, 404);
                assert_eq!(code, "invalid_pairing_code");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn ed25519_dalek_sig(b: &[u8; 64]) -> ed25519_dalek::Signature {
        ed25519_dalek::Signature::from_bytes(b)
    }
}
