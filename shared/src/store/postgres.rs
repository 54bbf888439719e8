//! The PostgreSQL adapter: the production store. One pool serves reads and
//! writes; per-room seq allocation is serialised by the `rooms` row lock that
//! `NEXT_SEQ` takes, so appends to different rooms run in parallel.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use super::durability::{self, WriteHealth, POSTGRES_BEGIN};
use super::group_commit::GroupCommit;

/// The store on PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Every message append of this store goes through here.
    appends: Arc<GroupCommit>,
    /// Whether writes are failing, for `health`.
    writes: Arc<WriteHealth>,
}

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
        let appends = Arc::new(GroupCommit::postgres(pool.clone(), writes.clone()));
        Ok(Self {
            pool,
            appends,
            writes,
        })
    }

    /// Begins a write transaction (see `durability`).
    async fn begin(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin_with(POSTGRES_BEGIN).await
    }

    /// Begins a read-only transaction whose statements all see one
    /// snapshot (a timeline page and its head).
    async fn snapshot(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }
}

super::adapter::impl_store!(PgStore, sqlx::Postgres);
super::messages::impl_messages!(PgStore, sqlx::Postgres);
