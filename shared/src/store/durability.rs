//! What keeps a failed write from passing for a committed one, and what the
//! store says about its writes while they fail.
//!
//! sqlx counts each connection's open transactions itself, and a `begin` on
//! a connection it counts as inside one becomes a `SAVEPOINT`. When the
//! database ends a transaction on its own, the count goes wrong: SQLite
//! rolls the whole transaction back when a statement or the `COMMIT` fails
//! with `SQLITE_FULL` or `SQLITE_IOERR`, so the `ROLLBACK` sqlx sends when
//! the transaction is dropped fails ("no transaction is active") and the
//! count stays at one. The connection went back to the pool like that, the
//! next write's `begin` became a `SAVEPOINT` (which, outside a transaction,
//! opens one), and after the next failed statement sqlx's `ROLLBACK TO`
//! left that transaction open under a count of one again. From then on every
//! "commit" was the `RELEASE` of a nested savepoint: each batch answered
//! from the writer's own uncommitted view, was acknowledged, and was lost
//! when the connection closed (issue 25: 2,851 acknowledged sends on a full
//! disk).
//!
//! Three rules close it, on both stores:
//! - every write transaction begins with an explicit statement
//!   ([`POSTGRES_BEGIN`], [`SQLITE_BEGIN`]: each database's
//!   `Dialect::BEGIN`), which sqlx refuses to nest and the database refuses
//!   inside an open transaction, so a connection in doubt fails the write
//!   instead of nesting it;
//! - a connection that comes back to a pool still counted inside a
//!   transaction is closed, not reused ([`settled`]): closing it ends
//!   whatever the database still holds open for it, and the pool opens a
//!   fresh one for the next write;
//! - the group commit keeps nothing between batches: each batch reads the
//!   rooms' heads, memberships and client_ids anew under its lock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::Connection;

/// How a PostgreSQL write transaction begins.
pub(super) const POSTGRES_BEGIN: &str = "BEGIN";

/// How a SQLite write transaction begins: `IMMEDIATE` takes the write lock
/// at once, so a transaction never finds it taken halfway through.
pub(super) const SQLITE_BEGIN: &str = "BEGIN IMMEDIATE";

/// The pools' `after_release` check: keeps a connection only if it is
/// certainly outside any transaction. Most come back outside one and cost
/// nothing here. For the rest the ping first runs whatever rollback the
/// dropped transaction queued (SQLite counts it only once its worker has
/// run it), so a rollback that worked counts as settled.
pub(super) fn settled<C: Connection>(
    conn: &mut C,
    _: PoolConnectionMetadata,
) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if !conn.is_in_transaction() {
            return Ok(true);
        }
        conn.ping().await?;
        let settled = !conn.is_in_transaction();
        if !settled {
            tracing::warn!(
                "closing a database connection whose transaction did not end cleanly; \
                 the next write opens a fresh one"
            );
            crate::metrics::store_connection_discarded();
        }
        Ok(settled)
    })
}

/// How long the store must have seen no write attempt before `health`
/// tries a write of its own to learn whether writes fail still. While
/// traffic flows the batches are the better witness: on PostgreSQL a full
/// disk fails only the writes that must extend a file, and a one-row
/// update of the probe fits in its page.
pub(super) const PROBE_WHEN_IDLE_FOR: Duration = Duration::from_secs(2);

/// Whether the store's writes are failing: set when a batch of appends
/// (or a probe) fails to commit, cleared when one commits.
#[derive(Debug, Default)]
pub(super) struct WriteHealth {
    state: Mutex<WriteState>,
}

#[derive(Debug, Default)]
struct WriteState {
    /// Set when a write fails, cleared when one commits.
    failing: bool,
    /// When a write last committed or failed.
    last_attempt: Option<Instant>,
}

impl WriteHealth {
    /// Records a committed write.
    pub(super) fn committed(&self) {
        let mut state = self.state.lock().expect("write health lock");
        state.last_attempt = Some(Instant::now());
        if std::mem::take(&mut state.failing) {
            tracing::info!("the store takes writes again");
            crate::metrics::store_writes_failing(false);
        }
    }

    /// Records a write that failed (the caller logs why).
    pub(super) fn failed(&self) {
        let mut state = self.state.lock().expect("write health lock");
        state.last_attempt = Some(Instant::now());
        if !state.failing {
            crate::metrics::store_writes_failing(true);
        }
        state.failing = true;
    }

    /// Whether writes are failing, and if so whether this caller is to try
    /// a probe write: at most one caller in [`PROBE_WHEN_IDLE_FOR`] is told
    /// to (the claim counts as an attempt), so a flood of `/readyz` cannot
    /// queue writes ahead of the sends it is meant to report on.
    pub(super) fn failing(&self) -> Option<Probe> {
        let mut state = self.state.lock().expect("write health lock");
        if !state.failing {
            return None;
        }
        let idle = state
            .last_attempt
            .is_none_or(|at| at.elapsed() >= PROBE_WHEN_IDLE_FOR);
        if idle {
            state.last_attempt = Some(Instant::now());
            Some(Probe::Now)
        } else {
            Some(Probe::NotYet)
        }
    }
}

/// Whether a `health` caller tries a write while writes are failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    /// Yes: no write was tried for a while, and no one else is trying.
    Now,
    /// No: a write was tried just now; its outcome stands.
    NotYet,
}

#[cfg(test)]
mod tests {
    use super::{Probe, WriteHealth, WriteState};

    #[test]
    fn of_many_health_checks_at_once_one_probes() {
        let health = WriteHealth {
            state: std::sync::Mutex::new(WriteState {
                failing: true,
                last_attempt: None,
            }),
        };
        assert_eq!(health.failing(), Some(Probe::Now));
        for _ in 0..10 {
            assert_eq!(health.failing(), Some(Probe::NotYet));
        }
        health.committed();
        assert_eq!(health.failing(), None);
        health.failed();
        assert_eq!(
            health.failing(),
            Some(Probe::NotYet),
            "a write was just tried"
        );
    }
}
