//! What an uploaded file is, decided from its bytes before anything is
//! stored: a safe file name ([`FileName`]), the type to store and whether it
//! may be shown inline ([`inspect`]), and for raster images their size and a
//! thumbnail, decoded within fixed bounds ([`probe`], [`thumbnail`]).
//!
//! Pure functions over bytes: no I/O, no async. The order an upload handler
//! follows is `FileName::parse` → [`inspect`] on the first [`SNIFF_LEN`]
//! bytes → for [`Kind::Image`], [`probe`] then [`thumbnail`] on the whole
//! file (a sync CPU job: run it with `spawn_blocking` behind a semaphore).
//! Every refusal is a [`MediaError`], which becomes an [`ApiError`] with a
//! stable code at the handler's `?`.

mod name;
mod raster;
mod sniff;

pub use name::FileName;
pub use raster::{
    avatar, probe, thumbnail, Dimensions, ImageFormat, Thumbnail, AVATAR_SIDE, MAX_DECODE_BYTES,
    MAX_PIXELS, MAX_SIDE, THUMBNAIL_SIDE,
};
pub use sniff::{inspect, Inspection, Kind, SNIFF_LEN};

use crate::error::ApiError;

/// Why an upload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The file name breaks a rule; the message names it.
    #[error("file name: {0}")]
    InvalidName(&'static str),
    /// The declared Content-Type is not what the bytes are.
    #[error("the file was sent as {declared} but its bytes are {actual}")]
    TypeMismatch {
        /// The declared type, normalised (a valid media type, safe to echo).
        declared: String,
        /// What the bytes are, or "not of any type we recognise".
        actual: &'static str,
    },
    /// The image's header declares more pixels than we decode.
    #[error(
        "the image is {width} × {height} pixels; at most {MAX_SIDE} per side and {} megapixels are accepted",
        MAX_PIXELS / 1_000_000
    )]
    ImageTooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// Decoding would need more memory than one decode may take: a
    /// decompression bomb, or a deep colour format at a large size.
    #[error(
        "decoding the image would take more than {} MiB of memory",
        MAX_DECODE_BYTES >> 20
    )]
    ImageOverBudget,
    /// The image is truncated or corrupt, or its header is not within the
    /// bytes given.
    #[error("the image could not be read: it is truncated or corrupt")]
    UnreadableImage,
    /// Encoding the thumbnail failed: a bug, not the upload's fault.
    #[error("could not encode the thumbnail: {0}")]
    Thumbnail(String),
}

impl MediaError {
    /// The stable `code` a client sees.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => "invalid_file_name",
            Self::TypeMismatch { .. } => "type_mismatch",
            Self::ImageTooLarge { .. } | Self::ImageOverBudget => "image_too_large",
            Self::UnreadableImage => "unreadable_image",
            Self::Thumbnail(_) => "internal",
        }
    }
}

/// 415 for a type that lies, 422 for the rest of the upload's faults, 500
/// for our own.
impl From<MediaError> for ApiError {
    fn from(err: MediaError) -> Self {
        match err {
            MediaError::Thumbnail(cause) => Self::Internal(format!("thumbnail: {cause}")),
            MediaError::TypeMismatch { .. } => {
                Self::UnsupportedContent(err.code(), err.to_string())
            }
            _ => Self::Unprocessable(err.code(), err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    /// The order an upload handler follows, end to end on a small PNG.
    #[test]
    fn an_image_upload_from_name_to_thumbnail() {
        let name = FileName::parse(" cat.png ").unwrap();
        let picture = image::RgbImage::from_pixel(640, 400, image::Rgb([90, 60, 30]));
        let mut bytes = std::io::Cursor::new(Vec::new());
        picture
            .write_to(&mut bytes, image::ImageFormat::Png)
            .unwrap();
        let bytes = bytes.into_inner();

        let seen = inspect(Some("image/png"), &bytes[..bytes.len().min(SNIFF_LEN)]).unwrap();
        let Kind::Image(format) = seen.kind else {
            panic!("{seen:?} is not an image");
        };
        assert_eq!(seen.content_type, "image/png");
        assert_eq!(
            name.content_disposition(seen.inline()),
            "inline; filename=\"cat.png\"; filename*=UTF-8''cat.png"
        );
        let size = probe(&bytes, format).unwrap();
        let thumb = thumbnail(&bytes, format).unwrap();
        assert_eq!((size.width, size.height), (640, 400));
        assert_eq!(thumb.original, size);
        assert_eq!((thumb.width, thumb.height), (320, 200));

        let lie = inspect(Some("image/jpeg"), &bytes).unwrap_err();
        assert_eq!(
            ApiError::from(lie).status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[test]
    fn errors_map_to_status_and_code() {
        let cases = [
            (
                MediaError::InvalidName("no '/'"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_file_name",
            ),
            (
                MediaError::TypeMismatch {
                    declared: "image/png".into(),
                    actual: "image/jpeg",
                },
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "type_mismatch",
            ),
            (
                MediaError::ImageTooLarge {
                    width: 50_000,
                    height: 50_000,
                },
                StatusCode::UNPROCESSABLE_ENTITY,
                "image_too_large",
            ),
            (
                MediaError::ImageOverBudget,
                StatusCode::UNPROCESSABLE_ENTITY,
                "image_too_large",
            ),
            (
                MediaError::UnreadableImage,
                StatusCode::UNPROCESSABLE_ENTITY,
                "unreadable_image",
            ),
            (
                MediaError::Thumbnail("boom".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
        ];
        for (err, status, code) in cases {
            let message = err.to_string();
            let api = ApiError::from(err);
            assert_eq!((api.status(), api.code()), (status, code), "{message}");
            if status != StatusCode::INTERNAL_SERVER_ERROR {
                assert_eq!(api.to_string(), message);
            }
        }
        assert_eq!(
            MediaError::ImageTooLarge {
                width: 50_000,
                height: 50_000
            }
            .to_string(),
            "the image is 50000 × 50000 pixels; at most 16384 per side and 50 megapixels are accepted"
        );
    }
}
