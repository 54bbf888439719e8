//! Throw-away databases and buckets for tests (feature `testing`): each test
//! gets its own PostgreSQL database or SQLite file, and its own S3 bucket,
//! so tests run in parallel against one server without seeing each other.
//!
//! PostgreSQL is found at `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), Redis at `TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`), the S3-compatible server at
//! `TEST_S3_ENDPOINT` (default `http://127.0.0.1:9000`, with the key
//! `scripts/services` starts it with, or `TEST_S3_ACCESS_KEY_ID` /
//! `TEST_S3_SECRET_ACCESS_KEY`); each test namespaces its Redis channels
//! with a prefix of its own. When a service does not answer, tests fail
//! with a message saying so; they never skip.

use std::sync::Arc;

use sqlx::{Connection, Executor, PgConnection};

use crate::store::{self, Store};

/// The adapters a test can run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh database on the shared PostgreSQL server.
    Postgres,
    /// A fresh SQLite file in a temporary directory.
    Sqlite,
}

/// A database that exists for one test and is dropped after it.
pub struct TestDatabase {
    url: String,
    pg_name: Option<String>,
    dir: tempfile::TempDir,
}

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDatabase {
    /// Creates an empty database on `backend` (migrations run when a store
    /// opens it).
    pub async fn create(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}", dir.path().join("chat.db").display()),
                pg_name: None,
                dir,
            },
            Backend::Postgres => {
                let admin = admin_url();
                let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is not reachable at {admin} ({e}); start it \
                         (see README) or set TEST_POSTGRES_URL"
                    )
                });
                let name = format!("chat_test_{}", uuid::Uuid::new_v4().simple());
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("creating a test database");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                Self {
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                    dir,
                }
            }
        }
    }

    /// The URL to give `DATABASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A directory that lives as long as the database (for keys, data dirs).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Opens the store on this database, migrating it.
    pub async fn store(&self) -> Arc<dyn Store> {
        store::connect(&self.url, 5)
            .await
            .expect("opening the test store")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on;
        // a plain thread with its own small runtime does the clean-up.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a clean-up runtime");
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
                    let _ = conn
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The Redis the tests share.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A bus channel prefix no other test uses.
pub fn bus_prefix() -> String {
    format!("chat-test-{}", uuid::Uuid::new_v4().simple())
}

/// A Redis bus on the shared server under a fresh prefix.
pub async fn redis_bus() -> crate::bus::RedisBus {
    let url = redis_url();
    crate::bus::RedisBus::connect(&url, &bus_prefix())
        .await
        .unwrap_or_else(|e| {
            panic!("Redis is not reachable at {url} ({e}); start it (see README) or set TEST_REDIS_URL")
        })
}

/// The S3-compatible server the tests share.
pub fn s3_endpoint() -> String {
    std::env::var("TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

/// The settings of the S3 adapter on a new, empty bucket of the shared
/// server, addressed by path as self-hosted servers are.
pub async fn s3_bucket() -> crate::config::BlobsConfig {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let config = crate::config::BlobsConfig {
        blobs: crate::config::BlobsBackend::S3,
        s3_bucket: Some(format!("chat-test-{}", uuid::Uuid::new_v4().simple())),
        s3_endpoint: Some(s3_endpoint()),
        s3_access_key_id: Some(var("TEST_S3_ACCESS_KEY_ID", "chat-test")),
        s3_secret_access_key: Some(var("TEST_S3_SECRET_ACCESS_KEY", "chat-test-secret")),
        s3_path_style: true,
        ..crate::config::BlobsConfig::default()
    };
    let blobs = crate::blobs::S3Blobs::connect(&config).expect("configuring the test bucket");
    blobs.create_bucket().await.unwrap_or_else(|e| {
        panic!(
            "the S3-compatible server at {} cannot create a bucket ({e}); start it \
             (scripts/services) or set TEST_S3_ENDPOINT",
            s3_endpoint()
        )
    });
    config
}

/// The sum of every series named `name` in a Prometheus text exposition
/// (`/metrics`) that carries all of `labels`; 0 when none does. Tests in one
/// process share one recorder, so compare values before and after.
pub fn metric(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_sample)
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, value)| value)
        .sum()
}

/// One sample line: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(mut inner) = rest.strip_prefix('{') {
        // Label values are quoted and may hold `}` or `,` (route templates).
        loop {
            inner = inner.trim_start_matches(',');
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after_key) = inner.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after_key.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break i,
                    c => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            inner = &after_key[end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

#[cfg(test)]
mod tests {
    use super::metric;

    #[test]
    fn series_are_found_by_name_and_labels() {
        let text = "# TYPE x counter\n\
            chat_x{route=\"/v1/rooms/{id}\",status=\"200\"} 3\n\
            chat_x{route=\"/v1/rooms/{id}\",status=\"404\"} 1\n\
            chat_x_total 7\n\
            chat_y{q=\"a \\\"b\\\" c\"} 2.5\n";
        assert_eq!(metric(text, "chat_x", &[("route", "/v1/rooms/{id}")]), 4.0);
        assert_eq!(metric(text, "chat_x", &[("status", "200")]), 3.0);
        assert_eq!(metric(text, "chat_x_total", &[]), 7.0);
        assert_eq!(metric(text, "chat_y", &[("q", "a \"b\" c")]), 2.5);
        assert_eq!(metric(text, "chat_z", &[]), 0.0);
    }
}
