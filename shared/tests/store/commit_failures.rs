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
use chat_shared::store::{Health, NewMessage, NewUser};
use chat_shared::testing::Backend;
use futures::future::join_all;
use sqlx::{Connection, Executor};

use crate::Fixture;

conformance!(nothing_acknowledged_is_missing_after_failed_commits);

/// PostgreSQL only: SQLite runs in the process, so its commit's answer
/// cannot be lost on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_unavailable_and_its_retry_finds_it() {
    crate::run(commit_answer_lost()).await;
}

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
                .map(|id| fx.append_message(room.id, alice.id, NewMessage::text(id, id))),
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
            .append_message(room.id, alice.id, NewMessage::text(client_id, client_id))
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
        .append_message(
            room,
            sender,
            NewMessage::text("fail-commit-health", "fail-commit-health"),
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let health = fx.health().await.expect("the store answers reads");
    assert!(
        health == Health::RefusingWrites,
        "just after a failed commit the store says {health:?}"
    );
    // With no writes tried for a while, health tries one: still failing.
    tokio::time::sleep(IDLE).await;
    let health = fx.health().await.expect("the store answers reads");
    assert!(
        health == Health::RefusingWrites,
        "while writes fail the store says {health:?}"
    );
    // Room again: the next probe, with no traffic, finds it.
    admin(fx, backend, "DELETE FROM injected_full").await;
    tokio::time::sleep(IDLE).await;
    assert_eq!(fx.health().await.expect("health"), Health::Ready);
}

/// A little longer than the store waits, idle, before it probes a write.
const IDLE: std::time::Duration = std::time::Duration::from_millis(2_100);

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

/// The connection to PostgreSQL dies after `COMMIT` was sent and before its
/// answer came back: the append is answered `unavailable` (not an ack, not
/// a refusal), and its retry with the same client_id finds the committed
/// event at its seq, stored once.
async fn commit_answer_lost() {
    let fx = Fixture::new(Backend::Postgres).await;
    let cutter = CommitCutter::start(fx.db.url()).await;
    let store = chat_shared::store::connect(&cutter.url, 2)
        .await
        .expect("opening the store through the proxy");
    let alice = fx.register("alice").await;
    let room = fx.private_room(&alice).await;

    cutter.arm();
    let lost = store
        .append_message(room.id, alice.id, NewMessage::text("lost-answer", "hello"))
        .await;
    let error = lost.expect_err("the commit's answer never came, so no ack");
    assert!(error.is_unavailable(), "{error:?}");
    assert!(cutter.cut(), "the proxy cut a connection after its COMMIT");

    let retry = store
        .append_message(room.id, alice.id, NewMessage::text("lost-answer", "hello"))
        .await
        .expect("the retry is answered");
    assert!(!retry.created, "the first attempt had committed");
    let log = fx.log(room.id).await;
    let stored: Vec<i64> = log
        .iter()
        .filter(|e| e.client_id.as_deref() == Some("lost-answer"))
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        stored,
        vec![retry.event.seq],
        "stored once, at the seq the retry answered"
    );
}

/// A TCP proxy in front of PostgreSQL that, once armed, forwards a
/// client's `COMMIT` and then closes both sides before the answer.
struct CommitCutter {
    url: String,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CommitCutter {
    async fn start(database_url: &str) -> Self {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let (prefix, rest) = database_url.split_once('@').expect("user@host in the URL");
        let (upstream, database) = rest.split_once('/').expect("host/database in the URL");
        let upstream = upstream.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let url = format!(
            "{prefix}@{}/{database}",
            listener.local_addr().expect("address")
        );
        let armed = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicBool::new(false));
        let (armed_, cut_) = (armed.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream)
                    .await
                    .expect("connecting to PostgreSQL");
                tokio::spawn(relay(client, server, armed_.clone(), cut_.clone()));
            }
        });
        Self { url, armed, cut }
    }

    fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a connection was cut (which disarms the proxy).
    fn cut(&self) -> bool {
        self.cut.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Moves bytes both ways; once armed, a client chunk holding `COMMIT` is
/// passed on and the connection then ends before the server's answer.
async fn relay(
    mut client: tokio::net::TcpStream,
    mut server: tokio::net::TcpStream,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = client_read.read(&mut up) => {
                let Ok(n @ 1..) = read else { return };
                let chunk = &up[..n];
                let commit = chunk.windows(6).any(|w| w == b"COMMIT");
                if commit && armed.swap(false, Ordering::SeqCst) {
                    // Decided before the server can answer: its answer
                    // is never passed on.
                    cut.store(true, Ordering::SeqCst);
                    let _ = server_write.write_all(chunk).await;
                    // Let the server commit before the connection ends.
                    let _ = server_read.read(&mut down).await;
                    return;
                }
                if server_write.write_all(chunk).await.is_err() {
                    return;
                }
            }
            read = server_read.read(&mut down) => {
                let Ok(n @ 1..) = read else { return };
                if client_write.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
