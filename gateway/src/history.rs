//! Reading a room's log after a seq from the store: the one way this
//! gateway fills a gap, whether a room's (the bus lost or delayed an event,
//! the hub's [`RoomFeed`](crate::delivery::feed::RoomFeed) asks) or a
//! connection's (it joined late, fell behind its room, or asked for a
//! replay; its [`Cursors`](crate::delivery::cursors::Cursors) ask).

use chat_shared::model::RoomId;
use chat_shared::store::{Page, Store};

use crate::delivery::envelope::LogEvent;

/// Events read per page: enough that a long replay costs few round trips,
/// few enough that one page's frames stream out before the next is read.
const PAGE: u32 = 500;

/// A read of a room's log from after a seq, up to (not including) a seq
/// or up to the present, a page at a time.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    room: RoomId,
    after: i64,
    before: Option<i64>,
    done: bool,
}

impl Reading {
    /// The events of `room` after `after`, and before `before` if given.
    pub fn new(room: RoomId, after: i64, before: Option<i64>) -> Self {
        Self {
            room,
            after,
            before,
            done: false,
        }
    }

    /// The next page, in seq order; empty once the read is over.
    pub async fn next(&mut self, store: &dyn Store) -> chat_shared::Result<Vec<LogEvent>> {
        if self.done {
            return Ok(Vec::new());
        }
        let page = Page {
            after: Some(self.after),
            before: self.before,
            limit: PAGE,
        };
        let events = store.events(self.room, page).await?;
        self.done = events.len() < PAGE as usize;
        if let Some(last) = events.last() {
            self.after = last.seq;
        }
        Ok(events.iter().map(LogEvent::of).collect())
    }

    /// Whether the last page has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Every remaining event at once.
    pub async fn all(mut self, store: &dyn Store) -> chat_shared::Result<Vec<LogEvent>> {
        let mut out = Vec::new();
        while !self.done {
            out.extend(self.next(store).await?);
        }
        Ok(out)
    }
}
