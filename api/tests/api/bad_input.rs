//! Requests the api must refuse without changing anything: unreadable
//! bodies, bad paths and query strings, and forged, expired or revoked
//! access tokens. Each case checks the status, the error code, and that the
//! store is exactly as before.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chat_shared::auth::{Claims, KeyPair, TokenIssuer, TokenScope};
use chat_shared::testing::Backend;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, Snapshot, TestApi, TestUser};

both_stores!(
    malformed_json_is_a_bad_request,
    wrong_or_unknown_fields_fail_validation,
    an_oversized_body_is_refused,
    a_body_must_be_declared_json,
    invalid_utf8_is_a_bad_request,
    bad_paths_and_query_strings_are_bad_requests,
    a_nul_character_is_refused_alike_on_both_stores,
    forged_and_expired_tokens_are_refused,
    a_logged_out_session_is_refused,
);

/// An api with `alice` in a private room that already holds a message, so a
/// request that got through would show in the snapshot.
async fn start(backend: Backend) -> (TestApi, TestUser, String) {
    let api = TestApi::start(backend).await;
    let alice = api.user("alice").await;
    let room = api.room(&alice, "lobby", "private").await.id.to_string();
    api.send(&alice, &room, "first", "hello").await;
    (api, alice, room)
}

/// Asserts the error and that the store still matches `before`.
async fn refused(
    api: &TestApi,
    before: &Snapshot,
    request: RequestBuilder,
    status: StatusCode,
    code: &str,
) -> Value {
    let body = expect_error(request.send().await.unwrap(), status, code).await;
    assert_eq!(
        &api.snapshot().await,
        before,
        "a refused request changed the store"
    );
    body
}

/// A POST of raw bytes as JSON to `room`'s messages, as `user`.
fn post_raw(
    api: &TestApi,
    user: &TestUser,
    room: &str,
    body: impl Into<Vec<u8>>,
) -> RequestBuilder {
    api.request(
        Method::POST,
        &format!("/v1/rooms/{room}/messages"),
        Some(user),
    )
    .header(CONTENT_TYPE, "application/json")
    .body(body.into())
}

async fn malformed_json_is_a_bad_request(backend: Backend) {
    let (api, alice, room) = start(backend).await;
    let before = api.snapshot().await;
    for body in [
        r#"{"client_id": "a", "body": "#,
        r#"{"client_id": "a", "body": "hi",}"#,
        r#"{"client_id": "a", "body": "hi"} trailing"#,
        r#"{client_id: "a", body: "hi"}"#,
        "",
    ] {
        let request = post_raw(&api, &alice, &room, body);
        refused(
            &api,
            &before,
            request,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        )
        .await;
    }
    // Also where no token is needed.
    let request = api
        .request(Method::POST, "/v1/auth/register", None)
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"username": "mallory", "password": "#);
    refused(
        &api,
        &before,
        request,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
}

async fn wrong_or_unknown_fields_fail_validation(backend: Backend) {
    let (api, alice, room) = start(backend).await;
    let bob = api.user("bob").await;
    let before = api.snapshot().await;
    for body in [
        json!({ "client_id": 7, "body": "hi" }),
        json!({ "client_id": "a", "body": ["hi"] }),
        json!({ "client_id": "a", "body": null }),
        json!({ "client_id": "a" }),
        json!(42),
        json!("hi"),
        // Unknown fields are refused, not ignored: no sender spoofing.
        json!({ "client_id": "a", "body": "hi", "sender": bob.user.id }),
        json!({ "client_id": "a", "body": "hi", "seq": 1 }),
    ] {
        let request = post_raw(&api, &alice, &room, body.to_string());
        refused(
            &api,
            &before,
            request,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    let request = api
        .request(Method::POST, "/v1/rooms", Some(&alice))
        .json(&json!({ "name": "mine", "kind": "public", "owner": bob.user.id }));
    refused(
        &api,
        &before,
        request,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let request = api
        .request(Method::POST, "/v1/rooms", Some(&alice))
        .json(&json!({ "name": "mine", "kind": "secret" }));
    refused(
        &api,
        &before,
        request,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

async fn an_oversized_body_is_refused(backend: Backend) {
    let (api, alice, room) = start(backend).await;
    let before = api.snapshot().await;
    let huge = "x".repeat(64 * 1024);
    let request = post_raw(
        &api,
        &alice,
        &room,
        json!({ "client_id": "big", "body": huge }).to_string(),
    );
    refused(
        &api,
        &before,
        request,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    let request = api
        .request(Method::POST, "/v1/auth/register", None)
        .json(&json!({ "username": "mallory", "password": huge }));
    refused(
        &api,
        &before,
        request,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
}

async fn a_body_must_be_declared_json(backend: Backend) {
    let (api, alice, room) = start(backend).await;
    let before = api.snapshot().await;
    let body = json!({ "client_id": "typed", "body": "hi" }).to_string();
    let path = format!("/v1/rooms/{room}/messages");
    let untyped = api
        .request(Method::POST, &path, Some(&alice))
        .body(body.clone());
    refused(
        &api,
        &before,
        untyped,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let text = api
        .request(Method::POST, &path, Some(&alice))
        .header(CONTENT_TYPE, "text/plain")
        .body(body.clone());
    refused(
        &api,
        &before,
        text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    // The same body declared as JSON goes through.
    let typed = api
        .request(Method::POST, &path, Some(&alice))
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(body);
    expect_status(typed.send().await.unwrap(), StatusCode::CREATED).await;
}

async fn invalid_utf8_is_a_bad_request(backend: Backend) {
    let (api, alice, room) = start(backend).await;
    let before = api.snapshot().await;
    let mut body = br#"{"client_id": "bytes", "body": "caf"#.to_vec();
    body.extend([0xff, 0xfe, b'"', b'}']);
    let request = post_raw(&api, &alice, &room, body);
    refused(
        &api,
        &before,
        request,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    // A lone surrogate escape is not a character either.
    let request = post_raw(
        &api,
        &alice,
        &room,
        r#"{"client_id": "esc", "body": "\ud800"}"#,
    );
    refused(
        &api,
        &before,
        request,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
}

async fn bad_paths_and_query_strings_are_bad_requests(backend: Backend) {
    let (api, alice, room) = start(backend).await;
    let before = api.snapshot().await;
    for (method, path) in [
        (Method::POST, "/v1/rooms/not-a-uuid/messages"),
        (Method::GET, "/v1/rooms/not-a-uuid/events"),
        (Method::GET, "/v1/rooms/1234/events"),
        (Method::DELETE, "/v1/auth/sessions/not-a-uuid"),
    ] {
        let request = api
            .request(method, path, Some(&alice))
            .json(&json!({ "client_id": "p", "body": "hi" }));
        refused(
            &api,
            &before,
            request,
            StatusCode::BAD_REQUEST,
            "invalid_path",
        )
        .await;
    }
    for query in [
        "limit=abc",
        "limit=-1",
        "limit=99999999999",
        "after=1.5",
        "before=",
        "cursor=5",
    ] {
        let path = format!("/v1/rooms/{room}/events?{query}");
        let request = api.request(Method::GET, &path, Some(&alice));
        refused(
            &api,
            &before,
            request,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
    }
}

async fn a_nul_character_is_refused_alike_on_both_stores(backend: Backend) {
    // PostgreSQL cannot hold or compare text with a NUL; SQLite can. The api
    // must answer the same on both, and never with a 500.
    let (api, alice, room) = start(backend).await;
    let before = api.snapshot().await;
    let request = post_raw(
        &api,
        &alice,
        &room,
        r#"{"client_id": "nul", "body": "a\u0000b"}"#,
    );
    refused(
        &api,
        &before,
        request,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let request = api
        .request(Method::POST, "/v1/auth/login", None)
        .json(&json!({ "username": "alice\u{0}", "password": "password-alice" }));
    refused(
        &api,
        &before,
        request,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let request = api.request(Method::GET, "/v1/users?q=al%00ice", Some(&alice));
    refused(
        &api,
        &before,
        request,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

/// Claims as the api would issue them for `user`, valid for ten minutes.
pub(crate) fn claims(user: &TestUser) -> Claims {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    Claims {
        iss: "chat".into(),
        aud: "chat".into(),
        sub: user.user.id,
        sid: user.session_id.parse().unwrap(),
        name: user.user.username.clone(),
        iat: now,
        exp: now + 600,
    }
}

/// `claims` signed with EdDSA by the PKCS#8 PEM key `private_pem`.
pub(crate) fn sign(claims: &impl serde::Serialize, private_pem: &str) -> String {
    let key = EncodingKey::from_ed_pem(private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn forged_and_expired_tokens_are_refused(backend: Backend) {
    let (api, alice, room) = start(backend).await;
    let bob = api.user("bob").await;
    let read = |name| std::fs::read_to_string(api.data_dir.join(name)).unwrap();
    let (server_private, server_public) = (read("jwt-private.pem"), read("jwt-public.pem"));
    let chat = TokenScope {
        issuer: "chat".into(),
        audience: "chat".into(),
    };
    let ttl = Duration::from_secs(600);
    let sid = alice.session_id.parse().unwrap();
    let issue = |private_pem: &str, scope: TokenScope| {
        let issuer = TokenIssuer::new(private_pem.as_bytes(), scope, ttl).unwrap();
        issuer.issue(alice.user.id, "alice", sid).unwrap().0
    };

    // The forging works: the same claims signed with the server's key pass.
    let genuine = sign(&claims(&alice), &server_private);
    let response = api
        .request(Method::GET, "/v1/users/me", None)
        .bearer_auth(&genuine)
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_status(response, StatusCode::OK).await["id"],
        alice.user.id.to_string()
    );

    let other_key = KeyPair::generate().unwrap();
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&serde_json::to_value(claims(&alice)).unwrap()),
    );
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(&alice),
        &EncodingKey::from_secret(server_public.as_bytes()),
    )
    .unwrap();
    let expired = sign(
        &Claims {
            iat: claims(&alice).iat - 960,
            exp: claims(&alice).iat - 60,
            ..claims(&alice)
        },
        &server_private,
    );
    let mut never_expires = serde_json::to_value(claims(&alice)).unwrap();
    never_expires.as_object_mut().unwrap().remove("exp");
    let never_expires = sign(&never_expires, &server_private);
    // Bob's claims under a signature made for alice's.
    let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    parts[1] = b64(&serde_json::to_value(claims(&bob)).unwrap());
    let tampered = parts.join(".");
    let wrong_audience = issue(
        &server_private,
        TokenScope {
            audience: "elsewhere".into(),
            ..chat.clone()
        },
    );
    let wrong_issuer = issue(
        &server_private,
        TokenScope {
            issuer: "impostor".into(),
            ..chat.clone()
        },
    );

    let cases = [
        ("no header", None, "missing_token"),
        (
            "another scheme",
            Some(format!("Basic {genuine}")),
            "missing_token",
        ),
        ("garbage", Some("Bearer garbage".into()), "invalid_token"),
        ("empty", Some("Bearer ".into()), "missing_token"),
        (
            "another key",
            Some(format!(
                "Bearer {}",
                issue(&other_key.private_pem, chat.clone())
            )),
            "invalid_token",
        ),
        (
            "alg none",
            Some(format!("Bearer {alg_none}")),
            "invalid_token",
        ),
        (
            "HS256 keyed with the public key",
            Some(format!("Bearer {hs256}")),
            "invalid_token",
        ),
        (
            "expired",
            Some(format!("Bearer {expired}")),
            "invalid_token",
        ),
        (
            "no exp",
            Some(format!("Bearer {never_expires}")),
            "invalid_token",
        ),
        (
            "tampered payload",
            Some(format!("Bearer {tampered}")),
            "invalid_token",
        ),
        (
            "wrong audience",
            Some(format!("Bearer {wrong_audience}")),
            "invalid_token",
        ),
        (
            "wrong issuer",
            Some(format!("Bearer {wrong_issuer}")),
            "invalid_token",
        ),
    ];
    let before = api.snapshot().await;
    for (n, (case, authorization, code)) in cases.into_iter().enumerate() {
        let with_token = |request: RequestBuilder| match &authorization {
            Some(value) => request.header(AUTHORIZATION, value),
            None => request,
        };
        let me = with_token(api.request(Method::GET, "/v1/users/me", None));
        let body = refused(&api, &before, me, StatusCode::UNAUTHORIZED, code).await;
        assert_eq!(body["error"]["code"], code, "{case}");
        let path = format!("/v1/rooms/{room}/messages");
        let send = with_token(api.request(Method::POST, &path, None))
            .json(&json!({ "client_id": format!("forged-{n}"), "body": case }));
        refused(&api, &before, send, StatusCode::UNAUTHORIZED, code).await;
    }

    // Alice's real token still works after all that, whatever the case of
    // the scheme (HTTP's auth schemes ignore case).
    api.send(&alice, &room, "real", "still me").await;
    for scheme in ["bearer", "BEARER"] {
        let response = api
            .request(Method::GET, "/v1/users/me", None)
            .header(AUTHORIZATION, format!("{scheme} {genuine}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
}

async fn a_logged_out_session_is_refused(backend: Backend) {
    let (api, alice, room) = start(backend).await;
    let phone = api.login("alice").await;
    let response = api
        .call(Method::POST, "/v1/auth/logout", &alice, None)
        .await;
    expect_status(response, StatusCode::NO_CONTENT).await;
    let before = api.snapshot().await;

    let me = api.request(Method::GET, "/v1/users/me", Some(&alice));
    refused(
        &api,
        &before,
        me,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    let send = api
        .request(
            Method::POST,
            &format!("/v1/rooms/{room}/messages"),
            Some(&alice),
        )
        .json(&json!({ "client_id": "after-logout", "body": "hello?" }));
    refused(
        &api,
        &before,
        send,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    let logout = api.request(Method::POST, "/v1/auth/logout", Some(&alice));
    refused(
        &api,
        &before,
        logout,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;

    // The other session is untouched.
    api.send(&phone, &room, "from-phone", "still here").await;
}
