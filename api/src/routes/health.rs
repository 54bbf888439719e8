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
/// writes (a full or read-only disk), or the store of blobs does not
/// answer (uploads and downloads fail, chat goes on), the answer is still
/// 200, with `"status": "degraded"` and what is wrong: every instance
/// shares them, so turning them all away would add a full outage to a
/// partial one.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "`ready`, or `degraded` while the store refuses writes or the store of blobs is unreachable"),
        (status = 503, description = "store unreachable")))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut status = match state.store.health().await {
        Ok(Health::Ready) => json!({ "status": "ready" }),
        Ok(Health::RefusingWrites) => json!({ "status": "degraded", "store": "refusing_writes" }),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "store": "unreachable" })),
            );
        }
    };
    if let Err(e) = state.blobs.health().await {
        tracing::warn!(error = %e, "the store of blobs does not answer");
        status["status"] = json!("degraded");
        status["blobs"] = json!("unreachable");
    }
    (StatusCode::OK, Json(status))
}
