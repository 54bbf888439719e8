//! A room with its members: for our system, real accounts registered over
//! REST (each member its own user, joined to one public room); the peers
//! have no accounts, only a room name.

use anyhow::{bail, Context, Result};
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};

use crate::proto::Protocol;
use crate::system::System;

/// A room ready for `members` connections.
pub struct Room {
    /// Our room id, or the peers' room name.
    pub name: String,
    /// One access token per member (ours only).
    pub tokens: Vec<String>,
}

/// Registrations in flight at once: each hashes a password (argon2id), so
/// more than the api's cores only queue.
const CONCURRENT_REGISTRATIONS: usize = 8;

pub async fn room(system: &System, members: usize) -> Result<Room> {
    if system.kind.protocol() != Protocol::Chat {
        return Ok(Room {
            name: "bench".into(),
            tokens: Vec::new(),
        });
    }
    let api = system.api.context("our system has an api")?;
    let http = reqwest::Client::new();
    let base = format!("http://{api}");
    let run = std::process::id();
    let tokens: Vec<String> = stream::iter(0..members)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let body = post(
                    &http,
                    &format!("{base}/v1/auth/register"),
                    None,
                    json!({"username": format!("b{run}m{i}"), "password": "benchmark password"}),
                )
                .await?;
                Ok::<_, anyhow::Error>(body["access_token"].as_str().context("token")?.to_owned())
            }
        })
        .buffered(CONCURRENT_REGISTRATIONS)
        .try_collect()
        .await?;
    let room = post(
        &http,
        &format!("{base}/v1/rooms"),
        Some(&tokens[0]),
        json!({"name": format!("bench {run}"), "kind": "public"}),
    )
    .await?;
    let room_id = room["id"].as_str().context("room id")?.to_owned();
    stream::iter(tokens.iter().skip(1))
        .map(|token| {
            let (http, url) = (http.clone(), format!("{base}/v1/rooms/{room_id}/join"));
            async move { post(&http, &url, Some(token), json!({})).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(Room {
        name: room_id,
        tokens,
    })
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
