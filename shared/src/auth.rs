//! Access tokens: EdDSA-signed JWTs that the api issues with its private key
//! and anyone (the api, every gateway) verifies with the public key alone.
//!
//! Verification pins the algorithm to EdDSA and requires `exp`, `iss`, `aud`
//! and `sub`, so `alg: none`, HMAC tokens keyed with the public key, and
//! tokens minted for another audience are all rejected.

use std::fs;
use std::path::Path;
use std::time::Duration;

use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::model::{SessionId, UserId};

/// Clock skew tolerated when checking `exp`, in seconds.
const LEEWAY_SECS: u64 = 5;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: who minted the token.
    pub iss: String,
    /// Audience: who should accept it.
    pub aud: String,
    /// Subject: the user.
    pub sub: UserId,
    /// The login session, so a revoked session's tokens can be refused.
    pub sid: SessionId,
    /// The user's login name, so a gateway can greet without a lookup.
    pub name: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
}

/// Who a token is for and from: both sides must agree.
#[derive(Debug, Clone)]
pub struct TokenScope {
    /// The `iss` claim.
    pub issuer: String,
    /// The `aud` claim.
    pub audience: String,
}

/// Mints access tokens; only the api holds one.
pub struct TokenIssuer {
    key: EncodingKey,
    scope: TokenScope,
    ttl: Duration,
}

impl TokenIssuer {
    /// An issuer signing with the PKCS#8 PEM Ed25519 key `private_pem`.
    pub fn new(private_pem: &[u8], scope: TokenScope, ttl: Duration) -> Result<Self> {
        let key = EncodingKey::from_ed_pem(private_pem)
            .map_err(|e| Error::Key(format!("JWT private key: {e}")))?;
        Ok(Self { key, scope, ttl })
    }

    /// A signed token for `user` in `session`, and when it expires.
    pub fn issue(
        &self,
        user: UserId,
        name: &str,
        session: SessionId,
    ) -> Result<(String, OffsetDateTime)> {
        let now = OffsetDateTime::now_utc();
        let expires = now + self.ttl;
        let claims = Claims {
            iss: self.scope.issuer.clone(),
            aud: self.scope.audience.clone(),
            sub: user,
            sid: session,
            name: name.to_owned(),
            iat: now.unix_timestamp(),
            exp: expires.unix_timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key)?;
        Ok((token, expires))
    }

    /// How long issued tokens live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Checks access tokens with the public key only.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    /// A verifier for tokens signed by the Ed25519 key whose SPKI PEM public
    /// half is `public_pem`, for `scope`.
    pub fn new(public_pem: &[u8], scope: &TokenScope) -> Result<Self> {
        let key = DecodingKey::from_ed_pem(public_pem)
            .map_err(|e| Error::Key(format!("JWT public key: {e}")))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&scope.issuer]);
        validation.set_audience(&[&scope.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Ok(Self { key, validation })
    }

    /// The claims of `token` if it is authentic, current and ours.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)?.claims)
    }
}

/// An Ed25519 key pair in PEM: PKCS#8 private, SPKI public.
pub struct KeyPair {
    /// The signing half (PKCS#8 PEM).
    pub private_pem: String,
    /// The verifying half (SPKI PEM).
    pub public_pem: String,
}

impl KeyPair {
    /// A fresh random key pair.
    pub fn generate() -> Result<Self> {
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        let private_pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::Key(format!("encoding private key: {e}")))?
            .to_string();
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| Error::Key(format!("encoding public key: {e}")))?;
        Ok(Self {
            private_pem,
            public_pem,
        })
    }

    /// The pair kept in `dir` (`jwt-private.pem`, `jwt-public.pem`),
    /// generated and written there on first use so that tokens stay valid
    /// across restarts. The private key file is readable by its owner only.
    pub fn load_or_generate(dir: &Path) -> Result<Self> {
        let private = dir.join("jwt-private.pem");
        let public = dir.join("jwt-public.pem");
        if private.exists() && public.exists() {
            return Ok(Self {
                private_pem: read_key(&private)?,
                public_pem: read_key(&public)?,
            });
        }
        fs::create_dir_all(dir)
            .map_err(|e| Error::Key(format!("creating {}: {e}", dir.display())))?;
        let pair = Self::generate()?;
        // The public key first: a crash between the two leaves no private
        // key, so the next start makes a new pair rather than read half.
        write_durably(&public, &pair.public_pem, false)?;
        write_durably(&private, &pair.private_pem, true)?;
        tracing::info!(dir = %dir.display(), "generated a new JWT key pair");
        Ok(pair)
    }
}

/// The token of an `Authorization: Bearer <token>` header value. The
/// scheme is matched without regard to case, as HTTP's auth schemes are
/// (RFC 9110, 11.1): `bearer`, `BEARER` and `Bearer` all work.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Reads a PEM key file, naming it in the error.
pub fn read_key(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::Key(format!("reading {}: {e}", path.display())))
}

/// Writes a key file so that it is whole or absent after a crash or a
/// power loss, never empty: into a temporary file, flushed to disk, renamed
/// into place, and the directory flushed. (A key written plainly and lost
/// with the page cache left an empty file that stopped the next start.)
fn write_durably(path: &Path, pem: &str, private: bool) -> Result<()> {
    use std::io::Write;
    let failed = |e: std::io::Error| Error::Key(format!("writing {}: {e}", path.display()));
    let temporary = path.with_extension("pem.tmp");
    let mut file = create(&temporary, private).map_err(failed)?;
    file.write_all(pem.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    fs::rename(&temporary, path).map_err(failed)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(failed)?;
    }
    Ok(())
}

/// Creates (truncating) a file; a private one is readable by its owner only.
#[cfg(unix)]
fn create(path: &Path, private: bool) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
}

#[cfg(not(unix))]
fn create(path: &Path, _private: bool) -> std::io::Result<fs::File> {
    fs::File::create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> TokenScope {
        TokenScope {
            issuer: "chat".into(),
            audience: "chat".into(),
        }
    }

    fn pair() -> (TokenIssuer, TokenVerifier) {
        let keys = KeyPair::generate().unwrap();
        let issuer = TokenIssuer::new(
            keys.private_pem.as_bytes(),
            scope(),
            Duration::from_secs(60),
        )
        .unwrap();
        let verifier = TokenVerifier::new(keys.public_pem.as_bytes(), &scope()).unwrap();
        (issuer, verifier)
    }

    #[test]
    fn a_token_verifies_with_the_public_key_and_keeps_its_claims() {
        let (issuer, verifier) = pair();
        let (user, session) = (UserId::new(), SessionId::new());
        let (token, _) = issuer.issue(user, "alice", session).unwrap();
        let claims = verifier.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.sid, claims.name.as_str()),
            (user, session, "alice")
        );
    }

    #[test]
    fn a_token_from_another_key_is_rejected() {
        let (issuer, _) = pair();
        let (_, other_verifier) = pair();
        let (token, _) = issuer.issue(UserId::new(), "a", SessionId::new()).unwrap();
        assert!(other_verifier.verify(&token).is_err());
    }

    #[test]
    fn a_token_for_another_audience_is_rejected() {
        let keys = KeyPair::generate().unwrap();
        let other = TokenScope {
            issuer: "chat".into(),
            audience: "elsewhere".into(),
        };
        let issuer =
            TokenIssuer::new(keys.private_pem.as_bytes(), other, Duration::from_secs(60)).unwrap();
        let verifier = TokenVerifier::new(keys.public_pem.as_bytes(), &scope()).unwrap();
        let (token, _) = issuer.issue(UserId::new(), "a", SessionId::new()).unwrap();
        assert!(verifier.verify(&token).is_err());
    }

    #[test]
    fn the_bearer_scheme_is_matched_without_regard_to_case() {
        for header in ["Bearer abc", "bearer abc", "BEARER abc", "Bearer  abc "] {
            assert_eq!(bearer_token(header), Some("abc"), "{header:?}");
        }
        for header in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc", ""] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }

    #[test]
    fn keys_written_on_first_use_are_read_back_on_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeyPair::load_or_generate(dir.path()).unwrap();
        let second = KeyPair::load_or_generate(dir.path()).unwrap();
        assert_eq!(first.public_pem, second.public_pem);
        assert_eq!(first.private_pem, second.private_pem);
        let mut files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(
            files,
            ["jwt-private.pem", "jwt-public.pem"],
            "no temporary file is left"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("jwt-private.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the private key is its owner's alone");
        }
    }
}
