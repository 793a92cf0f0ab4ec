//! `POST /api/v1/admin/reload`: the owner reloads the policy chain (see
//! [`crate::policies`]). The answer is the [`ReloadReport`] (what loaded, what was
//! refused and why, the chain in use): `200` when the new chain is in use, `422` (the
//! same body) when something was refused and the previous chain stays.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use yoi_policy::Principal;
use yoi_policy_host::ReloadReport;
use yoi_serving::ServeError;

use crate::state::AppState;

pub async fn reload(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<(StatusCode, Json<ReloadReport>), ServeError> {
    let metrics = state.metrics();
    metrics
        .count("reload_policies", async {
            state.projection().authorize_admin(&principal)?;
            tracing::info!(client = %principal.name, "policy reload requested");
            let report = state.reload_policies().await?;
            let status = if report.applied {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            Ok((status, Json(report)))
        })
        .await
}
