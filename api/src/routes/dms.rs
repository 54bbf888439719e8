//! Direct messages: the one room two users share, created on first use.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_shared::limits::Action;
use chat_shared::model::{Room, UserId};
use chat_shared::store::Page;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AuthUser};
use crate::state::AppState;

/// The DM route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(open_dm))
}

/// Whom to talk to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenDm {
    user_id: UserId,
}

/// The direct room between me and `user_id`: 201 when this call created
/// it, 200 when it already existed. Concurrent calls yield one room.
#[utoipa::path(post, path = "/v1/dms", tag = "rooms",
    security(("bearer" = [])),
    request_body = OpenDm,
    responses(
        (status = 200, body = Room),
        (status = 201, body = Room),
        (status = 403, description = "`blocked`: one of us blocks the other", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody),
        (status = 422, description = "a DM with yourself", body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn open_dm(
    State(state): State<AppState>,
    me: AuthUser,
    AppJson(req): AppJson<OpenDm>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    state.spend(me.id, Action::OpenDm)?;
    if req.user_id == me.id {
        return Err(ApiError::Validation(
            "user_id: you cannot open a DM with yourself".into(),
        ));
    }
    // Either way round: a DM needs both (decided, as Discord and Matrix
    // do, so that blocking also keeps me from writing to whom I block).
    if state.store.blocked_between(me.id, req.user_id).await? {
        return Err(ApiError::blocked("open a DM with this user"));
    }
    let (room, created) =
        state
            .store
            .direct_room(me.id, req.user_id)
            .await
            .map_err(|e| match e {
                chat_shared::Error::NotFound => ApiError::NotFound("user"),
                other => other.into(),
            })?;
    if created {
        // Both members' `member_joined` events, so their gateways pick the
        // new room up at once.
        let page = Page {
            after: Some(0),
            before: None,
            limit: 10,
        };
        let events = state.store.events(room.id, page).await?;
        state.announce_all(&events).await;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(room)))
}
