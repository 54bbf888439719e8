//! Group commit of message appends.
//!
//! An append alone is a transaction of its own: on PostgreSQL six round
//! trips (look up the client_id, begin, bump the room's seq, check
//! membership, insert, commit) and a WAL flush, on SQLite an fsync. At
//! thousands of sends per second that is the database's whole budget. Here
//! every append in the process joins one queue, and one writer takes
//! whatever has gathered (up to [`MAX_BATCH`]) into one transaction: on
//! PostgreSQL five round trips (lock the batch's rooms, check membership and
//! client_ids, insert every event and bump every seq in one statement,
//! commit), on SQLite one fsync. Under load a batch holds many appends;
//! alone, an append takes about as long as before.
//!
//! One writer, not several: a second one halves the batches, not the work.
//! Each batch costs the database about the same whatever its size, so two
//! writers committing back to back used 35–45 % more of the database's CPU
//! for the same appends, with no shorter waits (docs/benchmarks/history.md, run 12).
//! The one queue also keeps each room's appends in the order they were
//! submitted.
//!
//! The contract is `RoomLog::append_message`'s: seqs are gap-free because
//! each is taken from `rooms.last_seq` under that row's lock, held until the commit; a `(room, sender,
//! client_id)` is stored once because it is looked up under the same lock
//! (and twice in one batch, the later copies answer with the first); and
//! membership is read after the lock, so a kick that committed first is
//! seen. On PostgreSQL rooms are locked in id order, so two batches cannot
//! deadlock; SQLite has one writer, which serialises everything anyway.
//! Nobody hears of an append before its transaction commits, and a batch
//! whose commit failed is answered `Unavailable` as a whole: its
//! connection is closed if the transaction did not end cleanly, and the
//! next batch reads everything anew (`durability`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::Row as _;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::adapter::{now, Timestamp};
use super::durability::{WriteHealth, SQLITE_BEGIN};
use super::rows::{
    event_columns, EventRow, EVENT_BY_CLIENT_ID, INSERT_EVENT, MARK_SENDER, NEXT_SEQ,
};
use super::{message_body, Appended, Error, Result, Submitted};
use crate::model::{EventId, RoomEvent, RoomId, UserId};

/// Appends committed together at most.
const MAX_BATCH: usize = 256;

/// Appends waiting at most; beyond that, callers wait to join.
const QUEUE: usize = 4096;

/// Locks the batch's rooms, in id order, and reads where their seqs are.
const LOCK_ROOMS: &str = "SELECT id, last_seq FROM rooms WHERE id = ANY($1) ORDER BY id FOR UPDATE";

/// A room's seq head, asked only to tell a missing room from a non-member.
const ROOM_HEAD: &str = "SELECT last_seq FROM rooms WHERE id = $1";

// The batch's statements run on generic plans (`commit_postgres`), which
// cannot know the batch's size: an `unnest` of a parameter is guessed at
// 10 rows. Joined to a table of a few thousand rows, hashing all of it
// looked cheaper than ten index lookups, so every batch, even of one,
// read every membership of every room (and every room, to bump one). So
// each statement reaches its rows through a unique index, one lookup per
// appended row, whatever the sizes (test below). Not `EXISTS`: PostgreSQL
// may answer that from a hash of the whole table, and with 10 rows it does.

/// Per append (by position, from 1): whether the sender is a member, and
/// the seq its client_id already has, if any. Asked after [`LOCK_ROOMS`],
/// so it sees every change committed to those rooms.
const CHECK: &str = "SELECT t.i, \
         COALESCE((SELECT true FROM room_members m \
             WHERE m.room_id = t.room_id AND m.user_id = t.sender), false) AS member, \
         (SELECT e.seq FROM room_events e WHERE e.room_id = t.room_id \
             AND e.sender = t.sender AND e.client_id = t.client_id) AS existing \
     FROM unnest($1::uuid[], $2::uuid[], $3::text[]) WITH ORDINALITY AS t(room_id, sender, client_id, i)";

/// Inserts the batch's new events, moves each sender's read marker to
/// their newest message (a sender has read their room that far), and moves
/// each room's `last_seq` to its highest: one statement. Rooms and
/// memberships are found by index (`= ANY` on their keys), then paired with
/// their values by a join over those few rows (a lookup per room by
/// `array_position` cost 3.8 ms for a batch of 256 rooms).
const INSERT_AND_BUMP: &str = "WITH inserted AS ( \
     INSERT INTO room_events (room_id, seq, id, kind, sender, client_id, body, created_at) \
     SELECT * FROM unnest($1::uuid[], $2::int8[], $3::uuid[], $4::text[], $5::uuid[], \
         $6::text[], $7::text[], $8::timestamptz[])), \
     marked AS ( \
     UPDATE room_members SET last_read_seq = sent.seq \
     FROM unnest($11::uuid[], $12::uuid[], $13::int8[]) AS sent(room_id, user_id, seq) \
     WHERE room_members.room_id = ANY($11::uuid[]) AND room_members.user_id = ANY($12::uuid[]) \
         AND room_members.room_id = sent.room_id AND room_members.user_id = sent.user_id \
         AND room_members.last_read_seq < sent.seq) \
     UPDATE rooms SET last_seq = heads.last_seq \
     FROM unnest($9::uuid[], $10::int8[]) AS heads(id, last_seq) \
     WHERE rooms.id = ANY($9::uuid[]) AND rooms.id = heads.id";

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
/// `Err` means the batch's commit was not confirmed: nothing of it was
/// stored, or (the connection died while `COMMIT` was on its way) nobody
/// can know, and a retry with the same client_id finds out.
trait Commit: Send + Sync + 'static {
    fn commit(
        &self,
        batch: &[Append],
    ) -> impl Future<Output = Result<Vec<Result<Appended>>>> + Send;
}

/// The queue every append of one store joins.
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// Starts the writer on a PostgreSQL pool; it stops when this is
    /// dropped.
    pub(super) fn postgres(pool: PgPool, health: Arc<WriteHealth>) -> Self {
        Self::start(Postgres(pool), health)
    }

    /// Starts the writer on SQLite's one-connection write pool.
    pub(super) fn sqlite(writer: SqlitePool, health: Arc<WriteHealth>) -> Self {
        Self::start(Sqlite(writer), health)
    }

    fn start(database: impl Commit, health: Arc<WriteHealth>) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(write(database, health, waiting));
        Self { queue }
    }

    /// Queues a message for the next batch and returns once it is queued
    /// (see `RoomLog::submit_message`).
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
        self.queue
            .send(pending)
            .await
            .map_err(|_| Error::Unavailable("the store's writer stopped".into()))?;
        Ok(Submitted::new(answer))
    }
}

/// The writer: takes what has gathered, commits it, answers each append.
async fn write(
    database: impl Commit,
    health: Arc<WriteHealth>,
    mut waiting: mpsc::Receiver<Pending>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        crate::metrics::store_batch(batch.len());
        let (appends, replies): (Vec<Append>, Vec<_>) =
            batch.drain(..).map(|p| (p.append, p.reply)).unzip();
        let committed = crate::metrics::store_call("commit_batch", database.commit(&appends)).await;
        match committed {
            Ok(outcomes) => {
                health.committed();
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A caller that stopped waiting (its client left) has
                    // its message stored all the same; a retry finds it.
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                // Not one append of the batch is acknowledged: each caller
                // is told to retry with the same client_id, which finds
                // the truth if the commit landed after all.
                tracing::warn!(error = %e, appends = appends.len(), "group commit failed");
                let message = e.to_string();
                health.failed();
                for reply in replies {
                    let _ = reply.send(Err(Error::Unavailable(message.clone())));
                }
            }
        }
    }
}

/// What became of one append of a batch.
enum Outcome {
    /// Stored now: this event.
    New(RoomEvent),
    /// Its client_id was already stored at this seq.
    Existing,
    /// The same client_id earlier in this batch: that append's answer.
    SameAs(usize),
    /// No such room.
    NoRoom,
    /// The sender is not a member.
    NotMember,
}

struct Postgres(PgPool);

impl Commit for Postgres {
    async fn commit(&self, batch: &[Append]) -> Result<Vec<Result<Appended>>> {
        Ok(commit_postgres(&self.0, batch).await?)
    }
}

async fn commit_postgres(pool: &PgPool, batch: &[Append]) -> sqlx::Result<Vec<Result<Appended>>> {
    // Generic plans: left to choose, PostgreSQL planned each of the batch's
    // statements anew at every bind (custom plans for its arrays), 40 % of
    // a batch's time in the database. Their plans do not depend on the
    // values (key lookups, and `unnest` of the batch). `SET LOCAL` rides
    // on the `BEGIN`'s round trip and ends with the transaction.
    let mut tx = pool
        .begin_with("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan")
        .await?;
    let mut rooms: Vec<Uuid> = batch.iter().map(|p| p.room.0).collect();
    rooms.sort_unstable();
    rooms.dedup();
    let mut heads: HashMap<Uuid, i64> = sqlx::query(LOCK_ROOMS)
        .bind(&rooms)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("id")?, row.try_get("last_seq")?)))
        .collect::<sqlx::Result<_>>()?;

    let checks = sqlx::query(CHECK)
        .bind(batch.iter().map(|p| p.room.0).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.sender.0).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|p| p.client_id.as_str())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?;
    // (member, existing seq) by position: one row per append, in an order
    // not promised.
    let mut checked: Vec<(bool, Option<i64>)> = vec![(false, None); batch.len()];
    for row in &checks {
        let i: i64 = row.try_get("i")?;
        let at = usize::try_from(i - 1).map_err(|_| sqlx::Error::RowNotFound)?;
        checked[at] = (row.try_get("member")?, row.try_get("existing")?);
    }

    let ts = now();
    let mut first_of: HashMap<(Uuid, Uuid, &str), usize> = HashMap::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for (i, pending) in batch.iter().enumerate() {
        let (member, existing) = checked[i];
        let key = (pending.room.0, pending.sender.0, pending.client_id.as_str());
        let outcome = match heads.get_mut(&pending.room.0) {
            None => Outcome::NoRoom,
            Some(_) if existing.is_some() => Outcome::Existing,
            Some(_) if !member => Outcome::NotMember,
            Some(last_seq) => match first_of.get(&key) {
                Some(&first) => Outcome::SameAs(first),
                None => {
                    *last_seq += 1;
                    first_of.insert(key, i);
                    Outcome::New(RoomEvent {
                        room_id: pending.room,
                        seq: *last_seq,
                        id: EventId::new(),
                        sender: Some(pending.sender),
                        ts,
                        client_id: Some(pending.client_id.clone()),
                        body: message_body(&pending.body),
                    })
                }
            },
        };
        outcomes.push(outcome);
    }

    let new: Vec<(&RoomEvent, &Append)> = outcomes
        .iter()
        .zip(batch)
        .filter_map(|(o, p)| match o {
            Outcome::New(event) => Some((event, p)),
            _ => None,
        })
        .collect();
    if !new.is_empty() {
        // Each room's new head: its last new event's seq (they ascend).
        let bumped: HashMap<Uuid, i64> = new.iter().map(|(e, _)| (e.room_id.0, e.seq)).collect();
        let (bumped_rooms, bumped_seqs): (Vec<Uuid>, Vec<i64>) = bumped.into_iter().unzip();
        // Each sender's newest message per room (they ascend too).
        let sent: HashMap<(Uuid, Uuid), i64> = new
            .iter()
            .map(|(e, p)| ((e.room_id.0, p.sender.0), e.seq))
            .collect();
        let mut marks = (Vec::new(), Vec::new(), Vec::new());
        for ((room, sender), seq) in sent {
            marks.0.push(room);
            marks.1.push(sender);
            marks.2.push(seq);
        }
        sqlx::query(INSERT_AND_BUMP)
            .bind(new.iter().map(|(e, _)| e.room_id.0).collect::<Vec<_>>())
            .bind(new.iter().map(|(e, _)| e.seq).collect::<Vec<_>>())
            .bind(new.iter().map(|(e, _)| e.id.0).collect::<Vec<_>>())
            .bind(new.iter().map(|(e, _)| e.body.kind()).collect::<Vec<_>>())
            .bind(new.iter().map(|(_, p)| p.sender.0).collect::<Vec<_>>())
            .bind(
                new.iter()
                    .map(|(_, p)| p.client_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(new.iter().map(|(_, p)| p.body.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|(e, _)| e.ts).collect::<Vec<_>>())
            .bind(bumped_rooms)
            .bind(bumped_seqs)
            .bind(marks.0)
            .bind(marks.1)
            .bind(marks.2)
            .execute(&mut *tx)
            .await?;
    }
    // Retries read their original inside the transaction, so they answer
    // from the same state the batch was checked against.
    let mut answers = Vec::with_capacity(batch.len());
    for (outcome, pending) in outcomes.iter().zip(batch) {
        answers.push(match outcome {
            Outcome::New(event) => Ok(Appended {
                event: event.clone(),
                created: true,
            }),
            Outcome::Existing => {
                let row: Option<EventRow> = sqlx::query_as(EVENT_BY_CLIENT_ID)
                    .bind(pending.room.0)
                    .bind(pending.sender.0)
                    .bind(&pending.client_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                match row.map(RoomEvent::try_from).transpose() {
                    Ok(Some(event)) => Ok(Appended {
                        event,
                        created: false,
                    }),
                    Ok(None) => Err(Error::Conflict("client_id")),
                    Err(e) => Err(e),
                }
            }
            Outcome::SameAs(first) => match &answers[*first] {
                Ok(Appended { event, .. }) => Ok(Appended {
                    event: event.clone(),
                    created: false,
                }),
                Err(_) => Err(Error::Conflict("client_id")),
            },
            Outcome::NoRoom => Err(Error::NotFound),
            Outcome::NotMember => Err(Error::NotMember),
        });
    }
    tx.commit().await?;
    Ok(answers)
}

struct Sqlite(SqlitePool);

impl Commit for Sqlite {
    /// One statement at a time, in process: the writer connection is the
    /// only one, so what each append checks cannot change before the
    /// commit, and a later copy of a client_id finds the earlier one.
    async fn commit(&self, batch: &[Append]) -> Result<Vec<Result<Appended>>> {
        let mut tx = self.0.begin_with(SQLITE_BEGIN).await?;
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
            // The next seq is this message's: nothing else writes here.
            let member: Option<i32> = sqlx::query_scalar(MARK_SENDER)
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

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Executor, PgConnection};

    use super::{CHECK, INSERT_AND_BUMP, LOCK_ROOMS};
    use crate::testing::{Backend, TestDatabase};

    /// How many parameters (`$1`, `$2`, …) a statement takes.
    fn parameters(statement: &str) -> usize {
        statement
            .split('$')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .max()
            .unwrap_or(0)
    }

    /// The plans the batch runs (generic, as `commit_postgres` sets them)
    /// on a fresh database, where the planner knows no table's size: no
    /// statement may read a whole table to find a batch's few rows.
    #[tokio::test]
    async fn the_batch_finds_its_rows_by_index_not_by_scanning_tables() {
        let db = TestDatabase::create(Backend::Postgres).await;
        drop(db.store().await); // migrates
        let mut conn = PgConnection::connect(db.url()).await.expect("connecting");
        conn.execute("SET plan_cache_mode = force_generic_plan")
            .await
            .expect("setting the plan mode");
        for (name, statement) in [
            ("batch_lock_rooms", LOCK_ROOMS),
            ("batch_check", CHECK),
            ("batch_insert_and_bump", INSERT_AND_BUMP),
        ] {
            conn.execute(format!("PREPARE {name} AS {statement}").as_str())
                .await
                .unwrap_or_else(|e| panic!("preparing {name}: {e}"));
            let nulls = vec!["NULL"; parameters(statement)].join(", ");
            let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}({nulls})"))
                .fetch_all(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("explaining {name}: {e}"));
            let plan = plan.join("\n");
            assert!(
                !plan.contains("Seq Scan"),
                "{name} reads a whole table:\n{plan}"
            );
        }
    }
}
