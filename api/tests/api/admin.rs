//! Server administration over the api: the command line that makes the
//! first admin, `/v1/admin/...` for admins and moderators only, what a
//! moderator may not do, deactivation (sessions end, login and refresh
//! refused, reactivation), server roles acting in rooms the caller is not
//! in (audited), reports and their queue, and the audit log.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{expect_error, expect_status, TestApi, TestUser};
use chat_shared::testing::Backend;

both_stores!(
    the_command_line_makes_the_first_admin,
    only_admins_and_moderators_reach_the_admin_api,
    admins_grant_server_roles_and_moderators_do_not,
    a_deactivated_account_is_signed_out_and_refused_until_reactivated,
    server_roles_moderate_rooms_they_are_not_in,
    reports_land_in_the_queue_once_and_are_resolved,
    reports_have_a_budget,
    the_last_admin_cannot_delete_their_account,
    the_admin_api_is_documented,
);

/// Runs `admin <args>` as the binaries do, on the api's store.
async fn cli(api: &TestApi, args: &[&str]) -> Result<String, String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    chat_api::admin(api.store.as_ref(), &args).await
}

/// A registered user made a server admin from the command line.
async fn admin(api: &TestApi, username: &str) -> TestUser {
    let user = api.user(username).await;
    cli(api, &["grant", username]).await.unwrap();
    user
}

/// `by` gives `user` the server role `role` (`null` takes it away).
async fn set_server_role(api: &TestApi, by: &TestUser, user: &TestUser, role: Value) -> Response {
    let path = format!("/v1/admin/users/{}/role", user.user.id);
    api.call(Method::PUT, &path, by, Some(json!({ "role": role })))
        .await
}

/// `by` deactivates (or reactivates) `user`.
async fn set_active(api: &TestApi, by: &TestUser, user: &TestUser, active: bool) -> Response {
    let verb = if active { "reactivate" } else { "deactivate" };
    let path = format!("/v1/admin/users/{}/{verb}", user.user.id);
    api.post(&path, by, json!({})).await
}

/// The audit log's newest `n` entries as (action, actor username).
async fn audit(api: &TestApi, by: &TestUser) -> Vec<Value> {
    let log = api.get("/v1/admin/audit?limit=100", by).await;
    expect_status(log, StatusCode::OK)
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// The actions of audit entries, newest first.
fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

/// `username` logs in with their password.
async fn login(api: &TestApi, username: &str, password: &str) -> Response {
    api.request(Method::POST, "/v1/auth/login", None)
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap()
}

async fn the_command_line_makes_the_first_admin(backend: Backend) {
    let api = TestApi::start(backend).await;
    let root = api.user("root").await;
    let me = expect_status(api.get("/v1/users/me", &root).await, StatusCode::OK).await;
    assert_eq!(me["server_role"], Value::Null);
    assert_eq!(me["username"], "root");

    assert_eq!(
        cli(&api, &["grant", "ROOT"]).await.unwrap(),
        "root is now a server admin"
    );
    let me = expect_status(api.get("/v1/users/me", &root).await, StatusCode::OK).await;
    assert_eq!(me["server_role"], "admin");
    assert_eq!(
        cli(&api, &["grant", "root"]).await.unwrap(),
        "root already is a server admin"
    );
    // One clear line for a mistake, and nothing changed.
    assert_eq!(
        cli(&api, &["grant", "nobody"]).await.unwrap_err(),
        "no user named \"nobody\""
    );
    assert!(cli(&api, &["promote", "root"])
        .await
        .unwrap_err()
        .starts_with("usage:"));
    assert_eq!(
        cli(&api, &["revoke", "root"]).await.unwrap_err(),
        "root is the last active admin; grant another first"
    );
    api.user("mod").await;
    assert_eq!(
        cli(&api, &["grant", "mod", "moderator"]).await.unwrap(),
        "mod is now a server moderator"
    );
    assert_eq!(
        cli(&api, &["revoke", "mod"]).await.unwrap(),
        "mod no longer holds a server role"
    );
    // The command line's changes are audited with no actor.
    let log = audit(&api, &root).await;
    assert_eq!(actions(&log), ["revoke_role", "grant_role", "grant_role"]);
    assert!(log.iter().all(|e| e["actor"].is_null()), "{log:?}");
}

async fn only_admins_and_moderators_reach_the_admin_api(backend: Backend) {
    let api = TestApi::start(backend).await;
    let root = admin(&api, "root").await;
    let alice = api.user("alice").await;
    for path in ["/v1/admin/users", "/v1/admin/reports", "/v1/admin/audit"] {
        expect_error(
            api.get(path, &alice).await,
            StatusCode::FORBIDDEN,
            "not_staff",
        )
        .await;
        let anonymous = api.request(Method::GET, path, None).send().await.unwrap();
        expect_error(anonymous, StatusCode::UNAUTHORIZED, "missing_token").await;
    }
    let refused = set_active(&api, &alice, &root, false).await;
    expect_error(refused, StatusCode::FORBIDDEN, "not_staff").await;
    let refused = set_server_role(&api, &alice, &alice, json!("admin")).await;
    expect_error(refused, StatusCode::FORBIDDEN, "not_staff").await;

    // Staff see every account with its state; search and pages.
    let all = expect_status(api.get("/v1/admin/users", &root).await, StatusCode::OK).await;
    let names: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "root"]);
    assert_eq!(all[1]["server_role"], "admin");
    assert_eq!(all[0]["deactivated_at"], Value::Null);
    let found = api.get("/v1/admin/users?q=ROO", &root).await;
    assert_eq!(
        expect_status(found, StatusCode::OK).await[0]["username"],
        "root"
    );
    let next = api.get("/v1/admin/users?after=alice&limit=1", &root).await;
    assert_eq!(
        expect_status(next, StatusCode::OK).await[0]["username"],
        "root"
    );
    let bad = api.get("/v1/admin/users?limit=0", &root).await;
    expect_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

async fn admins_grant_server_roles_and_moderators_do_not(backend: Backend) {
    let api = TestApi::start(backend).await;
    let root = admin(&api, "root").await;
    let modo = api.user("modo").await;
    let carol = api.user("carol").await;
    let granted = set_server_role(&api, &root, &modo, json!("moderator")).await;
    assert_eq!(
        expect_status(granted, StatusCode::OK).await["server_role"],
        "moderator"
    );
    let me = expect_status(api.get("/v1/users/me", &modo).await, StatusCode::OK).await;
    assert_eq!(me["server_role"], "moderator");

    // A moderator grants nothing and deactivates no admin or moderator.
    for (user, role) in [(&carol, json!("moderator")), (&modo, json!("admin"))] {
        let refused = set_server_role(&api, &modo, user, role).await;
        expect_error(refused, StatusCode::FORBIDDEN, "insufficient_role").await;
    }
    let refused = set_server_role(&api, &modo, &root, Value::Null).await;
    expect_error(refused, StatusCode::FORBIDDEN, "insufficient_role").await;
    let refused = set_active(&api, &modo, &root, false).await;
    expect_error(refused, StatusCode::FORBIDDEN, "insufficient_role").await;
    // An admin does not deactivate themselves nor demote the last admin.
    let refused = set_active(&api, &root, &root, false).await;
    expect_error(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let refused = set_server_role(&api, &root, &root, Value::Null).await;
    expect_error(refused, StatusCode::CONFLICT, "last_admin").await;
    let refused = set_server_role(&api, &root, &modo, json!("moderator")).await;
    expect_error(refused, StatusCode::CONFLICT, "unchanged").await;
    let refused = set_server_role(&api, &root, &modo, json!("owner")).await;
    expect_error(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;

    // Nothing of it changed anything.
    let me = expect_status(api.get("/v1/users/me", &root).await, StatusCode::OK).await;
    assert_eq!(
        (me["server_role"].as_str(), me["deactivated_at"].is_null()),
        (Some("admin"), true)
    );
    let me = expect_status(api.get("/v1/users/me", &carol).await, StatusCode::OK).await;
    assert!(me["server_role"].is_null());
    assert_eq!(
        actions(&audit(&api, &root).await),
        ["grant_role", "grant_role"]
    );
}

async fn a_deactivated_account_is_signed_out_and_refused_until_reactivated(backend: Backend) {
    let api = TestApi::start(backend).await;
    let root = admin(&api, "root").await;
    let modo = api.user("modo").await;
    expect_status(
        set_server_role(&api, &root, &modo, json!("moderator")).await,
        StatusCode::OK,
    )
    .await;
    let alice = api.user("alice").await;
    let phone = api.login("alice").await;

    // A moderator deactivates an ordinary account.
    let done = set_active(&api, &modo, &alice, false).await;
    assert!(!expect_status(done, StatusCode::OK).await["deactivated_at"].is_null());
    // Every session ended at once: access tokens and refresh tokens.
    for session in [&alice, &phone] {
        let me = api.get("/v1/users/me", session).await;
        expect_error(me, StatusCode::UNAUTHORIZED, "session_revoked").await;
        let refresh = api
            .request(Method::POST, "/v1/auth/refresh", None)
            .json(&json!({ "refresh_token": session.refresh }))
            .send()
            .await
            .unwrap();
        assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    }
    assert!(api
        .store
        .active_sessions(alice.user.id)
        .await
        .unwrap()
        .is_empty());
    // Login is refused with its own code, only for the right password.
    let refused = login(&api, "alice", "password-alice").await;
    expect_error(refused, StatusCode::FORBIDDEN, "account_deactivated").await;
    let wrong = login(&api, "alice", "wrong-password").await;
    expect_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert!(api
        .store
        .active_sessions(alice.user.id)
        .await
        .unwrap()
        .is_empty());
    let again = set_active(&api, &root, &alice, false).await;
    expect_error(again, StatusCode::CONFLICT, "unchanged").await;
    let missing = api
        .post(
            &format!("/v1/admin/users/{}/deactivate", uuid::Uuid::now_v7()),
            &root,
            json!({}),
        )
        .await;
    expect_error(missing, StatusCode::NOT_FOUND, "not_found").await;

    // The flag alone refuses a refresh, should one slip in before the
    // sessions end (here: deactivated in the store, sessions left alive).
    let carol = api.user("carol").await;
    api.store
        .set_deactivated(carol.user.id, true, root.user.id)
        .await
        .unwrap();
    let refresh = api
        .request(Method::POST, "/v1/auth/refresh", None)
        .json(&json!({ "refresh_token": carol.refresh }))
        .send()
        .await
        .unwrap();
    expect_error(refresh, StatusCode::FORBIDDEN, "account_deactivated").await;

    // Reactivated, they log in again.
    let back = set_active(&api, &root, &alice, true).await;
    assert!(expect_status(back, StatusCode::OK).await["deactivated_at"].is_null());
    expect_status(login(&api, "alice", "password-alice").await, StatusCode::OK).await;
    let log = audit(&api, &root).await;
    assert_eq!(
        actions(&log)[..3],
        ["reactivate", "deactivate", "deactivate"]
    );
    assert_eq!(log[2]["actor"], json!(modo.user.id));
    assert_eq!(log[2]["target_user"], json!(alice.user.id));
}

async fn server_roles_moderate_rooms_they_are_not_in(backend: Backend) {
    let api = TestApi::start(backend).await;
    let root = admin(&api, "root").await;
    let modo = api.user("modo").await;
    expect_status(
        set_server_role(&api, &root, &modo, json!("moderator")).await,
        StatusCode::OK,
    )
    .await;
    let (alice, bob, carol) = (
        api.user("alice").await,
        api.user("bob").await,
        api.user("carol").await,
    );
    let room = api.room(&alice, "secret", "private").await.id.to_string();
    for user in [&bob, &carol] {
        api.add(&alice, &room, user).await;
    }
    let message = api.send(&bob, &room, "c1", "buy cheap pills").await;
    let message_id = message["id"].as_str().unwrap();

    // Someone with no server role still cannot.
    let path = format!("/v1/rooms/{room}/messages/{message_id}");
    let refused = api.call(Method::DELETE, &path, &carol, None).await;
    expect_error(refused, StatusCode::FORBIDDEN, "insufficient_role").await;
    // A moderator, not a member, removes the message and the member.
    let deleted = api.call(Method::DELETE, &path, &modo, None).await;
    assert_eq!(
        expect_status(deleted, StatusCode::OK).await["type"],
        "message_deleted"
    );
    let path = format!("/v1/rooms/{room}/members/{}", bob.user.id);
    expect_status(
        api.call(Method::DELETE, &path, &modo, None).await,
        StatusCode::OK,
    )
    .await;
    // But hands nothing over, and a server admin does.
    let path = format!("/v1/rooms/{room}/members/{}/role", carol.user.id);
    let owner = json!({ "role": "owner" });
    let refused = api
        .call(Method::PUT, &path, &modo, Some(owner.clone()))
        .await;
    expect_error(refused, StatusCode::FORBIDDEN, "insufficient_role").await;
    expect_status(
        api.call(Method::PUT, &path, &root, Some(owner)).await,
        StatusCode::OK,
    )
    .await;

    // A room's admin does not kick a server moderator who is a member.
    api.add(&carol, &room, &modo).await;
    let path = format!("/v1/rooms/{room}/members/{}", modo.user.id);
    let refused = api.call(Method::DELETE, &path, &alice, None).await;
    expect_error(refused, StatusCode::FORBIDDEN, "insufficient_role").await;

    // The room's owner edits it unaudited; a server admin who is not in
    // it edits and deletes it, audited.
    let path = format!("/v1/rooms/{room}");
    let rename = |name: &str| Some(json!({ "name": name }));
    let edited = api.call(Method::PATCH, &path, &carol, rename("mine")).await;
    expect_status(edited, StatusCode::OK).await;
    let edited = api
        .call(Method::PATCH, &path, &root, rename("cleaned"))
        .await;
    expect_status(edited, StatusCode::OK).await;
    let gone = api.call(Method::DELETE, &path, &root, None).await;
    expect_status(gone, StatusCode::NO_CONTENT).await;

    // Done with server powers, each is audited; the owners' acts are not.
    let log = audit(&api, &root).await;
    assert_eq!(
        actions(&log)[..5],
        [
            "delete_room",
            "edit_room",
            "set_room_role",
            "kick",
            "delete_message"
        ]
    );
    assert_eq!(log[0]["detail"], "cleaned");
    assert_eq!(log[2]["actor"], json!(root.user.id));
    assert_eq!(log[2]["target_user"], json!(carol.user.id));
    assert_eq!(log[2]["detail"], "owner");
    assert_eq!(log[3]["actor"], json!(modo.user.id));
    assert_eq!(log[3]["target_user"], json!(bob.user.id));
    assert_eq!(log[4]["target_id"], json!(message_id));
    assert_eq!(log[4]["room_id"], json!(room));
    assert_eq!(log.len(), 7, "{log:?}");
}

/// `by` reports `target` with `reason`.
async fn report(api: &TestApi, by: &TestUser, target: Value, reason: &str) -> Response {
    api.post(
        "/v1/reports",
        by,
        json!({ "target": target, "reason": reason }),
    )
    .await
}

async fn reports_land_in_the_queue_once_and_are_resolved(backend: Backend) {
    let api = TestApi::start(backend).await;
    let root = admin(&api, "root").await;
    let (alice, bob, eve) = (
        api.user("alice").await,
        api.user("bob").await,
        api.user("eve").await,
    );
    let room = api.room(&alice, "secret", "private").await.id.to_string();
    api.add(&alice, &room, &bob).await;
    let message = api.send(&bob, &room, "c1", "rude words").await;
    let of_message = json!({ "kind": "message", "room_id": room, "event_id": message["id"] });

    // Refusals, none of which files anything.
    let outsider = report(&api, &eve, of_message.clone(), "rude").await;
    expect_error(outsider, StatusCode::FORBIDDEN, "not_member").await;
    for reason in ["", "   ", &"x".repeat(513)] {
        let bad = report(&api, &alice, of_message.clone(), reason).await;
        expect_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    let unknown = json!({ "kind": "message", "room_id": room, "event_id": uuid::Uuid::now_v7() });
    let missing = report(&api, &alice, unknown, "rude").await;
    expect_error(missing, StatusCode::NOT_FOUND, "not_found").await;
    let me = json!({ "kind": "user", "user_id": alice.user.id });
    let own = report(&api, &alice, me, "rude").await;
    expect_error(own, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let queue = api.get("/v1/admin/reports", &root).await;
    assert_eq!(expect_status(queue, StatusCode::OK).await, json!([]));

    let filed = report(&api, &alice, of_message.clone(), "rude").await;
    let filed = expect_status(filed, StatusCode::CREATED).await;
    assert_eq!(filed["subject"], json!(bob.user.id));
    let twice = report(&api, &alice, of_message, "still rude").await;
    expect_error(twice, StatusCode::CONFLICT, "already_reported").await;
    let of_bob = json!({ "kind": "user", "user_id": bob.user.id });
    expect_status(
        report(&api, &eve, of_bob, "spammer").await,
        StatusCode::CREATED,
    )
    .await;

    let queue = expect_status(api.get("/v1/admin/reports", &root).await, StatusCode::OK).await;
    let reasons: Vec<_> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["spammer", "rude"]);

    let path = format!(
        "/v1/admin/reports/{}/resolve",
        filed["id"].as_str().unwrap()
    );
    let refused = api.post(&path, &alice, json!({ "note": "mine" })).await;
    expect_error(refused, StatusCode::FORBIDDEN, "not_staff").await;
    let empty = api.post(&path, &root, json!({ "note": "" })).await;
    expect_error(empty, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let resolved = api
        .post(&path, &root, json!({ "note": "deleted it" }))
        .await;
    let resolved = expect_status(resolved, StatusCode::OK).await;
    assert_eq!(resolved["resolution"]["note"], "deleted it");
    assert_eq!(resolved["resolution"]["by"], json!(root.user.id));
    let again = api.post(&path, &root, json!({ "note": "again" })).await;
    expect_error(again, StatusCode::CONFLICT, "already_resolved").await;

    let open = expect_status(api.get("/v1/admin/reports", &root).await, StatusCode::OK).await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    let done = api.get("/v1/admin/reports?state=resolved", &root).await;
    assert_eq!(
        expect_status(done, StatusCode::OK).await[0]["id"],
        filed["id"]
    );
    let log = audit(&api, &root).await;
    assert_eq!(log[0]["action"], "resolve_report");
    assert_eq!(log[0]["target_id"], filed["id"]);
}

async fn reports_have_a_budget(backend: Backend) {
    let api = TestApi::start_with(backend, |config| {
        config.action_rate_per_minute = 1;
        config.action_burst = 2;
    })
    .await;
    let alice = api.user("alice").await;
    let mut statuses = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let target = api.user(name).await;
        let of_user = json!({ "kind": "user", "user_id": target.user.id });
        statuses.push(report(&api, &alice, of_user, "spam").await.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

/// `user` deletes their own account with their password.
async fn delete_account(api: &TestApi, user: &TestUser) -> Response {
    let password = format!("password-{}", user.user.username);
    api.call(
        Method::DELETE,
        "/v1/account",
        user,
        Some(json!({ "password": password })),
    )
    .await
}

async fn the_last_admin_cannot_delete_their_account(backend: Backend) {
    let api = TestApi::start(backend).await;
    let root = admin(&api, "root").await;
    let moderator = api.user("mod").await;
    cli(&api, &["grant", "mod", "moderator"]).await.unwrap();

    let refused = delete_account(&api, &root).await;
    expect_error(refused, StatusCode::CONFLICT, "last_admin").await;
    let still = login(&api, "root", "password-root").await;
    assert_eq!(still.status(), StatusCode::OK, "nothing was deleted");

    // A moderator's role goes with their account.
    expect_status(
        delete_account(&api, &moderator).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let deputy = admin(&api, "deputy").await;
    expect_status(delete_account(&api, &root).await, StatusCode::NO_CONTENT).await;
    let accounts = api.get("/v1/admin/users?limit=100", &deputy).await;
    let accounts = expect_status(accounts, StatusCode::OK).await;
    let staff: Vec<&str> = accounts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !a["server_role"].is_null())
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(staff, ["deputy"], "no erased account keeps a server role");
    assert_eq!(
        actions(&audit(&api, &deputy).await)[..2],
        ["revoke_role", "grant_role"],
        "the admin gave the role up, audited as theirs"
    );
}

async fn the_admin_api_is_documented(backend: Backend) {
    let api = TestApi::start(backend).await;
    let doc = api
        .request(Method::GET, "/v1/openapi.json", None)
        .send()
        .await
        .unwrap();
    let doc = expect_status(doc, StatusCode::OK).await;
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/admin/users", "get"),
        ("/v1/admin/users/{id}/role", "put"),
        ("/v1/admin/users/{id}/deactivate", "post"),
        ("/v1/admin/users/{id}/reactivate", "post"),
        ("/v1/admin/reports", "get"),
        ("/v1/admin/reports/{id}/resolve", "post"),
        ("/v1/admin/audit", "get"),
        ("/v1/reports", "post"),
    ] {
        assert!(paths[path].get(method).is_some(), "{method} {path} missing");
    }
}
