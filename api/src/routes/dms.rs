//! Direct messages: the one room two users share, created on first use
//! and listed from its first message; a request when opened to a stranger
//! (accepted or declined by them), and closable by either member.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_shared::limits::Action;
use chat_shared::model::{Room, RoomId, UserId};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AuthUser};
use crate::state::AppState;

/// The DM route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open_dm))
        .routes(routes!(accept))
        .routes(routes!(decline))
        .routes(routes!(close))
}

/// Whom to talk to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenDm {
    user_id: UserId,
}

/// The direct room between me and `user_id`: 201 when this call created
/// it, 200 when it already existed. Concurrent calls yield one room. It is
/// listed for neither of us until its first message; when we share no
/// room, it is a request the other accepts or declines.
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
    // A deleted account is nobody to talk to.
    if state.store.is_erased(req.user_id).await? {
        return Err(ApiError::NotFound("user"));
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
    // Nothing is announced yet: a DM is listed for neither of us until
    // its first message, which announces it (`announce_listed`). Opening a
    // DM someone asked me for accepts it (and lifts a decline).
    if !created {
        match state.store.accept_dm(room.id, me.id).await {
            Ok(()) | Err(chat_shared::Error::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(room)))
}

/// Accepts a DM request sent to me: it becomes a plain DM.
#[utoipa::path(post, path = "/v1/dms/{id}/accept", tag = "rooms",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    responses(
        (status = 204, description = "accepted"),
        (status = 404, description = "no DM of mine", body = ErrorBody),
        (status = 409, description = "`not_a_request`: no request to me", body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn accept(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
) -> Result<StatusCode, ApiError> {
    state.spend(me.id, Action::OpenDm)?;
    state
        .store
        .accept_dm(id, me.id)
        .await
        .map_err(consent_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Declines a DM request sent to me: hidden from my list, and its sender's
/// messages are refused (`dm_declined`) until I accept it or open the DM
/// myself.
#[utoipa::path(post, path = "/v1/dms/{id}/decline", tag = "rooms",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    responses(
        (status = 204, description = "declined"),
        (status = 404, description = "no DM of mine", body = ErrorBody),
        (status = 409, description = "`not_a_request`: no request to me", body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn decline(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
) -> Result<StatusCode, ApiError> {
    state.spend(me.id, Action::OpenDm)?;
    state
        .store
        .decline_dm(id, me.id)
        .await
        .map_err(consent_error)?;
    state.announce_removed(me.id, id);
    Ok(StatusCode::NO_CONTENT)
}

/// Closes a DM of mine: hidden from my list until its next message, which
/// brings it back (`room_added`).
#[utoipa::path(post, path = "/v1/dms/{id}/close", tag = "rooms",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    responses(
        (status = 204, description = "closed"),
        (status = 404, description = "no DM of mine", body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn close(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
) -> Result<StatusCode, ApiError> {
    state.spend(me.id, Action::OpenDm)?;
    state
        .store
        .close_dm(id, me.id)
        .await
        .map_err(consent_error)?;
    // My gateways stop delivering it; its next message announces it again.
    state.announce_removed(me.id, id);
    Ok(StatusCode::NO_CONTENT)
}

fn consent_error(e: chat_shared::Error) -> ApiError {
    match e {
        chat_shared::Error::NotFound => ApiError::NotFound("direct room"),
        chat_shared::Error::Conflict(code) => {
            ApiError::Conflict(code, "that DM is no request to you".into())
        }
        other => other.into(),
    }
}

/// Tells the members a message just listed `room` for (a DM's first
/// message, or the next one after they closed it) that they have it now,
/// so their gateways deliver it from its start.
pub(crate) async fn announce_listed(state: &AppState, room: RoomId, users: &[UserId]) {
    if users.is_empty() {
        return;
    }
    match state.store.room(room).await {
        Ok(Some(room)) => {
            for user in users {
                state.announce_added(*user, &room, 1);
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot announce a DM"),
    }
}
