//! A client of the REST api, written against `docs/protocol.md` alone:
//! registration, rooms, joins, sends and each room's head, each call with
//! a timeout and any answer but a success an error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// A registered user.
#[derive(Debug, Clone)]
pub struct Account {
    /// Their access token.
    pub token: String,
}

/// Talks REST to the api (directly or through a proxy), every call with a
/// timeout; an answer other than a success is an error naming it.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    base: String,
}

impl Rest {
    /// A client of the api at `entry` (`http://<entry>/v1/…`).
    pub fn new(entry: SocketAddr) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            base: format!("http://{entry}"),
        })
    }

    /// Registers `username` (with a password of the suite's own).
    pub async fn register(&self, username: &str) -> Result<Account> {
        let body: Value = self
            .post(
                None,
                "/v1/auth/register",
                json!({"username": username, "password": "fault suite password"}),
            )
            .await?;
        Ok(Account {
            token: body["access_token"].as_str().context("token")?.to_owned(),
        })
    }

    /// Creates a public room `name` owned by `owner`; its id.
    pub async fn create_room(&self, owner: &Account, name: &str) -> Result<String> {
        let room: Value = self
            .post(
                Some(owner),
                "/v1/rooms",
                json!({"name": name, "kind": "public"}),
            )
            .await?;
        Ok(room["id"].as_str().context("room id")?.to_owned())
    }

    /// `who` joins `room`.
    pub async fn join(&self, who: &Account, room: &str) -> Result<()> {
        self.post::<Value>(Some(who), &format!("/v1/rooms/{room}/join"), json!({}))
            .await?;
        Ok(())
    }

    /// `POST /v1/rooms/{room}/messages`: the committed event's seq, and
    /// whether it already existed (200: a retry of a committed send).
    pub async fn send(
        &self,
        who: &Account,
        room: &str,
        client_id: &str,
        body: &str,
    ) -> Result<(i64, bool)> {
        let response = self
            .http
            .post(format!("{}/v1/rooms/{room}/messages", self.base))
            .bearer_auth(&who.token)
            .json(&json!({"client_id": client_id, "body": body}))
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            bail!("send answered {status}");
        }
        let event: Value = response.json().await?;
        Ok((
            event["seq"].as_i64().context("seq")?,
            status == reqwest::StatusCode::OK,
        ))
    }

    /// Each room's head as the store has it (`GET /v1/rooms`).
    pub async fn heads(&self, who: &Account) -> Result<HashMap<String, i64>> {
        let response = self
            .http
            .get(format!("{}/v1/rooms", self.base))
            .bearer_auth(&who.token)
            .send()
            .await?
            .error_for_status()?;
        let body: Value = response.json().await?;
        let rooms = body
            .as_array()
            .or_else(|| body["rooms"].as_array())
            .context("room list")?;
        Ok(rooms
            .iter()
            .filter_map(|r| {
                let id = r["id"].as_str().or_else(|| r["room"]["id"].as_str())?;
                Some((id.to_owned(), r["last_seq"].as_i64()?))
            })
            .collect())
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        who: Option<&Account>,
        path: &str,
        body: Value,
    ) -> Result<T> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(who) = who {
            request = request.bearer_auth(&who.token);
        }
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "POST {path} answered {status}: {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response.json().await?)
    }
}
