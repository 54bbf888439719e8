//! Full-text search of messages: `GET /v1/search`, over the rooms the
//! caller is a member of now, newest first, with the searched words marked
//! as data. A query is parsed (and a bad one refused) before anything else
//! is done, and each search draws on the caller's search budget: it costs
//! the database an index lookup and a sort of every match.

use axum::extract::State;
use axum::Json;
use chat_shared::limits::Action;
use chat_shared::model::{EventId, RoomId};
use chat_shared::search::{SearchHit, SearchQuery};
use chat_shared::store::SearchPage;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rooms::membership;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppQuery, AuthUser};
use crate::state::AppState;

/// Hits per page when the client does not say.
const DEFAULT_LIMIT: u32 = 20;
/// Most hits per page.
const MAX_LIMIT: u32 = 50;

/// The search route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

/// What to search for, where, and which page.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// The query, up to 256 characters and 16 words: `word` (every word
    /// must match), `"a phrase"`, `-word` or `-"a phrase"` (must not).
    q: String,
    /// Only this room (you must be a member).
    #[param(value_type = Option<String>, format = Uuid)]
    room_id: Option<RoomId>,
    /// Only messages older than this one: the `next_before` of the page
    /// before.
    #[param(value_type = Option<String>, format = Uuid)]
    before: Option<EventId>,
    /// 1–50, default 20.
    limit: Option<u32>,
}

/// A page of what a search found.
#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    /// The messages, newest first, as they are now.
    hits: Vec<SearchHit>,
    /// The cursor of the next (older) page, as `before`; absent on the
    /// last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    next_before: Option<EventId>,
}

/// Searches the messages of my rooms (or of one of them), newest first,
/// each with its text cut into parts, the searched words marked
/// (`"match": true`): data, never HTML.
#[utoipa::path(get, path = "/v1/search", tag = "messages",
    security(("bearer" = [])),
    params(SearchParams),
    responses(
        (status = 200, body = SearchResults),
        (status = 400, description = "`query_too_long` (over 256 characters), `too_many_words` (over 16), `no_search_terms` (no word to find: empty, or only -excluded words), `invalid_query` (a room_id or before that is not a UUID)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`not_member` of room_id", body = ErrorBody),
        (status = 404, description = "no such room_id", body = ErrorBody),
        (status = 422, description = "limit outside 1–50", body = ErrorBody),
        (status = 429, description = "over CHAT_SEARCH_RATE_PER_MINUTE", body = ErrorBody)))]
async fn search(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(params): AppQuery<SearchParams>,
) -> Result<Json<SearchResults>, ApiError> {
    let query = SearchQuery::parse(&params.q)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::Validation(format!("limit: 1 to {MAX_LIMIT}")));
    }
    state.spend(me.id, Action::Search)?;
    if let Some(room) = params.room_id {
        membership(&state, room, &me).await?;
    }
    // One more than the page: whether there is a next page, without a
    // second query.
    let page = SearchPage {
        room: params.room_id,
        before: params.before,
        limit: limit + 1,
    };
    let mut hits = state.store.search_messages(me.id, &query, page).await?;
    let more = hits.len() > limit as usize;
    hits.truncate(limit as usize);
    let next_before = more.then(|| hits.last().map(|h| h.id)).flatten();
    Ok(Json(SearchResults { hits, next_before }))
}
