//! Membership administration: the member list, invitations, kicks, roles
//! and bans. Moderators act only on members ranked below them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_shared::admin::AuditAction;
use chat_shared::limits::Action;
use chat_shared::model::{Ban, LeaveReason, Member, Role, RoomEvent, RoomId, RoomKind, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rooms::membership;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AuthUser};
use crate::state::AppState;
use crate::validate;

/// The membership routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(members, invite))
        .routes(routes!(kick))
        .routes(routes!(set_role))
        .routes(routes!(bans))
        .routes(routes!(ban, unban))
}

/// Someone to add to a room.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    user_id: UserId,
}

/// A new role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    /// `member`, `admin`, or `owner` (hands the room over; the previous
    /// owner becomes admin).
    role: Role,
}

/// Why someone is banned (send `{}` for no reason).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// Up to 512 characters.
    #[serde(default)]
    reason: String,
}

/// The outcome of a ban.
#[derive(Serialize, ToSchema)]
pub struct BanOutcome {
    /// The `member_left` event, if the user was a member.
    event: Option<RoomEvent>,
}

/// Path of a member-targeted route.
type MemberPath = AppPath<(RoomId, UserId)>;

/// Checks that `actor` may moderate `target` (who may not be a member).
fn outranks(actor: Role, target: Option<Role>, action: &str) -> Result<(), ApiError> {
    if actor < Role::Admin || target.is_some_and(|t| t >= actor) {
        return Err(ApiError::insufficient_role(action));
    }
    Ok(())
}

/// The members of a room I am in.
#[utoipa::path(get, path = "/v1/rooms/{id}/members", tag = "members",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    responses((status = 200, body = [Member]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn members(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
) -> Result<Json<Vec<Member>>, ApiError> {
    membership(&state, id, &me).await?;
    Ok(Json(state.store.members(id).await?))
}

/// Invites someone into a room: any member may invite into a public room,
/// owners and admins into a private one. The invitation waits for the
/// invitee's consent (`POST /v1/invites/{id}/accept`), in a public room as
/// in a private one: nobody is put into a room, and shown to its members
/// (their presence, their typing), without saying yes. Recorded as
/// `member_invited`; the invitee is told with an `invite` frame. This is
/// the one place an invitation is made: a rule on who may invite whom
/// belongs here.
#[utoipa::path(post, path = "/v1/rooms/{id}/members", tag = "members",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    request_body = Invite,
    responses(
        (status = 201, description = "the `member_invited` event", body = RoomEvent),
        (status = 403, description = "`not_member`, `insufficient_role`, `direct_room`, `banned`, or `blocked` (that user blocks me)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`already_member`, `already_invited`", body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn invite(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
    AppJson(req): AppJson<Invite>,
) -> Result<(StatusCode, Json<RoomEvent>), ApiError> {
    state.spend(me.id, Action::Invite)?;
    let (room, role) = membership(&state, id, &me).await?;
    match room.kind {
        RoomKind::Direct => {
            return Err(ApiError::Forbidden(
                "direct_room",
                "direct rooms have exactly two members".into(),
            ))
        }
        RoomKind::Private if role < Role::Admin => {
            return Err(ApiError::insufficient_role("invite into this room"))
        }
        _ => {}
    }
    // A deleted account is nobody to invite.
    if state.store.is_erased(req.user_id).await? {
        return Err(ApiError::NotFound("user"));
    }
    // Whoever blocks me cannot be added to a room by me.
    if state.store.blocks(req.user_id, me.id).await? {
        return Err(ApiError::blocked("add this user to a room"));
    }
    let (invite, event) = state
        .store
        .create_invite(id, req.user_id, me.id)
        .await
        .map_err(|e| match e {
            chat_shared::Error::NotFound => ApiError::NotFound("user"),
            chat_shared::Error::Banned => {
                ApiError::Forbidden("banned", "that user is banned from this room".into())
            }
            chat_shared::Error::Conflict("invited") => ApiError::Conflict(
                "already_invited",
                "that user is already invited to this room".into(),
            ),
            other => other.into(),
        })?;
    state.announce(&event).await;
    state.announce_invite(&invite);
    Ok((StatusCode::CREATED, Json(event)))
}

/// Removes a member (owner or admin, over lower ranks). Recorded as
/// `member_left` with reason `kicked`.
#[utoipa::path(delete, path = "/v1/rooms/{id}/members/{user_id}", tag = "members",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("user_id" = UserId, Path)),
    responses((status = 200, body = RoomEvent), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn kick(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, user)): MemberPath,
) -> Result<Json<RoomEvent>, ApiError> {
    let (_, role) = membership(&state, id, &me).await?;
    state
        .store
        .role(id, user)
        .await?
        .ok_or(ApiError::NotFound("member"))?;
    // Ranked with server roles: a room admin cannot kick a moderator.
    let target = state.store.effective_role(id, user).await?;
    outranks(role, target, "remove this member")?;
    let event = state
        .store
        .remove_member(id, user, me.id, LeaveReason::Kicked)
        .await?;
    state.announce(&event).await;
    let kick = (AuditAction::Kick, String::new());
    super::admin::audit_moderation(&state, &me, id, user, target, kick).await;
    tracing::info!(room_id = %id, user_id = %user, by = %me.id, "member kicked");
    Ok(Json(event))
}

/// Changes a member's role (owner only). Recorded as `role_changed`.
#[utoipa::path(put, path = "/v1/rooms/{id}/members/{user_id}/role", tag = "members",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("user_id" = UserId, Path)),
    request_body = SetRole,
    responses((status = 200, body = [RoomEvent]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_role(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, user)): MemberPath,
    AppJson(req): AppJson<SetRole>,
) -> Result<Json<Vec<RoomEvent>>, ApiError> {
    let (_, role) = membership(&state, id, &me).await?;
    if role != Role::Owner {
        return Err(ApiError::insufficient_role("change roles"));
    }
    if user == me.id {
        return Err(ApiError::Validation(
            "user_id: make another member owner instead of changing your own role".into(),
        ));
    }
    let member = state.store.role(id, me.id).await?;
    let events = state
        .store
        .set_role(id, user, me.id, req.role)
        .await
        .map_err(|e| match e {
            chat_shared::Error::NotMember => ApiError::NotFound("member"),
            other => other.into(),
        })?;
    state.announce_all(&events).await;
    let act = (id, member, Role::Owner);
    let detail = req.role.as_str().to_owned();
    let changed = AuditAction::SetRoomRole;
    super::admin::audit_server_power(&state, &me, act, changed, Some(user), detail).await;
    Ok(Json(events))
}

/// The bans of a room (owner or admin).
#[utoipa::path(get, path = "/v1/rooms/{id}/bans", tag = "members",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    responses((status = 200, body = [Ban]), (status = 403, body = ErrorBody)))]
async fn bans(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
) -> Result<Json<Vec<Ban>>, ApiError> {
    let (_, role) = membership(&state, id, &me).await?;
    if role < Role::Admin {
        return Err(ApiError::insufficient_role("see bans"));
    }
    Ok(Json(state.store.bans(id).await?))
}

/// Bans a user (owner or admin, over lower ranks), removing them if they
/// are a member; they cannot rejoin or be invited until unbanned.
#[utoipa::path(put, path = "/v1/rooms/{id}/bans/{user_id}", tag = "members",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("user_id" = UserId, Path)),
    request_body = BanRequest,
    responses((status = 201, body = BanOutcome), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn ban(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, user)): MemberPath,
    AppJson(req): AppJson<BanRequest>,
) -> Result<(StatusCode, Json<BanOutcome>), ApiError> {
    let (room, role) = membership(&state, id, &me).await?;
    if room.kind == RoomKind::Direct {
        return Err(ApiError::Forbidden(
            "direct_room",
            "direct rooms have no bans".into(),
        ));
    }
    if user == me.id {
        return Err(ApiError::Validation(
            "user_id: you cannot ban yourself".into(),
        ));
    }
    let target = state.store.effective_role(id, user).await?;
    outranks(role, target, "ban this user")?;
    let reason = validate::topic(&req.reason)
        .map_err(|_| ApiError::Validation("reason: up to 512 characters".into()))?;
    let reason_text = reason.clone();
    let event = state
        .store
        .ban(id, user, me.id, reason)
        .await
        .map_err(|e| match e {
            chat_shared::Error::NotFound => ApiError::NotFound("user"),
            other => other.into(),
        })?;
    state.announce_all(event.as_slice()).await;
    let ban = (AuditAction::Ban, reason_text);
    super::admin::audit_moderation(&state, &me, id, user, target, ban).await;
    tracing::info!(room_id = %id, user_id = %user, by = %me.id, "user banned");
    Ok((StatusCode::CREATED, Json(BanOutcome { event })))
}

/// Lifts a ban (owner or admin).
#[utoipa::path(delete, path = "/v1/rooms/{id}/bans/{user_id}", tag = "members",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("user_id" = UserId, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn unban(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, user)): MemberPath,
) -> Result<StatusCode, ApiError> {
    let (_, role) = membership(&state, id, &me).await?;
    if role < Role::Admin {
        return Err(ApiError::insufficient_role("lift bans"));
    }
    if state.store.unban(id, user).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("ban"))
    }
}
