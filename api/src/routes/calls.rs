//! Calls' REST side: `GET /v1/calls/ice-servers`, the STUN and TURN
//! servers a client gives `RTCPeerConnection` before it places or answers
//! a call. Calls themselves are placed, answered and signalled over the
//! WebSocket (the gateway); the TURN credentials here are derived from the
//! secret shared with the TURN server, which recomputes them, so nothing
//! is stored.

use axum::extract::State;
use axum::Json;
use chat_shared::calls::{turn_credentials, IceServer};
use chat_shared::limits::Action;
use chat_shared::model::UserId;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::{IceConfig, IceTransportPolicy};
use crate::error::{ApiError, ErrorBody};
use crate::extract::AuthUser;
use crate::state::AppState;

/// The calls routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ice_servers))
}

/// What to give `RTCPeerConnection` (its `iceServers` and
/// `iceTransportPolicy`).
#[derive(Debug, Serialize, ToSchema)]
pub struct IceServers {
    /// The STUN servers (one entry, if any), then the TURN servers with
    /// their credentials (one entry, if TURN is configured).
    ice_servers: Vec<IceServer>,
    /// `all`, or `relay`: use only relayed candidates.
    ice_transport_policy: IceTransportPolicy,
    /// How long the TURN credentials stay valid, in seconds: ask again
    /// for each call.
    ttl_secs: u64,
}

impl IceServers {
    /// The servers `config` lists, with TURN credentials for `user` that
    /// expire `turn_ttl` after `now`.
    fn for_user(config: &IceConfig, user: UserId, now: OffsetDateTime) -> Self {
        let mut ice_servers = Vec::new();
        let stun = config.stun();
        if !stun.is_empty() {
            ice_servers.push(IceServer {
                urls: stun,
                username: None,
                credential: None,
            });
        }
        if let Some((urls, secret)) = config.turn() {
            let (username, credential) =
                turn_credentials(secret.as_bytes(), user, now + config.turn_ttl);
            ice_servers.push(IceServer {
                urls,
                username: Some(username),
                credential: Some(credential),
            });
        }
        Self {
            ice_servers,
            ice_transport_policy: config.ice_transport_policy,
            ttl_secs: config.turn_ttl.as_secs(),
        }
    }
}

/// The ICE servers for my next call: `CHAT_STUN_URLS`, then
/// `CHAT_TURN_URLS` with credentials valid for `CHAT_TURN_TTL` (TURN REST
/// API scheme: `username` is `<unix expiry>:<my id>`, `credential` its
/// base64 HMAC-SHA1 under `CHAT_TURN_SECRET`). Empty when none are
/// configured. Each spends one of my `CHAT_ACTION_RATE_PER_MINUTE`.
#[utoipa::path(get, path = "/v1/calls/ice-servers", tag = "calls",
    security(("bearer" = [])),
    responses(
        (status = 200, body = IceServers),
        (status = 401, body = ErrorBody),
        (status = 429, description = "over CHAT_ACTION_RATE_PER_MINUTE", body = ErrorBody)))]
async fn ice_servers(
    State(state): State<AppState>,
    me: AuthUser,
) -> Result<Json<IceServers>, ApiError> {
    // The DM-opening budget, sized like invites: a client asks once per
    // call it places or answers, and every call is a DM's, so a person
    // calling spends it at the pace they start conversations, while a
    // script minting TURN credentials (each a way into the relay) is held
    // to the same few a minute. The gateway's call budget is for the
    // socket frames.
    state.spend(me.id, Action::OpenDm)?;
    Ok(Json(IceServers::for_user(
        &state.config.ice,
        me.id,
        OffsetDateTime::now_utc(),
    )))
}
