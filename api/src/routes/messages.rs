//! What people do to a message once it is sent: edit, delete, react, pin;
//! and the two reads that show messages as they are now, the timeline and
//! a room's pins. Each change is an event of the room's log, announced to
//! the gateways like a message, and draws on the sender's send budget.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_shared::limits::Action;
use chat_shared::model::{EventId, RoomEvent, RoomId, TimelineItem};
use chat_shared::store::{Appended, MessageChange};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::events::HistoryQuery;
use super::rooms::membership;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, AuthUser};
use crate::state::AppState;
use crate::validate;

/// The message routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(edit, delete))
        .routes(routes!(react, unreact))
        .routes(routes!(pin, unpin))
        .routes(routes!(pins))
        .routes(routes!(timeline))
}

/// A message's new text.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    /// The editor's idempotency key: resending it returns the original
    /// edit instead of storing a second.
    client_id: String,
    /// The new text (the rules of a send); its mentions replace the old.
    body: String,
}

/// A page of the timeline, oldest first.
#[derive(Serialize, ToSchema)]
pub struct TimelinePage {
    /// Every event that is not a change of a message, in ascending seq;
    /// messages as they are now.
    items: Vec<TimelineItem>,
    /// The room's head in the snapshot the page was read in: every change
    /// up to it shows in the page, none after it (apply those live).
    last_seq: i64,
}

/// A room's pinned messages.
#[derive(Serialize, ToSchema)]
pub struct PinList {
    /// The messages as they are now, the latest pin first.
    pins: Vec<TimelineItem>,
    /// The room's head in the same snapshot, as for the timeline.
    last_seq: i64,
}

/// Records `change` of message `target` by the caller: the caller must be
/// a member now; the store authorises the rest at the commit. The answer is
/// the new event (`created`) or, on a retried `client_id`, the original.
async fn change(
    state: &AppState,
    me: &AuthUser,
    room: RoomId,
    target: EventId,
    client_id: Option<String>,
    change: MessageChange,
) -> Result<Appended, ApiError> {
    state.spend(me.id, Action::Send)?;
    membership(state, room, me).await?;
    let refusal = change.not_allowed();
    let appended = state
        .store
        .change_message(room, me.id, target, client_id.as_deref(), change)
        .await
        .map_err(|e| match e {
            chat_shared::Error::NotFound => ApiError::NotFound("message"),
            chat_shared::Error::NotAllowed => ApiError::Forbidden(refusal.0, refusal.1.into()),
            other => other.into(),
        })?;
    // Announced on a retry too, like a send: gateways drop the duplicate.
    state.announce(&appended.event).await;
    Ok(appended)
}

/// 201 for a new event, 200 for the original of a retry.
fn created(appended: Appended) -> (StatusCode, Json<RoomEvent>) {
    let status = if appended.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(appended.event))
}

/// Edits one of my messages: 201 with the `message_edited` event, or 200
/// with the original edit when `client_id` was already used. The message
/// keeps its seq; the timeline shows the new text with `edited_at`.
#[utoipa::path(patch, path = "/v1/rooms/{id}/messages/{message_id}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("message_id" = EventId, Path)),
    request_body = EditMessage,
    responses(
        (status = 201, body = RoomEvent),
        (status = 200, description = "a retry: the original edit", body = RoomEvent),
        (status = 403, description = "not a member (`not_member`), or not the sender (`not_sender`)", body = ErrorBody),
        (status = 404, description = "no such room, or no such message in it", body = ErrorBody),
        (status = 409, description = "`message_deleted`", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn edit(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, message)): AppPath<(RoomId, EventId)>,
    AppJson(req): AppJson<EditMessage>,
) -> Result<(StatusCode, Json<RoomEvent>), ApiError> {
    validate::client_id(&req.client_id)?;
    validate::message_body(&req.body, state.config.common.max_body_chars)?;
    let edit = MessageChange::Edit { body: req.body };
    let appended = change(&state, &me, id, message, Some(req.client_id), edit).await?;
    Ok(created(appended))
}

/// Deletes a message: mine, or anyone's as an owner or admin. It is erased
/// (its text, edits and reactions are gone from the store); its event
/// stays in the log as a tombstone at its seq. 200 with `message_deleted`.
#[utoipa::path(delete, path = "/v1/rooms/{id}/messages/{message_id}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("message_id" = EventId, Path)),
    responses(
        (status = 200, body = RoomEvent),
        (status = 403, description = "not a member, or another's message without being an owner or admin (`insufficient_role`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`message_deleted`: it already was", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn delete(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, message)): AppPath<(RoomId, EventId)>,
) -> Result<Json<RoomEvent>, ApiError> {
    let appended = change(&state, &me, id, message, None, MessageChange::Delete).await?;
    Ok(Json(appended.event))
}

/// Checks and normalises the emoji of a reaction path.
fn emoji(text: &str) -> Result<String, ApiError> {
    chat_shared::message_text::emoji(text)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::Validation("emoji: exactly one emoji".into()))
}

/// Adds my reaction (one emoji, percent-encoded in the path) to a
/// message: 201 with `reaction_added`.
#[utoipa::path(put, path = "/v1/rooms/{id}/messages/{message_id}/reactions/{emoji}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("message_id" = EventId, Path), ("emoji" = String, Path)),
    responses(
        (status = 201, body = RoomEvent),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`already_reacted`, `too_many_reactions` (20 emoji a message), `message_deleted`", body = ErrorBody),
        (status = 422, description = "not exactly one emoji", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn react(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, message, text)): AppPath<(RoomId, EventId, String)>,
) -> Result<(StatusCode, Json<RoomEvent>), ApiError> {
    let emoji = emoji(&text)?;
    let appended = change(
        &state,
        &me,
        id,
        message,
        None,
        MessageChange::React { emoji },
    )
    .await?;
    Ok(created(appended))
}

/// Takes my reaction back: 200 with `reaction_removed`.
#[utoipa::path(delete, path = "/v1/rooms/{id}/messages/{message_id}/reactions/{emoji}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("message_id" = EventId, Path), ("emoji" = String, Path)),
    responses(
        (status = 200, body = RoomEvent),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not_reacted`, `message_deleted`", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn unreact(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, message, text)): AppPath<(RoomId, EventId, String)>,
) -> Result<Json<RoomEvent>, ApiError> {
    let emoji = emoji(&text)?;
    let unreact = MessageChange::Unreact { emoji };
    let appended = change(&state, &me, id, message, None, unreact).await?;
    Ok(Json(appended.event))
}

/// Pins a message (owners and admins; either member of a DM): 201 with
/// `message_pinned`.
#[utoipa::path(put, path = "/v1/rooms/{id}/pins/{message_id}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("message_id" = EventId, Path)),
    responses(
        (status = 201, body = RoomEvent),
        (status = 403, description = "not a member, or not an owner or admin (`insufficient_role`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`already_pinned`, `too_many_pins` (50 a room), `message_deleted`", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn pin(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, message)): AppPath<(RoomId, EventId)>,
) -> Result<(StatusCode, Json<RoomEvent>), ApiError> {
    let appended = change(&state, &me, id, message, None, MessageChange::Pin).await?;
    Ok(created(appended))
}

/// Unpins a message: 200 with `message_unpinned`.
#[utoipa::path(delete, path = "/v1/rooms/{id}/pins/{message_id}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), ("message_id" = EventId, Path)),
    responses(
        (status = 200, body = RoomEvent),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not_pinned`, `message_deleted`", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn unpin(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, message)): AppPath<(RoomId, EventId)>,
) -> Result<Json<RoomEvent>, ApiError> {
    let appended = change(&state, &me, id, message, None, MessageChange::Unpin).await?;
    Ok(Json(appended.event))
}

/// A room's pinned messages as they are now (members only), the latest
/// pin first.
#[utoipa::path(get, path = "/v1/rooms/{id}/pins", tag = "messages",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    responses((status = 200, body = PinList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn pins(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
) -> Result<Json<PinList>, ApiError> {
    membership(&state, id, &me).await?;
    let pins = state.store.pins(id, me.id).await?;
    Ok(Json(PinList {
        pins: pins.items,
        last_seq: pins.last_seq,
    }))
}

/// Reads the timeline by seq cursor (members only), as `/events` reads the
/// log: every event but the changes of messages, with messages as they are
/// now (edits applied, deletions as tombstones, reactions counted, pins,
/// reply previews).
#[utoipa::path(get, path = "/v1/rooms/{id}/timeline", tag = "messages",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), HistoryQuery),
    responses((status = 200, body = TimelinePage), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn timeline(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
    AppQuery(query): AppQuery<HistoryQuery>,
) -> Result<Json<TimelinePage>, ApiError> {
    let page = query.page()?;
    membership(&state, id, &me).await?;
    let timeline = state.store.timeline(id, me.id, page).await?;
    Ok(Json(TimelinePage {
        items: timeline.items,
        last_seq: timeline.last_seq,
    }))
}
