//! My avatar, and everyone's for an `<img>`. An upload is sniffed (the
//! bytes decide what it is, as for attachments), decoded under the media
//! limits, cropped to a square, resized to `media::AVATAR_SIDE` and
//! re-encoded as PNG: only that is stored (in the store of blobs, as
//! `avatars/<user id>/<version>`) and served, never the uploaded bytes.
//!
//! Serving needs no token, since an `<img>` cannot send one: the URL
//! (`/v1/avatars/{user}/{version}`, from the user's `avatar` field) names a
//! random version that changes with every image, so it cannot be guessed
//! and may be cached for good; a removed or replaced avatar's URL answers
//! 404. It is same-origin for the web client, within its `img-src 'self'`.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_shared::blobs::{BlobKey, ServeHeaders};
use chat_shared::limits::Action;
use chat_shared::model::{User, UserId};
use futures::StreamExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppPath, AuthUser};
use crate::media::{self, Kind};
use crate::state::AppState;

/// The largest image taken for an avatar, in bytes.
pub const MAX_AVATAR_BYTES: usize = 5 << 20;

/// The avatar routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_avatar, remove_avatar))
        .routes(routes!(avatar))
}

/// Where the bytes of `user`'s avatar `version` are.
fn blob_key(user: UserId, version: &str) -> Result<BlobKey, ApiError> {
    BlobKey::new(&format!("avatars/{}/{version}", user.0.simple()))
        .map_err(|_| ApiError::NotFound("avatar"))
}

/// Deletes the bytes of an avatar no longer named (best effort: a blob
/// left behind is unreachable, its version being gone).
pub(crate) async fn forget(state: &AppState, user: UserId, version: Option<String>) {
    let Some(version) = version else { return };
    if let Ok(key) = blob_key(user, &version) {
        if let Err(e) = state.blobs.delete(&key).await {
            tracing::warn!(user_id = %user, error = %e, "could not delete an old avatar's bytes");
        }
    }
}

/// Sets my avatar from an image (PNG, JPEG, GIF or WebP, at most 5 MiB):
/// stored as a 128 × 128 PNG of its centred square. Everyone sharing a
/// room with me is told (`user_updated`).
#[utoipa::path(put, path = "/v1/account/avatar", tag = "account",
    security(("bearer" = [])),
    request_body(content = Vec<u8>, description = "the image's bytes", content_type = "image/*"),
    responses(
        (status = 200, description = "the user with the new `avatar`", body = User),
        (status = 401, body = ErrorBody),
        (status = 413, description = "over 5 MiB", body = ErrorBody),
        (status = 415, description = "`type_mismatch`: not an image we take, or not the type declared", body = ErrorBody),
        (status = 422, description = "`image_too_large` or `unreadable_image`", body = ErrorBody),
        (status = 429, description = "over the upload budget", body = ErrorBody),
    ))]
async fn set_avatar(
    State(state): State<AppState>,
    me: AuthUser,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<User>, ApiError> {
    state.spend(me.id, Action::Upload)?;
    let bytes = read_limited(body).await?;
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let inspection = media::inspect(declared, &bytes)?;
    let Kind::Image(format) = inspection.kind else {
        return Err(ApiError::UnsupportedContent(
            "type_mismatch",
            format!(
                "an avatar is a PNG, JPEG, GIF or WebP image; this is {}",
                inspection.content_type
            ),
        ));
    };
    let encoded = {
        let _permit = state
            .thumbnails
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable)?;
        tokio::task::spawn_blocking(move || media::avatar(&bytes, format))
            .await
            .map_err(|e| ApiError::Internal(format!("avatar task: {e}")))??
    };
    let version = uuid::Uuid::new_v4().simple().to_string();
    let serve = ServeHeaders {
        content_type: "image/png".to_owned(),
        content_disposition: "inline".to_owned(),
    };
    let body = futures::stream::once(async move { Ok(Bytes::from(encoded)) }).boxed();
    state
        .blobs
        .put(&blob_key(me.id, &version)?, &serve, body)
        .await?;
    let previous = state.store.avatar(me.id).await?;
    let Some(user) = state.store.set_avatar(me.id, Some(&version)).await? else {
        forget(&state, me.id, Some(version)).await;
        return Err(ApiError::NotFound("user"));
    };
    forget(&state, me.id, previous).await;
    state.announce_user(&user).await;
    Ok(Json(user))
}

/// Removes my avatar.
#[utoipa::path(delete, path = "/v1/account/avatar", tag = "account",
    security(("bearer" = [])),
    responses((status = 200, description = "the user without `avatar`", body = User), (status = 401, body = ErrorBody)))]
async fn remove_avatar(
    State(state): State<AppState>,
    me: AuthUser,
) -> Result<Json<User>, ApiError> {
    state.spend(me.id, Action::Profile)?;
    let previous = state.store.avatar(me.id).await?;
    let user = state
        .store
        .set_avatar(me.id, None)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    forget(&state, me.id, previous).await;
    state.announce_user(&user).await;
    Ok(Json(user))
}

/// A user's avatar, as a 128 × 128 PNG. No token: the version in the path
/// is the secret, and it changes with every image.
#[utoipa::path(get, path = "/v1/avatars/{user}/{version}", tag = "users",
    params(("user" = UserId, Path), ("version" = String, Path)),
    responses(
        (status = 200, description = "the image", content_type = "image/png"),
        (status = 404, description = "no such avatar (removed, replaced, or never)", body = ErrorBody),
    ))]
async fn avatar(
    State(state): State<AppState>,
    AppPath((user, version)): AppPath<(UserId, String)>,
) -> Result<Response, ApiError> {
    if state.store.avatar(user).await?.as_deref() != Some(version.as_str()) {
        return Err(ApiError::NotFound("avatar"));
    }
    let read = match state.blobs.get(&blob_key(user, &version)?).await {
        Ok(read) => read,
        Err(chat_shared::Error::NotFound) => return Err(ApiError::NotFound("avatar")),
        Err(e) => return Err(e.into()),
    };
    let mut response = Body::from_stream(read.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(read.size));
    // A version's bytes never change.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(response)
}

/// The whole body, refused past [`MAX_AVATAR_BYTES`].
async fn read_limited(body: Body) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::BadRequest("upload_interrupted", "the image's upload broke off".into())
        })?;
        if bytes.len() + chunk.len() > MAX_AVATAR_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(bytes))
}
