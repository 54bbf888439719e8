//! Invite links: owners and admins make links into their room, with an
//! optional expiry and use limit, list and revoke them; whoever has a
//! link's code joins by it (`member_joined`). The code is the secret: 128
//! random bits, URL-safe, made here.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chat_shared::limits::Action;
use chat_shared::model::{InviteLink, Role, RoomEvent, RoomId, RoomKind};
use chat_shared::store::NewInviteLink;
use rand::RngCore;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rooms::membership;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AuthUser};
use crate::state::AppState;

/// The longest a link may last: 30 days.
pub const MAX_LINK_SECONDS: u32 = 30 * 24 * 60 * 60;

/// The most joins a link may allow.
pub const MAX_LINK_USES: u32 = 1000;

/// The invite link routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(links, create_link))
        .routes(routes!(revoke_link))
        .routes(routes!(join_by_link))
}

/// A link to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// Seconds until it stops working, 1 to 2,592,000 (30 days); absent:
    /// never.
    #[serde(default)]
    expires_in_seconds: Option<u32>,
    /// How many may join by it, 1 to 1,000; absent: no limit.
    #[serde(default)]
    max_uses: Option<u32>,
}

/// The caller must be an owner or admin of a room that is not a DM.
async fn moderator(state: &AppState, id: RoomId, me: &AuthUser) -> Result<(), ApiError> {
    let (room, role) = membership(state, id, me).await?;
    if room.kind == RoomKind::Direct {
        return Err(ApiError::Forbidden(
            "direct_room",
            "direct rooms have exactly two members".into(),
        ));
    }
    if role < Role::Admin {
        return Err(ApiError::insufficient_role("manage invite links"));
    }
    Ok(())
}

/// 128 random bits, URL-safe base64 (22 characters).
fn new_code() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The room's invite links, revoked and spent ones included, newest first
/// (owner or admin).
#[utoipa::path(get, path = "/v1/rooms/{id}/invite-links", tag = "invites",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    responses((status = 200, body = [InviteLink]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn links(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
) -> Result<Json<Vec<InviteLink>>, ApiError> {
    moderator(&state, id, &me).await?;
    Ok(Json(state.store.invite_links(id).await?))
}

/// Makes an invite link (owner or admin).
#[utoipa::path(post, path = "/v1/rooms/{id}/invite-links", tag = "invites",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    request_body = NewLink,
    responses(
        (status = 201, body = InviteLink),
        (status = 403, description = "`not_member`, `insufficient_role`, `direct_room`", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "an expiry or a use limit out of range", body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE (the invitations' budget)", body = ErrorBody)))]
async fn create_link(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
    AppJson(req): AppJson<NewLink>,
) -> Result<(StatusCode, Json<InviteLink>), ApiError> {
    state.spend(me.id, Action::Invite)?;
    moderator(&state, id, &me).await?;
    if req
        .expires_in_seconds
        .is_some_and(|s| !(1..=MAX_LINK_SECONDS).contains(&s))
    {
        return Err(ApiError::Validation(format!(
            "expires_in_seconds: 1 to {MAX_LINK_SECONDS} (30 days), or absent for never"
        )));
    }
    if req
        .max_uses
        .is_some_and(|n| !(1..=MAX_LINK_USES).contains(&n))
    {
        return Err(ApiError::Validation(format!(
            "max_uses: 1 to {MAX_LINK_USES}, or absent for no limit"
        )));
    }
    let expires_at = req.expires_in_seconds.map(|s| {
        (OffsetDateTime::now_utc() + time::Duration::seconds(i64::from(s)))
            .replace_nanosecond(0)
            .expect("zero is a valid nanosecond")
    });
    let link = state
        .store
        .create_invite_link(
            id,
            me.id,
            NewInviteLink {
                code: new_code(),
                expires_at,
                max_uses: req.max_uses,
            },
        )
        .await
        .map_err(|e| match e {
            chat_shared::Error::NotAllowed => ApiError::insufficient_role("manage invite links"),
            other => other.into(),
        })?;
    tracing::info!(room_id = %id, by = %me.id, "invite link made");
    Ok((StatusCode::CREATED, Json(link)))
}

/// Revokes an invite link (owner or admin): nobody joins by it any more.
#[utoipa::path(delete, path = "/v1/rooms/{id}/invite-links/{code}", tag = "invites",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("code" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, description = "no such link in the room, or revoked already", body = ErrorBody)))]
async fn revoke_link(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, code)): AppPath<(RoomId, String)>,
) -> Result<StatusCode, ApiError> {
    moderator(&state, id, &me).await?;
    if state.store.revoke_invite_link(id, &code).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("invite link"))
    }
}

/// Joins the room of an invite link. Recorded as `member_joined`; my
/// gateways start delivering the room (`room_added`). Bans still apply.
#[utoipa::path(post, path = "/v1/invite-links/{code}/join", tag = "invites",
    security(("bearer" = [])),
    params(("code" = String, Path)),
    responses(
        (status = 200, description = "the `member_joined` event", body = RoomEvent),
        (status = 403, description = "`banned`", body = ErrorBody),
        (status = 404, description = "no such link", body = ErrorBody),
        (status = 409, description = "`already_member`", body = ErrorBody),
        (status = 410, description = "`link_expired`, `link_revoked`, `link_used_up`", body = ErrorBody)))]
async fn join_by_link(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(code): AppPath<String>,
) -> Result<Json<RoomEvent>, ApiError> {
    let event = state
        .store
        .join_by_link(&code, me.id)
        .await
        .map_err(|e| match e {
            chat_shared::Error::NotFound => ApiError::NotFound("invite link"),
            chat_shared::Error::Banned => {
                ApiError::Forbidden("banned", "you are banned from this room".into())
            }
            chat_shared::Error::Conflict("link_expired") => {
                ApiError::Gone("link_expired", "this invite link has expired".into())
            }
            chat_shared::Error::Conflict("link_revoked") => {
                ApiError::Gone("link_revoked", "this invite link was revoked".into())
            }
            chat_shared::Error::Conflict("link_used_up") => ApiError::Gone(
                "link_used_up",
                "this invite link has been used as often as it allows".into(),
            ),
            other => other.into(),
        })?;
    state.announce(&event).await;
    Ok(Json(event))
}
