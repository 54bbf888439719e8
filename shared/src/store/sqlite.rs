//! The SQLite adapter: the embedded store, one file under the data dir.
//!
//! SQLite allows one writer at a time, so writes go through a pool of exactly
//! one connection: transactions queue in-process instead of failing with
//! `SQLITE_BUSY`, and that queue is what serialises seq allocation. Reads use
//! a separate pool and, in WAL mode, never wait for the writer. One process
//! owns the file.
//!
//! A write that fails leaves nothing behind on the writer connection: see
//! `durability` for how a failed `COMMIT` on a full disk is kept from
//! passing for a committed one.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::adapter::SqlStore;

use super::durability::{self, WriteHealth};
use super::group_commit::GroupCommit;

/// The store on SQLite.
pub type SqliteStore = SqlStore<sqlx::Sqlite>;

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies
    /// pending migrations; `readers` bounds the read pool.
    pub async fn open(path: &Path, readers: u32) -> super::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        create_private(path)?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged message survives power loss, not just a
            // crash of this process.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // A deleted message is erased: its pages are overwritten with
            // zeros, not left readable in the file's free space.
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .after_release(durability::settled)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers.max(1))
            .connect_with(options.read_only(true))
            .await?;
        let writes = Arc::new(WriteHealth::default());
        let appends = GroupCommit::sqlite(writer.clone(), writes.clone());
        Ok(Self::new(reader, writer, appends, writes))
    }
}

/// Creates the database file, if it does not exist yet, readable by its
/// owner only: it holds password and refresh-token hashes. SQLite gives its
/// `-wal` and `-shm` files the database file's permissions.
#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}
