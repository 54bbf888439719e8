//! Integration tests of `chat-gateway`: real gateways and a real api on port
//! 0, over PostgreSQL + Redis with two gateways (the scaled shape) and over
//! SQLite + the in-process bus with one (the embedded shape), driven by an
//! independent WebSocket client (the test kit's, written against
//! docs/protocol.md alone).
//!
//! They live in the `chat` crate, where the api and the gateway are put
//! together, so that `chat-gateway` does not depend on `chat-api`, not even
//! for its tests. The gateways they start as processes are the workspace's
//! `chat-gateway` binary, which cargo builds only for the gateway's own
//! tests: `scripts/test` builds it first (alone: `cargo build -p
//! chat-gateway`), and a test that misses it says so.

mod cluster;

mod account_deletion;
mod attachments;
mod bad_input;
mod blocks;
mod calls;
mod connections_gauge;
mod deactivation;
mod delivery;
mod dms;
mod ephemeral;
mod faults;
mod messages;
mod metrics;
mod moderation;
mod password_change;
mod presence;
mod profile_updates;
mod rooms;
mod sessions;
mod slow_bus;
