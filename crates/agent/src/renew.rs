//! Broker credential renewal (docs/protocol.md §8.6): when the broker refuses the
//! device's password, the device asks its hub for a challenge, signs it with its key,
//! and gets a new password, which it stores in its enrolment (atomically, mode 0600)
//! before it connects with it. The link decides when ([`crate::link::renewal`]); this
//! module does the asking (blocking HTTP; call from a blocking thread).

use crate::identity::{
    error_body, load_enrolment, save_enrolment, Enrolment, IdentityError, MqttSettings,
};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use threshold_proto::{renewal, DeviceKey};

#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    /// The hub answered with an error body (`device_revoked`, `unknown_device`, ...).
    #[error("hub refused the credential renewal ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("could not reach the hub: {0}")]
    Transport(String),
    #[error("hub answered something unusable: {0}")]
    BadResponse(String),
    #[error("the device has no stored enrolment to renew")]
    NotEnrolled,
    #[error(transparent)]
    Store(#[from] IdentityError),
}

impl RenewError {
    /// Whether the hub could not answer (unreachable, or its own trouble: 5xx), so
    /// that asking again soon may help.
    pub fn unanswered(&self) -> bool {
        match self {
            RenewError::Transport(_) => true,
            RenewError::Refused { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

#[derive(Deserialize)]
struct Challenge {
    nonce: String,
}

#[derive(Deserialize)]
struct Renewed {
    device_id: String,
    mqtt: MqttSettings,
}

/// Check the hub's answer is for this device (as at enrolment, §8.1 step 6).
fn check(renewed: Renewed, key: &DeviceKey) -> Result<MqttSettings, RenewError> {
    let me = key.device_id().to_hex();
    if renewed.device_id != me || renewed.mqtt.username != me {
        return Err(RenewError::BadResponse(format!(
            "the answer names device {} (user {}), not this device {me}",
            renewed.device_id, renewed.mqtt.username
        )));
    }
    if renewed.mqtt.password.is_empty() {
        return Err(RenewError::BadResponse("an empty password".into()));
    }
    Ok(renewed.mqtt)
}

fn failed(e: ureq::Error) -> RenewError {
    match e {
        ureq::Error::Status(status, resp) => {
            let (code, message) = error_body(resp);
            RenewError::Refused {
                status,
                code,
                message,
            }
        }
        other => RenewError::Transport(other.to_string()),
    }
}

/// Ask the hub at `hub_url` for new broker credentials: a challenge, then its answer
/// signed with `key`.
pub fn request(
    hub_url: &str,
    key: &DeviceKey,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<MqttSettings, RenewError> {
    let base = format!(
        "{}/api/v1/devices/{}/credentials",
        hub_url.trim_end_matches('/'),
        key.device_id().to_hex()
    );
    let agent = ureq::AgentBuilder::new()
        .tls_config(tls.clone())
        .timeout(Duration::from_secs(15))
        .build();
    let challenge: Challenge = agent
        .post(&format!("{base}/challenge"))
        .send_string("")
        .map_err(failed)?
        .into_json()
        .map_err(|e| RenewError::BadResponse(e.to_string()))?;
    if !renewal::valid_nonce(&challenge.nonce) {
        return Err(RenewError::BadResponse(
            "a malformed challenge nonce".into(),
        ));
    }
    let renewed: Renewed = agent
        .post(&base)
        .send_json(serde_json::json!({
            "nonce": challenge.nonce,
            "signature": renewal::sign(key, &challenge.nonce),
        }))
        .map_err(failed)?
        .into_json()
        .map_err(|e| RenewError::BadResponse(e.to_string()))?;
    check(renewed, key)
}

/// Renew and store: the enrolment in `data_dir` gets the new broker settings (written
/// atomically, mode 0600) before they are returned, so a crash after the hub answered
/// never leaves the device with a password it does not have.
pub fn renew_and_save(
    data_dir: &Path,
    hub_url: &str,
    key: &DeviceKey,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Enrolment, RenewError> {
    let mut enrolment = load_enrolment(data_dir)?.ok_or(RenewError::NotEnrolled)?;
    enrolment.mqtt = request(hub_url, key, tls)?;
    save_enrolment(data_dir, &enrolment)?;
    tracing::info!(device = %key.device_id(), "renewed the broker credentials");
    Ok(enrolment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{load_or_create_key, save_enrolment};
    use crate::testutil::{http_server, Response};
    use std::sync::Mutex;

    fn enrolment(key: &DeviceKey, password: &str) -> Enrolment {
        let id = key.device_id().to_hex();
        Enrolment {
            device_id: id.clone(),
            home_id: "h1".into(),
            hub_public_key: DeviceKey::from_seed(&[5; 32]).public().to_hex(),
            mqtt: MqttSettings {
                host: "127.0.0.1".into(),
                port: 1883,
                tls_port: None,
                username: id,
                password: password.into(),
                topic_prefix: "t".into(),
            },
            heartbeat_ms: 250,
            door_id: None,
            door_cameras: Vec::new(),
            hub_url: Some("http://hub.example".into()),
        }
    }

    const NONCE: &str = "0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000";

    /// A hub that answers a challenge and checks the signature over the documented
    /// text before handing out `answer_for` the device.
    async fn hub(answer_device: String) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let addr = http_server(move |req| {
            seen2
                .lock()
                .unwrap()
                .push((req.method.clone(), req.path.clone()));
            if req.path.ends_with("/credentials/challenge") {
                return Response::json(
                    201,
                    serde_json::to_vec(&serde_json::json!({"nonce": NONCE, "expires_at_ms": 1}))
                        .unwrap(),
                );
            }
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let id = req.path.split('/').nth(4).unwrap_or("").to_owned();
            let key: threshold_proto::PublicKey = DeviceKey::from_seed(&[7; 32]).public();
            let ok = body["nonce"] == NONCE
                && id == key.device_id().to_hex()
                && renewal::verify(&key, NONCE, body["signature"].as_str().unwrap_or("")).is_ok();
            if !ok {
                return Response::json(
                    400,
                    br#"{"error":{"code":"bad_signature","message":"no"}}"#.to_vec(),
                );
            }
            Response::json(
                200,
                serde_json::to_vec(&serde_json::json!({"device_id": answer_device,
                    "mqtt": {"host": "127.0.0.1", "port": 1884, "username": answer_device,
                             "password": "new-pw", "topic_prefix": "t"}}))
                .unwrap(),
            )
        })
        .await;
        (format!("http://{addr}"), seen)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signed_challenge_gets_a_new_password_stored_privately() {
        let key = DeviceKey::from_seed(&[7; 32]);
        let (url, seen) = hub(key.device_id().to_hex()).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("device.key"), hex::encode([7u8; 32])).unwrap();
        let key = load_or_create_key(dir.path()).unwrap();
        save_enrolment(dir.path(), &enrolment(&key, "old-pw")).unwrap();
        let d = dir.path().to_owned();
        let e = tokio::task::spawn_blocking(move || {
            renew_and_save(&d, &url, &key, &crate::tls::client_config(None).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(e.mqtt.password, "new-pw");
        assert_eq!(e.mqtt.port, 1884);
        let stored = load_enrolment(dir.path()).unwrap().unwrap();
        assert_eq!(stored, e, "stored before it is used");
        assert_eq!(stored.door_cameras, Vec::<String>::new());
        assert_eq!(stored.hub_url.as_deref(), Some("http://hub.example"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("enrolment.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let id = e.device_id;
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (
                    "POST".to_owned(),
                    format!("/api/v1/devices/{id}/credentials/challenge")
                ),
                (
                    "POST".to_owned(),
                    format!("/api/v1/devices/{id}/credentials")
                ),
            ]
        );
    }

    #[test]
    fn only_a_hub_that_could_not_answer_is_worth_asking_again_soon() {
        let refused = |status: u16| RenewError::Refused {
            status,
            code: "x".into(),
            message: String::new(),
        };
        assert!(RenewError::Transport("connection refused".into()).unanswered());
        assert!(refused(503).unanswered());
        assert!(!refused(403).unanswered());
        assert!(!refused(404).unanswered());
        assert!(!refused(429).unanswered());
        assert!(!RenewError::NotEnrolled.unanswered());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refusals_and_foreign_answers_leave_the_stored_password_alone() {
        let dir = tempfile::tempdir().unwrap();
        // A key the test hub does not accept: refused with the hub's code.
        let key = load_or_create_key(dir.path()).unwrap();
        save_enrolment(dir.path(), &enrolment(&key, "old-pw")).unwrap();
        let (url, _) = hub(key.device_id().to_hex()).await;
        let (d, k) = (dir.path().to_owned(), key.clone());
        let r = tokio::task::spawn_blocking(move || {
            renew_and_save(&d, &url, &k, &crate::tls::client_config(None).unwrap())
        })
        .await
        .unwrap();
        match r {
            Err(RenewError::Refused { status, code, .. }) => {
                assert_eq!((status, code.as_str()), (400, "bad_signature"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            load_enrolment(dir.path()).unwrap().unwrap().mqtt.password,
            "old-pw"
        );
        // An answer for another device is not used.
        let dir2 = tempfile::tempdir().unwrap();
        std::fs::write(dir2.path().join("device.key"), hex::encode([7u8; 32])).unwrap();
        let key = load_or_create_key(dir2.path()).unwrap();
        save_enrolment(dir2.path(), &enrolment(&key, "old-pw")).unwrap();
        let (url, _) = hub("00".repeat(16)).await;
        let d = dir2.path().to_owned();
        let r = tokio::task::spawn_blocking(move || {
            renew_and_save(&d, &url, &key, &crate::tls::client_config(None).unwrap())
        })
        .await
        .unwrap();
        assert!(matches!(r, Err(RenewError::BadResponse(_))), "{r:?}");
        assert!(!r.unwrap_err().unanswered());
        assert_eq!(
            load_enrolment(dir2.path()).unwrap().unwrap().mqtt.password,
            "old-pw"
        );
    }
}
