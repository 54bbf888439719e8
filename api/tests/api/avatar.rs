//! Avatars: an image becomes a 128 × 128 PNG of its centred square (never
//! the uploaded bytes), served to anyone holding its unguessable URL and
//! to no one once replaced or removed; anything that is not an image we
//! decode, or is too large, is refused and changes nothing.

use chat_shared::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::attachments::{png, png_bomb};
use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser, GENERAL};

both_stores!(
    an_avatar_is_a_small_square_png_anyone_with_its_url_loads,
    a_new_avatar_replaces_the_old_and_removal_ends_it,
    what_is_not_a_decodable_image_is_refused,
    avatar_uploads_have_a_budget,
);

/// Uploads `bytes` as `user`'s avatar, declared as `content_type`.
async fn upload(
    api: &TestApi,
    user: &TestUser,
    content_type: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    api.request(Method::PUT, "/v1/account/avatar", Some(user))
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// GETs `path` with no token at all, as an `<img>` does.
async fn fetch(api: &TestApi, path: &str) -> reqwest::Response {
    api.request(Method::GET, path, None).send().await.unwrap()
}

async fn an_avatar_is_a_small_square_png_anyone_with_its_url_loads(backend: Backend) {
    let api = TestApi::start(backend).await;
    let amy = api.user("amy").await;
    let ben = api.user("ben").await;
    api.join(&amy, GENERAL).await;
    api.join(&ben, GENERAL).await;

    let original = png(300, 200);
    let user = expect_status(
        upload(&api, &amy, "image/png", original.clone()).await,
        StatusCode::OK,
    )
    .await;
    let path = user["avatar"].as_str().expect("an avatar path").to_owned();
    assert!(
        path.starts_with(&format!("/v1/avatars/{}/", amy.user.id)),
        "{path}"
    );

    let response = fetch(&api, &path).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert!(response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let bytes = response.bytes().await.unwrap();
    assert_ne!(
        bytes.as_ref(),
        original.as_slice(),
        "the upload is never served as is"
    );
    let image = image::load_from_memory(&bytes).unwrap();
    assert_eq!((image.width(), image.height()), (128, 128));

    // Others see it wherever they see her.
    let members = expect_status(
        api.get(&format!("/v1/rooms/{GENERAL}/members"), &ben).await,
        StatusCode::OK,
    )
    .await;
    let shown: Vec<&Value> = members
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["user"]["id"] == amy.user.id.to_string().as_str())
        .collect();
    assert_eq!(shown[0]["user"]["avatar"], path.as_str());
    let me = expect_status(api.get("/v1/users/me", &amy).await, StatusCode::OK).await;
    assert_eq!(me["avatar"], path.as_str());
    // Ben has none; another version of Amy's, or another user's, is nothing.
    let theirs = expect_status(api.get("/v1/users/me", &ben).await, StatusCode::OK).await;
    assert!(theirs.get("avatar").is_none(), "{theirs}");
    let guessed = format!("/v1/avatars/{}/{}", amy.user.id, "0".repeat(32));
    expect_error(
        fetch(&api, &guessed).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let elsewhere = path.replace(&amy.user.id.to_string(), &ben.user.id.to_string());
    expect_error(
        fetch(&api, &elsewhere).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn a_new_avatar_replaces_the_old_and_removal_ends_it(backend: Backend) {
    let api = TestApi::start(backend).await;
    let cal = api.user("cal").await;
    let first = expect_status(
        upload(&api, &cal, "image/png", png(64, 64)).await,
        StatusCode::OK,
    )
    .await;
    let first = first["avatar"].as_str().unwrap().to_owned();
    let second = expect_status(
        upload(&api, &cal, "image/png", png(40, 90)).await,
        StatusCode::OK,
    )
    .await;
    let second = second["avatar"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    expect_error(
        fetch(&api, &first).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(fetch(&api, &second).await.status(), StatusCode::OK);

    let removed = api
        .call(Method::DELETE, "/v1/account/avatar", &cal, None)
        .await;
    let removed = expect_status(removed, StatusCode::OK).await;
    assert!(removed.get("avatar").is_none(), "{removed}");
    expect_error(
        fetch(&api, &second).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let response = api
        .request(Method::DELETE, "/v1/account/avatar", None)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
}

async fn what_is_not_a_decodable_image_is_refused(backend: Backend) {
    let api = TestApi::start(backend).await;
    let dee = api.user("dee").await;
    let kept = expect_status(
        upload(&api, &dee, "image/png", png(32, 32)).await,
        StatusCode::OK,
    )
    .await;
    let kept = kept["avatar"].as_str().unwrap().to_owned();

    let html = b"<html><script>alert(1)</script></html>".to_vec();
    expect_error(
        upload(&api, &dee, "image/png", html.clone()).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "type_mismatch",
    )
    .await;
    expect_error(
        upload(&api, &dee, "text/html", html).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "type_mismatch",
    )
    .await;
    expect_error(
        upload(&api, &dee, "image/png", png_bomb()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "image_too_large",
    )
    .await;
    let mut truncated = png(64, 64);
    truncated.truncate(truncated.len() / 2);
    expect_error(
        upload(&api, &dee, "image/png", truncated).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unreadable_image",
    )
    .await;
    let huge = vec![0u8; 6 << 20];
    expect_error(
        upload(&api, &dee, "image/png", huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    let response = api
        .request(Method::PUT, "/v1/account/avatar", None)
        .header("content-type", "image/png")
        .body(png(8, 8))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "missing_token").await;

    // The avatar before is still the one.
    let me = expect_status(api.get("/v1/users/me", &dee).await, StatusCode::OK).await;
    assert_eq!(me["avatar"], kept.as_str());
    assert_eq!(fetch(&api, &kept).await.status(), StatusCode::OK);
}

async fn avatar_uploads_have_a_budget(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.action_rate_per_minute = 1;
        config.action_burst = 2;
    })
    .await;
    let eli = api.user("eli").await;
    for _ in 0..2 {
        expect_status(
            upload(&api, &eli, "image/png", png(16, 16)).await,
            StatusCode::OK,
        )
        .await;
    }
    let limited = upload(&api, &eli, "image/png", png(16, 16)).await;
    assert!(limited.headers().contains_key("retry-after"));
    expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}
