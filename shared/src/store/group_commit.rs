//! Group commit of message appends.
//!
//! An append alone is a transaction of its own: on PostgreSQL six round
//! trips (look up the client_id, begin, bump the room's seq, check
//! membership, insert, commit) and a WAL flush, on SQLite an fsync. At
//! thousands of sends per second that is the database's whole budget. Here
//! every append in the process joins a queue, and a writer takes whatever
//! has gathered (up to [`MAX_BATCH`]) into one transaction: on PostgreSQL
//! one call of `append_messages` (a function of the schema's: lock the
//! batch's rooms, check membership and client_ids, insert every event and
//! bump every seq, one round trip), on SQLite one fsync. Under load a
//! batch holds many appends; alone, an append takes about as long as
//! before.
//!
//! The contract is `RoomLog::append_message`'s: seqs are gap-free because
//! each is taken from `rooms.last_seq` under that row's lock, held until
//! the commit; a `(room, sender, client_id)` is stored once because it is
//! looked up under the same lock (and twice in one batch, the later copies
//! answer with the first); and membership is read after the lock, so a
//! kick that committed first is seen. On PostgreSQL rooms are locked in id
//! order, so two batches cannot deadlock; SQLite has one writer, which
//! serialises everything anyway. Nobody hears of an append before its
//! transaction commits.

use std::future::Future;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{FromRow as _, Row as _};
use tokio::sync::{mpsc, oneshot};

use super::adapter::{now, Timestamp};
use super::rows::{event_columns, EventRow, EVENT_BY_CLIENT_ID, INSERT_EVENT, IS_MEMBER, NEXT_SEQ};
use super::{message_body, Appended, Error, Result, Submitted};
use crate::model::{EventId, RoomEvent, RoomId, UserId};

/// Appends committed together at most.
const MAX_BATCH: usize = 256;

/// Writers on PostgreSQL, each with its own queue and a share of the rooms
/// (by id): two transactions in flight at once, while a room's appends stay
/// in one queue and so commit in the order they were submitted. SQLite has
/// one writer connection, so one.
const PG_WRITERS: usize = 2;

/// Appends waiting per writer at most; beyond that, callers wait to join.
const QUEUE: usize = 4096;

/// The batch in one call (`migrations/postgres/0002_append_messages.sql`):
/// one round trip, committed before it answers.
const APPEND_MESSAGES: &str = "SELECT * FROM append_messages($1, $2, $3, $4, $5, $6, $7)";

/// A room's seq head, asked only to tell a missing room from a non-member.
const ROOM_HEAD: &str = "SELECT last_seq FROM rooms WHERE id = $1";

/// One message to append.
struct Append {
    room: RoomId,
    sender: UserId,
    client_id: String,
    body: String,
}

/// One append waiting for its batch.
struct Pending {
    append: Append,
    reply: oneshot::Sender<Result<Appended>>,
}

/// How one database commits a batch: per append, its answer, in order; an
/// `Err` means nothing of the batch was stored.
trait Commit: Clone + Send + Sync + 'static {
    fn commit(
        &self,
        batch: &[Append],
    ) -> impl Future<Output = sqlx::Result<Vec<Result<Appended>>>> + Send;
}

/// The queues every append of one store joins, one per writer.
pub(super) struct GroupCommit {
    queues: Vec<mpsc::Sender<Pending>>,
}

impl GroupCommit {
    /// Starts the writers on a PostgreSQL pool; they stop when this is
    /// dropped.
    pub(super) fn postgres(pool: PgPool) -> Self {
        Self::start(Postgres(pool), PG_WRITERS)
    }

    /// Starts the writer on SQLite's one-connection write pool.
    pub(super) fn sqlite(writer: SqlitePool) -> Self {
        Self::start(Sqlite(writer), 1)
    }

    fn start(database: impl Commit, writers: usize) -> Self {
        let queues = (0..writers)
            .map(|_| {
                let (queue, waiting) = mpsc::channel(QUEUE);
                tokio::spawn(write(database.clone(), waiting));
                queue
            })
            .collect();
        Self { queues }
    }

    /// Queues a message for the next batch of its room's writer and
    /// returns once it is queued (see `RoomLog::submit_message`).
    pub(super) async fn submit(
        &self,
        room: RoomId,
        sender: UserId,
        client_id: &str,
        body: &str,
    ) -> Result<Submitted> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            append: Append {
                room,
                sender,
                client_id: client_id.to_owned(),
                body: body.to_owned(),
            },
            reply,
        };
        let writer = (room.0.as_u128() % self.queues.len() as u128) as usize;
        self.queues[writer]
            .send(pending)
            .await
            .map_err(|_| Error::Database(sqlx::Error::PoolClosed))?;
        Ok(Submitted::new(answer))
    }
}

/// One writer: takes what has gathered, commits it, answers each append.
async fn write(database: impl Commit, mut waiting: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        crate::metrics::store_batch(batch.len());
        let (appends, replies): (Vec<Append>, Vec<_>) =
            batch.drain(..).map(|p| (p.append, p.reply)).unzip();
        let committed = crate::metrics::store_call("commit_batch", async {
            database.commit(&appends).await.map_err(Error::Database)
        })
        .await;
        match committed {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A caller that stopped waiting (its client left) has
                    // its message stored all the same; a retry finds it.
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                // Nothing of the batch was stored: each caller gets the
                // failure, and a retry with the same client_id is safe.
                tracing::warn!(error = %e, appends = appends.len(), "group commit failed");
                let message = e.to_string();
                for reply in replies {
                    let failure = sqlx::Error::Io(std::io::Error::other(message.clone()));
                    let _ = reply.send(Err(Error::Database(failure)));
                }
            }
        }
    }
}

#[derive(Clone)]
struct Postgres(PgPool);

impl Commit for Postgres {
    /// Outside a transaction on purpose: the function's call is its own
    /// implicit one, and its answer arrives after the commit (the rows
    /// stream in, and sqlx's `fetch_all` returns once the server reports
    /// the statement done and the transaction over).
    async fn commit(&self, batch: &[Append]) -> sqlx::Result<Vec<Result<Appended>>> {
        // "message", as the model names the kind.
        let kind = message_body("").kind();
        let rows = sqlx::query(APPEND_MESSAGES)
            .bind(batch.iter().map(|a| a.room.0).collect::<Vec<_>>())
            .bind(batch.iter().map(|a| a.sender.0).collect::<Vec<_>>())
            .bind(
                batch
                    .iter()
                    .map(|a| a.client_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(batch.iter().map(|a| a.body.as_str()).collect::<Vec<_>>())
            .bind(batch.iter().map(|_| EventId::new().0).collect::<Vec<_>>())
            .bind(kind)
            .bind(now())
            .fetch_all(&self.0)
            .await?;
        let mut answers: Vec<Option<Result<Appended>>> = batch.iter().map(|_| None).collect();
        for row in &rows {
            let i: i64 = row.try_get("i")?;
            let status: &str = row.try_get("status")?;
            let answer = match status {
                "no_room" => Err(Error::NotFound),
                "not_member" => Err(Error::NotMember),
                _ => RoomEvent::try_from(EventRow::from_row(row)?).map(|event| Appended {
                    event,
                    created: status == "new",
                }),
            };
            let slot = usize::try_from(i - 1)
                .ok()
                .and_then(|at| answers.get_mut(at))
                .ok_or_else(|| sqlx::Error::Protocol(format!("append_messages: position {i}")))?;
            *slot = Some(answer);
        }
        answers
            .into_iter()
            .enumerate()
            .map(|(at, answer)| {
                answer.ok_or_else(|| {
                    sqlx::Error::Protocol(format!("append_messages: no answer for {}", at + 1))
                })
            })
            .collect()
    }
}

#[derive(Clone)]
struct Sqlite(SqlitePool);

impl Commit for Sqlite {
    /// One statement at a time, in process: the writer connection is the
    /// only one, so what each append checks cannot change before the
    /// commit, and a later copy of a client_id finds the earlier one.
    async fn commit(&self, batch: &[Append]) -> sqlx::Result<Vec<Result<Appended>>> {
        let mut tx = self.0.begin().await?;
        let ts = now();
        let mut answers = Vec::with_capacity(batch.len());
        for append in batch {
            let existing: Option<EventRow> = sqlx::query_as(EVENT_BY_CLIENT_ID)
                .bind(append.room.0)
                .bind(append.sender.0)
                .bind(&append.client_id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = existing {
                answers.push(RoomEvent::try_from(row).map(|event| Appended {
                    event,
                    created: false,
                }));
                continue;
            }
            let member: Option<i32> = sqlx::query_scalar(IS_MEMBER)
                .bind(append.room.0)
                .bind(append.sender.0)
                .fetch_optional(&mut *tx)
                .await?;
            if member.is_none() {
                let room: Option<i64> = sqlx::query_scalar(ROOM_HEAD)
                    .bind(append.room.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                answers.push(Err(match room {
                    Some(_) => Error::NotMember,
                    None => Error::NotFound,
                }));
                continue;
            }
            let seq: i64 = sqlx::query_scalar(NEXT_SEQ)
                .bind(append.room.0)
                .fetch_one(&mut *tx)
                .await?;
            let event = RoomEvent {
                room_id: append.room,
                seq,
                id: EventId::new(),
                sender: Some(append.sender),
                ts,
                client_id: Some(append.client_id.clone()),
                body: message_body(&append.body),
            };
            let (text, payload) = event_columns(&event.body);
            sqlx::query(INSERT_EVENT)
                .bind(append.room.0)
                .bind(seq)
                .bind(event.id.0)
                .bind(event.body.kind())
                .bind(append.sender.0)
                .bind(&append.client_id)
                .bind(text)
                .bind(payload)
                .bind(Timestamp(ts))
                .execute(&mut *tx)
                .await?;
            answers.push(Ok(Appended {
                event,
                created: true,
            }));
        }
        tx.commit().await?;
        Ok(answers)
    }
}
