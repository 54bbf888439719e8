//! The open-connections gauge, exactly. The metrics recorder is global to a
//! process and the tests in `tests/gateway/` run in parallel in one, so
//! there the gauge can only be checked as "at least". This binary holds a
//! single test, so nothing else opens or closes a session while it looks:
//! the gauge must read 0, then 1 while one client is connected, and 0 again
//! once it has closed, with the close counted under the code the gateway
//! sent.

#[allow(dead_code)]
#[path = "gateway/cluster.rs"]
mod cluster;

use std::time::{Duration, Instant};

use chat_shared::testing::metric;
use cluster::{Setup, TestCluster, WAIT};
use tokio_tungstenite::tungstenite::Message;

const GAUGE: &str = "chat_gateway_connections";
const CLOSED: &str = "chat_gateway_connections_closed_total";

/// Waits until the gateway's `/metrics` satisfies `pred`.
async fn until(cluster: &TestCluster, what: &str, pred: impl Fn(&str) -> bool) {
    let started = Instant::now();
    loop {
        let text = cluster.metrics(0).await;
        if pred(&text) {
            return;
        }
        assert!(started.elapsed() < WAIT, "{what}:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gauge_follows_one_session_from_open_to_close() {
    let cluster = TestCluster::start(Setup::EMBEDDED).await;
    let alice = cluster.user("alice").await;
    let room = cluster.room(&alice, &[]).await;
    assert_eq!(metric(&cluster.metrics(0).await, GAUGE, &[]), 0.0);

    let mut client = cluster.connect(&alice, 0).await;
    client.send_message(&room, "m1", "hello").await;
    let open = cluster.metrics(0).await;
    assert_eq!(metric(&open, GAUGE, &[]), 1.0, "{open}");
    assert_eq!(
        metric(&open, "chat_gateway_connections_opened_total", &[]),
        1.0
    );
    assert_eq!(metric(&open, CLOSED, &[]), 0.0);

    client.send_raw(Message::Close(None)).await;
    assert_eq!(client.closed().await.0, 1000);
    until(&cluster, "the gauge back at 0", |text| {
        metric(text, GAUGE, &[]) == 0.0
    })
    .await;
    let closed = cluster.metrics(0).await;
    assert_eq!(
        metric(&closed, CLOSED, &[("code", "1000")]),
        1.0,
        "{closed}"
    );
    assert_eq!(metric(&closed, CLOSED, &[]), 1.0, "{closed}");
}
