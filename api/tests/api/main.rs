//! Integration tests of `chat-api`: a real server on port 0 over a fresh
//! PostgreSQL database or SQLite file, driven over HTTP by `reqwest`. Every
//! test runs against both stores. One binary, so linking happens once.

mod helpers;

mod account;
mod admin;
mod attachments;
mod auth;
mod avatar;
mod bad_input;
mod blocks;
mod calls;
mod cors;
mod dm_requests;
mod dms;
mod events;
mod health;
mod invite_links;
mod invites;
mod limits;
mod members;
mod messages;
mod metrics;
mod moderation;
mod rooms;
mod search;
