//! `chat-testkit`: the plumbing every suite of chat shares (the gateway's
//! integration tests, `chat-faults`, `chat-bench`), written once.
//!
//! - [`launcher`]: the real binaries as child processes on loopback: free
//!   ports, environment, a log file each, readiness on `/readyz`, stopped
//!   (and reaped) on drop.
//! - [`client`]: a WebSocket client of the protocol and [`rest`] a client
//!   of the REST api, both written against `docs/protocol.md` alone. The kit
//!   depends on no crate of the server, so a suite using it sees the
//!   protocol from outside, as a client would.

pub mod client;
pub mod launcher;
pub mod rest;
