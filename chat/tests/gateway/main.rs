//! Integration tests of `chat-gateway`: real gateways and a real api on port
//! 0, over PostgreSQL + Redis with two gateways (the scaled shape) and over
//! SQLite + the in-process bus with one (the embedded shape), driven by an
//! independent WebSocket client (the test kit's, written against
//! docs/protocol.md alone).

mod cluster;

mod bad_input;
mod connections_gauge;
mod delivery;
mod ephemeral;
mod faults;
mod messages;
mod metrics;
mod presence;
mod rooms;
mod sessions;
mod slow_bus;
