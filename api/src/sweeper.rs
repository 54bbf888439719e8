//! The sweeper of attachments: every `CHAT_ATTACHMENT_SWEEP_INTERVAL` it
//! gives up the uploads no message carried within
//! `CHAT_UNSENT_ATTACHMENT_TTL`, then deletes the bytes of every
//! attachment marked deleted (by that, by a deleted message or room, or by
//! an upload that failed) and forgets each row once its bytes are gone. A
//! row is forgotten only after its blobs' deletion succeeded, so a store
//! of blobs that is down costs a retry at the next sweep, never an orphan.
//! Every instance of the api sweeps; deleting twice is harmless. What an
//! attachment's blobs are called, and deleting them, is `uploads`'s.

use chat_shared::model::AttachmentId;

use crate::state::AppState;
use crate::uploads::delete_bytes;

/// Rows handled per round of a sweep.
const BATCH: u32 = 100;

/// Sweeps until the task is dropped.
pub async fn run(state: AppState) {
    let mut every = tokio::time::interval(state.config.attachment_sweep_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        sweep(&state).await;
    }
}

/// One sweep: expire, then delete and forget in rounds until nothing is
/// left or a round makes no progress (the store of blobs is down).
async fn sweep(state: &AppState) {
    let Ok(ttl) = time::Duration::try_from(state.config.unsent_attachment_ttl) else {
        return;
    };
    let cutoff = time::OffsetDateTime::now_utc() - ttl;
    match state.store.expire_attachments(cutoff).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(attachments = n, "collected unsent uploads"),
        Err(e) => tracing::warn!(error = %e, "could not collect unsent uploads"),
    }
    loop {
        let ids = match state.store.deleted_attachments(BATCH).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "could not list deleted attachments");
                return;
            }
        };
        let mut forgotten = 0;
        for &id in &ids {
            if delete_bytes(state, id).await && forget(state, id).await {
                forgotten += 1;
            }
        }
        if forgotten == 0 || ids.len() < BATCH as usize {
            return;
        }
    }
}

async fn forget(state: &AppState, id: AttachmentId) -> bool {
    match state.store.forget_attachment(id).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(attachment = %id, error = %e, "could not forget an attachment");
            false
        }
    }
}
