//! The owner's copy of a home's audit record: the per-home export
//! (`audit::export`), to keep away from the hub and verify with
//! `threshold audit verify --export FILE --key KEY --home ID`.

use crate::auth::Principal;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use threshold_store::Role;

/// One home's audit export (JSON lines): its entries in full, every other entry of the
/// hub's chain as a link without contents, and every signed checkpoint (owners, their
/// own homes).
#[utoipa::path(get, operation_id = "homes_audit_export", path = "/homes/{id}/audit/export", tag = "audit", params(("id" = String, Path)),
    description = "The home's audit record as JSON lines (threshold-audit-export-v2): a header, the home's entries in full, every other entry as a link (sequence number and hashes only), then every signed checkpoint. Verify it anywhere with `threshold audit verify --export FILE --key KEY --home ID`.",
    responses((status = 200, description = "the export", body = String, content_type = "application/x-ndjson"), (status = 404, body = crate::http::dto::ErrorBody)))]
pub async fn export(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let owner = p.require(Role::Owner)?;
    let home = st
        .store
        .home(owner, extract::id(&id)?)
        .await
        .map_err(|_| ApiError::NotFound("home"))?;
    let mut body = Vec::new();
    crate::audit::export::write_scoped(&st.store, &mut body, st.clock.now_ms(), Some(&home.id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"threshold-audit-{}.jsonl\"", home.id),
            ),
        ],
        body,
    )
        .into_response())
}
