//! The SQLite adapter: the embedded store, one file under the data dir.
//!
//! SQLite allows one writer at a time, so writes go through a pool of exactly
//! one connection: transactions queue in-process instead of failing with
//! `SQLITE_BUSY`, and that queue is what serialises seq allocation. Reads use
//! a separate pool and, in WAL mode, never wait for the writer. One process
//! owns the file.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::group_commit::GroupCommit;

/// The store on SQLite.
#[derive(Clone)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    /// Every message append of this store goes through here.
    appends: Arc<GroupCommit>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies
    /// pending migrations; `readers` bounds the read pool.
    pub async fn open(path: &Path, readers: u32) -> super::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged message survives power loss, not just a
            // crash of this process.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers.max(1))
            .connect_with(options.read_only(true))
            .await?;
        let appends = Arc::new(GroupCommit::sqlite(writer.clone()));
        Ok(Self {
            reader,
            writer,
            appends,
        })
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }
}

super::adapter::impl_store!(SqliteStore, sqlx::Sqlite);
