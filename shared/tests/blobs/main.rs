//! The conformance suite of the `Blobs` port, run against both adapters:
//! files in a temporary directory, and S3 on the shared S3-compatible server
//! (s3s-fs, started by `scripts/services`) in a bucket of each test's own.
//! What only one adapter does (presigned URLs, an unreachable endpoint) is
//! at the end.

use std::time::Duration;

use bytes::Bytes;
use chat_shared::blobs::{self, BlobKey, Blobs, ByteStream, ServeHeaders};
use chat_shared::config::BlobsConfig;
use chat_shared::{testing, Error};
use futures::stream::{self, StreamExt, TryStreamExt};

/// The size of the chunks the test bodies are streamed in.
const CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
enum Adapter {
    Fs,
    S3,
}

/// An adapter under test, and what must live as long as it.
struct Subject {
    blobs: std::sync::Arc<dyn Blobs>,
    /// The data dir (the files adapter's blobs are in `blobs` there).
    dir: tempfile::TempDir,
}

async fn subject(adapter: Adapter) -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let config = match adapter {
        Adapter::Fs => BlobsConfig::default(),
        Adapter::S3 => testing::s3_bucket().await,
    };
    let blobs = blobs::connect(&config, dir.path()).await.unwrap();
    Subject { blobs, dir }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn fs() {
                super::$name(super::Adapter::Fs).await
            }
            #[tokio::test]
            async fn s3() {
                super::$name(super::Adapter::S3).await
            }
        }
    )*};
}

conformance!(
    a_blob_reads_back_as_written,
    a_body_of_many_parts_streams_through_whole,
    a_put_replaces_the_blob,
    a_failed_body_leaves_nothing_and_returns_its_error,
    a_failed_replacement_keeps_the_old_blob,
    deleting_is_idempotent,
    a_missing_blob_is_not_found,
    health_answers,
);

fn key(name: &str) -> BlobKey {
    BlobKey::new(name).unwrap()
}

fn headers() -> ServeHeaders {
    ServeHeaders {
        content_type: "image/png".into(),
        content_disposition: "attachment; filename=\"cat.png\"".into(),
    }
}

/// `len` bytes of a pattern that shows misplaced or repeated chunks.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// `data` as a stream of [`CHUNK`]-sized pieces.
fn streamed(data: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(CHUNK)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks).boxed()
}

/// The error a caller ends a body with (as the api does past its size
/// limit), recognisable when it comes back.
#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upload is over the limit")
    }
}

impl std::error::Error for TooLarge {}

/// `len` good bytes, then [`TooLarge`].
fn failing_after(len: usize) -> ByteStream {
    let good = streamed(&pattern(len));
    let bad = stream::once(async { Err(std::io::Error::other(TooLarge)) });
    good.chain(bad).boxed()
}

async fn read_all(blobs: &dyn Blobs, key: &BlobKey) -> Vec<u8> {
    let read = blobs.get(key).await.unwrap();
    let body: Vec<Bytes> = read.body.try_collect().await.unwrap();
    let body = body.concat();
    assert_eq!(read.size, body.len() as u64, "size and body disagree");
    body
}

async fn a_blob_reads_back_as_written(adapter: Adapter) {
    let s = subject(adapter).await;
    let k = key("attachments/one");
    let written = s
        .blobs
        .put(&k, &headers(), streamed(b"hello, world"))
        .await
        .unwrap();
    assert_eq!(written, 12);
    assert!(s.blobs.exists(&k).await.unwrap());
    assert_eq!(read_all(&*s.blobs, &k).await, b"hello, world");

    let empty = key("attachments/empty");
    assert_eq!(
        s.blobs
            .put(&empty, &headers(), stream::empty().boxed())
            .await
            .unwrap(),
        0
    );
    assert_eq!(read_all(&*s.blobs, &empty).await, b"");
}

async fn a_body_of_many_parts_streams_through_whole(adapter: Adapter) {
    let s = subject(adapter).await;
    // Past one S3 part (8 MiB) and not a multiple of it or of a chunk.
    let data = pattern(12 * 1024 * 1024 + 12_345);
    let k = key("big/twelve-mib");
    let written = s.blobs.put(&k, &headers(), streamed(&data)).await.unwrap();
    assert_eq!(written, data.len() as u64);
    let back = read_all(&*s.blobs, &k).await;
    assert!(
        back == data,
        "the body read back differs from the one written"
    );
}

async fn a_put_replaces_the_blob(adapter: Adapter) {
    let s = subject(adapter).await;
    let k = key("replaced");
    s.blobs
        .put(&k, &headers(), streamed(b"first"))
        .await
        .unwrap();
    s.blobs
        .put(&k, &headers(), streamed(b"second"))
        .await
        .unwrap();
    assert_eq!(read_all(&*s.blobs, &k).await, b"second");
}

/// The stream's own error comes back, whole: the caller can tell its size
/// limit from a storage failure.
fn assert_too_large(result: chat_shared::Result<u64>) {
    match result {
        Err(Error::Io(e)) => assert!(
            e.get_ref().is_some_and(|inner| inner.is::<TooLarge>()),
            "not the stream's error: {e:?}"
        ),
        other => panic!("expected the stream's error, got {other:?}"),
    }
}

async fn a_failed_body_leaves_nothing_and_returns_its_error(adapter: Adapter) {
    let s = subject(adapter).await;
    // Small enough for one request, then past a part (a multipart upload
    // started and aborted).
    for (name, len) in [("small", 1000), ("large", 9 * 1024 * 1024)] {
        let k = key(name);
        assert_too_large(s.blobs.put(&k, &headers(), failing_after(len)).await);
        assert!(!s.blobs.exists(&k).await.unwrap(), "{name} exists");
        assert!(matches!(s.blobs.get(&k).await, Err(Error::NotFound)));
    }
}

#[tokio::test]
async fn a_failed_put_leaves_no_temporary_file() {
    let s = subject(Adapter::Fs).await;
    let k = key("nested/dir/cut");
    assert_too_large(s.blobs.put(&k, &headers(), failing_after(100_000)).await);
    let dir = s.dir.path().join("blobs/nested/dir");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

async fn a_failed_replacement_keeps_the_old_blob(adapter: Adapter) {
    let s = subject(adapter).await;
    let k = key("kept");
    s.blobs
        .put(&k, &headers(), streamed(b"original"))
        .await
        .unwrap();
    assert_too_large(
        s.blobs
            .put(&k, &headers(), failing_after(9 * 1024 * 1024))
            .await,
    );
    assert_eq!(read_all(&*s.blobs, &k).await, b"original");
}

async fn deleting_is_idempotent(adapter: Adapter) {
    let s = subject(adapter).await;
    let k = key("gone");
    s.blobs.put(&k, &headers(), streamed(b"x")).await.unwrap();
    s.blobs.delete(&k).await.unwrap();
    assert!(!s.blobs.exists(&k).await.unwrap());
    s.blobs.delete(&k).await.unwrap();
    s.blobs.delete(&key("never/was")).await.unwrap();
}

async fn a_missing_blob_is_not_found(adapter: Adapter) {
    let s = subject(adapter).await;
    assert!(matches!(
        s.blobs.get(&key("nothing/here")).await,
        Err(Error::NotFound)
    ));
    assert!(!s.blobs.exists(&key("nothing/here")).await.unwrap());
}

/// `a` and `a/b` are both blobs, as S3's flat keys allow: a file must not
/// clash with a directory. Files only, because the test server, s3s-fs,
/// keeps objects as files itself and cannot hold both (real S3 and MinIO
/// can).
#[tokio::test]
async fn files_of_keys_that_share_a_prefix_do_not_clash() {
    let s = subject(Adapter::Fs).await;
    for name in ["a", "a/b", "a/b/c"] {
        s.blobs
            .put(&key(name), &headers(), streamed(name.as_bytes()))
            .await
            .unwrap();
    }
    for name in ["a", "a/b", "a/b/c"] {
        assert_eq!(read_all(&*s.blobs, &key(name)).await, name.as_bytes());
    }
    s.blobs.delete(&key("a")).await.unwrap();
    assert_eq!(read_all(&*s.blobs, &key("a/b")).await, b"a/b");
}

async fn health_answers(adapter: Adapter) {
    subject(adapter).await.blobs.health().await.unwrap();
}

#[test]
fn hostile_keys_are_refused() {
    for hostile in [
        "",
        "../secret",
        "a/../../b",
        "/etc/passwd",
        "a//b",
        "a/",
        ".",
        "a/./b",
        "C:/x",
        "a\\..\\b",
        "a%2f..",
        "%2e%2e",
        "a\u{0}b",
        "\u{2215}etc",
    ] {
        assert!(
            matches!(BlobKey::new(hostile), Err(Error::Invalid(_))),
            "{hostile:?} was taken"
        );
    }
    assert!(BlobKey::new(&"x".repeat(201)).is_err());
}

#[tokio::test]
async fn files_have_no_url_of_their_own() {
    let s = subject(Adapter::Fs).await;
    let k = key("local");
    s.blobs.put(&k, &headers(), streamed(b"x")).await.unwrap();
    let url = s
        .blobs
        .presign_get(&k, Duration::from_secs(60), &headers())
        .await
        .unwrap();
    assert_eq!(url, None);
}

async fn presigned(s: &Subject, k: &BlobKey, expires_in: Duration) -> String {
    s.blobs
        .presign_get(k, expires_in, &headers())
        .await
        .unwrap()
        .expect("S3 presigns")
}

#[tokio::test]
async fn s3_presigned_url_serves_the_blob_with_its_headers() {
    let s = subject(Adapter::S3).await;
    let k = key("shown/cat");
    // Stored as something else: the URL's own headers win.
    let stored = ServeHeaders {
        content_type: "text/html".into(),
        content_disposition: "inline".into(),
    };
    s.blobs
        .put(&k, &stored, streamed(b"<not html>"))
        .await
        .unwrap();
    let url = presigned(&s, &k, Duration::from_secs(60)).await;
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "image/png");
    assert_eq!(
        header("content-disposition"),
        "attachment; filename=\"cat.png\""
    );
    assert_eq!(response.bytes().await.unwrap(), "<not html>");
}

#[tokio::test]
async fn s3_a_tampered_presigned_url_is_refused() {
    let s = subject(Adapter::S3).await;
    s.blobs
        .put(&key("secret"), &headers(), streamed(b"s"))
        .await
        .unwrap();
    s.blobs
        .put(&key("other"), &headers(), streamed(b"o"))
        .await
        .unwrap();
    let url = presigned(&s, &key("secret"), Duration::from_secs(60)).await;
    let (base, signature) = url.split_once("X-Amz-Signature=").unwrap();
    let flipped: String = signature
        .chars()
        .enumerate()
        .map(|(i, c)| match (i, c) {
            (0, '0') => '1',
            (0, _) => '0',
            _ => c,
        })
        .collect();
    let tampered = [
        format!("{base}X-Amz-Signature={flipped}"),
        // The same signature for another key, and for other headers.
        url.replace("/secret?", "/other?"),
        url.replace("image%2Fpng", "text%2Fhtml"),
    ];
    for bad in tampered {
        assert_ne!(bad, url);
        let status = reqwest::get(&bad).await.unwrap().status();
        assert_eq!(status, 403, "{bad}");
    }
}

#[tokio::test]
async fn s3_a_presigned_url_expires() {
    let s = subject(Adapter::S3).await;
    let k = key("brief");
    s.blobs.put(&k, &headers(), streamed(b"b")).await.unwrap();
    let url = presigned(&s, &k, Duration::from_secs(1)).await;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    // SigV4 counts whole seconds from the signing time: past two, the URL
    // is over for certain. Waiting on the clock is the point here.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 403);
}

#[tokio::test]
async fn s3_an_unreachable_endpoint_is_unavailable() {
    // Nothing listens on the discard port of loopback.
    let config = BlobsConfig {
        s3_endpoint: Some("http://127.0.0.1:9".into()),
        ..testing::s3_bucket().await
    };
    let blobs = blobs::connect(&config, std::path::Path::new("unused"))
        .await
        .unwrap();
    let err = blobs.health().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = blobs.get(&key("any")).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn s3_a_missing_bucket_is_an_error_not_an_outage() {
    let config = BlobsConfig {
        s3_bucket: Some(format!(
            "chat-test-missing-{}",
            uuid::Uuid::new_v4().simple()
        )),
        ..testing::s3_bucket().await
    };
    let blobs = blobs::connect(&config, std::path::Path::new("unused"))
        .await
        .unwrap();
    let err = blobs.health().await.unwrap_err();
    assert!(!err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn s3_wrong_credentials_are_refused() {
    let config = BlobsConfig {
        s3_secret_access_key: Some("not-the-secret".into()),
        ..testing::s3_bucket().await
    };
    let blobs = blobs::connect(&config, std::path::Path::new("unused"))
        .await
        .unwrap();
    let err = blobs.health().await.unwrap_err();
    assert!(!err.is_unavailable(), "{err:?}");
}
