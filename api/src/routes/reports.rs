//! Reports: any member reports a message they can see, anyone reports a
//! user, with a reason; reports land in the admin queue (`admin`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_shared::admin::{NewReport, Report, ReportTarget};
use chat_shared::limits::Action;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AuthUser};
use crate::state::AppState;
use crate::validate;

/// The report routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(file))
}

/// A report to file.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileReport {
    /// `{"kind": "message", "room_id", "event_id"}` or `{"kind": "user",
    /// "user_id"}`.
    target: ReportTarget,
    /// Why: 1–512 characters.
    reason: String,
}

/// Reports a message (I must be a member of its room) or a user, for the
/// server's admins and moderators. One open report per target and
/// reporter; each spends one of my `CHAT_ACTION_RATE_PER_MINUTE`.
#[utoipa::path(post, path = "/v1/reports", tag = "reports",
    security(("bearer" = [])),
    request_body = FileReport,
    responses(
        (status = 201, body = Report),
        (status = 403, description = "`not_member` of the message's room", body = ErrorBody),
        (status = 404, description = "no such message in that room, or no such user", body = ErrorBody),
        (status = 409, description = "`already_reported`: my report of it is still open", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn file(
    State(state): State<AppState>,
    me: AuthUser,
    AppJson(req): AppJson<FileReport>,
) -> Result<(StatusCode, Json<Report>), ApiError> {
    let reason = validate::text("reason", &req.reason, 1, 512)?;
    if req.target == (ReportTarget::User { user_id: me.id }) {
        return Err(ApiError::Validation(
            "target: you cannot report yourself".into(),
        ));
    }
    state.spend(me.id, Action::Report)?;
    let what = match req.target {
        ReportTarget::Message { .. } => "message",
        ReportTarget::User { .. } => "user",
    };
    let report = state
        .store
        .file_report(NewReport {
            reporter: me.id,
            target: req.target,
            reason,
        })
        .await
        .map_err(|e| match e {
            chat_shared::Error::NotFound => ApiError::NotFound(what),
            chat_shared::Error::Conflict("report") => ApiError::Conflict(
                "already_reported",
                "your report of this is still open".into(),
            ),
            other => other.into(),
        })?;
    tracing::info!(report_id = %report.id, reporter = %me.id, "report filed");
    Ok((StatusCode::CREATED, Json(report)))
}
