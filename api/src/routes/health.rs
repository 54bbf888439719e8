//! Liveness and readiness probes for load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_shared::store::Health;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The probe routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200)))]
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: the store answers. While the store refuses
/// writes (a full or read-only disk) the answer is still 200, with
/// `"status": "degraded"`: every instance shares the store, so turning them
/// all away would add a full outage to a write outage.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "`ready`, or `degraded` while the store refuses writes"),
        (status = 503, description = "store unreachable")))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.health().await {
        Ok(Health::Ready) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Health::RefusingWrites) => (
            StatusCode::OK,
            Json(json!({ "status": "degraded", "store": "refusing_writes" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "store": "unreachable" })),
            )
        }
    }
}
