//! The S3-compatible adapter: blobs as objects in one bucket (AWS S3,
//! MinIO, Cloudflare R2, any server speaking the S3 API with SigV4),
//! addressed by host name or, for self-hosted servers, by path.
//!
//! Why `object_store` (Apache Arrow's, 0.14): of the three well-known Rust
//! S3 clients it fits this port with the fewest gaps. It streams multipart
//! uploads part by part (`MultipartUpload`: we hold one part, and abort on
//! error), presigns GETs with extra signed query parameters
//! (`response-content-type` / `response-content-disposition`), stores
//! `Content-Type`/`Content-Disposition` at put, takes custom endpoints and
//! path-style addressing, retries with backoff, types its errors (not
//! found apart), and is kept by the Arrow project (many maintainers, used
//! by DataFusion, Delta Lake, Polars). It sits on reqwest 0.13, already in
//! our tree, and lets us sign and speak TLS with `ring`, also already ours.
//! Measured here (clean debug builds of a crate using each with TLS, cargo
//! `--timings`, two shared cores): object_store brings 31 crates our tree
//! lacked, about 2 minutes of compile units; `aws-sdk-s3` with `aws-config`
//! brings 108, about 7 minutes (the SDK itself 72 s, aws-lc's C build 93 s),
//! and needs rustc 1.94 (ours is 1.85); `rust-s3` brings 35, about 1 minute,
//! but is one maintainer's crate, streams puts from an `AsyncRead` rather
//! than our stream, and reports failures as bare status codes and strings.
//!
//! Small bodies (under one part) go up in one `PUT`; larger ones as a
//! multipart upload of [`PART_SIZE`] parts (all but the last of equal size,
//! which Cloudflare R2 requires). Neither is visible before it completes.
//! An upload cut short by a crash, rather than an error, leaves its parts
//! on the server until a lifecycle rule aborts it (`docs/operations.md`).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{
    Attribute, Attributes, ClientOptions, MultipartUpload, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
};

use super::{BlobKey, BlobRead, Blobs, ByteStream, ServeHeaders};
use crate::config::BlobsConfig;
use crate::error::{Error, Result};

/// The size of every part of a multipart upload but the last: above S3's
/// 5 MiB minimum, and the most a put holds in memory.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Longest a TCP connection to the storage may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a health check may take: `/readyz` must answer quickly.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a SigV4 presigned URL may last (S3's own limit).
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);
/// A prefix no key can have (keys have no `_`), listed by the health check.
const HEALTH_PREFIX: &str = "_health";

/// Blobs as objects in an S3 bucket.
pub struct S3Blobs {
    store: AmazonS3,
}

/// By hand: the client's own `Debug` shows its credentials.
impl std::fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Blobs({})", self.store)
    }
}

impl S3Blobs {
    /// A client for the bucket `config` names. Nothing is sent yet: a
    /// storage that does not answer shows in [`Blobs::health`] and in the
    /// first request.
    pub fn connect(config: &BlobsConfig) -> Result<Self> {
        crate::tls::install_crypto_provider();
        let bucket = config
            .s3_bucket
            .clone()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| Error::Config("CHAT_S3_BUCKET must be set when CHAT_BLOBS=s3".into()))?;
        // Static keys, when given, are the only credentials; otherwise the
        // standard AWS chain (AWS_* variables, web identity, container or
        // instance role), which `from_env` reads.
        let builder = match (&config.s3_access_key_id, &config.s3_secret_access_key) {
            (Some(id), Some(secret)) => AmazonS3Builder::new()
                .with_access_key_id(id)
                .with_secret_access_key(secret),
            _ => AmazonS3Builder::from_env(),
        };
        let mut builder = builder
            .with_bucket_name(&bucket)
            .with_region(&config.s3_region)
            .with_virtual_hosted_style_request(!config.s3_path_style)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    // A download streams for as long as the client reads;
                    // a whole-request deadline would cut large ones off.
                    .with_timeout_disabled(),
            )
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &config.s3_endpoint {
            let endpoint = if config.s3_path_style {
                endpoint.clone()
            } else {
                // Addressed by host, the bucket is part of the host name,
                // which object_store expects in the endpoint itself.
                bucket_host(endpoint, &bucket)
            };
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        let store = builder
            .build()
            .map_err(|e| Error::Config(format!("CHAT_S3_*: {e}")))?;
        Ok(Self { store })
    }

    /// Creates the bucket (tests only: each test makes a bucket of its own;
    /// deployments create theirs beforehand). object_store has no call for
    /// it, so a `PUT` of the bucket's root is presigned and sent.
    #[cfg(feature = "testing")]
    pub(crate) async fn create_bucket(&self) -> Result<()> {
        let url = self
            .store
            .signed_url(Method::PUT, &ObjectPath::default(), Duration::from_secs(60))
            .await
            .map_err(storage_error)?;
        let response = reqwest::Client::new()
            .put(url.as_str())
            .send()
            .await
            .map_err(|e| Error::Blobs {
                message: format!("creating a bucket at {url}: {e}"),
                unavailable: true,
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Error::Blobs {
                message: format!(
                    "creating a bucket at {url}: {} {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                ),
                unavailable: false,
            })
        }
    }

    /// Starts a multipart upload of `path`, its serving headers kept as the
    /// object's metadata.
    async fn start_upload(
        &self,
        path: &ObjectPath,
        attributes: &Attributes,
    ) -> Result<Box<dyn MultipartUpload>> {
        let options = PutMultipartOptions {
            attributes: attributes.clone(),
            ..PutMultipartOptions::default()
        };
        self.store
            .put_multipart_opts(path, options)
            .await
            .map_err(storage_error)
    }
}

/// The origin (`scheme://host[:port]`) the presigned URLs of `config`'s
/// bucket are on, for a page's Content-Security-Policy: the endpoint's, with
/// the bucket in the host unless path-style is set; AWS's regional endpoint
/// when no endpoint is. `None` when the storage is not S3.
pub fn download_origin(config: &BlobsConfig) -> Option<String> {
    if config.blobs != crate::config::BlobsBackend::S3 {
        return None;
    }
    let bucket = config.s3_bucket.as_deref()?;
    let base = match &config.s3_endpoint {
        Some(endpoint) if config.s3_path_style => endpoint.clone(),
        Some(endpoint) => bucket_host(endpoint, bucket),
        None if config.s3_path_style => format!("https://s3.{}.amazonaws.com", config.s3_region),
        None => format!("https://{bucket}.s3.{}.amazonaws.com", config.s3_region),
    };
    let (scheme, rest) = base.split_once("://")?;
    let host = rest.split('/').next().unwrap_or(rest);
    Some(format!("{scheme}://{host}"))
}

/// `https://host:port/…` as `https://<bucket>.host:port/…`.
fn bucket_host(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{rest}"),
        None => format!("{bucket}.{endpoint}"),
    }
}

fn object_path(key: &BlobKey) -> ObjectPath {
    // A key's characters need no encoding and its segments are never
    // empty, `.` or `..`, so it is already a valid object path.
    ObjectPath::from(key.as_str())
}

fn attributes(headers: &ServeHeaders) -> Attributes {
    Attributes::from_iter([
        (Attribute::ContentType, headers.content_type.clone()),
        (
            Attribute::ContentDisposition,
            headers.content_disposition.clone(),
        ),
    ])
}

/// The one place object_store's errors become ours.
fn storage_error(e: object_store::Error) -> Error {
    Error::Blobs {
        unavailable: is_unavailable(&e),
        message: e.to_string(),
    }
}

/// Whether `e` is the storage being away or overloaded (a retry later may
/// succeed): a connection refused, reset or timed out, a 5xx answer, or
/// throttling (429, `SlowDown`).
fn is_unavailable(e: &object_store::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            if matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            ) {
                return true;
            }
        }
        cause = err.source();
    }
    // object_store keeps the status of a failed answer in a type it does
    // not export; its text carries it ("status code: 503 Service
    // Unavailable").
    let text = e.to_string();
    text.contains("status code: 5")
        || text.contains("status code: 429")
        || text.contains("SlowDown")
}

/// Aborts an upload that failed, so its parts do not linger (and cost) on
/// the server; a failed abort is logged, the lifecycle rule is the net.
async fn abort(mut upload: Box<dyn MultipartUpload>) {
    if let Err(e) = upload.abort().await {
        tracing::warn!(error = %e, "aborting a multipart upload failed");
    }
}

#[async_trait]
impl Blobs for S3Blobs {
    async fn put(
        &self,
        key: &BlobKey,
        headers: &ServeHeaders,
        mut body: ByteStream,
    ) -> Result<u64> {
        let path = object_path(key);
        let attributes = attributes(headers);
        // The part being filled: at most PART_SIZE bytes, kept as the
        // chunks that came (no copying), sent once full.
        let mut part: Vec<Bytes> = Vec::new();
        let mut part_len = 0;
        let mut upload: Option<Box<dyn MultipartUpload>> = None;
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let mut chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    if let Some(upload) = upload {
                        abort(upload).await;
                    }
                    return Err(Error::Io(e));
                }
            };
            written += chunk.len() as u64;
            while !chunk.is_empty() {
                let take = chunk.len().min(PART_SIZE - part_len);
                part.push(chunk.split_to(take));
                part_len += take;
                if part_len < PART_SIZE {
                    continue;
                }
                let current = match &mut upload {
                    Some(current) => current,
                    None => upload.insert(self.start_upload(&path, &attributes).await?),
                };
                let payload: PutPayload = std::mem::take(&mut part).into_iter().collect();
                part_len = 0;
                if let Err(e) = current.put_part(payload).await {
                    abort(upload.take().expect("the upload just used")).await;
                    return Err(storage_error(e));
                }
            }
        }
        let payload: PutPayload = part.into_iter().collect();
        match upload {
            // It all fitted in one part: one plain, atomic PUT.
            None => {
                let options = PutOptions {
                    attributes,
                    ..PutOptions::default()
                };
                self.store
                    .put_opts(&path, payload, options)
                    .await
                    .map_err(storage_error)?;
            }
            Some(mut upload) => {
                let last = if part_len > 0 {
                    upload.put_part(payload).await
                } else {
                    Ok(())
                };
                let done = match last {
                    Ok(()) => upload.complete().await.map(drop),
                    Err(e) => Err(e),
                };
                if let Err(e) = done {
                    abort(upload).await;
                    return Err(storage_error(e));
                }
            }
        }
        Ok(written)
    }

    async fn get(&self, key: &BlobKey) -> Result<BlobRead> {
        match self.store.get(&object_path(key)).await {
            Ok(result) => Ok(BlobRead {
                size: result.meta.size,
                body: result.into_stream().map_err(std::io::Error::from).boxed(),
            }),
            Err(object_store::Error::NotFound { .. }) => Err(Error::NotFound),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        match self.store.delete(&object_path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn exists(&self, key: &BlobKey) -> Result<bool> {
        match self.store.head(&object_path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn presign_get(
        &self,
        key: &BlobKey,
        expires_in: Duration,
        headers: &ServeHeaders,
    ) -> Result<Option<String>> {
        if expires_in > MAX_PRESIGN {
            return Err(Error::Invalid("a presigned URL lasts at most 7 days"));
        }
        // The overrides are signed with the URL: a browser cannot change
        // the type it is served, and the bucket answers with these headers
        // whatever metadata the object carries.
        let options = SignedUrlOptions::new().with_query([
            ("response-content-type", headers.content_type.as_str()),
            (
                "response-content-disposition",
                headers.content_disposition.as_str(),
            ),
        ]);
        let url = self
            .store
            .signed_url_opts(Method::GET, &object_path(key), expires_in, &options)
            .await
            .map_err(storage_error)?;
        Ok(Some(url.into()))
    }

    async fn health(&self) -> Result<()> {
        // Listing answers only if the bucket exists and the credentials
        // may read it; the prefix matches nothing, so it costs one request.
        let prefix = ObjectPath::from(HEALTH_PREFIX);
        let mut listing = self.store.list(Some(&prefix));
        match tokio::time::timeout(HEALTH_TIMEOUT, listing.next()).await {
            Ok(None | Some(Ok(_))) => Ok(()),
            Ok(Some(Err(e))) => Err(storage_error(e)),
            Err(_) => Err(Error::Blobs {
                message: format!("the object storage did not answer within {HEALTH_TIMEOUT:?}"),
                unavailable: true,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_goes_in_front_of_the_host() {
        assert_eq!(
            bucket_host("https://s3.example.com:8443", "files"),
            "https://files.s3.example.com:8443"
        );
    }
}
