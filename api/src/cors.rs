//! Cross-origin access for third-party web clients: the api answers
//! browsers on the origins `CHAT_CORS_ORIGINS` lists (exact
//! `scheme://host[:port]`, comma-separated), preflights included, through
//! tower-http's CORS layer. Unset, no cross-origin page may read an answer
//! (browsers refuse without the headers), which is what a deployment that
//! serves its own web client wants.
//!
//! Credentials are bearer tokens in `Authorization`, never cookies, so
//! `Access-Control-Allow-Credentials` is not sent: a listed origin's page
//! gets only what its own token allows.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The variable that lists the origins.
pub const VARIABLE: &str = "CHAT_CORS_ORIGINS";

/// The origins in `value` (comma-separated; blanks between commas are
/// ignored), each as browsers send it in `Origin`: `http` or `https`, a
/// host, an optional port, no path and no trailing slash. The error names
/// the variable and the entry at fault.
pub fn origins(value: &str) -> chat_shared::Result<Vec<HeaderValue>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            origin(entry).ok_or_else(|| {
                chat_shared::Error::Config(format!(
                    "{VARIABLE}={value:?}: {entry:?} is not an origin (http[s]://host[:port], no path; `*` is not allowed)"
                ))
            })
        })
        .collect()
}

/// One origin, if `entry` is exactly one.
fn origin(entry: &str) -> Option<HeaderValue> {
    let rest = entry
        .strip_prefix("https://")
        .or_else(|| entry.strip_prefix("http://"))?;
    let (host, port) = match rest.rsplit_once(':') {
        // Not an IPv6 literal's colon: `[::1]:8080` splits after `]`.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !(host_ok && port_ok) {
        return None;
    }
    HeaderValue::from_str(entry).ok()
}

/// The layer answering `origins`, or `None` when there are none (no
/// cross-origin access: not even preflights are answered).
pub fn layer(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static(chat_shared::telemetry::TRACEPARENT),
            ])
            // What a client needs to read of a refusal or for support.
            .expose_headers([
                header::RETRY_AFTER,
                HeaderName::from_static(chat_shared::request_id::HEADER),
            ])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_origins_are_accepted() {
        let listed =
            origins(" https://app.example.org, http://127.0.0.1:3000,,http://[::1]:8080 ").unwrap();
        let listed: Vec<_> = listed.iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(
            listed,
            [
                "https://app.example.org",
                "http://127.0.0.1:3000",
                "http://[::1]:8080"
            ]
        );
        assert!(origins("").unwrap().is_empty());
        assert!(origins(" , ").unwrap().is_empty());
    }

    #[test]
    fn anything_else_names_the_variable() {
        for bad in [
            "*",
            "app.example.org",
            "https://app.example.org/",
            "https://app.example.org/path",
            "ftp://app.example.org",
            "https://",
            "https://app.example.org:0",
            "https://app.example.org:99999",
            "https://app example.org",
            "https://ok.example.org, nope",
        ] {
            let err = origins(bad).unwrap_err().to_string();
            assert!(err.starts_with("CHAT_CORS_ORIGINS="), "{bad}: {err}");
        }
    }
}
