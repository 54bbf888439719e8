//! The one error type of `chat-shared`: store outcomes in domain terms,
//! token and key failures, and configuration mistakes.

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
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed at start-up.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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
    /// A file or socket operation failed (data dir, listener).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Result with the shared error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the failure is the database being unreachable or saturated
    /// (worth a 503 and a retry) rather than a bug.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
            )
        )
    }
}
