//! The `Blobs` port: object storage for attachments, with one adapter per
//! storage we run (files in a directory for the embedded binary, an
//! S3-compatible bucket in production).
//!
//! The contract both adapters keep, proven by the conformance suite in
//! `shared/tests/blobs`: a blob is visible whole or not at all (a put whose
//! body fails leaves nothing behind and hands the body's own error back);
//! bodies stream through a bounded buffer in both directions; deletion is
//! idempotent; a key is checked by [`BlobKey`] before it reaches storage.

mod fs;
mod s3;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{BlobsBackend, BlobsConfig};
use crate::error::{Error, Result};

pub use self::fs::FsBlobs;
pub use self::s3::{download_origin, S3Blobs};

/// A body as it streams in or out: chunks of bytes, or the I/O error that
/// ended it.
pub type ByteStream = futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>;

/// The longest a [`BlobKey`] may be, in characters.
pub const MAX_KEY_LEN: usize = 200;

/// A blob's name: 1..=200 characters of `[a-z0-9-/]`, with no leading or
/// trailing `/` and no empty segment. The alphabet leaves out `.`, so no
/// segment can be `.` or `..`, and leaves out `\` and everything a URL or
/// a file system would read specially: a key is the same string as a file
/// path, an S3 object name and a URL path, needing no escaping in any.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// Checks `key`; [`Error::Invalid`] says what is wrong with it.
    pub fn new(key: &str) -> Result<Self> {
        if key.is_empty() || key.chars().count() > MAX_KEY_LEN {
            return Err(Error::Invalid("a blob key has 1 to 200 characters"));
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'/')
        {
            return Err(Error::Invalid(
                "a blob key has only lowercase letters, digits, '-' and '/'",
            ));
        }
        if key.split('/').any(str::is_empty) {
            return Err(Error::Invalid(
                "a blob key has no empty segment and no leading or trailing '/'",
            ));
        }
        Ok(Self(key.to_owned()))
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's segments, each a plain name (no `/`, never `.` or `..`).
    fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A blob being read.
pub struct BlobRead {
    /// Its length in bytes (for `Content-Length`).
    pub size: u64,
    /// Its bytes, streamed.
    pub body: ByteStream,
}

impl std::fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The headers a direct download must carry: the type the api decided
/// (never what the uploader claimed, unchecked) and whether the browser
/// shows the blob or saves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeHeaders {
    /// `Content-Type`.
    pub content_type: String,
    /// `Content-Disposition` (`attachment; filename="…"`).
    pub content_disposition: String,
}

/// Object storage for attachments.
#[async_trait]
pub trait Blobs: Send + Sync {
    /// Stores the whole of `body` under `key`, replacing any blob there,
    /// and returns the bytes written. The blob becomes visible only once
    /// complete (files: a temporary file in the same directory, synced,
    /// renamed, the directory synced; S3: one upload, or a multipart upload
    /// completed, or aborted on any error). At most one part is held in
    /// memory. An error yielded by `body` aborts the put, leaves nothing,
    /// and comes back as [`Error::Io`] carrying that same error, so a
    /// caller that ends the stream with its own error (a size limit) can
    /// tell it apart. `headers` are kept with the blob where the storage
    /// serves downloads itself (S3 object metadata).
    async fn put(&self, key: &BlobKey, headers: &ServeHeaders, body: ByteStream) -> Result<u64>;

    /// The blob, streamed; [`Error::NotFound`] if there is none.
    async fn get(&self, key: &BlobKey) -> Result<BlobRead>;

    /// Deletes the blob; one that is absent is not an error.
    async fn delete(&self, key: &BlobKey) -> Result<()>;

    /// Whether the blob exists.
    async fn exists(&self, key: &BlobKey) -> Result<bool>;

    /// A URL a browser can `GET` the blob from directly for `expires_in`,
    /// answered with `headers`' `Content-Type` and `Content-Disposition`
    /// (S3: a presigned URL with response-header overrides, on the
    /// bucket's origin, so uploaded content never runs on ours). `None`
    /// when the storage has no URL of its own (files: the api serves
    /// [`Blobs::get`] itself).
    async fn presign_get(
        &self,
        key: &BlobKey,
        expires_in: Duration,
        headers: &ServeHeaders,
    ) -> Result<Option<String>>;

    /// Checks that the storage answers (for `/readyz`).
    async fn health(&self) -> Result<()>;
}

/// The blob storage `config` names: files under its directory (by default
/// `blobs` in `data_dir`, created if missing) or its S3 bucket.
pub async fn connect(config: &BlobsConfig, data_dir: &Path) -> Result<Arc<dyn Blobs>> {
    Ok(match config.blobs {
        BlobsBackend::Fs => Arc::new(FsBlobs::open(config.dir(data_dir)).await?),
        BlobsBackend::S3 => Arc::new(S3Blobs::connect(config)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_are_taken() {
        for key in ["a", "attachments/0192-ab/file", "x-1/y-2/z-3", "9"] {
            assert_eq!(BlobKey::new(key).unwrap().as_str(), key);
        }
        assert!(BlobKey::new(&"a".repeat(MAX_KEY_LEN)).is_ok());
    }

    #[test]
    fn hostile_keys_are_refused() {
        for key in [
            "",
            "/etc/passwd",
            "a/",
            "a//b",
            "..",
            "a/../b",
            "./a",
            "a/.",
            "A",
            "a\\b",
            "a b",
            "a%2fb",
            "a\0b",
            "a\nb",
            "é",
            "a?b",
            "a#b",
            "a:b",
        ] {
            assert!(BlobKey::new(key).is_err(), "{key:?} was taken");
        }
        assert!(BlobKey::new(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
    }
}
