//! The delivery contract under failure: a bus that loses and reorders
//! messages (point 5), a killed Redis connection and a Redis restart
//! (point 5), a client that stops reading for a while (point 6), a gateway
//! drained under load (point 7), a half-open socket and a client that never
//! reads again. Each test checks what users would: every acknowledged
//! message reaches every member exactly once, in seq order, with no gap —
//! and nothing unacknowledged is stored.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chat_shared::bus::{Bus, Delivery, Subscriber, Topic, DELIVERY_QUEUE};
use chat_shared::testing;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

use crate::both_shapes;
use crate::cluster::{Setup, TestClient, TestCluster, User, WAIT};

both_shapes!(
    a_bus_that_loses_and_reorders_messages_loses_nothing,
    a_client_that_stops_reading_is_closed_and_resumes_without_loss,
);

/// The frame types of room log events (the frames that carry a room seq).
const ROOM_EVENTS: [&str; 5] = [
    "message",
    "member_joined",
    "member_left",
    "role_changed",
    "room_updated",
];

/// Longest a send may wait for its ack, whatever else is failing.
const ACK_WAIT: Duration = Duration::from_secs(3);
/// How soon after the last ack every member must have every event.
const SETTLE: Duration = Duration::from_secs(5);
/// Close codes of the protocol that these tests expect.
const RESTARTING: u16 = 1012;
const SLOW_CONSUMER: u16 = 1013;
const HEARTBEAT_TIMEOUT: u16 = 4000;

// ---------------------------------------------------------------------------
// Contract point 5: the bus drops and reorders; the gateways repair.

async fn a_bus_that_loses_and_reorders_messages_loses_nothing(setup: Setup) {
    const SENDERS: usize = 4;
    const EACH: usize = 40;
    // Messages sent over the REST api reach a gateway only over the bus
    // (WebSocket sends are also delivered by the gateway that took them).
    const BY_API: usize = 40;
    let mischief = Arc::new(Mischief::default());
    let seeds = AtomicU64::new(1);
    let cluster = TestCluster::start_custom(
        setup,
        |config| {
            config.gap_wait = Duration::from_millis(50);
            config.head_check_interval = Duration::from_millis(250);
        },
        |bus| -> Arc<dyn Bus> {
            Arc::new(LossyBus {
                inner: bus,
                seed: seeds.fetch_add(1, Ordering::Relaxed),
                mischief: mischief.clone(),
            })
        },
    )
    .await;
    let crowd = Crowd::gather(&cluster, SENDERS, &["bot"]).await;
    let (room, bot) = (crowd.room.clone(), crowd.extras[0].clone());
    let total = SENDERS * EACH + BY_API;
    let expected = crowd.expected(total);
    let progress = Progress::new();
    let traffic = Traffic::start(crowd, EACH, "lossy", &progress, *expected.last().unwrap());

    let mut by_api = Vec::new();
    for n in 0..BY_API {
        let (status, event) = cluster
            .rest(
                &bot,
                "POST",
                &format!("/v1/rooms/{room}/messages"),
                json!({ "client_id": format!("bot-{n}"), "body": "over rest" }),
            )
            .await;
        assert_eq!(status, 201, "{event}");
        by_api.push(event["seq"].as_i64().unwrap());
        progress.tick();
    }
    progress.reached(total).await;
    let (mut members, mut acked) = traffic.finish(SETTLE).await;
    acked.extend(by_api);
    acked.sort_unstable();
    assert_eq!(acked, expected, "acknowledged seqs");
    assert_everyone_received(&members, &expected);
    fence(&mut members, &expected).await;
    // The fault really happened.
    let (dropped, delayed) = mischief.counts();
    assert!(
        dropped > 10 && delayed > 10,
        "{dropped} dropped, {delayed} delayed"
    );
}

/// What a [`LossyBus`] did to deliveries.
#[derive(Default)]
struct Mischief {
    dropped: AtomicUsize,
    delayed: AtomicUsize,
}

impl Mischief {
    fn counts(&self) -> (usize, usize) {
        (
            self.dropped.load(Ordering::Relaxed),
            self.delayed.load(Ordering::Relaxed),
        )
    }
}

/// A bus whose subscriptions lose about a fifth of the messages and hand
/// others over late, behind later ones: what Redis pub/sub does around
/// reconnects and between publishers, made frequent. Each subscription
/// draws its faults from a seeded pseudo-random sequence. Publishing is
/// untouched.
struct LossyBus {
    inner: Arc<dyn Bus>,
    seed: u64,
    mischief: Arc<Mischief>,
}

#[async_trait]
impl Bus for LossyBus {
    async fn publish(&self, topic: Topic, payload: Bytes) -> chat_shared::Result<()> {
        self.inner.publish(topic, payload).await
    }

    async fn subscriber(
        &self,
    ) -> chat_shared::Result<(Box<dyn Subscriber>, mpsc::Receiver<Delivery>)> {
        let (subscriber, deliveries) = self.inner.subscriber().await?;
        let (scrambled, out) = mpsc::channel(DELIVERY_QUEUE);
        tokio::spawn(scramble(
            deliveries,
            scrambled,
            Rng::new(self.seed),
            self.mischief.clone(),
        ));
        Ok((subscriber, out))
    }
}

/// Most later deliveries that overtake a held-back one.
const OVERTAKERS: u64 = 4;
/// Longest a held-back delivery waits when nothing comes after it.
const HOLD_MAX: Duration = Duration::from_millis(100);

/// Forwards deliveries, dropping 20% of the messages and holding back
/// another 20% (one at a time) until 1 to 4 later ones have passed.
async fn scramble(
    mut input: mpsc::Receiver<Delivery>,
    output: mpsc::Sender<Delivery>,
    mut rng: Rng,
    mischief: Arc<Mischief>,
) {
    // The delivery held back, and how many more may overtake it.
    let mut held: Option<(Delivery, u64)> = None;
    loop {
        let next = if held.is_some() {
            match timeout(HOLD_MAX, input.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    let (late, _) = held.take().expect("a delivery is held");
                    if output.send(late).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
        } else {
            input.recv().await
        };
        let Some(delivery) = next else { return };
        // `Resumed` is never lost: it is what tells the hub to catch up.
        if matches!(delivery, Delivery::Message { .. }) {
            let roll = rng.below(100);
            if roll < 20 {
                mischief.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if roll < 40 && held.is_none() {
                mischief.delayed.fetch_add(1, Ordering::Relaxed);
                held = Some((delivery, 1 + rng.below(OVERTAKERS)));
                continue;
            }
        }
        if output.send(delivery).await.is_err() {
            return;
        }
        if let Some((_, overtakers)) = held.as_mut() {
            *overtakers -= 1;
            if *overtakers == 0 {
                let (late, _) = held.take().expect("a delivery is held");
                if output.send(late).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// xorshift64: enough randomness for scheduling faults, and repeatable.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---------------------------------------------------------------------------
// Contract point 5: Redis itself fails.

/// The pub/sub connections die mid-stream (the gateways' publishing ones
/// too); they come back by themselves and the gap is read from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_redis_connection_loses_nothing() {
    const SENDERS: usize = 4;
    const EACH: usize = 50;
    let redis_user = RedisUser::create().await;
    let cluster = TestCluster::start_on_redis(Setup::SCALED, &redis_user.url, |config| {
        config.head_check_interval = Duration::from_secs(1);
    })
    .await;
    let crowd = Crowd::gather(&cluster, SENDERS, &[]).await;
    let total = SENDERS * EACH;
    let expected = crowd.expected(total);
    let progress = Progress::new();
    let traffic = Traffic::start(crowd, EACH, "kill", &progress, *expected.last().unwrap());

    progress.reached(total / 4).await;
    let killed = redis_user.kill_connections().await;
    // At least the two gateways' subscriptions.
    assert!(killed >= 2, "only {killed} connections killed");
    // Sends keep being acknowledged (each within ACK_WAIT) ...
    progress.reached(total).await;
    // ... and within seconds every member has every event.
    let (mut members, mut acked) = traffic.finish(SETTLE).await;
    acked.sort_unstable();
    assert_eq!(acked, expected, "acknowledged seqs");
    assert_everyone_received(&members, &expected);
    fence(&mut members, &expected).await;
}

/// Redis goes away for a while and comes back empty on the same port:
/// sends are acknowledged throughout (the store is the truth), and once
/// Redis is back every member has every event within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_and_restarted_loses_nothing() {
    const SENDERS: usize = 4;
    const EACH: usize = 50;
    let mut redis = PrivateRedis::start().await;
    let cluster = TestCluster::start_on_redis(Setup::SCALED, &redis.url(), |config| {
        config.head_check_interval = Duration::from_secs(1);
    })
    .await;
    let crowd = Crowd::gather(&cluster, SENDERS, &[]).await;
    let total = SENDERS * EACH;
    let expected = crowd.expected(total);
    let progress = Progress::new();
    let traffic = Traffic::start(crowd, EACH, "outage", &progress, *expected.last().unwrap());

    progress.reached(total / 5).await;
    redis.stop().await;
    // Acks continue with Redis down: a good share of the sends happen now.
    progress.reached(total * 3 / 5).await;
    redis.restart().await;
    progress.reached(total).await;
    let (mut members, mut acked) = traffic.finish(SETTLE).await;
    acked.sort_unstable();
    assert_eq!(acked, expected, "acknowledged seqs");
    assert_everyone_received(&members, &expected);
    fence(&mut members, &expected).await;
    redis.stop().await;
}

/// A Redis ACL user of one test's own on the shared server: the cluster
/// connects as it, so the test can kill exactly its connections.
struct RedisUser {
    name: String,
    /// The shared Redis, as this user (any password).
    url: String,
}

impl RedisUser {
    async fn create() -> Self {
        let name = format!("chat-test-{}", uuid::Uuid::new_v4().simple());
        redis::cmd("ACL")
            .arg(&["SETUSER", &name, "on", "nopass", "~*", "&*", "+@all"][..])
            .query_async::<()>(&mut admin().await)
            .await
            .expect("creating a Redis user");
        let url = testing::redis_url().replacen("redis://", &format!("redis://{name}:any@"), 1);
        Self { name, url }
    }

    /// Kills every connection of this user; returns how many there were.
    async fn kill_connections(&self) -> i64 {
        redis::cmd("CLIENT")
            .arg(&["KILL", "USER", &self.name][..])
            .query_async(&mut admin().await)
            .await
            .expect("killing Redis connections")
    }
}

impl Drop for RedisUser {
    fn drop(&mut self) {
        // Drop cannot await; a plain connection on a thread of its own
        // removes the user (and whatever connections it still has).
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let client = redis::Client::open(testing::redis_url()).ok()?;
            let mut connection = client.get_connection().ok()?;
            redis::cmd("ACL")
                .arg(&["DELUSER", &name][..])
                .query::<()>(&mut connection)
                .ok()
        });
        let _ = cleanup.join();
    }
}

/// A connection to the shared Redis with its default user.
async fn admin() -> redis::aio::MultiplexedConnection {
    let url = testing::redis_url();
    redis::Client::open(url.as_str())
        .expect("a valid TEST_REDIS_URL")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis is not reachable at {url} ({e})"))
}

/// A redis-server of one test's own on a free loopback port, so the test
/// can stop and restart it; killed when dropped.
struct PrivateRedis {
    port: u16,
    server: Option<tokio::process::Child>,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let mut redis = Self { port, server: None };
        redis.restart().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, empty) and waits until it accepts
    /// connections.
    async fn restart(&mut self) {
        let mut server = tokio::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting redis-server (see README)");
        let ready = timeout(WAIT, async {
            loop {
                if let Ok(Some(status)) = server.try_wait() {
                    panic!("redis-server on port {} exited: {status}", self.port);
                }
                if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        ready.expect("redis-server did not start listening");
        self.server = Some(server);
    }

    /// Kills the server, as a crash would.
    async fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill().await.expect("killing redis-server");
        }
    }
}

// ---------------------------------------------------------------------------
// Contract point 6: a slow consumer is cut off and resumes.

async fn a_client_that_stops_reading_is_closed_and_resumes_without_loss(setup: Setup) {
    const SENDERS: usize = 2;
    const EACH: usize = 150;
    // 300 messages of 20 kB outgrow what the kernel buffers between the
    // gateway and a client that does not read (a few MB at most).
    const BODY: usize = 20_000;
    let cluster = TestCluster::start_with(setup, |config| {
        config.outbound_queue = 16;
        config.common.max_body_chars = BODY;
    })
    .await;
    let crowd = Crowd::gather(&cluster, SENDERS, &["slow"]).await;
    let slow_user = crowd.extras[0].clone();
    let total = SENDERS * EACH;
    let expected = crowd.expected(total);
    let client =
        TestClient::connect_with_receive_buffer(&cluster.gateways[0], &slow_user.token, 4096)
            .await
            .expect("connecting the slow client");
    // It syncs (so it is live before the traffic starts, as a real client
    // is: without a first frame its events would wait for the sync grace
    // and then come from the store, where no queue can overflow), then keeps
    // its socket open but reads nothing until the others are done.
    let mut slow = Member::new(&cluster, &slow_user, "slow", &crowd.room, 0, client);
    let sync = json!({ "type": "sync", "rooms": { slow.room.clone(): slow.last } });
    slow.client.send(sync).await;
    slow.syncing = true;
    let progress = Progress::new();
    let body = "x".repeat(BODY);
    let traffic = Traffic::start(crowd, EACH, &body, &progress, *expected.last().unwrap());
    progress.reached(total).await;
    let (mut members, mut acked) = traffic.finish(SETTLE * 2).await;
    acked.sort_unstable();
    assert_eq!(acked, expected, "acknowledged seqs");
    assert_everyone_received(&members, &expected);

    // Now it reads: what was in flight, then the close; it resumes with
    // `sync` from the last event it got.
    timeout(
        SETTLE * 2,
        slow.receive_through(*expected.last().unwrap(), 0),
    )
    .await
    .expect("the slow client did not catch up in time");
    assert_eq!(slow.closes, [SLOW_CONSUMER], "the slow client's closes");
    slow.assert_received(&expected);
    members.push(slow);
    fence(&mut members, &expected).await;
}

// ---------------------------------------------------------------------------
// Contract point 7: a gateway drained under load.

/// Gateway 0 is told to stop while everyone sends: its clients get 1012
/// while `/readyz` already turns load balancers away, they resume on
/// gateway 1 with `sync` and retry the send that was cut off (same
/// `client_id`), and nobody misses or repeats anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_gateway_hands_its_clients_over_without_loss() {
    const SENDERS: usize = 4;
    const EACH: usize = 60;
    let mut cluster = TestCluster::start(Setup::SCALED).await;
    let crowd = Crowd::gather(&cluster, SENDERS, &[]).await;
    let total = SENDERS * EACH;
    let expected = crowd.expected(total);
    let progress = Progress::new();
    // Everyone whose gateway goes away reconnects to gateway 1.
    let traffic = Traffic::start_moving(
        crowd,
        EACH,
        "drain",
        &progress,
        *expected.last().unwrap(),
        Some(1),
    );
    progress.reached(total / 3).await;
    cluster.stop_gateway(0);
    progress.reached(total).await;
    let (mut members, mut acked) = traffic.finish(SETTLE).await;
    // Retries of sends cut off by the drain kept their seq: nothing twice.
    acked.sort_unstable();
    assert_eq!(acked, expected, "acknowledged seqs");
    for member in &members {
        member.assert_received(&expected);
        let closes: &[u16] = if member.home == 0 { &[RESTARTING] } else { &[] };
        assert_eq!(member.closes, closes, "{}'s closes", member.name);
    }
    fence(&mut members, &expected).await;
}

// ---------------------------------------------------------------------------
// Half-open connections.

/// A client that completed the handshake and then went silent (not even
/// answering pings) is closed within two heartbeat intervals, while members
/// that answer pings stay connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_half_open_connection_is_closed_within_two_heartbeats() {
    const HEARTBEAT: Duration = Duration::from_millis(300);
    let cluster = TestCluster::start_with(Setup::EMBEDDED, |config| {
        config.heartbeat_interval = HEARTBEAT;
    })
    .await;
    let (alice, bob) = (cluster.user("alice").await, cluster.user("bob").await);
    let ghost_user = cluster.user("ghost").await;
    let room = cluster.room(&alice, &[&bob, &ghost_user]).await;
    let mut alice_client = cluster.connect(&alice, 0).await;
    let mut bob_client = cluster.connect(&bob, 0).await;

    // From before the handshake: the server's silence clock starts later.
    let opened = Instant::now();
    let mut ghost = Ghost::connect(&cluster.gateways[0], &ghost_user.token).await;
    let (pings, code) = tokio::select! {
        ended = timeout(WAIT, ghost.until_closed()) => ended.expect("the half-open connection was never closed"),
        () = keep_reading(&mut alice_client) => panic!("alice was disconnected: {:?}", alice_client.closed),
        () = keep_reading(&mut bob_client) => panic!("bob was disconnected: {:?}", bob_client.closed),
    };
    let lasted = opened.elapsed();
    assert_eq!(code, Some(HEARTBEAT_TIMEOUT), "the close frame's code");
    assert!(pings >= 1, "the server never pinged");
    // Closed once silent for 1.25 intervals (never sooner: a live client
    // answers each ping within a round trip), checked every half interval.
    assert!(
        lasted >= HEARTBEAT * 5 / 4 && lasted <= HEARTBEAT * 2 + Duration::from_millis(500),
        "closed after {lasted:?}, heartbeat {HEARTBEAT:?}"
    );
    // Those who answered pings are still there, live.
    let ack = alice_client
        .send_message(&room, "after", "still here")
        .await;
    let live = bob_client.messages(&room, 1).await;
    assert_eq!(live[0]["seq"], ack["seq"]);
}

/// A client that stops reading for good (its socket full, its pings
/// unanswered: a frozen app, a vanished phone) does not hold on to the
/// gateway: its session ends within a few heartbeat intervals and frees its
/// connection slot, whatever its socket still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_never_reads_again_is_let_go() {
    const HEARTBEAT: Duration = Duration::from_secs(1);
    const BODY: usize = 20_000;
    let cluster = TestCluster::start_with(Setup::EMBEDDED, |config| {
        config.heartbeat_interval = HEARTBEAT;
        config.common.max_body_chars = BODY;
        // Alice and the frozen client fill the gateway.
        config.max_connections = 2;
    })
    .await;
    let (alice, carol) = (cluster.user("alice").await, cluster.user("carol").await);
    let frozen_user = cluster.user("frozen").await;
    let room = cluster.room(&alice, &[&frozen_user, &carol]).await;
    let gateway = &cluster.gateways[0];
    let mut alice_client = cluster.connect(&alice, 0).await;
    let _frozen = TestClient::connect_with_receive_buffer(gateway, &frozen_user.token, 4096)
        .await
        .expect("connecting the frozen client");
    assert!(
        TestClient::connect(gateway, &carol.token).await.is_err(),
        "a third connection was admitted"
    );
    // 6 MB for the frozen client: more than the kernel buffers hold, so
    // its session's writes stall (well before its silence alone would end
    // it).
    let body = "x".repeat(BODY);
    for n in 0..300 {
        alice_client
            .send_message(&room, &format!("m{n}"), &body)
            .await;
    }
    let admitted = async {
        loop {
            if let Ok(client) = TestClient::connect(gateway, &carol.token).await {
                return client;
            }
            // The frozen session needs time to give up.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        carol = timeout(HEARTBEAT * 3, admitted) => {
            carol.expect("the frozen client still holds its slot");
        }
        () = keep_reading(&mut alice_client) => panic!("alice was disconnected: {:?}", alice_client.closed),
    }
}

/// Reads (and so answers pings) until the connection ends.
async fn keep_reading(client: &mut TestClient) {
    while client.next().await.is_some() {}
}

/// A WebSocket client written by hand over TCP: it completes the handshake,
/// then only reads. It never writes again, so it never answers a ping.
struct Ghost {
    socket: BufReader<TcpStream>,
}

impl Ghost {
    async fn connect(ws_url: &str, token: &str) -> Self {
        let authority = ws_url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .expect("a ws:// URL");
        let mut socket = TcpStream::connect(authority).await.unwrap();
        let request = format!(
            "GET /v1/ws HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut socket = BufReader::new(socket);
        let mut status = String::new();
        socket.read_line(&mut status).await.unwrap();
        assert!(status.starts_with("HTTP/1.1 101"), "handshake: {status}");
        loop {
            let mut header = String::new();
            socket.read_line(&mut header).await.unwrap();
            if header == "\r\n" || header.is_empty() {
                break;
            }
        }
        Self { socket }
    }

    /// Reads frames until the server ends the TCP connection; returns how
    /// many pings came and the code of the close frame, if one came.
    async fn until_closed(&mut self) -> (usize, Option<u16>) {
        let (mut pings, mut code) = (0, None);
        // End of stream or a reset: the server let go.
        while let Ok(Some((opcode, payload))) = self.frame().await {
            match opcode {
                0x9 => pings += 1,
                0x8 if payload.len() >= 2 => {
                    code = Some(u16::from_be_bytes([payload[0], payload[1]]))
                }
                _ => {}
            }
        }
        (pings, code)
    }

    /// One frame (servers do not mask), or `None` at the end of the stream.
    async fn frame(&mut self) -> std::io::Result<Option<(u8, Vec<u8>)>> {
        let mut head = [0u8; 2];
        if let Err(e) = self.socket.read_exact(&mut head).await {
            return match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Ok(None),
                _ => Err(e),
            };
        }
        let len = match head[1] & 0x7f {
            126 => u64::from(self.socket.read_u16().await?),
            127 => self.socket.read_u64().await?,
            len => u64::from(len),
        };
        let mut payload = vec![0; len as usize];
        self.socket.read_exact(&mut payload).await?;
        Ok(Some((head[0] & 0x0f, payload)))
    }
}

// ---------------------------------------------------------------------------
// Members, traffic and the checks users would make.

/// A room member as a client app keeps it: one connection at a time, and
/// every room event it was handed, across reconnections.
struct Member {
    name: String,
    token: String,
    room: String,
    /// Every gateway's URL, to reconnect anywhere.
    gateways: Vec<String>,
    /// The gateway it first connected to.
    home: usize,
    /// The gateway it is connected to now.
    gateway: usize,
    client: TestClient,
    /// Seqs of the room's events as they arrived, across connections.
    seqs: Vec<i64>,
    /// The events it showed its user, by seq: each must be the one after
    /// the last (docs/protocol.md, "The delivery contract").
    shown: Vec<i64>,
    /// The highest seq shown: where a `sync` resumes.
    last: i64,
    /// A `sync` is under way (sent, its `synced` not yet received): only
    /// then may an event arrive that does not follow the last one.
    syncing: bool,
    /// Close codes of the connections the server ended.
    closes: Vec<u16>,
}

impl Member {
    fn new(
        cluster: &TestCluster,
        user: &User,
        name: &str,
        room: &str,
        gateway: usize,
        client: TestClient,
    ) -> Self {
        let last = client.heads()[room];
        Self {
            name: name.to_owned(),
            token: user.token.clone(),
            room: room.to_owned(),
            gateways: cluster.gateways.clone(),
            home: gateway,
            gateway,
            client,
            seqs: Vec::new(),
            shown: Vec::new(),
            last,
            syncing: false,
            closes: Vec::new(),
        }
    }

    async fn connect(
        cluster: &TestCluster,
        user: &User,
        name: &str,
        room: &str,
        gateway: usize,
    ) -> Self {
        let client = cluster.connect(user, gateway).await;
        let mut member = Self::new(cluster, user, name, room, gateway, client);
        // As a real client does on every connection: sync from what it has
        // (here the head `hello` gave), which also starts live delivery.
        let sync = json!({ "type": "sync", "rooms": { member.room.clone(): member.last } });
        member.client.send(sync).await;
        member.syncing = true;
        member
    }

    /// The next frame, noting room events; `None` once the server closed
    /// the connection (its code is then in `closes`).
    async fn next(&mut self) -> Option<Value> {
        let Some(frame) = self.client.next().await else {
            let (code, _) = self.client.closed.clone().expect("a closed client");
            self.closes.push(code);
            return None;
        };
        assert_ne!(frame["type"], "error", "{}: {frame}", self.name);
        if frame["room_id"] != self.room.as_str() {
            return Some(frame);
        }
        let kind = frame["type"].as_str().unwrap_or_default();
        if ROOM_EVENTS.contains(&kind) {
            let seq = frame["seq"].as_i64().expect("room events have a seq");
            self.seqs.push(seq);
            // Contract point 3, strictly: even around a resume, the replay
            // comes before any live event, so every event is the next one.
            assert_eq!(
                seq,
                self.last + 1,
                "{}: event {seq} after {} (syncing: {})",
                self.name,
                self.last,
                self.syncing
            );
            self.shown.push(seq);
            self.last = seq;
        } else if kind == "synced" {
            assert_eq!(
                frame["seq"], self.last,
                "{}: synced, but the replay ended elsewhere",
                self.name
            );
            self.syncing = false;
        }
        Some(frame)
    }

    /// Sends a message and reads until its ack: `Ok(seq)`, or `Err(code)`
    /// when the server closed the connection first.
    async fn send(&mut self, client_id: &str, body: &str) -> Result<i64, u16> {
        let frame =
            json!({ "type": "send", "room_id": self.room, "client_id": client_id, "body": body });
        let name = self.name.clone();
        let acked = timeout(ACK_WAIT, async {
            if !self.client.try_send(frame).await {
                while self.next().await.is_some() {}
                return Err(*self.closes.last().expect("a close"));
            }
            loop {
                let Some(frame) = self.next().await else {
                    return Err(*self.closes.last().expect("a close"));
                };
                if frame["type"] == "ack" && frame["client_id"] == client_id {
                    return Ok(frame["seq"].as_i64().expect("acks have a seq"));
                }
            }
        })
        .await;
        acked.unwrap_or_else(|_| panic!("{name}: no ack for {client_id} within {ACK_WAIT:?}"))
    }

    /// After the server closed the connection: connects to gateway `to` and
    /// resumes with `sync`, as a client app would.
    async fn resume(&mut self, to: usize) {
        let code = *self.closes.last().expect("a close");
        assert!(
            self.closes.len() <= 2,
            "{}: closed again and again: {:?}",
            self.name,
            self.closes
        );
        if code == RESTARTING {
            // The load balancer must already have stopped sending anyone
            // there.
            assert_not_ready(&self.gateways[self.gateway]).await;
        }
        self.gateway = to;
        self.client = TestClient::connect(&self.gateways[to], &self.token)
            .await
            .unwrap_or_else(|e| panic!("{}: reconnecting to gateway {to}: {e}", self.name));
        let sync = json!({ "type": "sync", "rooms": { self.room.clone(): self.last } });
        self.client.send(sync).await;
        self.syncing = true;
    }

    /// Reads until the room's event `seq` has arrived, resuming on gateway
    /// `to` whenever the server closes the connection.
    async fn receive_through(&mut self, seq: i64, to: usize) {
        while self.last < seq {
            if self.next().await.is_none() {
                self.resume(to).await;
            }
        }
    }

    /// Asserts the member showed exactly `expected`, in order.
    fn assert_received(&self, expected: &[i64]) {
        if self.shown == expected {
            return;
        }
        let at = self
            .shown
            .iter()
            .zip(expected)
            .position(|(got, want)| got != want)
            .unwrap_or(self.shown.len().min(expected.len()));
        let around = |seqs: &[i64]| seqs[at.saturating_sub(3)..(at + 4).min(seqs.len())].to_vec();
        panic!(
            "{}: showed {} events where {} were expected; first difference at #{at}: \
             got …{:?}…, expected …{:?}… (closes {:?}, {} arrived)",
            self.name,
            self.shown.len(),
            expected.len(),
            around(&self.shown),
            around(expected),
            self.closes,
            self.seqs.len(),
        );
    }
}

/// Every member showed exactly `expected` and was never disconnected.
fn assert_everyone_received(members: &[Member], expected: &[i64]) {
    for member in members {
        member.assert_received(expected);
        assert!(
            member.closes.is_empty(),
            "{} was disconnected: {:?}",
            member.name,
            member.closes
        );
    }
}

/// `/readyz` of the gateway at `ws_url` turns load balancers away: 503, or
/// no connection at all.
async fn assert_not_ready(ws_url: &str) {
    let url = ws_url
        .replacen("ws://", "http://", 1)
        .replacen("/v1/ws", "/readyz", 1);
    match timeout(WAIT, reqwest::get(&url))
        .await
        .expect("/readyz hung")
    {
        Ok(response) => assert_eq!(response.status(), 503, "{url}"),
        Err(e) => assert!(e.is_connect(), "{url}: {e}"),
    }
}

/// A room with two pure listeners (the owner on the first gateway, a
/// watcher on the last) and senders spread over the gateways, all connected.
struct Crowd {
    room: String,
    listeners: Vec<Member>,
    senders: Vec<Member>,
    /// Members of the room that are not connected (yet), by name given.
    extras: Vec<User>,
    /// The room's last seq before the traffic.
    base: i64,
}

impl Crowd {
    async fn gather(cluster: &TestCluster, senders: usize, extras: &[&str]) -> Self {
        let owner = cluster.user("owner").await;
        let watcher = cluster.user("watcher").await;
        let mut users = Vec::new();
        for i in 0..senders {
            users.push(cluster.user(&format!("sender{i}")).await);
        }
        let mut extra_users = Vec::new();
        for name in extras {
            extra_users.push(cluster.user(name).await);
        }
        let joining: Vec<&User> = [&watcher]
            .into_iter()
            .chain(&users)
            .chain(&extra_users)
            .collect();
        let room = cluster.room(&owner, &joining).await;
        let last_gateway = cluster.gateways.len() - 1;
        let listeners = vec![
            Member::connect(cluster, &owner, "owner", &room, 0).await,
            Member::connect(cluster, &watcher, "watcher", &room, last_gateway).await,
        ];
        let mut connected = Vec::new();
        for (i, user) in users.iter().enumerate() {
            let gateway = i % cluster.gateways.len();
            connected
                .push(Member::connect(cluster, user, &format!("sender{i}"), &room, gateway).await);
        }
        let base = listeners[0].last;
        Self {
            room,
            listeners,
            senders: connected,
            extras: extra_users,
            base,
        }
    }

    /// The seqs `count` events after the base.
    fn expected(&self, count: usize) -> Vec<i64> {
        (self.base + 1..=self.base + count as i64).collect()
    }
}

/// Counts acknowledged sends across tasks, so a test can strike mid-stream.
#[derive(Clone)]
struct Progress(Arc<watch::Sender<usize>>);

impl Progress {
    fn new() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }

    fn tick(&self) {
        self.0.send_modify(|acked| *acked += 1);
    }

    /// Waits until `count` sends have been acknowledged.
    async fn reached(&self, count: usize) {
        let mut acked = self.0.subscribe();
        timeout(WAIT, acked.wait_for(|acked| *acked >= count))
            .await
            .unwrap_or_else(|_| panic!("sends stalled before {count} acks"))
            .expect("the counter lives");
    }
}

/// A crowd at work: every sender sends its messages one after the other,
/// then every member reads until it has the room's events through `last`.
/// Each member runs in a task of its own, so all keep reading throughout.
struct Traffic {
    senders: Vec<JoinHandle<(Member, Vec<i64>)>>,
    listeners: Vec<JoinHandle<Member>>,
}

impl Traffic {
    fn start(crowd: Crowd, each: usize, body: &str, progress: &Progress, last: i64) -> Self {
        Self::start_moving(crowd, each, body, progress, last, None)
    }

    /// Like [`Traffic::start`]; a member whose connection the server closes
    /// resumes on gateway `to` (or its own).
    fn start_moving(
        crowd: Crowd,
        each: usize,
        body: &str,
        progress: &Progress,
        last: i64,
        to: Option<usize>,
    ) -> Self {
        let listeners = crowd
            .listeners
            .into_iter()
            .map(|mut member| {
                tokio::spawn(async move {
                    let to = to.unwrap_or(member.home);
                    member.receive_through(last, to).await;
                    member
                })
            })
            .collect();
        let senders = crowd
            .senders
            .into_iter()
            .map(|mut member| {
                let (body, progress) = (body.to_owned(), progress.clone());
                tokio::spawn(async move {
                    let to = to.unwrap_or(member.home);
                    let mut acked = Vec::new();
                    for n in 0..each {
                        let client_id = format!("{}-{n}", member.name);
                        // A send cut off by a close is retried with the same
                        // client_id after resuming: idempotent.
                        let seq = loop {
                            match member.send(&client_id, &body).await {
                                Ok(seq) => break seq,
                                Err(_) => member.resume(to).await,
                            }
                        };
                        acked.push(seq);
                        progress.tick();
                    }
                    member.receive_through(last, to).await;
                    (member, acked)
                })
            })
            .collect();
        Self { senders, listeners }
    }

    /// Waits at most `within` for every member to have everything; returns
    /// the members and every acknowledged seq.
    async fn finish(self, within: Duration) -> (Vec<Member>, Vec<i64>) {
        let done = async {
            let mut members = Vec::new();
            let mut acked = Vec::new();
            for task in self.senders {
                let (member, seqs) = joined(task.await);
                members.push(member);
                acked.extend(seqs);
            }
            for task in self.listeners {
                members.push(joined(task.await));
            }
            (members, acked)
        };
        timeout(within, done)
            .await
            .unwrap_or_else(|_| panic!("not every member had every event within {within:?}"))
    }
}

/// A task's result, or its panic, re-raised.
fn joined<T>(result: Result<T, tokio::task::JoinError>) -> T {
    result.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// One more message, after everything: each member's next room event must
/// be exactly it — nothing late, nothing twice — and its seq must follow
/// the last acknowledged one: nothing unacknowledged was stored.
async fn fence(members: &mut [Member], expected: &[i64]) {
    let last = *expected.last().expect("events were expected");
    let seq = members[0]
        .send("fence", "the end")
        .await
        .expect("the fence message was sent");
    assert_eq!(seq, last + 1, "an event nobody acknowledged was stored");
    let mut all = expected.to_vec();
    all.push(seq);
    for member in members.iter_mut() {
        let to = member.gateway;
        timeout(SETTLE, member.receive_through(seq, to))
            .await
            .unwrap_or_else(|_| panic!("{}: no fence message", member.name));
        member.assert_received(&all);
    }
}
