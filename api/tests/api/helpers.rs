//! `TestApi`: a real `chat-api` on port 0 over a fresh database, and a
//! `reqwest` client with typed helpers, so each test reads as intent.

use std::sync::Arc;

use chat_api::{ApiConfig, App};
use chat_shared::config::CommonConfig;
use chat_shared::model::{MyRoom, Room, RoomId, User};
use chat_shared::store::{Page, Session, Store};
use chat_shared::testing::{Backend, TestDatabase};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The seeded public room `general`.
pub const GENERAL: &str = "00000000-0000-7000-8000-000000000001";

/// Runs a test body once per backend, as two `#[tokio::test]`s.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(chat_shared::testing::Backend::Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(chat_shared::testing::Backend::Sqlite).await
            }
        }
    )*};
}

/// A running api.
pub struct TestApi {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The api's own store, to check what was (not) written.
    pub store: Arc<dyn Store>,
    /// The directory holding the generated JWT keys.
    pub data_dir: std::path::PathBuf,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    // Dropped last: the server must stop before its database goes.
    _db: TestDatabase,
}

/// A registered user and their tokens.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub user: User,
    pub access: String,
    pub refresh: String,
    pub session_id: String,
}

impl TestApi {
    /// Starts an api with generous rate limits.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts an api after `adjust` has changed its configuration.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut ApiConfig)) -> Self {
        let db = TestDatabase::create(backend).await;
        let mut config = ApiConfig {
            common: CommonConfig {
                data_dir: db.dir().to_path_buf(),
                database_url: Some(db.url().to_owned()),
                send_rate_per_second: 10_000,
                send_burst: 10_000,
                ..CommonConfig::default()
            },
            api_addr: "127.0.0.1:0".parse().unwrap(),
            auth_rate_per_minute: 10_000,
            auth_rate_burst: 10_000,
            action_rate_per_minute: 10_000,
            action_burst: 10_000,
            search_rate_per_minute: 10_000,
            search_burst: 10_000,
            ..ApiConfig::default()
        };
        adjust(&mut config);
        let data_dir = config.common.data_dir.clone();
        let app = App::build(config).await.expect("starting chat-api");
        let base = format!("http://{}", app.local_addr());
        let store = app.state().store.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            store,
            data_dir,
            client: reqwest::Client::new(),
            stop: Some(stop),
            _db: db,
        }
    }

    /// A request to `path`, with `user`'s access token if given.
    pub fn request(&self, method: Method, path: &str, user: Option<&TestUser>) -> RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match user {
            Some(user) => request.bearer_auth(&user.access),
            None => request,
        }
    }

    /// GET as `user`.
    pub async fn get(&self, path: &str, user: &TestUser) -> Response {
        self.request(Method::GET, path, Some(user))
            .send()
            .await
            .unwrap()
    }

    /// POST a JSON body as `user`.
    pub async fn post(&self, path: &str, user: &TestUser, body: Value) -> Response {
        self.request(Method::POST, path, Some(user))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Any method with an optional JSON body as `user`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        user: &TestUser,
        body: Option<Value>,
    ) -> Response {
        let request = self.request(method, path, Some(user));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        request.send().await.unwrap()
    }

    /// Registers `username` (password `password-<username>`).
    pub async fn user(&self, username: &str) -> TestUser {
        let response = self
            .request(Method::POST, "/v1/auth/register", None)
            .json(&json!({ "username": username, "password": format!("password-{username}") }))
            .send()
            .await
            .unwrap();
        let body = expect_status(response, StatusCode::CREATED).await;
        tokens(&body)
    }

    /// Logs `username` in again (a second session).
    pub async fn login(&self, username: &str) -> TestUser {
        let response = self
            .request(Method::POST, "/v1/auth/login", None)
            .json(&json!({ "username": username, "password": format!("password-{username}") }))
            .send()
            .await
            .unwrap();
        tokens(&expect_status(response, StatusCode::OK).await)
    }

    /// Creates a room owned by `owner`.
    pub async fn room(&self, owner: &TestUser, name: &str, kind: &str) -> Room {
        let response = self
            .post("/v1/rooms", owner, json!({ "name": name, "kind": kind }))
            .await;
        serde_json::from_value(expect_status(response, StatusCode::CREATED).await).unwrap()
    }

    /// Joins a public room and returns the `member_joined` event.
    pub async fn join(&self, user: &TestUser, room: &str) -> Value {
        let response = self
            .post(&format!("/v1/rooms/{room}/join"), user, json!({}))
            .await;
        expect_status(response, StatusCode::CREATED).await
    }

    /// The whole log of `room` (up to 200 events) as `user` reads it.
    pub async fn log(&self, user: &TestUser, room: &str) -> Vec<Value> {
        let response = self
            .get(&format!("/v1/rooms/{room}/events?after=0&limit=200"), user)
            .await;
        let page = expect_status(response, StatusCode::OK).await;
        page["events"].as_array().unwrap().clone()
    }

    /// `by` invites `user` into `room` and `user` accepts: returns the
    /// `member_joined` event (what adding someone takes since invitations
    /// wait for consent).
    pub async fn add(&self, by: &TestUser, room: &str, user: &TestUser) -> Value {
        let response = self
            .post(
                &format!("/v1/rooms/{room}/members"),
                by,
                json!({ "user_id": user.user.id }),
            )
            .await;
        let invited = expect_status(response, StatusCode::CREATED).await;
        assert_eq!(invited["type"], "member_invited", "{invited}");
        let invites = expect_status(self.get("/v1/invites", user).await, StatusCode::OK).await;
        let id = invites
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["room"]["id"] == room)
            .expect("the invitation is pending")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let response = self
            .post(&format!("/v1/invites/{id}/accept"), user, json!({}))
            .await;
        expect_status(response, StatusCode::OK).await
    }

    /// Sends a message over REST and returns the stored event.
    pub async fn send(&self, user: &TestUser, room: &str, client_id: &str, body: &str) -> Value {
        let response = self
            .post(
                &format!("/v1/rooms/{room}/messages"),
                user,
                json!({ "client_id": client_id, "body": body }),
            )
            .await;
        expect_status(response, StatusCode::CREATED).await
    }

    /// Everything durable a request could have changed, read from the store.
    pub async fn snapshot(&self) -> Snapshot {
        let users = self.store.search_users("", 10_000).await.unwrap();
        let mut rooms = Vec::new();
        let mut sessions = Vec::new();
        let mut events = Vec::new();
        for user in &users {
            rooms.extend(self.store.my_rooms(user.id).await.unwrap());
            sessions.extend(self.store.active_sessions(user.id).await.unwrap());
        }
        let mut room_ids: Vec<RoomId> = rooms.iter().map(|r| r.room.id).collect();
        room_ids.extend(
            self.store
                .public_rooms()
                .await
                .unwrap()
                .iter()
                .map(|r| r.id),
        );
        room_ids.sort();
        room_ids.dedup();
        for id in room_ids {
            let page = Page {
                after: Some(0),
                before: None,
                limit: 10_000,
            };
            events.push(self.store.events(id, page).await.unwrap().len());
        }
        Snapshot {
            users,
            rooms,
            sessions,
            events,
        }
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The durable state of the api, for "nothing changed" checks.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    users: Vec<User>,
    rooms: Vec<MyRoom>,
    sessions: Vec<Session>,
    events: Vec<usize>,
}

/// Asserts the status and returns the JSON body (Null when empty).
pub async fn expect_status(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// Asserts an error response: its status and its `error.code`.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    let body = expect_status(response, status).await;
    assert_eq!(body["error"]["code"], code, "unexpected error: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

fn tokens(body: &Value) -> TestUser {
    TestUser {
        user: serde_json::from_value(body["user"].clone()).unwrap(),
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        session_id: body["session_id"].as_str().unwrap().to_owned(),
    }
}
