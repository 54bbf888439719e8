//! The conformance suite of the `Bus` port, run against both adapters: the
//! in-process bus and Redis pub/sub (on the shared server, under a prefix of
//! each test's own). Redis-only behaviour (reconnection) is at the end.

use std::time::Duration;

use bytes::Bytes;
use chat_shared::bus::{Bus, Delivery, MemoryBus, RedisBus, Topic};
use chat_shared::model::{RoomId, UserId};
use chat_shared::testing;
use tokio::sync::mpsc;

/// Longest any expected delivery may take.
const WAIT: Duration = Duration::from_secs(5);
/// How long silence must last to count as "nothing arrived".
const QUIET: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug)]
enum Adapter {
    Memory,
    Redis,
}

async fn bus(adapter: Adapter) -> Box<dyn Bus> {
    match adapter {
        Adapter::Memory => Box::new(MemoryBus::new()),
        Adapter::Redis => Box::new(testing::redis_bus().await),
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name(super::Adapter::Memory).await
            }
            #[tokio::test]
            async fn redis() {
                super::$name(super::Adapter::Redis).await
            }
        }
    )*};
}

conformance!(
    a_message_reaches_subscribers_of_its_topic_only,
    every_subscriber_gets_a_copy,
    unsubscribing_stops_delivery,
    one_publisher_is_received_in_order,
    a_batch_is_received_whole_and_in_order,
    a_dropped_subscriber_costs_nothing,
);

async fn next_message(rx: &mut mpsc::Receiver<Delivery>) -> (Topic, Bytes) {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(Delivery::Message { topic, payload })) => (topic, payload),
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn assert_quiet(rx: &mut mpsc::Receiver<Delivery>) {
    if let Ok(delivery) = tokio::time::timeout(QUIET, rx.recv()).await {
        panic!("expected nothing, got {delivery:?}");
    }
}

async fn a_message_reaches_subscribers_of_its_topic_only(adapter: Adapter) {
    let bus = bus(adapter).await;
    let (room, other) = (Topic::Room(RoomId::new()), Topic::Room(RoomId::new()));
    let (subscriber, mut rx) = bus.subscriber().await.unwrap();
    subscriber.subscribe(&[room]).await.unwrap();
    bus.publish(other, Bytes::from_static(b"elsewhere"))
        .await
        .unwrap();
    bus.publish(room, Bytes::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut rx).await,
        (room, Bytes::from_static(b"hello"))
    );
    assert_quiet(&mut rx).await;
}

async fn every_subscriber_gets_a_copy(adapter: Adapter) {
    let bus = bus(adapter).await;
    let user = Topic::User(UserId::new());
    let (first, mut first_rx) = bus.subscriber().await.unwrap();
    let (second, mut second_rx) = bus.subscriber().await.unwrap();
    first.subscribe(&[user, Topic::Presence]).await.unwrap();
    second.subscribe(&[user]).await.unwrap();
    bus.publish(user, Bytes::from_static(b"signal"))
        .await
        .unwrap();
    assert_eq!(next_message(&mut first_rx).await.1, "signal");
    assert_eq!(next_message(&mut second_rx).await.1, "signal");
    bus.publish(Topic::Presence, Bytes::from_static(b"online"))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut first_rx).await,
        (Topic::Presence, Bytes::from_static(b"online"))
    );
    assert_quiet(&mut second_rx).await;
}

async fn unsubscribing_stops_delivery(adapter: Adapter) {
    let bus = bus(adapter).await;
    let room = Topic::Room(RoomId::new());
    let (subscriber, mut rx) = bus.subscriber().await.unwrap();
    subscriber.subscribe(&[room]).await.unwrap();
    bus.publish(room, Bytes::from_static(b"1")).await.unwrap();
    assert_eq!(next_message(&mut rx).await.1, "1");
    subscriber.unsubscribe(&[room]).await.unwrap();
    bus.publish(room, Bytes::from_static(b"2")).await.unwrap();
    assert_quiet(&mut rx).await;
}

async fn one_publisher_is_received_in_order(adapter: Adapter) {
    let bus = bus(adapter).await;
    let room = Topic::Room(RoomId::new());
    let (subscriber, mut rx) = bus.subscriber().await.unwrap();
    subscriber.subscribe(&[room]).await.unwrap();
    for i in 0..500 {
        bus.publish(room, Bytes::from(i.to_string())).await.unwrap();
    }
    for i in 0..500 {
        assert_eq!(next_message(&mut rx).await.1, i.to_string());
    }
}

async fn a_batch_is_received_whole_and_in_order(adapter: Adapter) {
    let bus = bus(adapter).await;
    let rooms = [Topic::Room(RoomId::new()), Topic::Room(RoomId::new())];
    let (subscriber, mut rx) = bus.subscriber().await.unwrap();
    subscriber.subscribe(&rooms).await.unwrap();
    let batch: Vec<(Topic, Bytes)> = (0..300)
        .map(|i| (rooms[i % 2], Bytes::from(i.to_string())))
        .collect();
    bus.publish_many(batch.clone()).await.unwrap();
    for expected in batch {
        assert_eq!(next_message(&mut rx).await, expected);
    }
    assert_quiet(&mut rx).await;
}

async fn a_dropped_subscriber_costs_nothing(adapter: Adapter) {
    let bus = bus(adapter).await;
    let room = Topic::Room(RoomId::new());
    let (subscriber, rx) = bus.subscriber().await.unwrap();
    subscriber.subscribe(&[room]).await.unwrap();
    drop((subscriber, rx));
    // Publishing to nobody succeeds, and a new subscriber starts clean.
    bus.publish(room, Bytes::from_static(b"lost"))
        .await
        .unwrap();
    let (subscriber, mut rx) = bus.subscriber().await.unwrap();
    subscriber.subscribe(&[room]).await.unwrap();
    bus.publish(room, Bytes::from_static(b"kept"))
        .await
        .unwrap();
    assert_eq!(next_message(&mut rx).await.1, "kept");
}

/// Deployments sharing a Redis do not hear each other.
#[tokio::test]
async fn redis_prefixes_isolate_deployments() {
    let (ours, theirs) = (testing::redis_bus().await, testing::redis_bus().await);
    let room = Topic::Room(RoomId::new());
    let (subscriber, mut rx) = ours.subscriber().await.unwrap();
    subscriber.subscribe(&[room]).await.unwrap();
    theirs
        .publish(room, Bytes::from_static(b"theirs"))
        .await
        .unwrap();
    ours.publish(room, Bytes::from_static(b"ours"))
        .await
        .unwrap();
    assert_eq!(next_message(&mut rx).await.1, "ours");
    assert_quiet(&mut rx).await;
}

/// A killed pub/sub connection comes back by itself, still subscribed, and
/// says that it was away.
#[tokio::test]
async fn redis_subscription_survives_a_killed_connection() {
    // A Redis user of this test's own (any password) lets us kill exactly
    // its connections.
    let user = format!("chat-test-{}", uuid::Uuid::new_v4().simple());
    let admin = redis::Client::open(testing::redis_url()).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("ACL")
        .arg(&["SETUSER", &user, "on", "nopass", "~*", "&*", "+@all"][..])
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    let url = testing::redis_url().replacen("redis://", &format!("redis://{user}:any@"), 1);
    let bus = RedisBus::connect(&url, &testing::bus_prefix())
        .await
        .unwrap();
    let room = Topic::Room(RoomId::new());
    let (subscriber, mut rx) = bus.subscriber().await.unwrap();
    subscriber.subscribe(&[room]).await.unwrap();

    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "USER", &user][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 1, "no connection of {user} was killed");
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(Delivery::Resumed)) => {}
        other => panic!("expected Resumed, got {other:?}"),
    }
    // The publisher's connection was killed too; it reconnects on use.
    let mut delivered = false;
    for _ in 0..50 {
        if bus
            .publish(room, Bytes::from_static(b"after"))
            .await
            .is_ok()
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "publishing never recovered");
    assert_eq!(next_message(&mut rx).await.1, "after");
    redis::cmd("ACL")
        .arg(&["DELUSER", &user][..])
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
}

/// A Redis that stops answering (hung, or cut off without a reset) does not
/// hold a subscribe for ever: it fails after a bounded wait, and once Redis
/// answers again the subscription comes back with what was asked for.
#[tokio::test]
async fn redis_that_stops_answering_fails_a_subscribe_in_bounded_time() {
    let proxy = HangingProxy::start().await;
    let bus = RedisBus::connect(&proxy.url(), &testing::bus_prefix())
        .await
        .unwrap();
    let before = Topic::Room(RoomId::new());
    let during = Topic::Room(RoomId::new());
    let (subscriber, mut rx) = bus.subscriber().await.unwrap();
    subscriber.subscribe(&[before]).await.unwrap();

    proxy.hang(true);
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(WAIT, subscriber.subscribe(&[during]))
        .await
        .expect("a subscribe to a Redis that does not answer never returned");
    assert!(result.is_err(), "a subscribe nobody answered succeeded");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the subscribe failed only after {:?}",
        started.elapsed()
    );

    proxy.hang(false);
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(Delivery::Resumed)) => {}
        other => panic!("expected Resumed, got {other:?}"),
    }
    // Both topics are subscribed on the new connection.
    bus.publish(before, Bytes::from_static(b"one"))
        .await
        .unwrap();
    bus.publish(during, Bytes::from_static(b"two"))
        .await
        .unwrap();
    let mut got = vec![next_message(&mut rx).await, next_message(&mut rx).await];
    got.sort_by_key(|(_, payload)| payload.clone());
    assert_eq!(
        got,
        vec![(before, Bytes::from("one")), (during, Bytes::from("two"))]
    );
}

/// A TCP proxy to the test Redis that can stop passing on what clients
/// send (Redis then never answers), as a hung or unreachable server looks.
struct HangingProxy {
    addr: std::net::SocketAddr,
    hung: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HangingProxy {
    async fn start() -> Self {
        use redis::IntoConnectionInfo;
        let upstream = match testing::redis_url().into_connection_info().unwrap().addr() {
            redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            other => panic!("the test Redis is not on TCP: {other:?}"),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hung = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = hung.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, flag.clone()));
            }
        });
        Self { addr, hung }
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    fn hang(&self, hung: bool) {
        self.hung.store(hung, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Passes bytes both ways, dropping the client's while hung.
async fn relay(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    hung: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let mut buf = vec![0; 16 * 1024];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) if !hung.load(std::sync::atomic::Ordering::SeqCst) => {
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
            }
        }
    };
    let down = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        () = up => {}
        _ = down => {}
    }
}
