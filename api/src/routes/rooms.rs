//! Rooms: my list, the public directory, create, read, edit, delete, join,
//! leave, and read markers. Membership administration is in `members`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_shared::admin::AuditAction;
use chat_shared::limits::Action;
use chat_shared::model::{LeaveReason, MyRoom, Role, Room, RoomEvent, RoomId, RoomKind};
use chat_shared::store::NewRoom;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AuthUser};
use crate::state::AppState;
use crate::validate;

/// The room routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_rooms, create_room))
        .routes(routes!(public_rooms))
        .routes(routes!(get_room, update_room, delete_room))
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(mark_read))
}

/// The room, or 404.
pub async fn existing_room(state: &AppState, id: RoomId) -> Result<Room, ApiError> {
    state
        .store
        .room(id)
        .await?
        .ok_or(ApiError::NotFound("room"))
}

/// The room and the caller's role in it, server roles included
/// (`chat_shared::admin::effective_role`): 404 if there is no such room,
/// 403 if the caller is neither a member nor a server admin or moderator.
pub async fn membership(
    state: &AppState,
    id: RoomId,
    me: &AuthUser,
) -> Result<(Room, Role), ApiError> {
    let room = existing_room(state, id).await?;
    // Server roles included: a server admin acts as owner, a moderator as
    // admin, in every room, member or not.
    let role = state
        .store
        .effective_role(id, me.id)
        .await?
        .ok_or_else(ApiError::not_member)?;
    Ok((room, role))
}

/// A room to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    /// 1–64 characters.
    name: String,
    /// Up to 512 characters.
    #[serde(default)]
    topic: String,
    /// `public` (listed, anyone may join) or `private` (invite only).
    kind: RoomKind,
}

/// Changes to a room; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoom {
    name: Option<String>,
    topic: Option<String>,
}

/// A read marker to store.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// The newest seq the user has seen.
    seq: i64,
}

/// The read marker now stored.
#[derive(Serialize, ToSchema)]
pub struct ReadMarker {
    last_read_seq: i64,
}

/// The rooms I am in, with their heads and my read markers.
#[utoipa::path(get, path = "/v1/rooms", tag = "rooms",
    security(("bearer" = [])),
    responses((status = 200, body = [MyRoom]), (status = 401, body = ErrorBody)))]
async fn my_rooms(
    State(state): State<AppState>,
    me: AuthUser,
) -> Result<Json<Vec<MyRoom>>, ApiError> {
    Ok(Json(state.store.my_rooms(me.id).await?))
}

/// Creates a public or private room; I become its owner.
#[utoipa::path(post, path = "/v1/rooms", tag = "rooms",
    security(("bearer" = [])),
    request_body = CreateRoom,
    responses(
        (status = 201, body = Room),
        (status = 422, body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn create_room(
    State(state): State<AppState>,
    me: AuthUser,
    AppJson(req): AppJson<CreateRoom>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    state.spend(me.id, Action::CreateRoom)?;
    if req.kind == RoomKind::Direct {
        return Err(ApiError::Validation(
            "kind: direct rooms are opened with POST /v1/dms".into(),
        ));
    }
    let new = NewRoom {
        kind: req.kind,
        name: validate::room_name(&req.name)?,
        topic: validate::topic(&req.topic)?,
        created_by: me.id,
    };
    let (room, event) = state.store.create_room(new).await?;
    state.announce(&event).await;
    tracing::info!(room_id = %room.id, kind = room.kind.as_str(), "room created");
    Ok((StatusCode::CREATED, Json(room)))
}

/// Every public room.
#[utoipa::path(get, path = "/v1/rooms/public", tag = "rooms",
    security(("bearer" = [])),
    responses((status = 200, body = [Room])))]
async fn public_rooms(
    State(state): State<AppState>,
    _me: AuthUser,
) -> Result<Json<Vec<Room>>, ApiError> {
    Ok(Json(state.store.public_rooms().await?))
}

/// A room: public rooms to anyone, others to their members.
#[utoipa::path(get, path = "/v1/rooms/{id}", tag = "rooms",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    responses((status = 200, body = Room), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_room(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
) -> Result<Json<Room>, ApiError> {
    let room = existing_room(&state, id).await?;
    if room.kind != RoomKind::Public && state.store.effective_role(id, me.id).await?.is_none() {
        return Err(ApiError::not_member());
    }
    Ok(Json(room))
}

/// Renames or re-topics a room (owner or admin); recorded as `room_updated`,
/// unless nothing changes (then nothing is recorded).
#[utoipa::path(patch, path = "/v1/rooms/{id}", tag = "rooms",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    request_body = UpdateRoom,
    responses((status = 200, body = Room), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_room(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
    AppJson(req): AppJson<UpdateRoom>,
) -> Result<Json<Room>, ApiError> {
    let (room, role) = membership(&state, id, &me).await?;
    if room.kind == RoomKind::Direct {
        return Err(ApiError::Forbidden(
            "direct_room",
            "direct rooms cannot be edited".into(),
        ));
    }
    if role < Role::Admin {
        return Err(ApiError::insufficient_role("edit this room"));
    }
    let name = match req.name {
        Some(name) => validate::room_name(&name)?,
        None => room.name,
    };
    let topic = match req.topic {
        Some(topic) => validate::topic(&topic)?,
        None => room.topic,
    };
    // An edit that changes nothing writes nothing and tells no one.
    let (room, event) = state.store.update_room(id, me.id, name, topic).await?;
    if let Some(event) = event {
        state.announce(&event).await;
        let member = state.store.role(id, me.id).await?;
        let act = (id, member, Role::Admin);
        let detail = room.name.clone();
        super::admin::audit_server_power(&state, &me, act, AuditAction::EditRoom, None, detail)
            .await;
    }
    Ok(Json(room))
}

/// Deletes a room and its history (owner only).
#[utoipa::path(delete, path = "/v1/rooms/{id}", tag = "rooms",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_room(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
) -> Result<StatusCode, ApiError> {
    let (room, role) = membership(&state, id, &me).await?;
    if role != Role::Owner {
        return Err(ApiError::insufficient_role("delete this room"));
    }
    let members = state.store.members(id).await?;
    let mine = members.iter().find(|m| m.user.id == me.id).map(|m| m.role);
    state.store.delete_room(id).await?;
    for member in members {
        state.announce_removed(member.user.id, id);
    }
    let act = (id, mine, Role::Owner);
    super::admin::audit_server_power(&state, &me, act, AuditAction::DeleteRoom, None, room.name)
        .await;
    tracing::info!(room_id = %id, "room deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Joins a public room; recorded as `member_joined`.
#[utoipa::path(post, path = "/v1/rooms/{id}/join", tag = "rooms",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    responses(
        (status = 201, body = RoomEvent),
        (status = 403, description = "private, direct, or banned", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "already a member", body = ErrorBody)))]
async fn join(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
) -> Result<(StatusCode, Json<RoomEvent>), ApiError> {
    let room = existing_room(&state, id).await?;
    if room.kind != RoomKind::Public {
        return Err(ApiError::Forbidden(
            "invite_only",
            "only public rooms can be joined; ask a member to invite you".into(),
        ));
    }
    let event = state
        .store
        .add_member(id, me.id, me.id, Role::Member)
        .await?;
    state.announce(&event).await;
    Ok((StatusCode::CREATED, Json(event)))
}

/// Leaves a room; recorded as `member_left`. An owner hands the room over
/// (or deletes it) first; direct rooms cannot be left.
#[utoipa::path(post, path = "/v1/rooms/{id}/leave", tag = "rooms",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    responses(
        (status = 200, body = RoomEvent),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "owner, or a direct room", body = ErrorBody)))]
async fn leave(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
) -> Result<Json<RoomEvent>, ApiError> {
    let (room, role) = membership(&state, id, &me).await?;
    if room.kind == RoomKind::Direct {
        return Err(ApiError::Conflict(
            "direct_room",
            "direct rooms cannot be left".into(),
        ));
    }
    if role == Role::Owner {
        return Err(ApiError::Conflict(
            "owner_cannot_leave",
            "make another member owner, or delete the room, before leaving".into(),
        ));
    }
    let event = state
        .store
        .remove_member(id, me.id, me.id, LeaveReason::Left)
        .await?;
    state.announce(&event).await;
    Ok(Json(event))
}

/// Moves my read marker forward (never back, never past the room's head).
#[utoipa::path(post, path = "/v1/rooms/{id}/read", tag = "rooms",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    request_body = MarkRead,
    responses(
        (status = 200, body = ReadMarker),
        (status = 403, body = ErrorBody),
        (status = 429, description = "over CHAT_READ_RATE_PER_SECOND / CHAT_READ_BURST", body = ErrorBody)))]
async fn mark_read(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
    AppJson(req): AppJson<MarkRead>,
) -> Result<Json<ReadMarker>, ApiError> {
    // Each one is a store write: the same budget as the socket's `read`.
    state.spend(me.id, Action::Read)?;
    membership(&state, id, &me).await?;
    if req.seq < 0 {
        return Err(ApiError::Validation("seq: must not be negative".into()));
    }
    let last_read_seq = state.store.mark_read(id, me.id, req.seq).await?.seq;
    Ok(Json(ReadMarker { last_read_seq }))
}
