//! A bus far away: every subscribe costs a long round trip. A crowd that
//! connects at once (a gateway restart, a reconnect storm) must not pay
//! one round trip per connection and room, and each connection must still
//! be subscribed to its rooms before it is told `hello`. A bus that stops
//! answering subscribes must not stop the delivery of rooms already
//! subscribed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

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
        |bus| -> Arc<dyn Bus> { Arc::new(SlowBus::new(bus, calls.clone(), ROUND_TRIP)) },
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

/// A room's two members talk while the bus has stopped answering
/// subscribes (a Redis that hangs) and a third user is connecting, whose
/// topics the hub must subscribe: the message is delivered at once, and
/// only the newcomer waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bus_that_stops_answering_subscribes_delays_no_delivery() {
    const HUNG: Duration = Duration::from_secs(3);
    let calls = Arc::new(AtomicUsize::new(0));
    let bus = Arc::new(OnceLock::new());
    let cluster = TestCluster::start_custom(
        Setup {
            gateways: 1,
            ..Setup::SCALED
        },
        |_| {},
        |inner| -> Arc<dyn Bus> {
            let slow = Arc::new(SlowBus::new(inner, calls.clone(), Duration::ZERO));
            let _ = bus.set(slow.clone());
            slow
        },
    )
    .await;
    let alice = cluster.user("alice").await;
    let bob = cluster.user("bob").await;
    let carol = cluster.user("carol").await;
    let room = cluster.room(&alice, &[&bob]).await;
    let mut alice_client = cluster.connect(&alice, 0).await;
    let mut bob_client = cluster.connect(&bob, 0).await;

    bus.get().expect("the gateway made its bus").set_delay(HUNG);
    let started = Instant::now();
    let newcomer = async {
        let client = cluster.connect(&carol, 0).await;
        (client, started.elapsed())
    };
    let talk = async {
        // Carol's attach reaches the hub first, so its subscribe is the
        // one hanging while Alice's message is routed.
        tokio::time::sleep(Duration::from_millis(200)).await;
        alice_client.send_message(&room, "m1", "still here?").await;
        let message = bob_client.messages(&room, 1).await;
        (message, started.elapsed())
    };
    let ((_carol_client, carol_waited), (message, bob_waited)) = tokio::join!(newcomer, talk);

    assert_eq!(message[0]["body"], "still here?");
    assert!(
        bob_waited < HUNG - Duration::from_secs(1),
        "a member waited {bob_waited:?} for a message while a subscribe hung for {HUNG:?}"
    );
    assert!(
        carol_waited >= HUNG,
        "the newcomer was greeted after {carol_waited:?}, before its topics were subscribed"
    );
}

/// A bus whose subscription changes each take a set time, counted.
struct SlowBus {
    inner: Arc<dyn Bus>,
    calls: Arc<AtomicUsize>,
    /// Each change's delay in ms, shared with the subscribers made.
    delay_ms: Arc<AtomicU64>,
}

impl SlowBus {
    fn new(inner: Arc<dyn Bus>, calls: Arc<AtomicUsize>, delay: Duration) -> Self {
        let delay_ms = Arc::new(AtomicU64::new(delay.as_millis() as u64));
        Self {
            inner,
            calls,
            delay_ms,
        }
    }

    /// From now on, each change takes `delay`.
    fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
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
            delay_ms: self.delay_ms.clone(),
        };
        Ok((Box::new(subscriber), deliveries))
    }
}

struct SlowSubscriber {
    inner: Box<dyn Subscriber>,
    calls: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicU64>,
}

impl SlowSubscriber {
    async fn wait(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
}

#[async_trait]
impl Subscriber for SlowSubscriber {
    async fn subscribe(&self, topics: &[Topic]) -> chat_shared::Result<()> {
        self.wait().await;
        self.inner.subscribe(topics).await
    }

    async fn unsubscribe(&self, topics: &[Topic]) -> chat_shared::Result<()> {
        self.wait().await;
        self.inner.unsubscribe(topics).await
    }
}
