//! Who am I, and finding people to talk to.

use axum::extract::State;
use axum::Json;
use chat_shared::admin::Account;
use chat_shared::model::User;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppQuery, AuthUser};
use crate::state::AppState;

/// Most users a search returns.
const SEARCH_LIMIT: u32 = 20;

/// The user routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(search))
}

/// The logged-in user, with their server role (`admin`, `moderator`, or
/// absent), so a client knows whether to show the admin page.
#[utoipa::path(get, path = "/v1/users/me", tag = "users",
    security(("bearer" = [])),
    responses((status = 200, body = Account), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, me: AuthUser) -> Result<Json<Account>, ApiError> {
    let account = state
        .store
        .account(me.id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(account))
}

/// A search for users.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Part of a username or display name, 1–64 characters, any case.
    q: String,
}

/// Users whose username or display name contains `q` (at most 20).
#[utoipa::path(get, path = "/v1/users", tag = "users",
    security(("bearer" = [])),
    params(SearchQuery),
    responses((status = 200, body = [User]), (status = 422, body = ErrorBody)))]
async fn search(
    State(state): State<AppState>,
    _me: AuthUser,
    AppQuery(query): AppQuery<SearchQuery>,
) -> Result<Json<Vec<User>>, ApiError> {
    let q = query.q.trim();
    // PostgreSQL cannot compare text holding a NUL.
    if q.is_empty() || q.chars().count() > 64 || q.contains('\0') {
        return Err(ApiError::Validation("q: 1 to 64 characters, no NUL".into()));
    }
    Ok(Json(state.store.search_users(q, SEARCH_LIMIT).await?))
}
