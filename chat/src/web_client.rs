//! The web client as `chat` serves it: `index.html` at `/`, the plain
//! files beside it with the page's own extensions (never its tests or
//! `node_modules`), and `config.json`, which tells the page which gateways
//! it may use. Every file goes out with the headers that keep the page
//! where its operator put it: a Content-Security-Policy whose `connect-src`
//! is this origin and exactly the gateways of `config.json` (so no link can
//! send the page's token elsewhere) and `frame-ancestors 'none'`, and
//! `X-Frame-Options` for browsers without it. `nosniff` and no referrer
//! come from the api's layers, which wrap these answers too.

use std::path::{Path, PathBuf};

use axum::extract::Request;
use axum::http::header::{CONTENT_SECURITY_POLICY, X_FRAME_OPTIONS};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;

/// The extensions of the files the page is made of.
const SERVED: [&str; 6] = ["html", "js", "css", "png", "svg", "ico"];

/// The operator's configuration of the page.
const CONFIG: &str = "config.json";

/// `config.json`: what the page reads to find its gateways.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageConfig {
    /// Gateway URLs (`ws://` or `wss://`); empty: this origin's `/v1/ws`.
    #[serde(default)]
    gateways: Vec<String>,
}

/// The page's files and the headers they are served with.
#[derive(Debug)]
pub struct WebClient {
    dir: PathBuf,
    headers: HeaderMap,
}

impl WebClient {
    /// Reads `config.json` in `dir` (none: this origin only) and builds the
    /// headers from it; a config that cannot be used stops the start-up
    /// with the reason. `media` is the origin attachments are downloaded
    /// from when it is not this one (an S3 bucket's), which the page's
    /// images may load from.
    pub fn load(dir: &Path, media: Option<&str>) -> chat_shared::Result<Self> {
        let path = dir.join(CONFIG);
        let config: PageConfig = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| chat_shared::Error::Config(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PageConfig::default(),
            Err(e) => return Err(e.into()),
        };
        let mut connect = String::from("'self'");
        for gateway in &config.gateways {
            connect.push(' ');
            connect.push_str(&gateway_origin(gateway).ok_or_else(|| {
                chat_shared::Error::Config(format!(
                    "{}: gateway {gateway:?} is not a ws:// or wss:// URL",
                    path.display()
                ))
            })?);
        }
        // `blob:`: the page previews a file before it is uploaded.
        let mut images = String::from("'self' data: blob:");
        if let Some(origin) = media {
            images.push(' ');
            images.push_str(origin);
        }
        let policy = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; \
             connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&policy)
                .map_err(|e| chat_shared::Error::Config(format!("{}: {e}", path.display())))?,
        );
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        Ok(Self {
            dir: dir.to_owned(),
            headers,
        })
    }

    /// Serves one request for the page's files.
    pub async fn serve(&self, request: Request) -> Response {
        let name = match request.uri().path().trim_start_matches('/') {
            "" => "index.html",
            name => name,
        };
        let plain = !name.contains('/') && !name.starts_with('.');
        let served = name == CONFIG
            || name
                .rsplit_once('.')
                .is_some_and(|(_, ext)| SERVED.contains(&ext));
        if !(plain && served) {
            return StatusCode::NOT_FOUND.into_response();
        }
        let mut response = match ServeFile::new(self.dir.join(name)).oneshot(request).await {
            Ok(response) => response.into_response(),
            Err(never) => match never {},
        };
        response.headers_mut().extend(self.headers.clone());
        response
    }
}

/// The CSP source of a gateway URL: its scheme, host and port.
fn gateway_origin(url: &str) -> Option<String> {
    let uri: Uri = url.trim().parse().ok()?;
    let scheme = uri.scheme_str().filter(|s| matches!(*s, "ws" | "wss"))?;
    let authority = uri.authority()?;
    // No user info: a CSP source has none, and a gateway URL needs none.
    (!authority.as_str().contains('@')).then(|| format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_counts_by_its_websocket_origin_only() {
        assert_eq!(
            gateway_origin("wss://ws1.example.org/v1/ws").as_deref(),
            Some("wss://ws1.example.org")
        );
        assert_eq!(
            gateway_origin("ws://127.0.0.1:8082/v1/ws").as_deref(),
            Some("ws://127.0.0.1:8082")
        );
        for refused in [
            "http://example.org/v1/ws",
            "javascript:alert(1)",
            "/v1/ws",
            "ws://user@evil.example/v1/ws",
            "wss://a.example; script-src *",
        ] {
            assert_eq!(gateway_origin(refused), None, "{refused}");
        }
    }

    #[test]
    fn the_policy_lists_exactly_the_configured_gateways() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG),
            r#"{"gateways": ["wss://ws1.example.org/v1/ws", "ws://127.0.0.1:8082/v1/ws"]}"#,
        )
        .unwrap();
        let web = WebClient::load(dir.path(), None).unwrap();
        let policy = web.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            policy.contains("connect-src 'self' wss://ws1.example.org ws://127.0.0.1:8082;"),
            "{policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");

        std::fs::write(dir.path().join(CONFIG), r#"{"gateways": ["https://x"]}"#).unwrap();
        assert!(WebClient::load(dir.path(), None).is_err());
        std::fs::write(dir.path().join(CONFIG), r#"{"api": "http://evil"}"#).unwrap();
        assert!(
            WebClient::load(dir.path(), None).is_err(),
            "unknown keys are refused"
        );
        std::fs::remove_file(dir.path().join(CONFIG)).unwrap();
        let web = WebClient::load(dir.path(), None).unwrap();
        let policy = web.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("connect-src 'self';"), "{policy}");
        assert!(policy.contains("img-src 'self' data: blob:;"), "{policy}");
    }

    #[test]
    fn images_may_come_from_the_bucket_of_the_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let mut blobs = chat_shared::config::BlobsConfig {
            blobs: chat_shared::config::BlobsBackend::S3,
            s3_bucket: Some("files".into()),
            s3_endpoint: Some("https://s3.example.org:9000/base".into()),
            s3_path_style: true,
            ..Default::default()
        };
        let origin = chat_shared::blobs::download_origin(&blobs);
        assert_eq!(origin.as_deref(), Some("https://s3.example.org:9000"));
        let web = WebClient::load(dir.path(), origin.as_deref()).unwrap();
        let policy = web.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            policy.contains("img-src 'self' data: blob: https://s3.example.org:9000;"),
            "{policy}"
        );
        blobs.s3_path_style = false;
        assert_eq!(
            chat_shared::blobs::download_origin(&blobs).as_deref(),
            Some("https://files.s3.example.org:9000")
        );
        blobs.s3_endpoint = None;
        assert_eq!(
            chat_shared::blobs::download_origin(&blobs).as_deref(),
            Some("https://files.s3.us-east-1.amazonaws.com")
        );
        blobs.blobs = chat_shared::config::BlobsBackend::Fs;
        assert_eq!(chat_shared::blobs::download_origin(&blobs), None);
    }
}
