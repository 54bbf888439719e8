//! `chat-api`: the REST service for users, sessions, rooms, members and
//! history, and the inspection of uploaded files ([`media`]). `main.rs` is
//! a thin shell over [`App`]; tests and the all-in-one binary start the
//! same `App` in-process.

mod admin_cli;
mod announce;
mod app;
mod config;
mod cors;
mod error;
mod extract;
mod links;
pub mod media;
mod metrics;
mod password;
mod rate_limit;
mod refresh_token;
mod routes;
mod state;
mod sweeper;
mod uploads;
mod validate;

pub use admin_cli::{admin, admin_command, ADMIN_USAGE};
pub use app::{router, routes_with, App};
pub use config::{ApiConfig, IceConfig, IceTransportPolicy};
pub use error::ApiError;
pub use state::AppState;
