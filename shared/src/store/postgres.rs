//! The PostgreSQL adapter: the production store. One pool serves reads and
//! writes; per-room seq allocation is serialised by the `rooms` row lock that
//! `NEXT_SEQ` takes, so appends to different rooms run in parallel.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use super::adapter::SqlStore;

use super::durability::{self, WriteHealth};
use super::group_commit::GroupCommit;

/// The store on PostgreSQL.
pub type PgStore = SqlStore<sqlx::Postgres>;

impl PgStore {
    /// Connects with up to `max_connections` and applies pending migrations.
    pub async fn connect(url: &str, max_connections: u32) -> super::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .after_release(durability::settled)
            .connect(url)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        let writes = Arc::new(WriteHealth::default());
        let appends = GroupCommit::postgres(pool.clone(), writes.clone());
        // One pool serves reads and writes.
        Ok(Self::new(pool.clone(), pool, appends, writes))
    }
}
