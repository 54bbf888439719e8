//! A room with its members: for our system, real accounts registered over
//! REST (each member its own user, joined to one public room); the peers
//! have no accounts, only a room name; the ceiling takes the room's id as
//! every member's token.

use anyhow::{bail, Context, Result};
use chat_shared::model::RoomId;
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};

use crate::kind::Kind;
use crate::proto::Protocol;
use crate::system::System;

/// A room ready for `members` connections.
pub struct Room {
    /// Our room id, or the peers' room name.
    pub name: String,
    /// One access token per member (ours and the ceiling).
    pub tokens: Vec<String>,
}

/// Registrations in flight at once: each hashes a password (argon2id), so
/// more than the api's cores only queue.
const CONCURRENT_REGISTRATIONS: usize = 8;

/// One room of `members`.
pub async fn room(system: &System, members: usize) -> Result<Room> {
    let mut rooms = rooms(system, 1, members).await?;
    rooms.pop().context("one room")
}

/// `count` rooms of `members` each, every member its own user in exactly
/// one room (a connection of ours receives every room its user is in).
pub async fn rooms(system: &System, count: usize, members: usize) -> Result<Vec<Room>> {
    if system.kind == Kind::Ceiling {
        return Ok((0..count)
            .map(|_| {
                let name = RoomId::new().to_string();
                Room {
                    tokens: vec![name.clone(); members],
                    name,
                }
            })
            .collect());
    }
    if system.kind.protocol() != Protocol::Chat {
        return Ok((0..count)
            .map(|i| Room {
                name: format!("bench{i}"),
                tokens: Vec::new(),
            })
            .collect());
    }
    let api = system.api.context("our system has an api")?;
    let http = reqwest::Client::new();
    let base = format!("http://{api}");
    let run = std::process::id();
    let started = std::time::Instant::now();
    let tokens: Vec<String> = stream::iter(0..count * members)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let body = post(
                    &http,
                    &format!("{base}/v1/auth/register"),
                    None,
                    json!({"username": format!("b{run}u{i}"), "password": "benchmark password"}),
                )
                .await?;
                Ok::<_, anyhow::Error>(body["access_token"].as_str().context("token")?.to_owned())
            }
        })
        .buffered(CONCURRENT_REGISTRATIONS)
        .try_collect()
        .await?;
    if count * members >= 1000 {
        eprintln!(
            "chat-bench: registered {} users in {:.0} s",
            tokens.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let mut rooms = Vec::with_capacity(count);
    for (i, tokens) in tokens.chunks(members).enumerate() {
        let room = post(
            &http,
            &format!("{base}/v1/rooms"),
            Some(&tokens[0]),
            json!({"name": format!("bench {run} {i}"), "kind": "public"}),
        )
        .await?;
        let room_id = room["id"].as_str().context("room id")?.to_owned();
        rooms.push(Room {
            name: room_id,
            tokens: tokens.to_vec(),
        });
    }
    let base = &base;
    let joins = rooms.iter().flat_map(|room| {
        room.tokens
            .iter()
            .skip(1)
            .map(move |token| (format!("{base}/v1/rooms/{}/join", room.name), token))
    });
    stream::iter(joins)
        .map(|(url, token)| {
            let http = http.clone();
            async move { post(&http, &url, Some(token), json!({})).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(rooms)
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> Result<Value> {
    let mut request = http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "POST {url}: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }
    Ok(response.json().await?)
}
