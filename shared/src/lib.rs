//! The core both chat binaries share: the domain model, access-token
//! signing and verification, configuration, telemetry and metrics set-up,
//! the listener and HTTP serving every binary shares, the `Store` port with
//! its PostgreSQL and SQLite adapters, and the `Blobs` port (attachments)
//! with its filesystem and S3 adapters.

pub mod admin;
pub mod auth;
pub mod blobs;
pub mod bus;
pub mod calls;
pub mod config;
pub mod error;
pub mod http_server;
pub mod limits;
pub mod listener;
pub mod message_text;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod request_id;
pub mod search;
pub mod shutdown;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;

pub use error::{Error, Result};
