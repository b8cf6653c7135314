//! Web Push for critical alerts, so they reach an owner whose page is closed.
//!
//! - The hub has one VAPID key (P-256, `vapid.key` in the data folder, created on first
//!   start); browsers subscribe with its public key.
//! - Owners subscribe through `GET /api/v1/push/key`, `GET|POST|DELETE
//!   /api/v1/push/subscriptions` (`http::push`).
//! - Every critical alert on the event bus is sent to each of its owner's
//!   subscriptions: the payload encrypted as RFC 8291 `aes128gcm` (ECDH P-256 with a
//!   fresh key per message, HKDF-SHA-256, AES-128-GCM), authorised with an RFC 8292
//!   VAPID ES256 token for the push service's origin. A 404/410 answer removes the
//!   subscription.
//!
//! Subscriptions are kept in the database (`push_subscriptions`), so every hub process
//! of a fleet sends to the ones made through any of them; a `push_subscriptions.json`
//! left in the data folder by an older hub is imported once. Endpoints must be
//! `https://`, or `http://` on a loopback address (a local push service, the tests).

use crate::state::AppState;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Record size announced in the header; one record per message.
const RECORD_SIZE: u32 = 4096;
/// Largest plaintext that fits one record (minus the padding delimiter and GCM tag).
pub const MAX_PAYLOAD: usize = RECORD_SIZE as usize - 17;
const MAX_SUBSCRIPTIONS_PER_OWNER: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("p256dh must be an uncompressed P-256 point, base64url")]
    BadPublicKey,
    #[error("auth must be 16 bytes, base64url")]
    BadAuth,
    #[error("payload too large")]
    TooLarge,
    #[error("random source: {0}")]
    Random(String),
    #[error("encryption failed")]
    Crypto,
}

fn random_secret() -> Result<SecretKey, PushError> {
    for _ in 0..8 {
        let mut b = [0u8; 32];
        getrandom::getrandom(&mut b).map_err(|e| PushError::Random(e.to_string()))?;
        if let Ok(k) = SecretKey::from_slice(&b) {
            return Ok(k);
        }
    }
    Err(PushError::Random("no valid scalar".into()))
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), PushError> {
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out)
        .map_err(|_| PushError::Crypto)
}

/// RFC 8291 `aes128gcm` body for one subscription, with the sender key and salt given
/// (fresh random ones in [`encrypt`]; fixed ones in the RFC's test vector).
pub fn encrypt_with(
    sender: &SecretKey,
    salt: &[u8; 16],
    ua_public: &[u8],
    auth: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, PushError> {
    if plaintext.len() > MAX_PAYLOAD {
        return Err(PushError::TooLarge);
    }
    if auth.len() != 16 {
        return Err(PushError::BadAuth);
    }
    let ua = PublicKey::from_sec1_bytes(ua_public).map_err(|_| PushError::BadPublicKey)?;
    let ua_bytes = ua.to_encoded_point(false);
    let as_public = sender.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(sender.to_nonzero_scalar(), ua.as_affine());
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(ua_bytes.as_bytes());
    info.extend_from_slice(as_public.as_bytes());
    let mut ikm = [0u8; 32];
    hkdf(auth, shared.raw_secret_bytes(), &info, &mut ikm)?;
    let mut cek = [0u8; 16];
    hkdf(salt, &ikm, b"Content-Encoding: aes128gcm\0", &mut cek)?;
    let mut nonce = [0u8; 12];
    hkdf(salt, &ikm, b"Content-Encoding: nonce\0", &mut nonce)?;
    let mut record = plaintext.to_vec();
    record.push(2); // last (and only) record
    let sealed = Aes128Gcm::new_from_slice(&cek)
        .map_err(|_| PushError::Crypto)?
        .encrypt(Nonce::from_slice(&nonce), record.as_slice())
        .map_err(|_| PushError::Crypto)?;
    let mut body = Vec::with_capacity(86 + sealed.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// RFC 8291 body with a fresh sender key and salt.
pub fn encrypt(ua_public: &[u8], auth: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, PushError> {
    let sender = random_secret()?;
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| PushError::Random(e.to_string()))?;
    encrypt_with(&sender, &salt, ua_public, auth, plaintext)
}

/// The push service's origin (scheme://host[:port]) of an endpoint URL, if the
/// endpoint is acceptable: https anywhere, http only on loopback.
pub fn endpoint_origin(endpoint: &str) -> Option<String> {
    if endpoint.len() > 2048
        || endpoint
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let (scheme, rest) = endpoint.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        format!("[{}]", v6.split(']').next()?)
    } else {
        authority.split(':').next()?.to_ascii_lowercase()
    };
    let ok = match scheme {
        "https" => true,
        "http" => matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]"),
        _ => false,
    };
    ok.then(|| format!("{scheme}://{authority}"))
}

/// The VAPID key and the stored subscriptions.
#[derive(Debug)]
pub struct Push {
    key: SigningKey,
    public_b64: String,
    subject: String,
    store: threshold_store::Store,
    /// The TLS client for push services (`outbound`).
    tls: std::sync::Arc<rustls::ClientConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subscription {
    pub owner_id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub created_ms: i64,
}

fn load_or_create_key(path: &Path) -> anyhow::Result<SecretKey> {
    if let Ok(text) = std::fs::read_to_string(path) {
        crate::secrets::check_private(path)?;
        let bytes = hex::decode(text.trim())?;
        return SecretKey::from_slice(&bytes)
            .map_err(|_| anyhow::anyhow!("{} is not a P-256 key", path.display()));
    }
    let k = random_secret()?;
    if crate::secrets::create_private_once(path, hex::encode(k.to_bytes()).as_bytes())? {
        return Ok(k);
    }
    // Another hub process on this folder created it first: use that one.
    crate::secrets::check_private(path)?;
    let bytes = hex::decode(std::fs::read_to_string(path)?.trim())?;
    SecretKey::from_slice(&bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a P-256 key", path.display()))
}

impl Push {
    pub async fn open(
        data_dir: &Path,
        subject: String,
        tls: std::sync::Arc<rustls::ClientConfig>,
        store: threshold_store::Store,
    ) -> anyhow::Result<Push> {
        let secret = load_or_create_key(&data_dir.join("vapid.key"))?;
        let public_b64 = B64.encode(secret.public_key().to_encoded_point(false).as_bytes());
        let push = Push {
            key: SigningKey::from(secret),
            public_b64,
            subject,
            store,
            tls,
        };
        push.import_file(&data_dir.join("push_subscriptions.json"))
            .await;
        Ok(push)
    }

    /// Subscriptions an older hub kept in a file: into the database, once (the file is
    /// renamed `.imported`).
    async fn import_file(&self, file: &Path) {
        let Ok(bytes) = std::fs::read(file) else {
            return;
        };
        let subs: Vec<Subscription> = serde_json::from_slice(&bytes).unwrap_or_default();
        let mut kept = 0;
        for s in &subs {
            if self.upsert(s.clone()).await.is_ok() {
                kept += 1;
            }
        }
        tracing::info!(
            kept,
            of = subs.len(),
            "push subscriptions imported from the data folder"
        );
        if let Err(e) = std::fs::rename(file, file.with_extension("json.imported")) {
            tracing::warn!(error = %e, "could not rename the imported push subscriptions file");
        }
    }

    pub fn public_key(&self) -> &str {
        &self.public_b64
    }

    pub async fn subscriptions(&self, owner: &str) -> Vec<Subscription> {
        match self.store.push_subscriptions(owner).await {
            Ok(rows) => rows
                .into_iter()
                .map(|r| Subscription {
                    owner_id: r.owner_id,
                    endpoint: r.endpoint,
                    p256dh: r.p256dh,
                    auth: r.auth,
                    created_ms: r.created_ms,
                })
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "could not read push subscriptions");
                Vec::new()
            }
        }
    }

    async fn upsert(&self, s: Subscription) -> Result<(), SubscribeError> {
        let store_err = |e: threshold_store::StoreError| SubscribeError::Store(e.to_string());
        // An endpoint already kept for another owner moves only to someone who holds
        // the same browser's keys (the same browser, signed in as someone else): an
        // endpoint alone, which leaks more easily, takes nobody's alerts away.
        let old = self
            .store
            .push_subscription_at(&s.endpoint)
            .await
            .map_err(store_err)?;
        if let Some(old) = &old {
            let same_browser = crate::auth::ct_eq(&old.auth, &s.auth)
                && crate::auth::ct_eq(&old.p256dh, &s.p256dh);
            if old.owner_id != s.owner_id && !same_browser {
                return Err(SubscribeError::Taken);
            }
        }
        let others = self
            .store
            .push_subscriptions(&s.owner_id)
            .await
            .map_err(store_err)?
            .iter()
            .filter(|x| x.endpoint != s.endpoint)
            .count();
        if others >= MAX_SUBSCRIPTIONS_PER_OWNER {
            return Err(SubscribeError::TooMany);
        }
        self.store
            .put_push_subscription(&threshold_store::PushSubscriptionRow {
                owner_id: s.owner_id,
                endpoint: s.endpoint,
                p256dh: s.p256dh,
                auth: s.auth,
                created_ms: s.created_ms,
            })
            .await
            .map_err(store_err)
    }

    /// Forget a subscription (of `owner`, when given); whether there was one.
    pub async fn remove(&self, owner: Option<&str>, endpoint: &str) -> bool {
        match self.store.delete_push_subscription(owner, endpoint).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "could not remove a push subscription");
                false
            }
        }
    }

    /// `Authorization` header value for a push to `origin`, valid 12 hours.
    pub fn vapid_authorization(&self, origin: &str, now_ms: i64) -> String {
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = B64.encode(
            json!({"aud": origin, "exp": now_ms / 1000 + 12 * 3600, "sub": self.subject})
                .to_string(),
        );
        let signing_input = format!("{header}.{claims}");
        let sig: Signature = self.key.sign(signing_input.as_bytes());
        format!(
            "vapid t={signing_input}.{}, k={}",
            B64.encode(sig.to_bytes()),
            self.public_b64
        )
    }

    /// Send one notification to every subscription of `owner`.
    pub async fn notify(&self, owner: &str, payload: &serde_json::Value, now_ms: i64) {
        let body = payload.to_string();
        for s in self.subscriptions(owner).await {
            let (Some(origin), Ok(ua), Ok(auth)) = (
                endpoint_origin(&s.endpoint),
                B64.decode(s.p256dh.trim_end_matches('=')),
                B64.decode(s.auth.trim_end_matches('=')),
            ) else {
                self.remove(None, &s.endpoint).await;
                continue;
            };
            let sealed = match encrypt(&ua, &auth, body.as_bytes()) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "push not encrypted; subscription dropped");
                    self.remove(None, &s.endpoint).await;
                    continue;
                }
            };
            let authz = self.vapid_authorization(&origin, now_ms);
            let endpoint = s.endpoint.clone();
            let tls = self.tls.clone();
            let status = tokio::task::spawn_blocking(move || {
                let agent = crate::outbound::agent(&tls, Duration::from_secs(10));
                match agent
                    .post(&endpoint)
                    .set("Authorization", &authz)
                    .set("Content-Encoding", "aes128gcm")
                    .set("Content-Type", "application/octet-stream")
                    .set("TTL", "86400")
                    .set("Urgency", "high")
                    .send_bytes(&sealed)
                {
                    Ok(r) => Some(r.status()),
                    Err(ureq::Error::Status(code, _)) => Some(code),
                    Err(_) => None,
                }
            })
            .await
            .ok()
            .flatten();
            match status {
                Some(404 | 410) => {
                    tracing::info!(endpoint = %s.endpoint, "push subscription gone; removed");
                    self.remove(None, &s.endpoint).await;
                }
                Some(c) if (200..300).contains(&c) => {}
                other => {
                    tracing::warn!(endpoint = %s.endpoint, status = ?other, "push not accepted")
                }
            }
        }
    }
}

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("endpoint must be an https:// URL (http:// only on a loopback address)")]
    BadEndpoint,
    #[error("{0}")]
    BadKey(PushError),
    #[error("at most {MAX_SUBSCRIPTIONS_PER_OWNER} push subscriptions per owner")]
    TooMany,
    #[error("this push endpoint belongs to another account's browser")]
    Taken,
    #[error("storage: {0}")]
    Store(String),
}

impl Push {
    /// Check a browser's subscription and keep it for `owner`.
    pub async fn subscribe(
        &self,
        owner: &str,
        endpoint: String,
        p256dh: String,
        auth: String,
        now_ms: i64,
    ) -> Result<(), SubscribeError> {
        if endpoint_origin(&endpoint).is_none() {
            return Err(SubscribeError::BadEndpoint);
        }
        let ua = B64
            .decode(p256dh.trim_end_matches('='))
            .ok()
            .filter(|k| PublicKey::from_sec1_bytes(k).is_ok() && k.len() == 65);
        if ua.is_none() {
            return Err(SubscribeError::BadKey(PushError::BadPublicKey));
        }
        if B64.decode(auth.trim_end_matches('=')).map(|a| a.len()) != Ok(16) {
            return Err(SubscribeError::BadKey(PushError::BadAuth));
        }
        self.upsert(Subscription {
            owner_id: owner.to_owned(),
            endpoint,
            p256dh,
            auth,
            created_ms: now_ms,
        })
        .await
    }
}

/// The hub's Web Push, started: the key opened (or created) and a task sending every
/// critical alert on the event bus to its owner's subscriptions. `None` without a
/// usable VAPID key (the apps then hide the feature).
pub async fn start(state: &AppState) -> Option<Arc<Push>> {
    let subject = "mailto:threshold@localhost".to_owned();
    let push = match Push::open(
        &state.config.data_dir,
        subject,
        state.outbound_tls.clone(),
        state.store.clone(),
    )
    .await
    {
        Ok(p) => Arc::new(p),
        Err(e) => {
            tracing::error!(error = %e, "Web Push disabled: no VAPID key");
            return None;
        }
    };
    let st = state.clone();
    let p2 = push.clone();
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            // Alerts raised on this node only: in a fleet each alert is pushed once,
            // by the node that raised it.
            let mut rx = st.bus.subscribe_local();
            loop {
                match rx.recv().await {
                    Ok(e)
                        if e.event_type == "alert"
                            && e.data["severity"]
                                == threshold_core::alert::Severity::Critical.as_str() =>
                    {
                        let payload = json!({
                            "title": "Threshold: critical alert",
                            "body": e.data["message"],
                            "kind": e.data["kind"],
                            "alert_id": e.data["id"],
                            "home_id": e.home_id,
                            "time_ms": e.time_ms,
                            "url": "/#/alerts",
                        });
                        p2.notify(&e.owner_id, &payload, st.clock.now_ms()).await;
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
            }
        });
    }
    Some(push)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Vec<u8> {
        B64.decode(s).unwrap()
    }

    /// RFC 8291 section 5 / appendix A, to the byte.
    #[test]
    fn rfc8291_example() {
        let sender =
            SecretKey::from_slice(&d("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")).unwrap();
        assert_eq!(
            B64.encode(sender.public_key().to_encoded_point(false).as_bytes()),
            "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
        );
        let salt: [u8; 16] = d("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let body = encrypt_with(
            &sender,
            &salt,
            &d("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
            &d("BTBZMqHH6r4Tts7J_aSIgg"),
            b"When I grow up, I want to be a watermelon",
        )
        .unwrap();
        assert_eq!(
            B64.encode(body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn bad_keys_and_sizes_are_refused() {
        let s = random_secret().unwrap();
        let salt = [0u8; 16];
        let ua = random_secret()
            .unwrap()
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        assert!(matches!(
            encrypt_with(&s, &salt, &[4; 65], &[0; 16], b"x"),
            Err(PushError::BadPublicKey)
        ));
        assert!(matches!(
            encrypt_with(&s, &salt, &ua, &[0; 15], b"x"),
            Err(PushError::BadAuth)
        ));
        assert!(matches!(
            encrypt_with(&s, &salt, &ua, &[0; 16], &[0; MAX_PAYLOAD + 1]),
            Err(PushError::TooLarge)
        ));
        assert_eq!(
            encrypt_with(&s, &salt, &ua, &[0; 16], &[0; MAX_PAYLOAD])
                .unwrap()
                .len(),
            86 + MAX_PAYLOAD + 17
        );
    }

    #[test]
    fn endpoints_https_or_loopback_http() {
        assert_eq!(
            endpoint_origin("https://push.example/abc/def").as_deref(),
            Some("https://push.example")
        );
        assert_eq!(
            endpoint_origin("http://127.0.0.1:8080/p").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            endpoint_origin("http://[::1]:9/p").as_deref(),
            Some("http://[::1]:9")
        );
        for bad in [
            "http://push.example/x",
            "ftp://a/b",
            "https://",
            "https://u:p@host/x",
            "https://a b/",
            "javascript:alert(1)",
        ] {
            assert_eq!(endpoint_origin(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn vapid_token_verifies_with_the_public_key() {
        use p256::ecdsa::signature::Verifier;
        let dir = threshold_store::testing::TempDir::new("vapid").unwrap();
        let (store, _db) = threshold_store::testing::sqlite().await.unwrap();
        let push = Push::open(
            dir.path(),
            "mailto:a@b".into(),
            crate::outbound::client_config(None).unwrap(),
            store.clone(),
        )
        .await
        .unwrap();
        let h = push.vapid_authorization("https://push.example", 1_000_000);
        let (t, k) = h
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        assert_eq!(k, push.public_key());
        let (input, sig) = t.rsplit_once('.').unwrap();
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&d(k)).unwrap();
        vk.verify(input.as_bytes(), &Signature::from_slice(&d(sig)).unwrap())
            .unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&d(input.split('.').nth(1).unwrap())).unwrap();
        assert_eq!(claims["aud"], "https://push.example");
        assert_eq!(claims["exp"], 1000 + 12 * 3600);
        // The same key after a restart.
        let again = Push::open(
            dir.path(),
            "mailto:a@b".into(),
            crate::outbound::client_config(None).unwrap(),
            store,
        )
        .await
        .unwrap();
        assert_eq!(again.public_key(), push.public_key());
    }
}
