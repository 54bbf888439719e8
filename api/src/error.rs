//! The one error type of `chat-api` and its JSON shape,
//! `{"error": {"code", "message"}}`, with a stable `code` per cause.
//!
//! Client errors say what was wrong. Internal errors answer a bare 500; the
//! cause rides on the response as an extension and `log_internal_errors`
//! logs it inside the request's span, so it never reaches the client.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request could not be read (malformed JSON, bad path or query).
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// 401: missing, invalid or expired credentials.
    #[error("{1}")]
    Unauthorized(&'static str, &'static str),
    /// 403: authenticated, but not allowed.
    #[error("{1}")]
    Forbidden(&'static str, String),
    /// 404: the named thing does not exist (or is hidden from the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405: the route exists, but not with this method.
    #[error("this route does not take that method")]
    MethodNotAllowed,
    /// 408: the request took longer than the server waits.
    #[error("the request took too long")]
    Timeout,
    /// 409: the change conflicts with the current state.
    #[error("{1}")]
    Conflict(&'static str, String),
    /// 410: what the request names existed but is over for good (an
    /// expired, revoked or used-up invite link), with the stable code of
    /// why.
    #[error("{1}")]
    Gone(&'static str, String),
    /// 413: the request body is over the limit.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    /// 422: the body is well-formed but a field is invalid.
    #[error("{0}")]
    Validation(String),
    /// 415: an upload whose bytes are not the type it declares, with the
    /// stable code of the cause.
    #[error("{1}")]
    UnsupportedContent(&'static str, String),
    /// 422 with a code of its own, where `validation_failed` would say too
    /// little (a file name, an image too large to decode or corrupt).
    #[error("{1}")]
    Unprocessable(&'static str, String),
    /// 429: too many attempts; retry after the given number of seconds.
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    /// 429: the room's slow mode; the member may send again after the
    /// given number of seconds.
    #[error("slow mode is on in this room: wait {0} s before your next message")]
    SlowMode(u32),
    /// 503: a dependency (the database, the password hasher) is saturated or down.
    #[error("service temporarily unavailable")]
    Unavailable,
    /// 500: a bug or an unexpected failure; logged, never shown.
    #[error("internal error")]
    Internal(String),
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code and message of an error.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable cause, e.g. `not_member`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// The cause of a 500, for `log_internal_errors`.
#[derive(Clone)]
struct InternalCause(Arc<String>);

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(..) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(..) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(..) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict(..) => StatusCode::CONFLICT,
            Self::Gone(..) => StatusCode::GONE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UnsupportedContent(..) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) | Self::Unprocessable(..) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited(_) | Self::SlowMode(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `code` string.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(code, _)
            | Self::Unauthorized(code, _)
            | Self::Forbidden(code, _)
            | Self::Conflict(code, _)
            | Self::Gone(code, _)
            | Self::UnsupportedContent(code, _)
            | Self::Unprocessable(code, _) => code,
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Timeout => "timeout",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Validation(_) => "validation_failed",
            Self::RateLimited(_) => "rate_limited",
            Self::SlowMode(_) => "slow_mode",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// A 403 for callers outside the room.
    pub fn not_member() -> Self {
        Self::Forbidden("not_member", "you are not a member of this room".into())
    }

    /// A 403 for an account an admin deactivated (login and refresh).
    pub fn account_deactivated() -> Self {
        Self::Forbidden(
            "account_deactivated",
            "this account has been deactivated by an administrator".into(),
        )
    }

    /// A 403 for an act between two users one of whom blocks the other (a
    /// DM, a message in it, an invitation by the blocked user).
    pub fn blocked(action: &str) -> Self {
        Self::Forbidden(
            "blocked",
            format!("you cannot {action}: one of you blocks the other"),
        )
    }

    /// A 403 for a message in a DM request its recipient declined.
    pub fn dm_declined() -> Self {
        Self::Forbidden(
            "dm_declined",
            "they declined your message request; you cannot write to them here".into(),
        )
    }

    /// A 403 for a role too low for the action.
    pub fn insufficient_role(action: &str) -> Self {
        Self::Forbidden(
            "insufficient_role",
            format!("your role does not allow you to {action}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().into(),
                message: self.to_string(),
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        match self {
            Self::RateLimited(secs) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Self::SlowMode(secs) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            // Saturated or down for now: worth a retry, not at once.
            Self::Unavailable => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1));
            }
            Self::Internal(cause) => {
                response
                    .extensions_mut()
                    .insert(InternalCause(Arc::new(cause)));
            }
            _ => {}
        }
        response
    }
}

/// Logs the cause of every 500 in the span of the request that hit it.
pub async fn log_internal_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        tracing::error!(error = %cause, "request failed");
    }
    response
}

impl From<chat_shared::Error> for ApiError {
    fn from(err: chat_shared::Error) -> Self {
        use chat_shared::Error as E;
        match err {
            E::NotFound => Self::NotFound("resource"),
            E::NotMember => Self::not_member(),
            E::Banned => Self::Forbidden("banned", "you are banned from this room".into()),
            E::NotAllowed => Self::insufficient_role("do this"),
            E::Conflict("username") => {
                Self::Conflict("username_taken", "that username is taken".into())
            }
            E::Conflict("member") => {
                Self::Conflict("already_member", "already a member of this room".into())
            }
            E::Conflict("ban") => Self::Conflict("already_banned", "already banned".into()),
            E::Conflict(code) => match chat_shared::Error::message_conflict(code) {
                Some(text) => Self::Conflict(code, text.into()),
                None => Self::Conflict("conflict", format!("conflicting {code}")),
            },
            E::Invalid(text) => Self::Validation(text.into()),
            E::SlowMode(wait) => Self::SlowMode(wait),
            muted @ E::Muted(_) => {
                let (code, text) = muted.moderation_refusal().expect("a mute is a refusal");
                Self::Forbidden(code, text)
            }
            E::BadQuery(code, text) => Self::BadRequest(code, text),
            other if other.is_unavailable() => Self::Unavailable,
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(e) => Self::BadRequest("malformed_json", e.body_text()),
            JsonRejection::JsonDataError(e) => Self::Validation(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            other => Self::BadRequest("bad_body", other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest("invalid_path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest("invalid_query", rejection.body_text())
    }
}
