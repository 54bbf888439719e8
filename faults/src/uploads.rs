//! Uploads under load, for the `object-storage-down` scenario: a few
//! clients upload small files (every fourth a PNG, which the api also
//! measures and thumbnails) and send a message carrying each, retrying an
//! upload as a good client does when the api says the storage is away;
//! then the judge of what the store holds: every attachment a message
//! carries is fetched through its link and compared with what was
//! uploaded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::Rng;
use serde_json::{json, Value};

use crate::client::{Account, Books};

/// How long one upload request may take before the client calls it hung.
/// Longer than the adapter's connect timeout (5 s) with its retries, so a
/// refusal always comes before it.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client keeps retrying one file (the outage is shorter).
const RETRY_FOR: Duration = Duration::from_secs(30);
/// Between two attempts at the same file.
const RETRY_DELAY: Duration = Duration::from_millis(250);
/// Between one file's message and the next file: at most eight uploads a
/// second from the four clients, enough to meet the outage many times
/// over and few enough for the judge to read every one back in seconds.
const PACE: Duration = Duration::from_millis(500);

/// A 4 × 4 opaque PNG: the api decides it is an image, measures it and
/// stores a thumbnail beside it (two puts per upload).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x08, 0x02, 0x00, 0x00, 0x00, 0x26, 0x93, 0x09,
    0x29, 0x00, 0x00, 0x00, 0x10, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x38, 0xa1, 0xa1, 0x01,
    0x47, 0x0c, 0xc4, 0x71, 0x00, 0xd1, 0x43, 0x11, 0x81, 0x48, 0xd2, 0xc1, 0xeb, 0x00, 0x00, 0x00,
    0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A client that uploads: its account and the books its messages are
/// judged by with everyone else's.
pub struct Uploader {
    pub account: Account,
    pub books: Arc<Mutex<Books>>,
}

/// One file the api accepted.
pub struct Uploaded {
    pub bytes: Vec<u8>,
    pub image: bool,
}

/// What the uploading clients saw.
#[derive(Default)]
pub struct UploadBooks {
    /// Upload requests made, retries included.
    pub attempts: usize,
    /// Answered 201: attachment id → what was uploaded.
    pub uploaded: HashMap<String, Uploaded>,
    /// When an upload was answered 503 `unavailable`.
    pub refused: Vec<Instant>,
    /// Requests that failed without an answer (a refused or cut
    /// connection), which a client may retry.
    pub connection_errors: usize,
    /// Any other answer, or none within [`UPLOAD_TIMEOUT`].
    pub unexpected: Vec<String>,
    /// Files refused (or cut) at least once and then accepted.
    pub accepted_after_retry: usize,
    /// Files still not accepted after [`RETRY_FOR`] of retries.
    pub gave_up: usize,
    /// The slowest answer to an upload request.
    pub slowest: Duration,
    /// Attachment ids whose message was acknowledged.
    pub sent: Vec<String>,
}

/// How one upload request ended.
enum Attempt {
    Created(String),
    Refused,
    ConnectionError,
    Unexpected(String),
}

/// Each uploader uploads one file after another until `until` and sends a
/// message carrying each into its room (REST, with a `client_id` its books
/// track like any send). Returns when every file was accepted or given up
/// on.
pub async fn run(
    entry: SocketAddr,
    uploaders: Vec<Uploader>,
    rooms: Vec<String>,
    until: Instant,
    tag: &'static str,
) -> Result<UploadBooks> {
    let http = reqwest::Client::builder().timeout(UPLOAD_TIMEOUT).build()?;
    let books = Arc::new(Mutex::new(UploadBooks::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, uploader) in uploaders.into_iter().enumerate() {
        let room = rooms[i % rooms.len()].clone();
        tasks.spawn(upload_loop(
            http.clone(),
            format!("http://{entry}"),
            uploader,
            room,
            until,
            format!("{tag}-{}-up{i}", std::process::id()),
            books.clone(),
        ));
    }
    while let Some(done) = tasks.join_next().await {
        done.context("uploader task")?;
    }
    let books = std::mem::take(&mut *books.lock().expect("upload books"));
    Ok(books)
}

/// One uploader's files, one after another.
async fn upload_loop(
    http: reqwest::Client,
    base: String,
    uploader: Uploader,
    room: String,
    until: Instant,
    prefix: String,
    books: Arc<Mutex<UploadBooks>>,
) {
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let image = n % 4 == 0;
        let (bytes, content_type, name) = if image {
            (PNG.to_vec(), "image/png", format!("dot-{n}.png"))
        } else {
            let mut bytes = vec![0u8; rand::thread_rng().gen_range(1..=32 * 1024)];
            rand::thread_rng().fill(&mut bytes[..]);
            (bytes, "application/octet-stream", format!("file-{n}.bin"))
        };
        let file = File {
            room: &room,
            name: &name,
            content_type,
            bytes: &bytes,
        };
        let Some(id) = upload_with_retries(&http, &base, &uploader.account, &file, &books).await
        else {
            continue;
        };
        books
            .lock()
            .expect("upload books")
            .uploaded
            .insert(id.clone(), Uploaded { bytes, image });
        if send(
            &http,
            &base,
            &uploader,
            &room,
            &format!("{prefix}-{n}"),
            &id,
        )
        .await
        {
            books.lock().expect("upload books").sent.push(id);
        }
        tokio::time::sleep(PACE).await;
    }
}

/// A file to upload into a room.
struct File<'a> {
    room: &'a str,
    name: &'a str,
    content_type: &'a str,
    bytes: &'a [u8],
}

/// Uploads `file`, retrying while the api says the storage is away (or
/// the connection fails) for up to [`RETRY_FOR`]; its id once accepted.
async fn upload_with_retries(
    http: &reqwest::Client,
    base: &str,
    who: &Account,
    file: &File<'_>,
    books: &Mutex<UploadBooks>,
) -> Option<String> {
    let started = Instant::now();
    let mut retried = false;
    loop {
        let asked = Instant::now();
        let attempt = upload(http, base, who, file).await;
        {
            let mut b = books.lock().expect("upload books");
            b.attempts += 1;
            b.slowest = b.slowest.max(asked.elapsed());
            match attempt {
                Attempt::Created(id) => {
                    b.accepted_after_retry += usize::from(retried);
                    return Some(id);
                }
                Attempt::Refused => b.refused.push(Instant::now()),
                Attempt::ConnectionError => b.connection_errors += 1,
                Attempt::Unexpected(what) => b.unexpected.push(what),
            }
            if started.elapsed() > RETRY_FOR {
                b.gave_up += 1;
                return None;
            }
        }
        retried = true;
        tokio::time::sleep(RETRY_DELAY).await;
    }
}

/// One upload request.
async fn upload(http: &reqwest::Client, base: &str, who: &Account, file: &File<'_>) -> Attempt {
    let response = http
        .post(format!("{base}/v1/rooms/{}/attachments", file.room))
        .query(&[("name", file.name)])
        .bearer_auth(&who.token)
        .header(reqwest::header::CONTENT_TYPE, file.content_type)
        .body(file.bytes.to_vec())
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(e) if e.is_timeout() => {
            return Attempt::Unexpected(format!("no answer within {UPLOAD_TIMEOUT:?}"))
        }
        Err(_) => return Attempt::ConnectionError,
    };
    let status = response.status();
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(e) if e.is_timeout() => {
            return Attempt::Unexpected(format!("{status}, then no body within {UPLOAD_TIMEOUT:?}"))
        }
        // The answer broke off: as a cut connection.
        Err(e) if !e.is_decode() => return Attempt::ConnectionError,
        Err(e) => {
            return Attempt::Unexpected(format!("{status} with a body that is not JSON: {e}"))
        }
    };
    match (status.as_u16(), body["error"]["code"].as_str()) {
        (201, _) => match body["id"].as_str() {
            Some(id) => Attempt::Created(id.to_owned()),
            None => Attempt::Unexpected(format!("201 without an id: {body}")),
        },
        (503, Some("unavailable")) => Attempt::Refused,
        _ => Attempt::Unexpected(format!("{status}: {body}")),
    }
}

/// Sends a message carrying `attachment` (REST, retried with the same
/// `client_id` until answered, as the traffic's REST sends); whether it
/// was acknowledged.
async fn send(
    http: &reqwest::Client,
    base: &str,
    uploader: &Uploader,
    room: &str,
    client_id: &str,
    attachment: &str,
) -> bool {
    uploader
        .books
        .lock()
        .expect("books")
        .sent
        .insert(client_id.to_owned(), room.to_owned());
    let started = Instant::now();
    while started.elapsed() < RETRY_FOR {
        let answer = http
            .post(format!("{base}/v1/rooms/{room}/messages"))
            .bearer_auth(&uploader.account.token)
            .json(&json!({"client_id": client_id, "body": "", "attachments": [attachment]}))
            .send()
            .await;
        if let Ok(response) = answer {
            if response.status().is_success() {
                if let Ok(event) = response.json::<Value>().await {
                    if let Some(seq) = event["seq"].as_i64() {
                        uploader
                            .books
                            .lock()
                            .expect("books")
                            .record_ack(client_id, room, seq);
                        return true;
                    }
                }
            }
        }
        uploader
            .books
            .lock()
            .expect("books")
            .unknown
            .insert(client_id.to_owned());
        tokio::time::sleep(RETRY_DELAY).await;
    }
    false
}

/// An attachment a stored message carries, as read from the database.
pub struct Carried {
    pub id: String,
    pub size: Option<i64>,
    pub has_thumbnail: bool,
}

/// Checks that every carried attachment was accepted by the api and reads
/// back through its link byte for byte (and, for images, that its
/// thumbnail reads); one line per problem.
pub async fn check_blobs(
    entry: SocketAddr,
    reader: &Account,
    carried: &[Carried],
    uploaded: &HashMap<String, Uploaded>,
) -> Result<Vec<String>> {
    let http = reqwest::Client::builder().timeout(UPLOAD_TIMEOUT).build()?;
    let mut problems = Vec::new();
    for attachment in carried {
        let id = &attachment.id;
        let Some(original) = uploaded.get(id) else {
            problems.push(format!(
                "attachment {id} is carried but was never answered 201"
            ));
            continue;
        };
        if attachment.size != Some(original.bytes.len() as i64) {
            problems.push(format!(
                "attachment {id}: stored size {:?}, uploaded {}",
                attachment.size,
                original.bytes.len()
            ));
        }
        match fetch(&http, entry, reader, id, "file").await {
            Ok(bytes) if bytes == original.bytes => {}
            Ok(bytes) => problems.push(format!(
                "attachment {id}: its link gave {} bytes unlike the {} uploaded",
                bytes.len(),
                original.bytes.len()
            )),
            Err(e) => problems.push(format!("attachment {id}: {e:#}")),
        }
        if original.image {
            if !attachment.has_thumbnail {
                problems.push(format!("image {id} has no thumbnail"));
            } else if let Err(e) = fetch(&http, entry, reader, id, "thumbnail").await {
                problems.push(format!("thumbnail of {id}: {e:#}"));
            }
        }
    }
    Ok(problems)
}

/// Asks the api for a link to one of an attachment's blobs and downloads
/// it from there (the bucket, presigned).
async fn fetch(
    http: &reqwest::Client,
    entry: SocketAddr,
    reader: &Account,
    id: &str,
    variant: &str,
) -> Result<Vec<u8>> {
    let link: Value = http
        .get(format!("http://{entry}/v1/attachments/{id}"))
        .query(&[("variant", variant)])
        .bearer_auth(&reader.token)
        .send()
        .await?
        .error_for_status()
        .context("asking for its link")?
        .json()
        .await?;
    let url = link["url"].as_str().context("a link without a url")?;
    let url = if url.starts_with('/') {
        format!("http://{entry}{url}")
    } else {
        url.to_owned()
    };
    let bytes = http
        .get(&url)
        .send()
        .await?
        .error_for_status()
        .with_context(|| format!("downloading {url}"))?
        .bytes()
        .await?;
    if bytes.is_empty() {
        bail!("the {variant} at {url} is empty");
    }
    Ok(bytes.to_vec())
}
