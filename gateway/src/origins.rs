//! Which browser origins may open a WebSocket: exact scheme, host and port,
//! never inferred from the request. The list is `CHAT_ALLOWED_ORIGINS` and
//! the public origin (`CHAT_PUBLIC_ORIGIN`, or, unset, the address the
//! gateway listens on, with `localhost` for a loopback or wildcard address).
//!
//! The `Host` header is not consulted: a page on a name an attacker
//! controls, pointed by DNS at this server (rebinding), sends a `Host` that
//! matches its own `Origin`, so "same host" proves nothing.

use std::net::SocketAddr;

/// A browser origin: `scheme://host[:port]`, the port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses an `Origin` header value or a configured origin (a trailing
    /// `/` is tolerated); `None` for anything else (`null`, a path, a
    /// scheme that is not http(s)).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_end_matches('/');
        let (scheme, authority) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return None;
        }
        // An IPv6 host is bracketed: its colons are not the port's.
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
            _ => (authority, default_port),
        };
        if host.is_empty() {
            return None;
        }
        Some(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The origins of pages served from `addr` itself: `http://` the
    /// address, and `localhost` too when it is loopback or a wildcard.
    pub fn of_listener(addr: SocketAddr) -> Vec<Self> {
        let http = |host: String| Self {
            scheme: "http".into(),
            host,
            port: addr.port(),
        };
        let ip = addr.ip();
        let mut own = vec![http(match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        })];
        if ip.is_loopback() || ip.is_unspecified() {
            own.push(http("localhost".into()));
            own.push(http("127.0.0.1".into()));
        }
        own.dedup();
        own
    }
}

/// The origins allowed to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// `*`: any origin.
    Any,
    /// Exactly these.
    These(Vec<Origin>),
}

impl Allowed {
    /// Whether a browser on `origin` (the header's value) may connect.
    pub fn admits(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::These(list) => Origin::parse(origin).is_some_and(|o| list.contains(&o)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let listed = Allowed::These(vec![Origin::parse("https://Chat.Example/").unwrap()]);
        for same in [
            "https://chat.example",
            "HTTPS://CHAT.EXAMPLE:443",
            "https://chat.example/",
        ] {
            assert!(listed.admits(same), "{same}");
        }
        for other in [
            "http://chat.example",
            "https://chat.example:8443",
            "https://chat.example.evil.example",
            "https://evil.example",
            "null",
            "chat.example",
            "https://user@chat.example",
        ] {
            assert!(!listed.admits(other), "{other}");
        }
        assert!(Allowed::Any.admits("https://anything.example"));
    }

    #[test]
    fn a_listener_is_its_own_origin_and_loopback_is_localhost_too() {
        let own = Origin::of_listener("127.0.0.1:8080".parse().unwrap());
        let allowed = Allowed::These(own);
        assert!(allowed.admits("http://127.0.0.1:8080"));
        assert!(allowed.admits("http://localhost:8080"));
        assert!(!allowed.admits("https://localhost:8080"), "another scheme");
        assert!(!allowed.admits("http://localhost:8081"), "another port");
        let public = Allowed::These(Origin::of_listener("192.0.2.7:80".parse().unwrap()));
        assert!(public.admits("http://192.0.2.7"));
        assert!(!public.admits("http://localhost"));
        let v6 = Allowed::These(Origin::of_listener("[::1]:8080".parse().unwrap()));
        assert!(v6.admits("http://[::1]:8080"));
    }
}
