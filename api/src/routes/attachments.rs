//! Files shared in rooms: the upload (into a room the caller is a member
//! of), the short-lived link a member gets to download one, and the api's
//! own serving of a link when the store of blobs has no URLs of its own.
//! A message carries uploads by id (`attachments` of a send).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_shared::limits::Action;
use chat_shared::model::{Attachment, AttachmentId, RoomId};
use chat_shared::store::{NewAttachment, StoredAttachment};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppPath, AppQuery, AuthUser};
use crate::links::{LinkRefusal, Variant};
use crate::media::FileName;
use crate::state::AppState;
use crate::uploads::{self, blob_key, serve_headers};

/// The attachment routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(link))
        .routes(routes!(content))
}

/// The path of the upload route, for the time limit it is exempt from.
pub const UPLOAD_ROUTE: &str = "/v1/rooms/{id}/attachments";

/// An upload's query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file's name: no path, 1 to 255 bytes, no control characters.
    name: String,
}

/// Which blob of an attachment.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    /// The file as uploaded.
    #[default]
    File,
    /// Its thumbnail (images only): at most 320 × 320, JPEG (PNG when the
    /// image is transparent).
    Thumbnail,
}

impl From<Which> for Variant {
    fn from(which: Which) -> Self {
        match which {
            Which::File => Variant::File,
            Which::Thumbnail => Variant::Thumbnail,
        }
    }
}

/// A link's query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// `file` (the default) or `thumbnail`.
    #[serde(default)]
    variant: Which,
}

/// Where to download an attachment from, for a little while.
#[derive(Serialize, ToSchema)]
pub struct AttachmentLink {
    /// Absolute (the bucket's origin) or a path on this api; needs no
    /// token, so it works as an `<img src>` or a download link.
    url: String,
    /// When the link stops working; ask for a new one after.
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// A signed link's query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentQuery {
    /// `file` or `thumbnail`, as signed.
    variant: Which,
    /// Unix time the link expires at, as signed.
    expires: i64,
    /// The api's signature of the three.
    signature: String,
}

/// Uploads a file into a room (members only), streamed: the body is the
/// file's bytes, `Content-Type` its type, which is checked against the
/// bytes. Images are measured and get a thumbnail. The attachment is then
/// sent by naming its id in a message's `attachments` within
/// `CHAT_UNSENT_ATTACHMENT_TTL`, or collected.
#[utoipa::path(post, path = "/v1/rooms/{id}/attachments", tag = "attachments",
    security(("bearer" = [])),
    params(("id" = RoomId, Path), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The file's bytes; at most CHAT_MAX_UPLOAD_BYTES (25 MiB by default)."),
    responses(
        (status = 201, body = Attachment),
        (status = 400, description = "the body broke off", body = ErrorBody),
        (status = 403, description = "not a member of the room", body = ErrorBody),
        (status = 404, description = "no such room", body = ErrorBody),
        (status = 413, description = "over CHAT_MAX_UPLOAD_BYTES", body = ErrorBody),
        (status = 415, description = "`type_mismatch`: the bytes are not the declared type", body = ErrorBody),
        (status = 422, description = "`invalid_file_name`, `image_too_large`, `unreadable_image`", body = ErrorBody),
        (status = 429, description = "over the upload budget (CHAT_ACTION_RATE_PER_MINUTE)", body = ErrorBody),
        (status = 503, description = "the store of blobs is unreachable: retry", body = ErrorBody)))]
async fn upload(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(room): AppPath<RoomId>,
    AppQuery(query): AppQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match store_upload(&state, &me, room, &query, &headers, body).await {
        Ok(attachment) => (StatusCode::CREATED, Json(attachment)).into_response(),
        Err(refused) => {
            // Refused before its body was read to the end: the rest of it
            // is not read, so the connection cannot carry another request
            // (a client that reused it would see it cut).
            let mut response = refused.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

async fn store_upload(
    state: &AppState,
    me: &AuthUser,
    room: RoomId,
    query: &UploadQuery,
    headers: &HeaderMap,
    body: Body,
) -> Result<Attachment, ApiError> {
    state.spend(me.id, Action::Upload)?;
    let name = FileName::parse(&query.name)?;
    // A declared length over the limit is refused before a byte is read;
    // an undeclared one is counted as it arrives.
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if length.is_some_and(|length| length > state.config.max_upload_bytes) {
        return Err(ApiError::PayloadTooLarge);
    }
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let new = NewAttachment {
        room,
        uploader: me.id,
        name: name.as_str().to_owned(),
        content_type: declared.unwrap_or_default().to_owned(),
    };
    let attachment = uploads::upload(state, new, &name, declared, body)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::NotFound("room"),
            other => other,
        })?;
    tracing::info!(attachment = %attachment.id, %room, size = attachment.size,
        content_type = %attachment.content_type, "uploaded");
    Ok(attachment)
}

/// A link to download an attachment (or its thumbnail) for
/// `CHAT_ATTACHMENT_LINK_TTL`: for members of the room it was shared in,
/// once a message carries it (before that, for its uploader only).
#[utoipa::path(get, path = "/v1/attachments/{id}", tag = "attachments",
    security(("bearer" = [])),
    params(("id" = AttachmentId, Path), LinkQuery),
    responses(
        (status = 200, body = AttachmentLink),
        (status = 404, description = "no such attachment, not visible to the caller, or no thumbnail", body = ErrorBody),
        (status = 503, description = "the store of blobs is unreachable: retry", body = ErrorBody)))]
async fn link(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<AttachmentId>,
    AppQuery(query): AppQuery<LinkQuery>,
) -> Result<Json<AttachmentLink>, ApiError> {
    let stored = readable(&state, id, &me).await?;
    let variant = Variant::from(query.variant);
    if variant == Variant::Thumbnail && stored.thumbnail_type.is_none() {
        return Err(ApiError::NotFound("thumbnail"));
    }
    let ttl = state.config.attachment_link_ttl;
    let expires_at = OffsetDateTime::now_utc() + ttl;
    let headers = serve_headers(&stored, variant);
    let presigned = state
        .blobs
        .presign_get(&blob_key(id, variant), ttl, &headers)
        .await?;
    let url = presigned.unwrap_or_else(|| state.links.mint(id, variant, expires_at));
    Ok(Json(AttachmentLink { url, expires_at }))
}

/// The attachment `id` if `me` may read it: it is stored, `me` is a
/// member of its room now, and a message carries it or `me` uploaded it.
/// Anything else is "not found", so ids reveal nothing.
async fn readable(
    state: &AppState,
    id: AttachmentId,
    me: &AuthUser,
) -> Result<StoredAttachment, ApiError> {
    let hidden = ApiError::NotFound("attachment");
    let Some(stored) = state.store.attachment(id).await?.filter(|s| s.ready) else {
        return Err(hidden);
    };
    if stored.seq.is_none() && stored.uploader != me.id {
        return Err(hidden);
    }
    if state.store.role(stored.room_id, me.id).await?.is_none() {
        return Err(hidden);
    }
    Ok(stored)
}

/// Serves a link minted by `GET /v1/attachments/{id}` (when the store of
/// blobs has no URLs of its own): no token, the signature is the
/// permission. Served as a download (`Content-Disposition: attachment`)
/// unless it is a raster image, never sniffed, and sandboxed, so nothing
/// uploaded runs as a page of this origin.
#[utoipa::path(get, path = "/v1/attachments/{id}/content", tag = "attachments",
    params(("id" = AttachmentId, Path), ContentQuery),
    responses(
        (status = 200, description = "the bytes", content_type = "application/octet-stream"),
        (status = 403, description = "`bad_link` or `link_expired`", body = ErrorBody),
        (status = 404, description = "the attachment was deleted", body = ErrorBody)))]
async fn content(
    State(state): State<AppState>,
    AppPath(id): AppPath<AttachmentId>,
    AppQuery(query): AppQuery<ContentQuery>,
) -> Result<Response, ApiError> {
    let variant = Variant::from(query.variant);
    state
        .links
        .check(id, variant, query.expires, &query.signature)
        .map_err(|refusal| match refusal {
            LinkRefusal::Forged => ApiError::Forbidden("bad_link", "this link is not valid".into()),
            LinkRefusal::Expired => ApiError::Forbidden(
                "link_expired",
                "this link has expired; ask for a new one".into(),
            ),
        })?;
    let gone = ApiError::NotFound("attachment");
    let Some(stored) = state.store.attachment(id).await?.filter(|s| s.ready) else {
        return Err(gone);
    };
    let read = state
        .blobs
        .get(&blob_key(id, variant))
        .await
        .map_err(|e| match e {
            chat_shared::Error::NotFound => ApiError::NotFound("attachment"),
            other => other.into(),
        })?;
    let headers = serve_headers(&stored, variant);
    let value = |text: &str| {
        HeaderValue::from_str(text).map_err(|e| ApiError::Internal(format!("header: {e}")))
    };
    let left = (query.expires - OffsetDateTime::now_utc().unix_timestamp()).max(0);
    Response::builder()
        .header(header::CONTENT_TYPE, value(&headers.content_type)?)
        .header(
            header::CONTENT_DISPOSITION,
            value(&headers.content_disposition)?,
        )
        .header(header::CONTENT_LENGTH, read.size)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        )
        .header(header::CACHE_CONTROL, format!("private, max-age={left}"))
        .body(Body::from_stream(read.body))
        .map_err(|e| ApiError::Internal(format!("response: {e}")))
}
