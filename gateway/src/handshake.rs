//! Admission of a WebSocket: the checks made on the HTTP request before any
//! upgrade, so that a bad token or origin gets a plain HTTP error and never
//! a socket.

use chat_shared::auth::{Claims, TokenVerifier};
use chat_shared::protocol::{BEARER_PREFIX, SUBPROTOCOL};
use hyper::header;
use hyper::{HeaderMap, StatusCode};

use crate::origins::Allowed;

/// Why a handshake was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, as in the api's errors.
    pub code: &'static str,
    /// For people.
    pub message: &'static str,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code,
            message,
        }
    }

    /// The gateway is shutting down.
    pub fn draining() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this gateway is shutting down; connect to another",
        )
    }

    /// The gateway holds `CHAT_MAX_CONNECTIONS` already.
    pub fn full() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "this gateway is full; connect to another",
        )
    }

    /// The token's session was logged out.
    pub fn revoked() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "session_revoked",
            "this session has been logged out",
        )
    }

    /// The store could not be asked.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "try again shortly",
        )
    }

    /// The JSON body, in the api's error shape.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": { "code": self.code, "message": self.message } }).to_string()
    }
}

/// An admitted handshake.
#[derive(Debug)]
pub struct Admitted {
    /// The verified token's claims.
    pub claims: Claims,
    /// Whether to answer with `Sec-WebSocket-Protocol: chat.v1`.
    pub echo_subprotocol: bool,
}

/// Checks origin and token. A browser's `Origin` must be one `origins`
/// allows (scheme, host and port); clients that send no `Origin` (not
/// browsers) are not subject to it.
pub fn admit(
    headers: &HeaderMap,
    origins: &Allowed,
    verifier: &TokenVerifier,
) -> Result<Admitted, Refusal> {
    check_origin(headers, origins)?;
    let (token, echo_subprotocol) = token(headers)?;
    let claims = verifier.verify(token).map_err(|_| {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is invalid or expired",
        )
    })?;
    Ok(Admitted {
        claims,
        echo_subprotocol,
    })
}

fn check_origin(headers: &HeaderMap, origins: &Allowed) -> Result<(), Refusal> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    if origins.admits(origin.to_str().unwrap_or_default()) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this origin may not open a WebSocket here (see CHAT_PUBLIC_ORIGIN and CHAT_ALLOWED_ORIGINS)",
        ))
    }
}

/// The token, from `Sec-WebSocket-Protocol: chat.v1, bearer.<jwt>` (the
/// only way a browser can send one) or `Authorization: Bearer <jwt>`.
fn token(headers: &HeaderMap) -> Result<(&str, bool), Refusal> {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if !offered.is_empty() && !offered.contains(&SUBPROTOCOL) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "unsupported_subprotocol",
            "offer the chat.v1 subprotocol",
        ));
    }
    if let Some(token) = offered.iter().find_map(|p| p.strip_prefix(BEARER_PREFIX)) {
        return Ok((token, true));
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(chat_shared::auth::bearer_token);
    match bearer {
        Some(token) => Ok((token, !offered.is_empty())),
        None => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "send the access token as Sec-WebSocket-Protocol: chat.v1, bearer.<token>",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origins::Origin;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_token_comes_from_the_subprotocol_or_the_authorization_header() {
        let h = headers(&[(header::SEC_WEBSOCKET_PROTOCOL, "chat.v1, bearer.abc")]);
        assert_eq!(token(&h).unwrap(), ("abc", true));
        let h = headers(&[(header::AUTHORIZATION, "Bearer xyz")]);
        assert_eq!(token(&h).unwrap(), ("xyz", false));
        let h = headers(&[(header::AUTHORIZATION, "bearer xyz")]);
        assert_eq!(
            token(&h).unwrap(),
            ("xyz", false),
            "the scheme ignores case"
        );
        let h = headers(&[(header::SEC_WEBSOCKET_PROTOCOL, "bearer.abc")]);
        assert_eq!(token(&h).unwrap_err().code, "unsupported_subprotocol");
        assert_eq!(token(&HeaderMap::new()).unwrap_err().code, "missing_token");
    }

    #[test]
    fn origins_are_checked_against_the_list_never_the_host() {
        let list = Allowed::These(vec![Origin::parse("https://chat.example").unwrap()]);
        let ok = headers(&[(header::ORIGIN, "https://chat.example")]);
        assert!(check_origin(&ok, &list).is_ok());
        // A rebound name: its Host matches its Origin, which proves nothing.
        let rebound = headers(&[
            (header::ORIGIN, "http://evil.example"),
            (header::HOST, "evil.example"),
        ]);
        assert_eq!(
            check_origin(&rebound, &list).unwrap_err().code,
            "origin_not_allowed"
        );
        assert!(check_origin(&rebound, &Allowed::Any).is_ok());
        assert!(check_origin(&HeaderMap::new(), &list).is_ok());
    }
}
