//! Writes that fail to commit: nothing is acknowledged that is not in the
//! database afterwards, and a failure leaves nothing behind on a connection
//! that a later write could run inside.
//!
//! The failures are injected by the database itself, with triggers on
//! `room_events` that fire on a message whose body asks for one:
//! - `fail-rollback`: SQLite's `RAISE(ROLLBACK)` ends the whole transaction
//!   under the writer, as `SQLITE_FULL` and `SQLITE_IOERR` do on a full
//!   disk (on PostgreSQL any error aborts the transaction: a `disk_full`
//!   error);
//! - `fail-statement`: the statement fails and the transaction stays open
//!   (`RAISE(ABORT)`; PostgreSQL: an error, as above);
//! - `fail-commit`: every statement succeeds and the `COMMIT` itself fails
//!   (a deferred foreign key on SQLite, a deferred constraint trigger
//!   raising `disk_full` on PostgreSQL).
//!
//! What is in the database is read at the end over a connection of the
//! test's own, which sees only what committed.

use std::collections::{HashMap, HashSet};

use chat_shared::model::{RoomId, UserId};
use chat_shared::store::{Health, NewUser};
use chat_shared::testing::Backend;
use futures::future::join_all;
use sqlx::{Connection, Executor};

use crate::Fixture;

conformance!(nothing_acknowledged_is_missing_after_failed_commits);

const SQLITE_FAULTS: &str = "
    CREATE TABLE injected_full (reason INTEGER);
    CREATE TRIGGER injected_full_probe BEFORE UPDATE ON write_probe
        WHEN EXISTS (SELECT 1 FROM injected_full)
        BEGIN SELECT RAISE(ABORT, 'injected: database or disk is full'); END;
    CREATE TABLE injected_parent (id INTEGER PRIMARY KEY);
    CREATE TABLE injected_child (
        parent INTEGER REFERENCES injected_parent (id) DEFERRABLE INITIALLY DEFERRED);
    CREATE TRIGGER injected_rollback AFTER INSERT ON room_events
        WHEN NEW.body LIKE 'fail-rollback%'
        BEGIN SELECT RAISE(ROLLBACK, 'injected: database or disk is full'); END;
    CREATE TRIGGER injected_statement AFTER INSERT ON room_events
        WHEN NEW.body LIKE 'fail-statement%'
        BEGIN SELECT RAISE(ABORT, 'injected: the statement failed'); END;
    CREATE TRIGGER injected_commit AFTER INSERT ON room_events
        WHEN NEW.body LIKE 'fail-commit%'
        BEGIN INSERT INTO injected_child (parent) VALUES (-1); END;
";

const POSTGRES_FAULTS: &str = "
    CREATE FUNCTION injected_failure() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'injected: could not extend file: No space left on device'
            USING ERRCODE = 'disk_full';
    END $$;
    CREATE TABLE injected_full (reason integer);
    CREATE FUNCTION injected_full_disk() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM injected_full) THEN
            RAISE EXCEPTION 'injected: No space left on device' USING ERRCODE = 'disk_full';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER injected_full_probe BEFORE UPDATE ON write_probe FOR EACH ROW
        EXECUTE FUNCTION injected_full_disk();
    CREATE TRIGGER injected_statement AFTER INSERT ON room_events FOR EACH ROW
        WHEN (NEW.body LIKE 'fail-rollback%' OR NEW.body LIKE 'fail-statement%')
        EXECUTE FUNCTION injected_failure();
    CREATE CONSTRAINT TRIGGER injected_commit AFTER INSERT ON room_events
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        WHEN (NEW.body LIKE 'fail-commit%')
        EXECUTE FUNCTION injected_failure();
";

/// Rounds of appends: each failure, then writes that must commit for real.
/// The order matters: a rollback the database made on its own, then a
/// statement failure, then plain appends, is what turned acknowledgements
/// into lies before (a transaction left open under the writer).
const ROUNDS: &[&str] = &[
    "ok",
    "fail-rollback",
    "fail-statement",
    "ok",
    "fail-commit",
    "ok",
    "fail-rollback",
    "ok",
    "fail-statement",
    "fail-rollback",
    "fail-commit",
    "ok",
];

async fn nothing_acknowledged_is_missing_after_failed_commits(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let room = fx.private_room(&alice).await;
    inject_faults(&fx, backend).await;

    let mut acked: HashMap<String, i64> = HashMap::new();
    let mut refused = 0;
    let mut users = Vec::new();
    for (round, kind) in ROUNDS.iter().enumerate() {
        // Several appends at once, so a batch holds more than one.
        let client_ids: Vec<String> = (0..4).map(|i| format!("{kind}-{round}-{i}")).collect();
        let answers = join_all(
            client_ids
                .iter()
                .map(|id| fx.append_message(room.id, alice.id, id, id)),
        )
        .await;
        for (client_id, answer) in client_ids.iter().zip(answers) {
            match answer {
                Ok(appended) => {
                    assert!(
                        !kind.starts_with("fail"),
                        "{client_id} was acknowledged though its transaction failed"
                    );
                    acked.insert(client_id.clone(), appended.event.seq);
                }
                Err(e) => {
                    assert!(
                        kind.starts_with("fail"),
                        "{client_id}: a write after a failed one was refused: {e}"
                    );
                    assert!(
                        e.is_unavailable(),
                        "{client_id}: a failed commit answers unavailable, not {e:?}"
                    );
                    refused += 1;
                }
            }
        }
        if !kind.starts_with("fail") {
            // The other write paths commit after a failure too.
            let username = format!("after{round}");
            let user = fx
                .create_user(NewUser {
                    username: username.clone(),
                    display_name: username.clone(),
                    password_hash: "$argon2id$fake".into(),
                })
                .await
                .expect("registering after a failed commit");
            fx.add_member(room.id, user.id, alice.id, chat_shared::model::Role::Member)
                .await
                .expect("adding a member after a failed commit");
            users.push(username);
        }
    }
    let failing_rounds = ROUNDS.iter().filter(|k| k.starts_with("fail")).count();
    assert_eq!(
        refused,
        4 * failing_rounds,
        "every failing append was refused"
    );
    assert_eq!(fx.health().await.expect("health"), Health::Ready);
    health_follows_the_writes(&fx, backend, room.id, alice.id).await;
    // A retry of each acknowledged append finds it at its seq.
    for (client_id, seq) in &acked {
        let again = fx
            .append_message(room.id, alice.id, client_id, client_id)
            .await
            .expect("retrying an acknowledged append");
        assert_eq!((again.event.seq, again.created), (*seq, false));
    }

    let (stored, committed_users) = committed(&fx, backend, room.id, alice.id, &users).await;
    for (client_id, seq) in &acked {
        assert_eq!(
            stored.get(client_id),
            Some(seq),
            "{client_id} was acknowledged at seq {seq} but the database has {:?}",
            stored.get(client_id)
        );
    }
    let failed: Vec<&String> = stored.keys().filter(|id| id.starts_with("fail")).collect();
    assert!(failed.is_empty(), "failed appends were stored: {failed:?}");
    let seqs: HashSet<i64> = stored.values().copied().collect();
    assert_eq!(seqs.len(), stored.len(), "two messages share a seq");
    assert_eq!(
        committed_users,
        users.len() as i64,
        "users registered after failed commits are in the database"
    );
    let head = fx.reload(room.id).await.last_seq;
    let log = fx.log(room.id).await;
    assert_eq!(
        crate::seqs(&log),
        (1..=head).collect::<Vec<_>>(),
        "the log is gap-free"
    );
}

/// `health` says the store refuses writes after a commit failed while
/// writes are still failing (here: its probe write fails too, as on a full
/// disk), and ready again as soon as a write can commit, with no traffic.
async fn health_follows_the_writes(fx: &Fixture, backend: Backend, room: RoomId, sender: UserId) {
    admin(fx, backend, "INSERT INTO injected_full (reason) VALUES (1)").await;
    let refused = fx
        .append_message(room, sender, "fail-commit-health", "fail-commit-health")
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let health = fx.health().await.expect("the store answers reads");
    assert!(
        matches!(health, Health::RefusingWrites(_)),
        "just after a failed commit the store says {health:?}"
    );
    // With no writes tried for a while, health tries one: still failing.
    tokio::time::sleep(IDLE).await;
    let health = fx.health().await.expect("the store answers reads");
    assert!(
        matches!(health, Health::RefusingWrites(_)),
        "while writes fail the store says {health:?}"
    );
    // Room again: the next probe, with no traffic, finds it.
    admin(fx, backend, "DELETE FROM injected_full").await;
    tokio::time::sleep(IDLE).await;
    assert_eq!(fx.health().await.expect("health"), Health::Ready);
}

/// A little longer than the store waits, idle, before it probes a write.
const IDLE: std::time::Duration = std::time::Duration::from_millis(2_100);

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

/// Runs `sql` over a connection of the test's own.
async fn admin(fx: &Fixture, backend: Backend, sql: &str) {
    with_connection!(fx, backend, |conn| {
        conn.execute(sql).await.expect("running admin SQL");
    });
}

/// Installs the triggers, over a connection of the test's own.
async fn inject_faults(fx: &Fixture, backend: Backend) {
    let faults = match backend {
        Backend::Sqlite => SQLITE_FAULTS,
        Backend::Postgres => POSTGRES_FAULTS,
    };
    admin(fx, backend, faults).await;
}

/// What committed: the room's messages by client_id, and how many of
/// `users` exist, read over a fresh connection.
async fn committed(
    fx: &Fixture,
    backend: Backend,
    room: RoomId,
    sender: UserId,
    users: &[String],
) -> (HashMap<String, i64>, i64) {
    const MESSAGES: &str =
        "SELECT client_id, seq FROM room_events WHERE room_id = $1 AND sender = $2 \
         AND client_id IS NOT NULL";
    const USERS: &str = "SELECT username FROM users";
    let (messages, names): (Vec<(String, i64)>, Vec<String>) =
        with_connection!(fx, backend, |conn| (
            sqlx::query_as(MESSAGES)
                .bind(room.0)
                .bind(sender.0)
                .fetch_all(&mut conn)
                .await
                .expect("reading the messages"),
            sqlx::query_scalar(USERS)
                .fetch_all(&mut conn)
                .await
                .expect("reading the users"),
        ));
    let found = names.iter().filter(|n| users.contains(n)).count() as i64;
    (messages.into_iter().collect(), found)
}
