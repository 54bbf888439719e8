//! A bus far away: every subscribe costs a long round trip. A crowd that
//! connects at once (a gateway restart, a reconnect storm) must not pay
//! one round trip per connection and room, and each connection must still
//! be subscribed to its rooms before it is told `hello`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chat_shared::bus::{Bus, Delivery, Subscriber, Topic};
use serde_json::json;
use tokio::sync::mpsc;

use crate::cluster::{Setup, TestCluster};

/// How long each subscribe or unsubscribe takes on the slow bus.
const ROUND_TRIP: Duration = Duration::from_millis(100);

/// Thirty users, each in a room of their own, connect to one gateway at
/// once: sixty new topics. Subscribing them one by one would take sixty
/// round trips; the hub subscribes what each batch needs in one call.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crowd_connecting_at_once_is_subscribed_in_few_round_trips() {
    const CROWD: usize = 30;
    let calls = Arc::new(AtomicUsize::new(0));
    let cluster = TestCluster::start_custom(
        Setup {
            gateways: 1,
            ..Setup::SCALED
        },
        // No head check to fall back on: only the bus brings what the api
        // publishes, so a room subscribed late loses its message.
        |config| config.head_check_interval = Duration::from_secs(3600),
        |bus| -> Arc<dyn Bus> {
            Arc::new(SlowBus {
                inner: bus,
                calls: calls.clone(),
            })
        },
    )
    .await;
    let mut people = Vec::new();
    for n in 0..CROWD {
        let user = cluster.user(&format!("crowd{n}")).await;
        let room = cluster.room(&user, &[]).await;
        people.push((user, room));
    }

    let before = calls.load(Ordering::SeqCst);
    let clients =
        futures::future::join_all(people.iter().map(|(user, _)| cluster.connect(user, 0))).await;
    let round_trips = calls.load(Ordering::SeqCst) - before;
    assert!(
        round_trips <= CROWD / 3,
        "{round_trips} bus round trips to route {CROWD} connections in {CROWD} rooms"
    );

    // Each has its `hello`, so its room is subscribed: a message sent over
    // REST reaches it (over the bus, the only way it can).
    for ((user, room), mut client) in people.iter().zip(clients) {
        let (status, body) = cluster
            .rest(
                user,
                "POST",
                &format!("/v1/rooms/{room}/messages"),
                json!({ "client_id": "over-rest", "body": "anyone there?" }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let message = client.messages(room, 1).await;
        assert_eq!(message[0]["body"], "anyone there?");
    }
}

/// A bus whose subscription changes each take [`ROUND_TRIP`], counted.
struct SlowBus {
    inner: Arc<dyn Bus>,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl Bus for SlowBus {
    async fn publish(&self, topic: Topic, payload: Bytes) -> chat_shared::Result<()> {
        self.inner.publish(topic, payload).await
    }

    async fn subscriber(
        &self,
    ) -> chat_shared::Result<(Box<dyn Subscriber>, mpsc::Receiver<Delivery>)> {
        let (inner, deliveries) = self.inner.subscriber().await?;
        let subscriber = SlowSubscriber {
            inner,
            calls: self.calls.clone(),
        };
        Ok((Box::new(subscriber), deliveries))
    }
}

struct SlowSubscriber {
    inner: Box<dyn Subscriber>,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl Subscriber for SlowSubscriber {
    async fn subscribe(&self, topics: &[Topic]) -> chat_shared::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(ROUND_TRIP).await;
        self.inner.subscribe(topics).await
    }

    async fn unsubscribe(&self, topics: &[Topic]) -> chat_shared::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(ROUND_TRIP).await;
        self.inner.unsubscribe(topics).await
    }
}
