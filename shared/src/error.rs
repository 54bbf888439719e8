//! The one error type of `chat-shared`: store outcomes in domain terms,
//! token and key failures, object storage failures, and configuration
//! mistakes.

/// What can go wrong in the shared core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing named does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule would be broken (the value says which).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The user is not a member of the room.
    #[error("not a member of the room")]
    NotMember,
    /// The user is banned from the room.
    #[error("banned from the room")]
    Banned,
    /// The acting user's role, as it is at the commit, does not allow the
    /// change (checked inside the change's transaction).
    #[error("your role does not allow this")]
    NotAllowed,
    /// The member is muted in the room until this time (a timeout by an
    /// owner or admin): they may not send, react, edit or type there.
    #[error("muted in this room until {0}")]
    Muted(time::OffsetDateTime),
    /// The room's slow mode: the member may send again in this many
    /// seconds.
    #[error("slow mode: wait {0} s")]
    SlowMode(u32),
    /// A field names something it may not (a reply to a message that is
    /// not in the room); the text says which and why.
    #[error("{0}")]
    Invalid(&'static str),
    /// A search query the language refuses (`search`): the code says why
    /// (`query_too_long`, `too_many_words`, `no_search_terms`), the text
    /// says what to change.
    #[error("{1}")]
    BadQuery(&'static str, String),
    /// The database failed or could not be reached. The store's adapter
    /// turns its driver's error into this at its boundary, so nothing above
    /// the store depends on the driver: `message` is for the log (never for
    /// a client), `unavailable` says whether the database refused the work
    /// for now (unreachable, saturated, out of room) rather than the
    /// statement or the data being wrong.
    #[error("database error: {message}")]
    Database {
        /// What the database or its driver said.
        message: String,
        /// Whether a retry later may succeed (see [`Error::is_unavailable`]).
        unavailable: bool,
    },
    /// The store could not take a write now (its disk is full or
    /// read-only, its writer stopped, its connection died before the
    /// commit answered). Nothing was acknowledged; whether the write
    /// landed is for a retry with the same `client_id` to find out.
    #[error("the store refused the write: {0}")]
    Unavailable(String),
    /// A migration failed at start-up (the text says which and why).
    #[error("migration failed: {0}")]
    Migrate(String),
    /// An access token failed verification (bad signature, algorithm,
    /// issuer, audience, or expired).
    #[error("invalid access token: {0}")]
    InvalidToken(#[from] jsonwebtoken::errors::Error),
    /// A signing or verification key could not be read, parsed or written.
    #[error("{0}")]
    Key(String),
    /// An environment variable has a value that cannot be used.
    #[error("{0}")]
    Config(String),
    /// The bus (Redis) failed or could not be reached.
    #[error("bus error: {0}")]
    Bus(String),
    /// The object storage (the blobs' S3 bucket) failed or could not be
    /// reached. Like [`Error::Database`], the adapter turns its client's
    /// error into this at its boundary: `message` is for the log,
    /// `unavailable` says whether a retry later may succeed (connection
    /// refused, timeout, a 5xx answer, throttling) rather than the request
    /// being wrong (no such bucket, access denied).
    #[error("object storage error: {message}")]
    Blobs {
        /// What the storage or its client said.
        message: String,
        /// Whether a retry later may succeed (see [`Error::is_unavailable`]).
        unavailable: bool,
    },
    /// A file or socket operation failed (data dir, listener, a blob's
    /// file); also the error a blob's body stream yielded, handed back as
    /// it was.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Result with the shared error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What a conflict the store reports about a message means to the
    /// person who asked (the api and the gateway say the same), by its
    /// code; `None` for the conflicts that are not about messages.
    pub fn message_conflict(code: &str) -> Option<&'static str> {
        Some(match code {
            "message_deleted" => "the message was deleted",
            "already_reacted" => "you already reacted with that emoji",
            "not_reacted" => "you have not reacted with that emoji",
            "too_many_reactions" => "a message takes at most 20 different emoji",
            "already_pinned" => "the message is already pinned",
            "not_pinned" => "the message is not pinned",
            "too_many_pins" => "a room has at most 50 pinned messages",
            _ => return None,
        })
    }

    /// The code and text of a moderation refusal ([`Error::Muted`],
    /// [`Error::SlowMode`]), which the api and the gateway say alike: the
    /// text names the mute's end (RFC 3339) or the seconds to wait.
    pub fn moderation_refusal(&self) -> Option<(&'static str, String)> {
        match self {
            Self::Muted(until) => {
                let until = until
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| until.to_string());
                Some(("muted", format!("you are muted in this room until {until}")))
            }
            Self::SlowMode(wait) => Some((
                "slow_mode",
                format!("slow mode is on in this room: wait {wait} s before your next message"),
            )),
            _ => None,
        }
    }

    /// Whether the failure is the database or the object storage being
    /// unreachable, saturated or out of room (worth a 503 and a retry)
    /// rather than a bug.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Database { unavailable, .. } | Self::Blobs { unavailable, .. } => *unavailable,
            _ => false,
        }
    }
}
