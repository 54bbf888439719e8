//! Extractors that turn a request into typed, checked input, rejecting with
//! [`ApiError`] so every failure has the one JSON error shape.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chat_shared::model::{SessionId, UserId};

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body whose rejection is an [`ApiError`].
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters whose rejection is an [`ApiError`] (e.g. an invalid UUID).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

/// Query parameters whose rejection is an [`ApiError`].
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

/// The caller, authenticated by an access token in `Authorization: Bearer`
/// whose session is still live.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// Who is calling.
    pub id: UserId,
    /// The session the token belongs to.
    pub session: SessionId,
}

impl<S> FromRequestParts<S> for AuthUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(chat_shared::auth::bearer_token)
            .ok_or(ApiError::Unauthorized(
                "missing_token",
                "send an access token as Authorization: Bearer <token>",
            ))?;
        let claims = state.verifier.verify(token).map_err(|_| {
            ApiError::Unauthorized("invalid_token", "the access token is invalid or expired")
        })?;
        // Tokens are short-lived, but a logged-out session should stop
        // working now, not in fifteen minutes: one primary-key read.
        let session = state.store.session(claims.sid).await?;
        if !session.is_some_and(|s| s.revoked_at.is_none() && s.user_id == claims.sub) {
            return Err(ApiError::Unauthorized(
                "session_revoked",
                "this session has been logged out",
            ));
        }
        Ok(Self {
            id: claims.sub,
            session: claims.sid,
        })
    }
}

/// The address of the client, for rate limiting: the peer address, or the
/// last `X-Forwarded-For` hop when the api is configured to trust its proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S> FromRequestParts<S> for ClientIp
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        if state.config.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|ip| ip.trim().parse().ok());
            if let Some(ip) = forwarded {
                return Ok(Self(ip));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        peer.map(Self)
            .ok_or_else(|| ApiError::Internal("no peer address on the request".into()))
    }
}

/// The `User-Agent` header, if any, kept with a new session.
pub struct UserAgent(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect());
        Ok(Self(agent))
    }
}
