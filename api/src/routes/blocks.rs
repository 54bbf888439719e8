//! Blocks: a user stops hearing from another. The block itself is a row;
//! what it refuses is enforced where each act happens (DMs and invites
//! here in the api, signals, presence and DM sends in the gateways), and
//! every gateway learns of a change through the bus at once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_shared::bus::{BlockNotice, Topic};
use chat_shared::limits::Action;
use chat_shared::model::{BlockedUser, UserId};
use chat_shared::protocol::ServerFrame;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppPath, AuthUser};
use crate::state::AppState;

/// The block routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(blocked_users))
        .routes(routes!(block, unblock))
}

/// The users I block, the newest block first, with their names (for the
/// settings page's list).
#[utoipa::path(get, path = "/v1/users/me/blocks", tag = "users",
    security(("bearer" = [])),
    responses((status = 200, body = [BlockedUser]), (status = 401, body = ErrorBody)))]
async fn blocked_users(
    State(state): State<AppState>,
    me: AuthUser,
) -> Result<Json<Vec<BlockedUser>>, ApiError> {
    Ok(Json(state.store.blocked_users(me.id).await?))
}

/// Blocks a user: they can no longer open a DM with me (nor I with them),
/// write in our DM, add me to a room, call me or see me online; their
/// messages in rooms we share no longer count as unread or mentions for
/// me. Blocking again changes nothing.
#[utoipa::path(put, path = "/v1/users/me/blocks/{user_id}", tag = "users",
    security(("bearer" = [])),
    params(("user_id" = UserId, Path)),
    responses(
        (status = 204, description = "blocked (or already blocked)"),
        (status = 404, description = "no such user", body = ErrorBody),
        (status = 422, description = "blocking yourself", body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn block(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(user): AppPath<UserId>,
) -> Result<StatusCode, ApiError> {
    state.spend(me.id, Action::Block)?;
    if user == me.id {
        return Err(ApiError::Validation(
            "user_id: you cannot block yourself".into(),
        ));
    }
    let new = state.store.block(me.id, user).await.map_err(|e| match e {
        chat_shared::Error::NotFound => ApiError::NotFound("user"),
        other => other.into(),
    })?;
    if new {
        announce(&state, me.id, user, true);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a block: everything it refused is allowed again, live.
#[utoipa::path(delete, path = "/v1/users/me/blocks/{user_id}", tag = "users",
    security(("bearer" = [])),
    params(("user_id" = UserId, Path)),
    responses(
        (status = 204, description = "unblocked"),
        (status = 404, description = "I do not block that user", body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn unblock(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(user): AppPath<UserId>,
) -> Result<StatusCode, ApiError> {
    state.spend(me.id, Action::Block)?;
    if !state.store.unblock(me.id, user).await? {
        return Err(ApiError::NotFound("block"));
    }
    announce(&state, me.id, user, false);
    Ok(StatusCode::NO_CONTENT)
}

/// Tells the blocked user's gateways (who stop or resume showing them my
/// presence) and my own clients (who collapse or show their messages).
/// Best effort, after the commit: a gateway that misses it applies the
/// block from the store at the user's next connection.
fn announce(state: &AppState, blocker: UserId, blocked: UserId, now_blocked: bool) {
    let notice = if now_blocked {
        BlockNotice::BlockedBy { blocker }
    } else {
        BlockNotice::UnblockedBy { blocker }
    };
    state
        .publisher
        .publish(Topic::User(blocked), notice.to_bytes());
    let frame = ServerFrame::BlockChanged {
        user_id: blocked,
        blocked: now_blocked,
    };
    state
        .publisher
        .publish(Topic::User(blocker), bytes::Bytes::from(frame.to_json()));
}
