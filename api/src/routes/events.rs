//! A room's log over REST: history by seq cursor, and sending a message
//! (the same durable, idempotent append the gateway uses).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_shared::limits::Action;
use chat_shared::model::{AttachmentId, EventId, RoomEvent, RoomId};
use chat_shared::store::{DirectSend, NewMessage, Page};
use chat_shared::telemetry;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rooms::membership;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, AuthUser};
use crate::state::AppState;
use crate::validate;

/// Events per page when the client does not say.
const DEFAULT_LIMIT: u32 = 50;
/// Most events per page.
const MAX_LIMIT: u32 = 200;

/// The log routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history))
        .routes(routes!(send))
}

/// Which part of the log (or of the timeline) to read.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only events with a greater seq (reading forward from a cursor).
    after: Option<i64>,
    /// Only events with a smaller seq (scrolling back).
    before: Option<i64>,
    /// 1–200, default 50.
    limit: Option<u32>,
}

impl HistoryQuery {
    /// The page asked for, once its bounds are checked.
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::Validation(format!("limit: 1 to {MAX_LIMIT}")));
        }
        if self.after.is_some_and(|a| a < 0) || self.before.is_some_and(|b| b < 1) {
            return Err(ApiError::Validation(
                "after must be 0 or more, before 1 or more".into(),
            ));
        }
        Ok(Page {
            after: self.after,
            before: self.before,
            limit,
        })
    }
}

/// A page of the log, oldest first.
#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    /// The events, in ascending seq.
    events: Vec<RoomEvent>,
    /// The room's newest seq when the page was read (never below the page's
    /// own events).
    last_seq: i64,
}

/// A message to send.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// The sender's idempotency key: resending the same one returns the
    /// original event instead of storing a second.
    client_id: String,
    /// The text. `@username` mentions that member; `@room`, by an owner
    /// or admin, every member.
    body: String,
    /// The message of this room it answers; the stored reply carries a
    /// preview of it.
    #[serde(default)]
    reply_to: Option<EventId>,
    /// Files uploaded to this room (`POST /v1/rooms/{id}/attachments`),
    /// not yet sent, that the message carries (at most 10); with any, the
    /// text may be empty.
    #[serde(default)]
    attachments: Vec<AttachmentId>,
}

/// Reads the log by seq cursor (members only). With `after`, the page
/// starts just after it; otherwise it ends at the newest event (or just
/// below `before`).
#[utoipa::path(get, path = "/v1/rooms/{id}/events", tag = "events",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn history(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
    AppQuery(query): AppQuery<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let page = query.page()?;
    let (room, _) = membership(&state, id, &me).await?;
    let events = state.store.events(id, page).await?;
    // The head was read before the page: a send committing in between can
    // put a newer event on it, and the head must never be behind the page.
    let last_seq = events
        .last()
        .map_or(room.last_seq, |e| e.seq.max(room.last_seq));
    Ok(Json(HistoryPage { events, last_seq }))
}

/// Sends a message: 201 with the stored event once it is committed, or 200
/// with the original event when `client_id` was already used.
#[utoipa::path(post, path = "/v1/rooms/{id}/messages", tag = "events",
    security(("bearer" = [])),
    params(("id" = RoomId, Path)),
    request_body = SendMessage,
    responses(
        (status = 201, body = RoomEvent),
        (status = 200, description = "a retry: the original event", body = RoomEvent),
        (status = 403, description = "not a member; `blocked`: a DM one of whose members blocks the other; `dm_declined`: my DM request was declined", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "over CHAT_SEND_RATE_PER_SECOND / CHAT_SEND_BURST", body = ErrorBody)))]
async fn send(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<RoomId>,
    AppJson(req): AppJson<SendMessage>,
) -> Result<(StatusCode, Json<RoomEvent>), ApiError> {
    // The same budget as WebSocket sends (one per process).
    state.spend(me.id, Action::Send)?;
    validate::client_id(&req.client_id)?;
    validate::message_content(
        &req.body,
        &req.attachments,
        state.config.common.max_body_chars,
    )?;
    // Consent of a direct room's pair, read before the append (a block
    // committing in between lets this one message through).
    let unlisted = match state.store.direct_send(id, me.id).await? {
        DirectSend::Blocked => return Err(ApiError::blocked("write in this DM")),
        DirectSend::Declined => return Err(ApiError::dm_declined()),
        DirectSend::Open { unlisted } => unlisted,
        DirectSend::NotDirect => Vec::new(),
    };
    // Membership is checked by the append itself, atomically with the seq
    // allocation, so a member kicked a moment ago cannot slip one in.
    let span = telemetry::store_append(id);
    let appended = state
        .store
        .append_message(
            id,
            me.id,
            NewMessage {
                client_id: req.client_id,
                body: req.body,
                reply_to: req.reply_to,
                attachments: req.attachments,
            },
        )
        .instrument(span.clone())
        .await;
    telemetry::record_append(&span, &appended);
    let appended = appended.map_err(|e| match e {
        chat_shared::Error::NotFound => ApiError::NotFound("room"),
        other => other.into(),
    })?;
    // Announced on a retry too: it heals a first attempt whose publish was
    // lost; gateways drop the duplicate by seq.
    state.announce(&appended.event).await;
    if appended.created {
        super::dms::announce_listed(&state, id, &unlisted).await;
    }
    let status = if appended.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(appended.event)))
}
