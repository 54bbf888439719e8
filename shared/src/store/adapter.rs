//! The store on a SQL database: [`SqlStore`] holds what one database
//! needs (its pools, the group commit of its appends, whether its writes
//! are failing), and each area of the port is implemented over it once,
//! generically, for both PostgreSQL and SQLite (`accounts`, `sessions`,
//! `rooms` and `members`, `log`, `messages`, `timeline`). This file adds
//! what is the store's as a whole, `health`; its impl states every driver
//! capability an area asks for, since a `Store` is all of the areas.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Transaction, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::dialect::{now, Dialect, Timestamp};
use super::durability::{Probe, WriteHealth};
use super::group_commit::GroupCommit;
use super::{Health, Result, Store};

/// The write `Store::health` tries while writes are failing.
const PROBE_WRITE: &str = "UPDATE write_probe SET checked_at = $1 WHERE id = 1";

/// The store on one database (`PgStore`, `SqliteStore`).
pub struct SqlStore<DB: sqlx::Database> {
    /// Where queries run. On PostgreSQL the same pool as `writer`; on
    /// SQLite a pool of read-only connections that, in WAL mode, never
    /// wait for the writer.
    reader: Pool<DB>,
    /// Where transactions run. On SQLite exactly one connection: writes
    /// queue in-process instead of failing with `SQLITE_BUSY`.
    writer: Pool<DB>,
    /// Every message append of this store goes through here.
    pub(super) appends: Arc<GroupCommit>,
    /// Whether writes are failing, for `health`.
    writes: Arc<WriteHealth>,
}

// By hand: a derive would ask `DB: Clone` of the database marker types.
impl<DB: sqlx::Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            reader: self.reader.clone(),
            writer: self.writer.clone(),
            appends: self.appends.clone(),
            writes: self.writes.clone(),
        }
    }
}

impl<DB: Dialect> SqlStore<DB> {
    /// A store over these pools, whose appends go through `appends` and
    /// whose failed writes `writes` records.
    pub(super) fn new(
        reader: Pool<DB>,
        writer: Pool<DB>,
        appends: GroupCommit,
        writes: Arc<WriteHealth>,
    ) -> Self {
        Self {
            reader,
            writer,
            appends: Arc::new(appends),
            writes,
        }
    }

    /// Begins a write transaction (see `durability`).
    pub(super) async fn begin(&self) -> sqlx::Result<Transaction<'static, DB>> {
        self.writer.begin_with(DB::BEGIN).await
    }

    /// Begins a read-only transaction whose statements all see one
    /// snapshot (a timeline page and its head).
    pub(super) async fn snapshot(&self) -> sqlx::Result<Transaction<'static, DB>> {
        self.reader.begin_with(DB::SNAPSHOT).await
    }

    /// The pool for queries.
    pub(super) fn reader(&self) -> &Pool<DB> {
        &self.reader
    }

    /// The pool for single-statement writes.
    pub(super) fn writer(&self) -> &Pool<DB> {
        &self.writer
    }
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Dialect,
    // Search is written for each database on its own (`search`).
    Self: super::SearchStore,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'r> OffsetDateTime: Decode<'r, DB> + Type<DB>,
    for<'q> Json<Value>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> bool: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Option<i32>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<Json<Value>>: Encode<'q, DB>,
{
    async fn health(&self) -> Result<Health> {
        sqlx::query("SELECT 1").execute(self.reader()).await?;
        match self.writes.failing() {
            None => return Ok(Health::Ready),
            Some(Probe::NotYet) => return Ok(Health::RefusingWrites),
            Some(Probe::Now) => {}
        }
        let probe = async {
            let mut tx = self.begin().await?;
            sqlx::query(PROBE_WRITE)
                .bind(Timestamp(now()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        match probe.await {
            Ok(()) => {
                self.writes.committed();
                Ok(Health::Ready)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the store still refuses writes");
                self.writes.failed();
                Ok(Health::RefusingWrites)
            }
        }
    }
}
