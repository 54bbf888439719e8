//! Registration, login, refresh-token rotation, logout and the session list.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::Json;
use chat_shared::model::{SessionId, User, UserId};
use chat_shared::store::{NewUser, RefreshToken, Rotation, Session};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AuthUser, ClientIp, UserAgent};
use crate::refresh_token;
use crate::state::AppState;
use crate::validate;

/// The credential routes; register, login and refresh are rate limited per
/// client address.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let limited = OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .route_layer(from_fn_with_state(state.clone(), limit_auth));
    OpenApiRouter::new()
        .merge(limited)
        .routes(routes!(logout))
        .routes(routes!(sessions))
        .routes(routes!(revoke_session))
}

/// Counts a credential attempt against its client address's allowance
/// before the route runs.
async fn limit_auth(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    state.auth_rate_limit.check(ip)?;
    Ok(next.run(request).await)
}

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–32 characters: letters, digits, `_`, `.`, `-`; unique ignoring case.
    username: String,
    /// 8–256 bytes.
    password: String,
    /// Shown name, 1–64 characters; defaults to the username.
    display_name: Option<String>,
}

/// Credentials for a login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// A refresh token to rotate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// The tokens of a session.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer` and the WebSocket handshake.
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// Opaque, single-use: trade it at `/v1/auth/refresh` for a new pair.
    refresh_token: String,
    /// When the refresh token expires.
    #[serde(with = "time::serde::rfc3339")]
    refresh_expires_at: OffsetDateTime,
    /// The session these tokens belong to.
    session_id: SessionId,
    /// The logged-in user.
    user: User,
}

/// One login session, as shown in the session list.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    id: SessionId,
    user_agent: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_used_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    /// Whether this is the session making the request.
    current: bool,
}

impl AppState {
    fn new_refresh_token(&self) -> (String, RefreshToken) {
        let (token, hash) = refresh_token::generate();
        let expires_at = OffsetDateTime::now_utc() + self.config.refresh_token_ttl;
        (token, RefreshToken { hash, expires_at })
    }

    fn tokens(
        &self,
        user: User,
        session: &Session,
        refresh_token: String,
    ) -> Result<TokenResponse, ApiError> {
        let (access_token, _) = self
            .issuer
            .issue(user.id, &user.username, session.id)
            .map_err(|e| ApiError::Internal(format!("signing an access token: {e}")))?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.issuer.ttl().as_secs(),
            refresh_token,
            refresh_expires_at: session.expires_at,
            session_id: session.id,
            user,
        })
    }

    async fn open_session(
        &self,
        user: User,
        user_agent: Option<String>,
    ) -> Result<TokenResponse, ApiError> {
        let (token, stored) = self.new_refresh_token();
        let session = self
            .store
            .create_session(user.id, user_agent, stored)
            .await?;
        self.tokens(user, &session, token)
    }
}

/// Creates an account and logs it in.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, body = TokenResponse),
        (status = 409, description = "username taken, or the display name is another user's username", body = ErrorBody),
        (status = 422, description = "invalid field", body = ErrorBody),
        (status = 429, description = "too many attempts", body = ErrorBody),
        (status = 503, description = "too many logins waiting for the password hasher; see Retry-After", body = ErrorBody),
    ))]
async fn register(
    State(state): State<AppState>,
    UserAgent(user_agent): UserAgent,
    AppJson(req): AppJson<RegisterRequest>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    validate::username(&req.username)?;
    validate::password(&req.password)?;
    let display_name = match req.display_name {
        Some(name) => validate::display_name(&name)?,
        None => req.username.clone(),
    };
    // A display name may be one's own username, never someone else's (the
    // web client shows @username beside it too).
    if let Some(lookalike) = validate::username_lookalike(&display_name) {
        let theirs = state.store.credentials(lookalike).await?;
        if !lookalike.eq_ignore_ascii_case(&req.username) && theirs.is_some() {
            return Err(ApiError::Conflict(
                "display_name_taken",
                "that display name is another user's username".into(),
            ));
        }
    }
    let password_hash = state.passwords.hash(req.password).await?;
    let user = state
        .store
        .create_user(NewUser {
            username: req.username,
            display_name,
            password_hash,
        })
        .await?;
    tracing::info!(user_id = %user.id, username = %user.username, "user registered");
    let tokens = state.open_session(user, user_agent).await?;
    Ok((StatusCode::CREATED, Json(tokens)))
}

/// `403 account_deactivated` if the account is deactivated.
async fn refuse_deactivated(state: &AppState, user: UserId) -> Result<(), ApiError> {
    let account = state.store.account(user).await?;
    if account.is_some_and(|a| a.deactivated_at.is_some()) {
        return Err(ApiError::account_deactivated());
    }
    Ok(())
}

/// Logs in with a username and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "wrong username or password", body = ErrorBody),
        (status = 403, description = "`account_deactivated`: an admin deactivated the account", body = ErrorBody),
        (status = 429, description = "too many attempts", body = ErrorBody),
        (status = 503, description = "too many logins waiting for the password hasher; see Retry-After", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    UserAgent(user_agent): UserAgent,
    AppJson(req): AppJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    // The same answer, after the same work, whether or not the user exists.
    let invalid = ApiError::Unauthorized("invalid_credentials", "wrong username or password");
    // No username holds a NUL, and PostgreSQL cannot even compare one.
    if req.password.len() > validate::MAX_PASSWORD_BYTES || req.username.contains('\0') {
        return Err(invalid);
    }
    let credentials = state.store.credentials(&req.username).await?;
    let (user, hash) = match credentials {
        Some(c) => (Some(c.user), Some(c.password_hash)),
        None => (None, None),
    };
    if !state.passwords.verify(req.password, hash).await? {
        return Err(invalid);
    }
    let user = user.ok_or(invalid)?;
    // Only after the password: a guesser learns nothing of the account.
    refuse_deactivated(&state, user.id).await?;
    Ok(Json(state.open_session(user, user_agent).await?))
}

/// Trades a refresh token for a new access and refresh token. Each refresh
/// token works once; presenting a spent one logs its session out.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "invalid, expired or reused token", body = ErrorBody),
        (status = 403, description = "`account_deactivated`: an admin deactivated the account", body = ErrorBody),
    ))]
async fn refresh(
    State(state): State<AppState>,
    AppJson(req): AppJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let (token, next) = state.new_refresh_token();
    let presented = refresh_token::hash(&req.refresh_token);
    match state.store.rotate_refresh_token(&presented, next).await? {
        Rotation::Rotated(session) => {
            let user = state
                .store
                .user(session.user_id)
                .await?
                .ok_or(ApiError::Unauthorized(
                    "invalid_refresh_token",
                    "unknown user",
                ))?;
            // Deactivation revokes every session, so a token presented
            // after it is invalid anyway; this closes the moment between.
            refuse_deactivated(&state, user.id).await?;
            Ok(Json(state.tokens(user, &session, token)?))
        }
        Rotation::Reused(session) => {
            tracing::warn!(session = %session.id, "a spent refresh token was presented; its session is revoked");
            state.announce_session_ended(session.user_id, session.id);
            Err(ApiError::Unauthorized(
                "refresh_token_reused",
                "this refresh token was already used; the session has been logged out",
            ))
        }
        Rotation::Invalid => Err(ApiError::Unauthorized(
            "invalid_refresh_token",
            "the refresh token is invalid or expired",
        )),
    }
}

/// Logs the current session out: its refresh token stops working and its
/// access tokens are refused from now on.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, me: AuthUser) -> Result<StatusCode, ApiError> {
    state.store.revoke_session(me.id, me.session).await?;
    state.announce_session_ended(me.id, me.session);
    Ok(StatusCode::NO_CONTENT)
}

/// My live sessions, newest first.
#[utoipa::path(get, path = "/v1/auth/sessions", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = [SessionView]), (status = 401, body = ErrorBody)))]
async fn sessions(
    State(state): State<AppState>,
    me: AuthUser,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let sessions = state.store.active_sessions(me.id).await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionView {
                current: s.id == me.session,
                id: s.id,
                user_agent: s.user_agent,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
            })
            .collect(),
    ))
}

/// Logs one of my sessions out (e.g. a lost phone).
#[utoipa::path(delete, path = "/v1/auth/sessions/{id}", tag = "auth",
    security(("bearer" = [])),
    params(("id" = SessionId, Path, description = "session id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_session(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<SessionId>,
) -> Result<StatusCode, ApiError> {
    if state.store.revoke_session(me.id, id).await? {
        state.announce_session_ended(me.id, id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("session"))
    }
}
