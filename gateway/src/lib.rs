//! `chat-gateway`: the WebSocket gateway. Stateless instances behind a load
//! balancer verify the JWT on the handshake, write sends to the store,
//! acknowledge them, publish them on the bus, and deliver every room event
//! to every connected member exactly once, in order (the delivery contract
//! in docs/protocol.md).
//!
//! `main.rs` is a thin shell over [`Gateway`]; tests start the same type
//! in-process.

mod app;
mod calls;
mod config;
mod connection;
mod context;
mod delivery;
mod ephemeral;
mod handshake;
mod history;
mod hub;
mod inbound;
mod metrics;
mod origins;
mod outbox;
mod sends;
mod subscriptions;
mod wire;
mod writers;

pub use app::{Body, Gateway, GatewayService};
pub use config::GatewayConfig;
