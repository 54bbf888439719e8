//! The conformance suite of the `Store` port: one set of tests, each an
//! `async fn(Backend)`, run against both adapters (PostgreSQL and SQLite).
//!
//! Each test gets its own fresh database from [`TestDatabase`] and checks
//! what a user of the store relies on: gap-free seqs under concurrency,
//! idempotent appends, stable pagination, case-insensitive users, refresh
//! token rotation and reuse detection, and membership changes that land in
//! the room log. PostgreSQL must answer at `TEST_POSTGRES_URL` (default
//! `127.0.0.1:5432`); these tests never skip.

use std::ops::Deref;
use std::sync::Arc;

use chat_shared::model::{Role, Room, RoomEvent, RoomId, RoomKind, User, UserId};
use chat_shared::store::{Appended, NewMessage, NewRoom, NewUser, Page, Store};
use chat_shared::testing::{Backend, TestDatabase};

/// Generates, for each named `async fn(Backend)`, a module with one test per
/// adapter. A test that takes longer than a minute has deadlocked: the
/// timeout turns a hang into a failure.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use chat_shared::testing::Backend;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    $crate::run(super::$name(Backend::Postgres)).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    $crate::run(super::$name(Backend::Sqlite)).await;
                }
            }
        )*
    };
}

/// Runs `$body` with `$conn` a fresh connection of the test's own to its
/// database (one body, checked against each driver's connection type).
macro_rules! with_connection {
    ($fx:expr, $backend:expr, |$conn:ident| $body:expr) => {
        match $backend {
            Backend::Sqlite => {
                let mut $conn = sqlx::SqliteConnection::connect($fx.db.url())
                    .await
                    .expect("connecting to the test database");
                $body
            }
            Backend::Postgres => {
                let mut $conn = sqlx::PgConnection::connect($fx.db.url())
                    .await
                    .expect("connecting to the test database");
                $body
            }
        }
    };
}

mod admin;
mod attachments;
mod blocks;
mod calls;
mod commit_failures;
mod direct;
mod dms;
mod invite_links;
mod invites;
mod log;
mod messages;
mod moderation;
mod profile;
mod rooms;
mod search;
mod sessions;
mod users;

/// Runs one test body, failing it if it does not finish in time.
async fn run(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(std::time::Duration::from_secs(60), test)
        .await
        .expect("the test did not finish within 60 s (deadlock?)");
}

/// A fresh database and the store opened on it, for one test. Derefs to the
/// store, so a test says `fx.append_message(..)`.
struct Fixture {
    /// The store under test; shared with spawned tasks through `Arc`.
    store: Arc<dyn Store>,
    /// Kept alive for the test; dropping it drops the database.
    db: TestDatabase,
}

impl Deref for Fixture {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

impl Fixture {
    /// Creates a database on `backend` and opens (migrates) the store on it.
    async fn new(backend: Backend) -> Self {
        let db = TestDatabase::create(backend).await;
        let store = db.store().await;
        Self { store, db }
    }

    /// Registers a user whose display name is the username capitalised.
    async fn register(&self, username: &str) -> User {
        let mut display_name = username.to_owned();
        if let Some(first) = display_name.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        self.create_user(NewUser {
            username: username.to_owned(),
            display_name,
            password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$fake${username}"),
        })
        .await
        .expect("creating a user")
    }

    /// Creates a private room owned by `owner` (its log starts at seq 1).
    async fn private_room(&self, owner: &User) -> Room {
        let (room, _) = self
            .create_room(NewRoom {
                kind: RoomKind::Private,
                name: format!("{}'s room", owner.username),
                topic: String::new(),
                created_by: owner.id,
            })
            .await
            .expect("creating a room");
        room
    }

    /// Adds `user` to `room` as a plain member, on their own behalf.
    async fn join(&self, room: RoomId, user: &User) -> RoomEvent {
        self.add_member(room, user.id, user.id, Role::Member)
            .await
            .expect("adding a member")
    }

    /// Sends a message whose body names its client id.
    async fn send(&self, room: RoomId, sender: UserId, client_id: &str) -> Appended {
        self.append_message(
            room,
            sender,
            NewMessage::text(client_id, format!("body of {client_id}")),
        )
        .await
        .expect("appending a message")
    }

    /// The room as stored now.
    async fn reload(&self, room: RoomId) -> Room {
        self.room(room)
            .await
            .expect("reading a room")
            .expect("the room exists")
    }

    /// The whole log of a room, oldest first.
    async fn log(&self, room: RoomId) -> Vec<RoomEvent> {
        self.events(room, everything())
            .await
            .expect("reading the log")
    }
}

/// A page covering a whole log.
fn everything() -> Page {
    Page {
        after: Some(0),
        before: None,
        limit: u32::MAX,
    }
}

/// The seqs of some events, in the order given.
fn seqs(events: &[RoomEvent]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}
