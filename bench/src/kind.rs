//! Every system the benchmark knows: ours in three shapes, the ceiling and
//! the peers, with the protocol each speaks.

use anyhow::{bail, Result};

use crate::proto::Protocol;

/// Every system the benchmark knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `chat`: api + gateway in one process, SQLite, in-process bus.
    OursSqlite,
    /// `chat-api` + `chat-gateway`s on PostgreSQL and Redis.
    OursPostgres,
    /// `chat` on PostgreSQL with the in-process bus: one node, so beside
    /// `OursPostgres` it shows what the Redis hop costs and what the store.
    OursPostgresLocal,
    /// `chat-bench ceiling`: our transport with nothing durable (no
    /// authentication, store or bus), two nodes linked directly.
    Ceiling,
    /// `bench/peers/ws-server.mjs`.
    NodeWs,
    /// `bench/peers/socketio-server.mjs` (with the Redis adapter when there
    /// are two nodes).
    SocketIo,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::OursSqlite => "chat (SQLite)",
            Kind::OursPostgres => "chat-gateway (PostgreSQL+Redis)",
            Kind::OursPostgresLocal => "chat (PostgreSQL)",
            Kind::Ceiling => "ceiling (nothing durable)",
            Kind::NodeWs => "node ws",
            Kind::SocketIo => "socket.io",
        }
    }

    /// Whether this is our system rather than a peer.
    pub fn is_ours(self) -> bool {
        matches!(
            self,
            Kind::OursSqlite | Kind::OursPostgres | Kind::OursPostgresLocal
        )
    }

    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "ours-sqlite" => Kind::OursSqlite,
            "ours-pg" => Kind::OursPostgres,
            "ours-pg-local" => Kind::OursPostgresLocal,
            "ceiling" => Kind::Ceiling,
            "ws" => Kind::NodeWs,
            "socketio" => Kind::SocketIo,
            other => bail!(
                "unknown system {other}: ours-sqlite, ours-pg, ours-pg-local, ceiling, ws, socketio"
            ),
        })
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Kind::OursSqlite | Kind::OursPostgres | Kind::OursPostgresLocal | Kind::Ceiling => {
                Protocol::Chat
            }
            Kind::NodeWs => Protocol::Plain,
            Kind::SocketIo => Protocol::SocketIo,
        }
    }
}

/// Its name in file, directory and database names.
pub fn kind_slug(kind: Kind) -> &'static str {
    match kind {
        Kind::OursSqlite => "sqlite",
        Kind::OursPostgres => "pg",
        Kind::OursPostgresLocal => "pg-local",
        Kind::Ceiling => "ceiling",
        Kind::NodeWs => "ws",
        Kind::SocketIo => "socketio",
    }
}
