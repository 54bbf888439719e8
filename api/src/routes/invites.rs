//! Invitations as their invitee answers them: my pending invitations,
//! accept (I join: `member_joined`) and decline (`invite_declined`); and
//! withdrawing one (the inviter, or an owner or admin: `invite_cancelled`).
//! Invitations are made by `POST /v1/rooms/{id}/members` (`members`).
//! Each answer tells the invitee's other sessions that the invitation is
//! gone (`invite_removed`).

use axum::extract::State;
use axum::Json;
use chat_shared::model::{Invite, InviteId, RoomEvent, RoomId, UserId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rooms::membership;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppPath, AuthUser};
use crate::state::AppState;

/// The invitation routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_invites))
        .routes(routes!(accept))
        .routes(routes!(decline))
        .routes(routes!(cancel))
        .routes(routes!(room_invites))
}

/// My pending invitations, newest first, each with its room and who
/// invited me.
#[utoipa::path(get, path = "/v1/invites", tag = "invites",
    security(("bearer" = [])),
    responses((status = 200, body = [Invite])))]
async fn my_invites(
    State(state): State<AppState>,
    me: AuthUser,
) -> Result<Json<Vec<Invite>>, ApiError> {
    Ok(Json(state.store.invites(me.id).await?))
}

/// Accepts an invitation of mine: I join the room as a member. Recorded as
/// `member_joined`; my gateways start delivering the room (`room_added`).
#[utoipa::path(post, path = "/v1/invites/{id}/accept", tag = "invites",
    security(("bearer" = [])),
    params(("id" = InviteId, Path)),
    responses(
        (status = 200, description = "the `member_joined` event", body = RoomEvent),
        (status = 403, description = "`banned` since the invitation", body = ErrorBody),
        (status = 404, description = "no such pending invitation of mine", body = ErrorBody),
        (status = 409, description = "`already_member`: joined meanwhile (the invitation is spent)", body = ErrorBody)))]
async fn accept(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<InviteId>,
) -> Result<Json<RoomEvent>, ApiError> {
    let answer = state.store.accept_invite(id, me.id).await;
    if matches!(answer, Ok(_) | Err(chat_shared::Error::Conflict("member"))) {
        state.announce_invite_removed(me.id, id);
    }
    let event = answer.map_err(|e| match e {
        chat_shared::Error::NotFound => ApiError::NotFound("invitation"),
        chat_shared::Error::Banned => {
            ApiError::Forbidden("banned", "you are banned from this room".into())
        }
        other => other.into(),
    })?;
    state.announce(&event).await;
    Ok(Json(event))
}

/// Declines an invitation of mine. Recorded as `invite_declined`.
#[utoipa::path(post, path = "/v1/invites/{id}/decline", tag = "invites",
    security(("bearer" = [])),
    params(("id" = InviteId, Path)),
    responses(
        (status = 200, description = "the `invite_declined` event", body = RoomEvent),
        (status = 404, description = "no such pending invitation of mine", body = ErrorBody)))]
async fn decline(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<InviteId>,
) -> Result<Json<RoomEvent>, ApiError> {
    let event = state
        .store
        .decline_invite(id, me.id)
        .await
        .map_err(|e| match e {
            chat_shared::Error::NotFound => ApiError::NotFound("invitation"),
            other => other.into(),
        })?;
    state.announce(&event).await;
    state.announce_invite_removed(me.id, id);
    Ok(Json(event))
}

/// The pending invitations into a room I am in, oldest first (they are
/// events of its log already: `member_invited`).
#[utoipa::path(get, path = "/v1/rooms/{id}/invites", tag = "invites",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    responses((status = 200, body = [Invite]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn room_invites(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
) -> Result<Json<Vec<Invite>>, ApiError> {
    membership(&state, id, &me).await?;
    Ok(Json(state.store.room_invites(id).await?))
}

/// Withdraws the pending invitation of `user_id` (its inviter, or an owner
/// or admin). Recorded as `invite_cancelled`.
#[utoipa::path(delete, path = "/v1/rooms/{id}/invites/{user_id}", tag = "invites",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("user_id" = UserId, Path)),
    responses(
        (status = 200, description = "the `invite_cancelled` event", body = RoomEvent),
        (status = 403, description = "`not_member`, `insufficient_role`", body = ErrorBody),
        (status = 404, description = "no such room, or no pending invitation of that user", body = ErrorBody)))]
async fn cancel(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, user)): AppPath<(RoomId, UserId)>,
) -> Result<Json<RoomEvent>, ApiError> {
    membership(&state, id, &me).await?;
    let (invite, event) =
        state
            .store
            .cancel_invite(id, user, me.id)
            .await
            .map_err(|e| match e {
                chat_shared::Error::NotFound => ApiError::NotFound("invitation"),
                chat_shared::Error::NotAllowed => {
                    ApiError::insufficient_role("withdraw an invitation you did not make")
                }
                other => other.into(),
            })?;
    state.announce(&event).await;
    state.announce_invite_removed(user, invite);
    Ok(Json(event))
}
