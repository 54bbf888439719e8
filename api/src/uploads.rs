//! Storing an upload: its body streamed into the store of blobs (never
//! held whole), its type decided from its first bytes (`media::inspect`),
//! an image measured and thumbnailed within bounds, and its row moved from
//! `uploading` to `ready` only once every blob is stored. Any refusal or
//! failure removes what was written (and the row) at once; what a crash
//! leaves behind, the sweeper collects (`sweeper`).

use std::io;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use chat_shared::blobs::{BlobKey, ByteStream, ServeHeaders};
use chat_shared::model::{Attachment, AttachmentId};
use chat_shared::store::{NewAttachment, StoredAttachment, Uploaded};
use futures::{stream, StreamExt, TryStreamExt};

use crate::error::ApiError;
use crate::links::Variant;
use crate::media::{self, FileName, Kind, MediaError};
use crate::state::AppState;

/// The key of one blob of an attachment.
pub fn blob_key(id: AttachmentId, variant: Variant) -> BlobKey {
    BlobKey::new(&format!("attachments/{id}/{}", variant.as_str()))
        .expect("a UUID and a variant name make a valid key")
}

/// The headers a blob is served with: the type decided from its bytes,
/// and shown in the page only for the raster images.
pub fn serve_headers(stored: &StoredAttachment, variant: Variant) -> ServeHeaders {
    let attachment = &stored.attachment;
    // The name was checked at the upload; a row that no longer passes
    // (rules tightened since) is served under a neutral name.
    let name = FileName::parse(&attachment.name)
        .or_else(|_| FileName::parse("file"))
        .expect("a plain name passes");
    match variant {
        Variant::File => {
            let inline = attachment.width.is_some();
            ServeHeaders {
                content_type: attachment.content_type.clone(),
                content_disposition: name.content_disposition(inline),
            }
        }
        Variant::Thumbnail => ServeHeaders {
            content_type: stored
                .thumbnail_type
                .clone()
                .unwrap_or_else(|| "image/jpeg".into()),
            content_disposition: name.content_disposition(true),
        },
    }
}

/// An upload refused because its body is over the limit: the error the
/// limited body ends with, so the put's error can be told from the
/// storage's own.
#[derive(Debug, thiserror::Error)]
#[error("the upload is over the size limit")]
struct TooLarge;

/// Stores an upload of `name` into `room` by `uploader` and returns it
/// as messages will carry it.
pub async fn upload(
    state: &AppState,
    new: NewAttachment,
    name: &FileName,
    declared: Option<&str>,
    body: Body,
) -> Result<Attachment, ApiError> {
    let id = state.store.begin_upload(new).await?;
    match store(state, id, name, declared, body).await {
        Ok(uploaded) => {
            let attachment = Attachment {
                id,
                name: name.as_str().to_owned(),
                content_type: uploaded.content_type.clone(),
                size: uploaded.size,
                width: uploaded.width,
                height: uploaded.height,
                thumbnail: uploaded.thumbnail_type.is_some(),
            };
            if let Err(e) = state.store.finish_upload(id, uploaded).await {
                discard(state, id).await;
                return Err(e.into());
            }
            Ok(attachment)
        }
        Err(e) => {
            discard(state, id).await;
            Err(e)
        }
    }
}

/// Writes the blobs of upload `id` and says what they are.
async fn store(
    state: &AppState,
    id: AttachmentId,
    name: &FileName,
    declared: Option<&str>,
    body: Body,
) -> Result<Uploaded, ApiError> {
    let max = state.config.max_upload_bytes;
    let mut body = limited(body, max);
    let head = read_head(&mut body, media::SNIFF_LEN).await?;
    let inspection = media::inspect(declared, &head)?;
    if let Kind::Image(format) = inspection.kind {
        // A header that says "50,000 × 50,000" is refused before a byte is
        // stored; one that lies beyond the head is caught at the decode.
        match media::probe(&head, format) {
            Ok(_) | Err(MediaError::UnreadableImage) => {}
            Err(refused) => return Err(refused.into()),
        }
    }
    let headers = ServeHeaders {
        content_type: inspection.content_type.to_owned(),
        content_disposition: name.content_disposition(inspection.inline()),
    };
    let whole: ByteStream = stream::once(async move { Ok(head) }).chain(body).boxed();
    let size = state
        .blobs
        .put(&blob_key(id, Variant::File), &headers, whole)
        .await
        .map_err(put_error)?;
    let (width, height, thumbnail_type) = match inspection.kind {
        Kind::Image(format) => {
            let (shown, thumbnail_type) = thumbnail(state, id, format, size).await?;
            (Some(shown.width), Some(shown.height), Some(thumbnail_type))
        }
        Kind::File => (None, None, None),
    };
    Ok(Uploaded {
        content_type: inspection.content_type.to_owned(),
        size,
        width,
        height,
        thumbnail_type,
    })
}

/// Measures the stored image `id` and stores its thumbnail; returns the
/// image's size as shown and the thumbnail's type.
async fn thumbnail(
    state: &AppState,
    id: AttachmentId,
    format: media::ImageFormat,
    size: u64,
) -> Result<(media::Dimensions, String), ApiError> {
    // The decode needs the whole file; it is read back rather than kept
    // while streaming, so only images (within the upload limit) are ever
    // held, and only while one of the permits below is.
    let _permit = state
        .thumbnails
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let read = state.blobs.get(&blob_key(id, Variant::File)).await?;
    let mut bytes = BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut chunks = read.body;
    while let Some(chunk) = chunks.next().await {
        bytes.extend_from_slice(&chunk.map_err(|e| ApiError::Internal(e.to_string()))?);
    }
    let made = tokio::task::spawn_blocking(move || media::thumbnail(&bytes, format))
        .await
        .map_err(|e| ApiError::Internal(format!("thumbnail task: {e}")))??;
    let headers = ServeHeaders {
        content_type: made.content_type.to_owned(),
        content_disposition: "inline".to_owned(),
    };
    let (original, content_type) = (made.original, made.content_type.to_owned());
    let body: ByteStream = stream::once(async move { Ok(Bytes::from(made.bytes)) }).boxed();
    state
        .blobs
        .put(&blob_key(id, Variant::Thumbnail), &headers, body)
        .await?;
    Ok((original, content_type))
}

/// Removes what upload `id` stored, at once; what fails here the sweeper
/// finishes (the row is marked deleted first).
async fn discard(state: &AppState, id: AttachmentId) {
    if let Err(e) = state.store.abandon_upload(id).await {
        tracing::warn!(attachment = %id, error = %e, "could not give up an upload; the sweeper will");
        return;
    }
    if delete_bytes(state, id).await {
        if let Err(e) = state.store.forget_attachment(id).await {
            tracing::warn!(attachment = %id, error = %e, "could not forget a given-up upload");
        }
    }
}

/// Deletes both blobs of `id` (absent ones are fine); false if the store
/// of blobs failed, and then the next sweep tries again.
pub async fn delete_bytes(state: &AppState, id: AttachmentId) -> bool {
    for variant in [Variant::File, Variant::Thumbnail] {
        if let Err(e) = state.blobs.delete(&blob_key(id, variant)).await {
            tracing::warn!(attachment = %id, error = %e, "could not delete an attachment's bytes");
            return false;
        }
    }
    true
}

/// The request body as a stream that ends with [`TooLarge`] past `max`
/// bytes.
fn limited(body: Body, max: u64) -> ByteStream {
    let mut seen: u64 = 0;
    body.into_data_stream()
        .map_err(io::Error::other)
        .and_then(move |chunk| {
            seen += chunk.len() as u64;
            let over = seen > max;
            async move {
                if over {
                    Err(io::Error::new(io::ErrorKind::FileTooLarge, TooLarge))
                } else {
                    Ok(chunk)
                }
            }
        })
        .boxed()
}

/// Up to `len` first bytes of `body` (fewer if it ends first).
async fn read_head(body: &mut ByteStream, len: usize) -> Result<Bytes, ApiError> {
    let mut head = BytesMut::new();
    while head.len() < len {
        match body.next().await {
            Some(chunk) => head.extend_from_slice(&chunk.map_err(body_error)?),
            None => break,
        }
    }
    Ok(head.freeze())
}

/// What a failed put tells the uploader: over the limit, gone mid-way, or
/// a storage that is down (retry) or broken.
fn put_error(err: chat_shared::Error) -> ApiError {
    match err {
        chat_shared::Error::Io(e) => body_error(e),
        other => other.into(),
    }
}

/// What a body that failed to arrive tells the uploader.
fn body_error(err: io::Error) -> ApiError {
    if err.get_ref().is_some_and(|inner| inner.is::<TooLarge>()) {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest("upload_interrupted", format!("the upload broke off: {err}"))
    }
}

/// How long an upload may take in all, body included: far above the
/// api's 30 s, since a file of the largest size over a slow link takes
/// minutes; a stalled one still ends (and its bytes are collected).
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(10 * 60);
