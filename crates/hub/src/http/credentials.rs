//! A device's broker credential renewal (docs/protocol.md §8.6): no user session; the
//! device proves it holds its enrolled key by signing a one-time challenge, and gets
//! a new broker password. The hub keeps only the new password's hash, sets it on an
//! external broker through dynamic security where configured (creating the device's
//! client and role if missing), and from then on its own endpoint takes the new
//! password and refuses the old one.
//!
//! This is how devices enrolled before dynamic security was switched on (whose
//! passwords the hub cannot provision: it holds only their hashes), or whose broker
//! client was lost, get back on the broker without being paired again.

use crate::http::devices::mqtt_settings;
use crate::http::dto::{ErrorBody, MqttSettings};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use threshold_proto::renewal::{self, RenewalError};
use threshold_proto::{DeviceId, PublicKey};
use threshold_store::{ChallengeUse, DeviceRow};
use utoipa::ToSchema;

/// How long a challenge may be answered.
pub const CHALLENGE_TTL_MS: i64 = 60 * 1000;

/// A one-time challenge for one device.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialChallenge {
    /// 64 lowercase hex characters (32 random bytes): sign
    /// `threshold-renew-v1:{device_id}:{nonce}` with the device key.
    pub nonce: String,
    /// The challenge must be answered before this hub time (ms since the epoch).
    pub expires_at_ms: i64,
}

/// The answer to a challenge. Unknown members are ignored (devices may be newer than
/// the hub).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RenewRequest {
    /// The nonce of the challenge, as issued.
    pub nonce: String,
    /// Ed25519 signature with the device key over
    /// `threshold-renew-v1:{device_id}:{nonce}`, 128 hex characters.
    pub signature: String,
}

/// The device's new broker settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct RenewResponse {
    pub device_id: String,
    /// As in the enrolment answer; `password` is new and shown only this once.
    pub mqtt: MqttSettings,
}

/// The path's device id: exactly 32 lowercase hex characters.
fn device_id(id: &str) -> ApiResult<DeviceId> {
    id.parse::<DeviceId>()
        .ok()
        .filter(|d| d.to_hex() == id)
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_device_id",
                "the device id must be 32 lowercase hex characters",
            )
        })
}

/// Count the request against the device's renewal allowance, then load it: enrolled
/// and not revoked.
async fn enrolled(st: &AppState, id: &DeviceId, now: i64) -> ApiResult<(DeviceRow, PublicKey)> {
    let hex = id.to_hex();
    if !st.credential_limiter.attempt(&hex, now).await {
        return Err(ApiError::RateLimited(
            "too many credential renewal requests for this device; try again in a few minutes"
                .into(),
        ));
    }
    let row = match st.store.device_any(&hex).await {
        Ok(r) => r,
        Err(threshold_store::StoreError::NotFound) => {
            return Err(ApiError::NotFoundCode(
                "unknown_device",
                "no device with this id is enrolled at this hub; pair it again".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    if row.revoked_ms.is_some() {
        return Err(ApiError::ForbiddenCode(
            "device_revoked",
            "this device was removed by its owner; it cannot renew its credentials".into(),
        ));
    }
    let key = row
        .public_key
        .parse::<PublicKey>()
        .map_err(|e| ApiError::Internal(format!("device {hex}: stored key: {e}")))?;
    Ok((row, key))
}

fn random_hex<const N: usize>() -> ApiResult<String> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(hex::encode(b))
}

#[utoipa::path(post, operation_id = "devices_credentials_challenge", path = "/devices/{id}/credentials/challenge", tag = "devices", security(()),
    description = "A one-time challenge for a device's broker credential renewal (docs/protocol.md §8.6), valid for 60 s. No session: the answer is proved with the device key.",
    params(("id" = String, Path, description = "the device id, 32 lowercase hex characters")),
    responses((status = 201, body = CredentialChallenge), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn challenge(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<CredentialChallenge>)> {
    let did = device_id(&id)?;
    let now = st.clock.now_ms();
    enrolled(&st, &did, now).await?;
    let nonce = random_hex::<32>()?;
    let expires_at_ms = now + CHALLENGE_TTL_MS;
    st.store
        .create_credential_challenge(&nonce, &did.to_hex(), now, expires_at_ms)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CredentialChallenge {
            nonce,
            expires_at_ms,
        }),
    ))
}

/// The stable error for a refused proof.
fn proof_error(e: RenewalError) -> ApiError {
    match e {
        RenewalError::BadNonce => ApiError::invalid(
            "challenge_unknown",
            "no such challenge for this device; ask for a new one",
        ),
        RenewalError::BadSignatureEncoding | RenewalError::BadSignature => ApiError::invalid(
            "bad_signature",
            "signature does not verify: sign `threshold-renew-v1:{device_id}:{nonce}` with the device key",
        ),
    }
}

/// The stable error for a challenge that cannot be used.
fn challenge_error(u: ChallengeUse) -> Option<ApiError> {
    let (code, message) = match u {
        ChallengeUse::Taken => return None,
        ChallengeUse::Used => (
            "challenge_used",
            "this challenge was already answered; ask for a new one",
        ),
        ChallengeUse::Expired => (
            "challenge_expired",
            "this challenge expired; ask for a new one",
        ),
        ChallengeUse::Unknown => (
            "challenge_unknown",
            "no such challenge for this device; ask for a new one",
        ),
    };
    Some(ApiError::invalid(code, message))
}

#[utoipa::path(post, operation_id = "devices_credentials_renew", path = "/devices/{id}/credentials", request_body = RenewRequest, tag = "devices", security(()),
    description = "Renew a device's broker password with its signature over a challenge (docs/protocol.md §8.6). The new password is set on the broker (dynamic security) and replaces the old one at once.",
    params(("id" = String, Path, description = "the device id, 32 lowercase hex characters")),
    responses((status = 200, body = RenewResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn renew(
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RenewRequest>,
) -> ApiResult<Json<RenewResponse>> {
    let did = device_id(&id)?;
    let now = st.clock.now_ms();
    let (row, key) = enrolled(&st, &did, now).await?;
    // The proof first: a request that does not prove the key uses nothing up.
    renewal::verify(&key, &req.nonce, &req.signature).map_err(proof_error)?;
    let used = st
        .store
        .take_credential_challenge(&req.nonce, &row.id, now)
        .await?;
    if let Some(e) = challenge_error(used) {
        return Err(e);
    }
    let password = random_hex::<24>()?;
    // The broker first: if it does not take the password, the device keeps the one
    // it has (the challenge is used; it asks for a new one).
    st.downlink.renew(did, &password).await.map_err(|e| {
        tracing::error!(device = %did, error = %e, "cannot set the device's renewed broker password");
        ApiError::Unavailable(
            "broker_unavailable",
            "the MQTT broker did not take the new credentials; try again".into(),
        )
    })?;
    let hash = crate::auth::sha256_hex(&password);
    match st.store.set_device_mqtt_password_hash(&row.id, &hash).await {
        Ok(()) => {}
        // Revoked in the meantime.
        Err(threshold_store::StoreError::NotFound) => {
            let _ = st.downlink.revoke(did).await;
            return Err(ApiError::ForbiddenCode(
                "device_revoked",
                "this device was removed by its owner; it cannot renew its credentials".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    st.registry.with(&did, |e| e.mqtt_password_hash = hash);
    crate::fleet::changes::announce(&st, crate::fleet::changes::Change::Device(row.id.clone()))
        .await;
    tracing::info!(device = %did, "device renewed its broker credentials");
    crate::audit::record_in(
        &st,
        &row.home_id,
        "device.credentials_renewed",
        &format!("device:{did}"),
        &format!("device:{did}"),
        json!({"broker_provisioned": st.config.mqtt_dynsec}),
    )
    .await;
    Ok(Json(RenewResponse {
        device_id: row.id,
        mqtt: mqtt_settings(&st, &did, password),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_canonical_device_id_is_taken() {
        let id = "65b60673d6ed884bf01c2c222d82ada0";
        assert!(device_id(id).is_ok());
        for bad in [
            "",
            "65B60673D6ED884BF01C2C222D82ADA0",
            "65b60673d6ed884bf01c2c222d82ada",
            "65b60673d6ed884bf01c2c222d82ada00",
            "../../../../etc/passwd",
        ] {
            assert_eq!(device_id(bad).unwrap_err().code(), "invalid_device_id");
        }
    }

    #[test]
    fn every_refusal_has_its_stable_code() {
        let codes: Vec<&str> = [
            ChallengeUse::Used,
            ChallengeUse::Expired,
            ChallengeUse::Unknown,
        ]
        .into_iter()
        .filter_map(challenge_error)
        .map(|e| e.code())
        .collect();
        assert_eq!(
            codes,
            vec!["challenge_used", "challenge_expired", "challenge_unknown"]
        );
        assert!(challenge_error(ChallengeUse::Taken).is_none());
        assert_eq!(
            proof_error(RenewalError::BadSignature).code(),
            "bad_signature"
        );
        assert_eq!(
            proof_error(RenewalError::BadSignatureEncoding).code(),
            "bad_signature"
        );
        assert_eq!(
            proof_error(RenewalError::BadNonce).code(),
            "challenge_unknown"
        );
        assert_eq!(
            proof_error(RenewalError::BadSignature).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
