//! The delivery core: what decides which connection gets which event, and
//! when, as plain state machines over typed inputs. Nothing here touches a
//! socket, the store, the bus or a clock of its own (the time comes in as
//! an argument), so every rule is unit- and property-tested here, and the
//! hub and the writers are loops that do the I/O these ask for.
//!
//! - [`envelope`]: a bus message read once, typed, with its bytes.
//! - [`sequencer`]: one room's events back in seq order.
//! - [`feed`]: one room as this gateway delivers it (ordering, gathering,
//!   repair deadlines).
//! - [`cursors`]: what one connection has been written, room by room, and
//!   what it is still owed.
//! - [`clocks`]: a connection's heartbeat, token expiry and sync grace.
//! - [`presence`]: who is online, across gateways.

pub mod clocks;
pub mod cursors;
pub mod envelope;
pub mod feed;
pub mod presence;
pub mod sequencer;

#[cfg(test)]
mod properties;
