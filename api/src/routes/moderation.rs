//! Moderation of a room's conversation: timeouts (a member muted until a
//! time: no sends, reactions, edits or typing there) and slow mode (the
//! shortest interval between one member's messages). Owners and admins
//! only, over members ranked below them; each change is an event in the
//! room's log (`member_muted`, `member_unmuted`, `slow_mode_changed`), so
//! the member and the room are told live and after a reconnect. The rules
//! themselves are enforced by the store at the commit of each send.

use axum::extract::State;
use axum::Json;
use chat_shared::limits::Action;
use chat_shared::model::{Room, RoomEvent, RoomId, RoomKind, UserId};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rooms::membership;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AuthUser};
use crate::state::AppState;

/// The longest timeout: 28 days. Longer than that is a ban.
pub const MAX_MUTE_SECONDS: u32 = 28 * 24 * 60 * 60;

/// The longest slow-mode interval: 6 hours.
pub const MAX_SLOW_MODE_SECONDS: u32 = 6 * 60 * 60;

/// The moderation routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mute, unmute))
        .routes(routes!(set_slow_mode))
}

/// How long to mute a member for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mute {
    /// 1 to 2,419,200 (28 days); the mute ends by itself then. Muting a
    /// member already muted replaces their mute's end.
    duration_seconds: u32,
}

/// A room's slow mode.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlowMode {
    /// The shortest interval between one member's messages, 0 (off) to
    /// 21,600 (6 hours). Owners and admins are exempt.
    seconds: u32,
}

/// Path of a member-targeted route.
type MemberPath = AppPath<(RoomId, UserId)>;

/// A direct room has no moderators: either of its two members blocks the
/// other instead.
fn no_direct(room: &Room) -> Result<(), ApiError> {
    if room.kind == RoomKind::Direct {
        return Err(ApiError::Forbidden(
            "direct_room",
            "direct rooms have no moderation".into(),
        ));
    }
    Ok(())
}

/// The store's refusal of a mute or an unmute, for people.
fn refused(e: chat_shared::Error, action: &str) -> ApiError {
    match e {
        chat_shared::Error::NotMember => ApiError::NotFound("member"),
        chat_shared::Error::NotAllowed => ApiError::insufficient_role(action),
        chat_shared::Error::Conflict("not_muted") => {
            ApiError::Conflict("not_muted", "that member is not muted".into())
        }
        other => other.into(),
    }
}

/// Mutes a member until `now + duration_seconds` (owner or admin, over
/// lower ranks): until then their sends, reactions, edits and typing in
/// this room are refused with `muted`. Recorded as `member_muted`.
#[utoipa::path(put, path = "/v1/rooms/{id}/members/{user_id}/mute", tag = "moderation",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("user_id" = UserId, Path)),
    request_body = Mute,
    responses(
        (status = 200, description = "the `member_muted` event", body = RoomEvent),
        (status = 403, description = "`not_member`, `insufficient_role` (not an owner or admin above them), `direct_room`", body = ErrorBody),
        (status = 404, description = "no such room, or the user is not a member", body = ErrorBody),
        (status = 422, description = "a duration out of range, or yourself", body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn mute(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, user)): MemberPath,
    AppJson(req): AppJson<Mute>,
) -> Result<Json<RoomEvent>, ApiError> {
    state.spend(me.id, Action::Moderate)?;
    let (room, _) = membership(&state, id, &me).await?;
    no_direct(&room)?;
    if user == me.id {
        return Err(ApiError::Validation(
            "user_id: you cannot mute yourself".into(),
        ));
    }
    if !(1..=MAX_MUTE_SECONDS).contains(&req.duration_seconds) {
        return Err(ApiError::Validation(format!(
            "duration_seconds: 1 to {MAX_MUTE_SECONDS} (28 days)"
        )));
    }
    // Whole seconds: the end is shown to people, and stored exactly.
    let now = OffsetDateTime::now_utc();
    let until = (now + time::Duration::seconds(i64::from(req.duration_seconds)))
        .replace_nanosecond(0)
        .expect("zero is a valid nanosecond");
    let event = state
        .store
        .mute(id, user, me.id, until)
        .await
        .map_err(|e| refused(e, "mute this member"))?;
    state.announce(&event).await;
    tracing::info!(room_id = %id, user_id = %user, by = %me.id, %until, "member muted");
    Ok(Json(event))
}

/// Lifts a member's mute before it ends (owner or admin, over lower
/// ranks). Recorded as `member_unmuted`.
#[utoipa::path(delete, path = "/v1/rooms/{id}/members/{user_id}/mute", tag = "moderation",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("user_id" = UserId, Path)),
    responses(
        (status = 200, description = "the `member_unmuted` event", body = RoomEvent),
        (status = 403, description = "`not_member`, `insufficient_role`, `direct_room`", body = ErrorBody),
        (status = 404, description = "no such room, or the user is not a member", body = ErrorBody),
        (status = 409, description = "`not_muted`: no mute is in force", body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn unmute(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, user)): MemberPath,
) -> Result<Json<RoomEvent>, ApiError> {
    state.spend(me.id, Action::Moderate)?;
    let (room, _) = membership(&state, id, &me).await?;
    no_direct(&room)?;
    let event = state
        .store
        .unmute(id, user, me.id)
        .await
        .map_err(|e| refused(e, "unmute this member"))?;
    state.announce(&event).await;
    tracing::info!(room_id = %id, user_id = %user, by = %me.id, "member unmuted");
    Ok(Json(event))
}

/// Sets the room's slow mode (owner or admin); 0 turns it off. A change
/// is recorded as `slow_mode_changed`; setting what is already set
/// records nothing. Members' sends sooner than the interval after their
/// previous message are refused with `slow_mode` (429, `Retry-After`).
#[utoipa::path(put, path = "/v1/rooms/{id}/slow-mode", tag = "moderation",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    request_body = SlowMode,
    responses(
        (status = 200, description = "the room as it is now", body = Room),
        (status = 403, description = "`not_member`, `insufficient_role`, `direct_room`", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "seconds out of range", body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn set_slow_mode(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
    AppJson(req): AppJson<SlowMode>,
) -> Result<Json<Room>, ApiError> {
    state.spend(me.id, Action::Moderate)?;
    let (room, _) = membership(&state, id, &me).await?;
    no_direct(&room)?;
    if req.seconds > MAX_SLOW_MODE_SECONDS {
        return Err(ApiError::Validation(format!(
            "seconds: 0 (off) to {MAX_SLOW_MODE_SECONDS} (6 hours)"
        )));
    }
    let (room, event) = state
        .store
        .set_slow_mode(id, me.id, req.seconds)
        .await
        .map_err(|e| match e {
            chat_shared::Error::NotAllowed => ApiError::insufficient_role("change slow mode"),
            chat_shared::Error::NotFound => ApiError::NotFound("room"),
            other => other.into(),
        })?;
    if let Some(event) = event {
        state.announce(&event).await;
    }
    Ok(Json(room))
}
