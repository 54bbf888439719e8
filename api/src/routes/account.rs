//! Account self-service: changing one's password and one's display name,
//! deleting one's account, and reading a user by id (avatars are in
//! `avatar`).
//!
//! A password change is a credential check like a login (argon2 on the
//! bounded hashing pool, counted against the client address's login
//! allowance, so a stolen access token is no way to guess the password at
//! leisure); once the new hash is stored every other session of the user
//! ends and its sockets close on every gateway, while the caller's stays.
//! A display name follows registration's rules and is told live to
//! everyone who shares a room with the user (`user_updated`).
//!
//! Deleting the account needs the password too. Every session ends first
//! (so nothing of the account acts while it goes), then each room it
//! owns is handed over (to the longest-standing admin, else the
//! longest-standing member; a room with nobody else is deleted), each
//! membership ends with a `member_left` event like a leave, and last the
//! row is erased: the name is freed, the display name becomes "deleted
//! user", and the messages it sent stay in their rooms under its id. A
//! failure midway leaves the password working, so the owner can log in
//! and delete again; the steps already done are not undone, and each is
//! a change the rooms already saw.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_shared::admin::ServerRole;
use chat_shared::limits::Action;
use chat_shared::model::{LeaveReason, Role, RoomKind, User, UserId};
use chat_shared::protocol::ServerFrame;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AuthUser, ClientIp};
use crate::state::AppState;
use crate::validate;

/// The account routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(change_password))
        .routes(routes!(update_profile))
        .routes(routes!(delete_account))
        .routes(routes!(user_by_id))
}

/// The password, to delete the account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountDeletion {
    /// The account's password.
    password: String,
}

/// A new password, with the current one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password the account has now.
    current_password: String,
    /// 8–256 bytes, as at registration.
    new_password: String,
}

/// A change of what others see of me.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileChange {
    /// 1–64 characters, as at registration; never another user's username.
    display_name: String,
}

impl AppState {
    /// Checks `password` against `user`'s hash, like a login: `403
    /// wrong_password` when it does not match (not 401, which says the
    /// session is gone).
    pub(crate) async fn check_password(
        &self,
        user: UserId,
        password: String,
    ) -> Result<User, ApiError> {
        let wrong =
            || ApiError::Forbidden("wrong_password", "the current password is wrong".into());
        if password.len() > validate::MAX_PASSWORD_BYTES {
            return Err(wrong());
        }
        let credentials = self.store.account_credentials(user).await?;
        let (user, hash) = match credentials {
            Some(c) => (Some(c.user), Some(c.password_hash)),
            None => (None, None),
        };
        if !self.passwords.verify(password, hash).await? {
            return Err(wrong());
        }
        user.ok_or_else(wrong)
    }

    /// Tells every user who shares a room with `user` (and `user`'s own
    /// sockets) what `user` looks like now. Best effort, after the commit:
    /// a client that misses it reads the user anew at its next load.
    pub(crate) async fn announce_user(&self, user: &User) {
        let frame = ServerFrame::UserUpdated {
            profile: user.clone(),
        };
        let mut told = match self.store.room_mates(user.id).await {
            Ok(mates) => mates,
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell room mates of a profile change");
                Vec::new()
            }
        };
        if !told.contains(&user.id) {
            told.push(user.id);
        }
        for mate in told {
            self.tell(mate, &frame);
        }
    }
}

/// Changes my password. The current session stays logged in; every other
/// session of mine is logged out and its sockets are closed.
#[utoipa::path(post, path = "/v1/account/password", tag = "account",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "changed; every other session has ended"),
        (status = 401, description = "no token, or this session has ended", body = ErrorBody),
        (status = 403, description = "`wrong_password`: the current password is wrong", body = ErrorBody),
        (status = 422, description = "the new password is too short or too long", body = ErrorBody),
        (status = 429, description = "too many credential attempts from this address", body = ErrorBody),
        (status = 503, description = "too many logins waiting for the password hasher; see Retry-After", body = ErrorBody),
    ))]
async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    me: AuthUser,
    AppJson(req): AppJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    // A guess at the current password is a login attempt.
    state.auth_rate_limit.check(ip)?;
    validate::password(&req.new_password)?;
    state.check_password(me.id, req.current_password).await?;
    let hash = state.passwords.hash(req.new_password).await?;
    if !state.store.set_password_hash(me.id, &hash).await? {
        return Err(ApiError::NotFound("user"));
    }
    state.end_sessions(me.id, Some(me.session)).await?;
    tracing::info!(user_id = %me.id, "password changed; other sessions ended");
    Ok(StatusCode::NO_CONTENT)
}

/// Changes my display name; everyone who shares a room with me is told
/// live (`user_updated`).
#[utoipa::path(patch, path = "/v1/account/profile", tag = "account",
    security(("bearer" = [])),
    request_body = ProfileChange,
    responses(
        (status = 200, description = "the user as they are now", body = User),
        (status = 401, description = "no token, or this session has ended", body = ErrorBody),
        (status = 409, description = "`display_name_taken`: the name is another user's username", body = ErrorBody),
        (status = 422, description = "invalid display name", body = ErrorBody),
        (status = 429, description = "too many profile changes; see Retry-After", body = ErrorBody),
    ))]
async fn update_profile(
    State(state): State<AppState>,
    me: AuthUser,
    AppJson(req): AppJson<ProfileChange>,
) -> Result<Json<User>, ApiError> {
    let display_name = validate::display_name(&req.display_name)?;
    state.spend(me.id, Action::Profile)?;
    let current = state
        .store
        .user(me.id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    // As at registration: one's own username, never someone else's.
    if let Some(lookalike) = validate::username_lookalike(&display_name) {
        if !lookalike.eq_ignore_ascii_case(&current.username)
            && state.store.credentials(lookalike).await?.is_some()
        {
            return Err(ApiError::Conflict(
                "display_name_taken",
                "that display name is another user's username".into(),
            ));
        }
    }
    let user = state
        .store
        .set_display_name(me.id, &display_name)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    state.announce_user(&user).await;
    Ok(Json(user))
}

/// Deletes my account: every session ends, rooms I own are handed over
/// (or deleted when nobody else is in them), I leave every room, and the
/// account is erased: its name is free again, and the messages it sent
/// stay, shown as from "deleted user".
#[utoipa::path(delete, path = "/v1/account", tag = "account",
    security(("bearer" = [])),
    request_body = AccountDeletion,
    responses(
        (status = 204, description = "deleted; every session has ended"),
        (status = 401, description = "no token, or this session has ended", body = ErrorBody),
        (status = 403, description = "`wrong_password`", body = ErrorBody),
        (status = 409, description = "`last_admin`: the only active server admin (make another first)", body = ErrorBody),
        (status = 429, description = "too many credential attempts from this address", body = ErrorBody),
    ))]
async fn delete_account(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    me: AuthUser,
    AppJson(req): AppJson<AccountDeletion>,
) -> Result<StatusCode, ApiError> {
    state.auth_rate_limit.check(ip)?;
    state.check_password(me.id, req.password).await?;
    // A server admin gives the role up first, through the rule that keeps
    // the server one active admin (audited as theirs); a moderator's role
    // goes with the erasure.
    let account = state.store.account(me.id).await?;
    if account.and_then(|a| a.server_role) == Some(ServerRole::Admin) {
        match state.store.set_server_role(me.id, None, Some(me.id)).await {
            Ok(_) | Err(chat_shared::Error::Conflict("unchanged")) => {}
            Err(chat_shared::Error::Conflict("last_admin")) => {
                return Err(ApiError::Conflict(
                    "last_admin",
                    "the server must keep at least one active admin: make another admin first"
                        .into(),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Nothing of the account acts while it goes: every socket closes.
    state.end_sessions(me.id, None).await?;
    // Whom to tell of the erased name, while they still share a room.
    let mates = state.store.room_mates(me.id).await?;
    // Every membership, listed or not: a DM never written in, or closed,
    // is in no list but is still left.
    for room in state.store.memberships(me.id).await? {
        let (Some(room), Some(role)) = (
            state.store.room(room).await?,
            state.store.role(room, me.id).await?,
        ) else {
            // Gone meanwhile (kicked, the room deleted): nothing to end.
            continue;
        };
        if role == Role::Owner && room.kind != RoomKind::Direct {
            let members = state.store.members(room.id).await?;
            // Members come by join time: the first admin, else the first
            // member, has stood longest.
            let others = || members.iter().filter(|m| m.user.id != me.id);
            let heir = others()
                .find(|m| m.role == Role::Admin)
                .or_else(|| others().next());
            match heir {
                Some(heir) => {
                    let events = state
                        .store
                        .set_role(room.id, heir.user.id, me.id, Role::Owner)
                        .await?;
                    state.announce_all(&events).await;
                }
                None => {
                    state.store.delete_room(room.id).await?;
                    state.announce_removed(me.id, room.id);
                    continue;
                }
            }
        }
        match state
            .store
            .remove_member(room.id, me.id, me.id, LeaveReason::Left)
            .await
        {
            Ok(event) => state.announce(&event).await,
            // Gone meanwhile (kicked, the room deleted): nothing to end.
            Err(chat_shared::Error::NotMember | chat_shared::Error::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let avatar = state.store.avatar(me.id).await?;
    let Some(erased) = state.store.erase_account(me.id).await? else {
        return Err(ApiError::NotFound("user"));
    };
    super::avatar::forget(&state, me.id, avatar).await;
    let frame = ServerFrame::UserUpdated { profile: erased };
    for mate in mates.into_iter().filter(|m| *m != me.id) {
        state.tell(mate, &frame);
    }
    tracing::info!(user_id = %me.id, "account deleted and erased");
    Ok(StatusCode::NO_CONTENT)
}

/// A user by id, as others see them now: how a client names the sender of
/// a message who is no longer in the room (one who left, or a deleted
/// account, shown as "deleted user").
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = UserId, Path, description = "user id")),
    responses(
        (status = 200, body = User),
        (status = 401, body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody),
    ))]
async fn user_by_id(
    State(state): State<AppState>,
    _me: AuthUser,
    AppPath(id): AppPath<UserId>,
) -> Result<Json<User>, ApiError> {
    let user = state
        .store
        .user(id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(user))
}
