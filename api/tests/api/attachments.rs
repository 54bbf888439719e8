//! Attachments over HTTP: an upload into a room, the message that carries
//! it, the short-lived link members download it through, and everything
//! refused on the way (too large, a type that lies, an image bomb, a path
//! in the name, someone else's room) with nothing left stored.

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use chat_shared::model::AttachmentId;
use chat_shared::testing::Backend;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};

both_stores!(
    an_image_is_measured_thumbnailed_sent_and_downloaded_by_members,
    a_file_that_could_run_as_a_page_is_served_as_a_download,
    bad_uploads_are_refused_with_nothing_stored,
    a_message_carries_only_its_senders_uploads_of_its_room,
    deleting_the_message_deletes_the_bytes,
    an_unsent_upload_is_collected,
);

impl TestApi {
    /// Uploads `bytes` as `name` of `content_type` into `room`.
    pub async fn upload(
        &self,
        user: &TestUser,
        room: &str,
        name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Response {
        self.request(
            Method::POST,
            &format!("/v1/rooms/{room}/attachments"),
            Some(user),
        )
        .query(&[("name", name)])
        .header(CONTENT_TYPE, content_type)
        .body(bytes)
        .send()
        .await
        .unwrap()
    }

    /// The download link of `id` (its `variant`) as `user` asks for it.
    async fn link(&self, user: &TestUser, id: &str, variant: &str) -> Response {
        self.get(&format!("/v1/attachments/{id}?variant={variant}"), user)
            .await
    }

    /// Follows a link, with no token.
    async fn fetch(&self, link: &Value) -> Response {
        let url = link["url"].as_str().unwrap();
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        };
        reqwest::get(url).await.unwrap()
    }
}

/// A `width` × `height` PNG of a gradient.
pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A valid PNG header that declares 50,000 × 50,000 pixels (a bomb: a few
/// bytes that would decode to 7.5 GB).
pub(crate) fn png_bomb() -> Vec<u8> {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
        out
    }
    let mut ihdr = 50_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 1],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// The files under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flat_map(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// A room of `owner` that `members` joined.
async fn room_of(api: &TestApi, owner: &TestUser, members: &[&TestUser]) -> String {
    let room = api.room(owner, "files", "public").await.id.to_string();
    for member in members {
        api.join(member, &room).await;
    }
    room
}

async fn send_with(api: &TestApi, user: &TestUser, room: &str, ids: &[&str]) -> Response {
    api.post(
        &format!("/v1/rooms/{room}/messages"),
        user,
        json!({ "client_id": uuid::Uuid::now_v7().to_string(), "body": "", "attachments": ids }),
    )
    .await
}

async fn an_image_is_measured_thumbnailed_sent_and_downloaded_by_members(backend: Backend) {
    let api = TestApi::start(backend).await;
    let (alice, bob, carol) = (
        api.user("alice").await,
        api.user("bob").await,
        api.user("carol").await,
    );
    let room = room_of(&api, &alice, &[&bob]).await;
    let bytes = png(800, 600);
    let uploaded = api
        .upload(
            &alice,
            &room,
            "Café at noon.png",
            "image/png",
            bytes.clone(),
        )
        .await;
    let attachment = expect_status(uploaded, StatusCode::CREATED).await;
    assert_eq!(attachment["name"], "Café at noon.png");
    assert_eq!(attachment["content_type"], "image/png");
    assert_eq!(attachment["size"], bytes.len());
    assert_eq!(
        (attachment["width"].clone(), attachment["height"].clone()),
        (json!(800), json!(600))
    );
    assert_eq!(attachment["thumbnail"], true);
    let id = attachment["id"].as_str().unwrap();

    // Before it is sent, only its uploader sees it.
    expect_error(
        api.link(&bob, id, "file").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_status(api.link(&alice, id, "file").await, StatusCode::OK).await;

    let sent = expect_status(
        send_with(&api, &alice, &room, &[id]).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(sent["attachments"][0], attachment, "{sent}");
    let log = api.log(&bob, &room).await;
    assert_eq!(log.last().unwrap()["attachments"][0]["id"], id);

    // A member downloads it through a link that needs no token.
    let link = expect_status(api.link(&bob, id, "file").await, StatusCode::OK).await;
    assert!(link["expires_at"].is_string());
    let file = api.fetch(&link).await;
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.headers()[CONTENT_TYPE], "image/png");
    assert_eq!(file.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
    let disposition = file.headers()[CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("inline"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''Caf%C3%A9"),
        "{disposition}"
    );
    assert_eq!(file.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let link = expect_status(api.link(&bob, id, "thumbnail").await, StatusCode::OK).await;
    let thumbnail = api.fetch(&link).await;
    assert_eq!(thumbnail.status(), StatusCode::OK);
    assert_eq!(thumbnail.headers()[CONTENT_TYPE], "image/jpeg");
    let small = image::load_from_memory(&thumbnail.bytes().await.unwrap()).unwrap();
    assert_eq!((small.width(), small.height()), (320, 240));

    // Someone outside the room gets nothing, and a link is only what it
    // was minted for.
    expect_error(
        api.link(&carol, id, "file").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let url = link["url"].as_str().unwrap();
    let mut tampered = url.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    for forged in [url.replace("variant=thumbnail", "variant=file"), tampered] {
        let refused = api.fetch(&json!({ "url": forged })).await;
        expect_error(refused, StatusCode::FORBIDDEN, "bad_link").await;
    }
    let unknown = api
        .link(&alice, &AttachmentId::new().to_string(), "file")
        .await;
    expect_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    // Once Bob leaves, he can no longer ask for links.
    let left = api
        .call(Method::POST, &format!("/v1/rooms/{room}/leave"), &bob, None)
        .await;
    assert!(left.status().is_success(), "{}", left.status());
    expect_error(
        api.link(&bob, id, "file").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn a_file_that_could_run_as_a_page_is_served_as_a_download(backend: Backend) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let room = room_of(&api, &alice, &[]).await;
    let page = b"<html><script>alert(document.cookie)</script></html>".to_vec();
    let uploaded = api
        .upload(&alice, &room, "page.html", "text/html", page.clone())
        .await;
    let attachment = expect_status(uploaded, StatusCode::CREATED).await;
    assert_eq!(attachment["content_type"], "application/octet-stream");
    assert!(attachment.get("width").is_none());
    let id = attachment["id"].as_str().unwrap();
    expect_status(
        send_with(&api, &alice, &room, &[id]).await,
        StatusCode::CREATED,
    )
    .await;
    let link = expect_status(api.link(&alice, id, "file").await, StatusCode::OK).await;
    let file = api.fetch(&link).await;
    assert_eq!(file.headers()[CONTENT_TYPE], "application/octet-stream");
    assert_eq!(file.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
    let disposition = file.headers()[CONTENT_DISPOSITION].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    let policy = file.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("sandbox"), "{policy}");
    assert_eq!(file.bytes().await.unwrap().as_ref(), page.as_slice());
    // A file has no thumbnail.
    expect_error(
        api.link(&alice, id, "thumbnail").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn bad_uploads_are_refused_with_nothing_stored(backend: Backend) {
    let api = TestApi::start_with(backend, |config| config.max_upload_bytes = 1 << 20).await;
    let (alice, mallory) = (api.user("alice").await, api.user("mallory").await);
    let room = room_of(&api, &alice, &[]).await;
    let small = png(40, 30);
    for (name, content_type, bytes, status, code) in [
        (
            "big.bin",
            "application/octet-stream",
            vec![0; (1 << 20) + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "lie.jpg",
            "image/jpeg",
            small.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "type_mismatch",
        ),
        (
            "page.png",
            "image/png",
            b"<html><body>hi</body></html>".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "type_mismatch",
        ),
        (
            "bomb.png",
            "image/png",
            png_bomb(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "image_too_large",
        ),
        (
            "../../etc/passwd",
            "text/plain",
            b"root".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_file_name",
        ),
        (
            "dir/a.png",
            "image/png",
            small.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_file_name",
        ),
        (
            "a\u{202e}gnp.exe",
            "image/png",
            small.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_file_name",
        ),
        (
            "",
            "image/png",
            small.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_file_name",
        ),
        (
            "cut.png",
            "image/png",
            small[..small.len() / 2].to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable_image",
        ),
    ] {
        let refused = api.upload(&alice, &room, name, content_type, bytes).await;
        assert_eq!(refused.status(), status, "{name}");
        expect_error(refused, status, code).await;
    }
    // Over the limit with no length declared: counted as it streams.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..17).map(|_| Ok(vec![7u8; 64 << 10])).collect();
    let streamed = api
        .request(
            Method::POST,
            &format!("/v1/rooms/{room}/attachments"),
            Some(&alice),
        )
        .query(&[("name", "stream.bin")])
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    expect_error(streamed, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Not a member, no room, no token.
    let outsider = api
        .upload(&mallory, &room, "x.png", "image/png", small.clone())
        .await;
    expect_error(outsider, StatusCode::FORBIDDEN, "not_member").await;
    let nowhere = api
        .upload(
            &alice,
            &AttachmentId::new().to_string(),
            "x.png",
            "image/png",
            small.clone(),
        )
        .await;
    expect_error(nowhere, StatusCode::NOT_FOUND, "not_found").await;
    let anonymous = api
        .request(
            Method::POST,
            &format!("/v1/rooms/{room}/attachments?name=x.png"),
            None,
        )
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let left = files(&api.data_dir.join("blobs"));
    assert!(left.is_empty(), "bytes left behind: {left:?}");
    assert_eq!(api.store.deleted_attachments(100).await.unwrap(), vec![]);
}

async fn a_message_carries_only_its_senders_uploads_of_its_room(backend: Backend) {
    let api = TestApi::start(backend).await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let room = room_of(&api, &alice, &[&bob]).await;
    let other = room_of(&api, &alice, &[]).await;
    let upload = |room: String| {
        let (api, alice) = (&api, &alice);
        async move {
            let response = api
                .upload(alice, &room, "a.txt", "text/plain", b"notes".to_vec())
                .await;
            expect_status(response, StatusCode::CREATED).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (here, there) = (upload(room.clone()).await, upload(other.clone()).await);
    let before = api.log(&alice, &room).await.len();
    for (who, ids) in [(&alice, vec![there.as_str()]), (&bob, vec![here.as_str()])] {
        let refused = send_with(&api, who, &room, &ids).await;
        expect_error(
            refused,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    let eleven: Vec<String> = (0..11).map(|_| AttachmentId::new().to_string()).collect();
    let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
    let too_many = send_with(&api, &alice, &room, &eleven).await;
    expect_error(
        too_many,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let empty = api
        .post(
            &format!("/v1/rooms/{room}/messages"),
            &alice,
            json!({ "client_id": "e", "body": "" }),
        )
        .await;
    expect_error(empty, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(api.log(&alice, &room).await.len(), before, "nothing stored");
    expect_status(
        send_with(&api, &alice, &room, &[&here]).await,
        StatusCode::CREATED,
    )
    .await;
}

/// Waits until `check` holds, for up to ten seconds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

async fn deleting_the_message_deletes_the_bytes(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.attachment_sweep_interval = Duration::from_millis(200);
    })
    .await;
    let alice = api.user("alice").await;
    let room = room_of(&api, &alice, &[]).await;
    let uploaded = api
        .upload(&alice, &room, "p.png", "image/png", png(64, 64))
        .await;
    let id = expect_status(uploaded, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sent = expect_status(
        send_with(&api, &alice, &room, &[&id]).await,
        StatusCode::CREATED,
    )
    .await;
    let blobs = api.data_dir.join("blobs");
    assert_eq!(files(&blobs).len(), 2, "the file and its thumbnail");
    let link = expect_status(api.link(&alice, &id, "file").await, StatusCode::OK).await;

    let message = sent["id"].as_str().unwrap();
    let deleted = api
        .call(
            Method::DELETE,
            &format!("/v1/rooms/{room}/messages/{message}"),
            &alice,
            None,
        )
        .await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    eventually("the bytes' deletion", || files(&blobs).is_empty()).await;
    // A link minted before is dead too.
    expect_error(api.fetch(&link).await, StatusCode::NOT_FOUND, "not_found").await;
    expect_error(
        api.link(&alice, &id, "file").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn an_unsent_upload_is_collected(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.attachment_sweep_interval = Duration::from_millis(200);
        config.unsent_attachment_ttl = Duration::from_secs(1);
    })
    .await;
    let alice = api.user("alice").await;
    let room = room_of(&api, &alice, &[]).await;
    let uploaded = api
        .upload(&alice, &room, "n.txt", "text/plain", b"never sent".to_vec())
        .await;
    let id = expect_status(uploaded, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let blobs = api.data_dir.join("blobs");
    assert_eq!(files(&blobs).len(), 1);
    eventually("the collection", || files(&blobs).is_empty()).await;
    let late = send_with(&api, &alice, &room, &[&id]).await;
    expect_error(late, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

/// The same path on object storage: the link is presigned on the bucket,
/// serves the decided headers, and deleting the message deletes the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_object_storage_links_are_presigned_and_deletion_reaches_the_bucket() {
    let blobs = chat_shared::testing::s3_bucket().await;
    let api = TestApi::start_with(Backend::Sqlite, |config| {
        config.blobs = blobs;
        config.attachment_sweep_interval = Duration::from_millis(200);
    })
    .await;
    let alice = api.user("alice").await;
    let room = room_of(&api, &alice, &[]).await;
    let bytes = png(300, 200);
    let uploaded = api
        .upload(&alice, &room, "plan.png", "image/png", bytes.clone())
        .await;
    let attachment = expect_status(uploaded, StatusCode::CREATED).await;
    assert_eq!(attachment["thumbnail"], true);
    let id = attachment["id"].as_str().unwrap().to_owned();
    let sent = expect_status(
        send_with(&api, &alice, &room, &[&id]).await,
        StatusCode::CREATED,
    )
    .await;

    let link = expect_status(api.link(&alice, &id, "file").await, StatusCode::OK).await;
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&chat_shared::testing::s3_endpoint()),
        "presigned on the bucket: {url}"
    );
    let file = api.fetch(&link).await;
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(file.headers()[CONTENT_TYPE], "image/png");
    let disposition = file.headers()[CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("inline"), "{disposition}");
    assert_eq!(file.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let thumbnail = expect_status(api.link(&alice, &id, "thumbnail").await, StatusCode::OK).await;
    assert_eq!(api.fetch(&thumbnail).await.status(), StatusCode::OK);

    let message = sent["id"].as_str().unwrap();
    let deleted = api
        .call(
            Method::DELETE,
            &format!("/v1/rooms/{room}/messages/{message}"),
            &alice,
            None,
        )
        .await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    for _ in 0..100 {
        if api.fetch(&link).await.status() == StatusCode::NOT_FOUND {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the object was still in the bucket 10 s after its message was deleted");
}
