//! This gateway's lease on its calls, and the sweep that ends the calls
//! nobody ends: one task, started before the gateway accepts connections
//! and stopped once they have closed.
//!
//! The lease is renewed every quarter of `CHAT_GATEWAY_LEASE`, so three
//! renewals may fail before another gateway takes this one for dead. Every
//! second the sweep ends ringing calls past `CHAT_CALL_RING_TIMEOUT`
//! (`missed`), calls with a party on a gateway whose lease lapsed, and
//! calls whose parties may no longer call each other (`failed`). Every
//! gateway sweeps; the store ends each call once, so what one sweep ends
//! the others find ended.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::Context;

/// How often ringing calls and lapsed leases are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How long stopping waits for the sweep under way and the lease's
/// release.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// The running lease and sweep, as the context holds them.
#[derive(Default)]
pub struct Sweeper {
    /// Cancelled when the gateway stops, once its connections are closed.
    stop: CancellationToken,
    /// The task, so stopping can wait for it to give the lease up.
    task: TaskTracker,
}

impl Sweeper {
    /// Takes this gateway's lease (before any connection can place or
    /// accept a call on it), then renews it and sweeps until [`stop`].
    ///
    /// [`stop`]: Sweeper::stop
    pub async fn start(ctx: &Arc<Context>) -> chat_shared::Result<()> {
        ctx.store.gateway_alive(ctx.gateway).await?;
        let sweeper = &ctx.sweeper;
        sweeper
            .task
            .spawn(run(Arc::downgrade(ctx), sweeper.stop.clone()));
        sweeper.task.close();
        Ok(())
    }

    /// Stops renewing and sweeping, and gives the lease up: whatever calls
    /// of this gateway the closing connections did not end, the next sweep
    /// elsewhere does. Waits at most [`STOP_WAIT`] for a store that does
    /// not answer: the lease then lapses on its own.
    pub async fn stop(&self) {
        self.stop.cancel();
        if tokio::time::timeout(STOP_WAIT, self.task.wait())
            .await
            .is_err()
        {
            tracing::warn!("the gateway's lease was not given up in time; it will lapse");
        }
    }
}

async fn run(ctx: Weak<Context>, stop: CancellationToken) {
    let (lease, ring_timeout) = match ctx.upgrade() {
        Some(ctx) => (ctx.config.gateway_lease, ctx.config.call_ring_timeout),
        None => return,
    };
    let mut renew = tokio::time::interval(lease / 4);
    renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = renew.tick() => {
                let Some(ctx) = ctx.upgrade() else { return };
                if let Err(e) = ctx.store.gateway_alive(ctx.gateway).await {
                    tracing::warn!(error = %e, "renewing the gateway's lease failed");
                }
            }
            _ = sweep.tick() => {
                let Some(ctx) = ctx.upgrade() else { return };
                match ctx.store.sweep_calls(ring_timeout, lease).await {
                    Ok(ended) => {
                        for (call, event) in ended {
                            super::announce(&ctx, &call, std::slice::from_ref(&event)).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "sweeping calls failed"),
                }
            }
        }
    }
    let Some(ctx) = ctx.upgrade() else { return };
    if let Err(e) = ctx.store.gateway_stopped(ctx.gateway).await {
        tracing::warn!(error = %e, "giving the gateway's lease up failed");
    }
}
