//! Connection-level limits, tried as a flood would try them: idle
//! connections from one address cannot take the slots everyone else needs
//! (`CHAT_MAX_CONNECTIONS_PER_ADDRESS`), a connection that never finishes
//! its request is closed (`CHAT_HEADER_READ_TIMEOUT`), and a flood from
//! many connections stops short of the descriptor limit, so the sockets
//! already open keep working.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{connect_from, register, send_and_ack, websocket, Process, Running};

const FLOODER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const NEIGHBOUR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Opens `n` connections from `from` that send nothing.
async fn flood(from: IpAddr, to: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        streams.push(connect_from(from, to).await.expect("the kernel accepts"));
    }
    streams
}

/// Whether the server has closed `stream` (it reads end-of-file or an
/// error within `within`).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // An answer (a 408, say) before the close.
            Ok(Ok(_)) => continue,
        }
    }
}

/// How many of `streams` the server still holds open after `settle`.
async fn still_open(streams: &mut [TcpStream], settle: Duration) -> usize {
    let closed = join_all(streams.iter_mut().map(|s| closed_within(s, settle))).await;
    closed.into_iter().filter(|closed| !closed).count()
}

/// `GET /healthz` over a fresh connection from `from`.
async fn healthz(from: IpAddr, to: SocketAddr) -> std::io::Result<String> {
    let mut stream = connect_from(from, to).await?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: chat\r\nconnection: close\r\n\r\n")
        .await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("no answer in 5 s"))??;
    Ok(answer)
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection_and_idle_ones_are_closed() {
    const CAP: usize = 8;
    const TIMEOUT: Duration = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let chat = Running::start(dir.path(), |settings| {
        settings.api.common.max_connections_per_address = CAP;
        settings.api.common.header_read_timeout = TIMEOUT;
    })
    .await;
    let token = register(&chat.base, "flooder").await;

    // Three WebSockets from the flooding address count against its cap
    // (they were counted before their upgrade, and stay counted).
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(websocket(chat.addr, FLOODER, &token).await.unwrap());
    }
    // Then idle connections past the cap: the server keeps CAP - 3 of them
    // and closes the rest as soon as it accepts them.
    let started = Instant::now();
    let mut idle = flood(FLOODER, chat.addr, 40).await;
    let open = still_open(&mut idle, Duration::from_millis(500)).await;
    assert_eq!(open, CAP - 3, "idle connections the server kept");
    assert!(healthz(FLOODER, chat.addr).await.is_err_or_refused());

    // Meanwhile, everyone else is served: a probe, and a WebSocket.
    let answer = healthz(NEIGHBOUR, chat.addr).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut neighbour = websocket(chat.addr, NEIGHBOUR, &token).await.unwrap();
    send_and_ack(&mut neighbour, "neighbour-1").await;
    // And the flooder's own sockets keep working.
    send_and_ack(&mut sockets[0], "flooder-1").await;

    // A connection that sends its request a header a second, forever, is
    // closed at the same deadline as one that sends nothing.
    let mut dripping = connect_from(NEIGHBOUR, chat.addr).await.unwrap();
    let drip_started = Instant::now();
    let dripper = tokio::spawn(async move {
        let _ = dripping.write_all(b"GET / HTTP/1.1\r\n").await;
        for i in 0.. {
            let header = format!("x-drip-{i}: 1\r\n");
            if dripping.write_all(header.as_bytes()).await.is_err() {
                return dripping;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if drip_started.elapsed() > TIMEOUT * 5 {
                return dripping;
            }
        }
        unreachable!()
    });
    // Every idle connection is closed once the header-read timeout passes.
    let open = still_open(&mut idle, TIMEOUT + Duration::from_secs(2)).await;
    assert_eq!(open, 0, "idle connections left open");
    assert!(
        started.elapsed() < TIMEOUT * 3,
        "closed only after {:?}",
        started.elapsed()
    );
    let mut dripping = dripper.await.unwrap();
    assert!(
        drip_started.elapsed() < TIMEOUT * 3,
        "a dripping request was kept for {:?}",
        drip_started.elapsed()
    );
    assert!(closed_within(&mut dripping, Duration::from_secs(1)).await);

    // The address's slots are free again.
    let answer = healthz(FLOODER, chat.addr).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(sockets);
    drop(neighbour);
    chat.stop().await;
}

/// What a refused connection looks like from the client: it connects (the
/// kernel completes the handshake) and is closed with no answer.
trait RefusedExt {
    fn is_err_or_refused(&self) -> bool;
}

impl RefusedExt for std::io::Result<String> {
    fn is_err_or_refused(&self) -> bool {
        match self {
            Err(_) => true,
            Ok(answer) => answer.is_empty(),
        }
    }
}

#[tokio::test]
async fn a_flood_stops_short_of_the_descriptor_limit() {
    const LIMIT: usize = 400;
    let capacity = LIMIT - chat_shared::listener::RESERVED_DESCRIPTORS;
    let dir = tempfile::tempdir().unwrap();
    // The real binary, under a small descriptor limit it cannot raise.
    let chat = Process::spawn(
        dir.path(),
        Some(LIMIT),
        &[("CHAT_MAX_CONNECTIONS_PER_ADDRESS", "0")],
    );
    let addr = chat.address().await;
    let base = format!("http://{addr}");
    let token = register(&base, "neighbour").await;
    let mut neighbour = websocket(addr, NEIGHBOUR, &token).await.unwrap();

    let mut idle = flood(FLOODER, addr, LIMIT + 100).await;
    let open = still_open(&mut idle, Duration::from_millis(500)).await;
    // The neighbour's socket is one of the admitted connections.
    assert!(
        open < capacity,
        "{open} idle connections held under a capacity of {capacity}"
    );
    assert!(
        open > capacity - 20,
        "only {open} held: the capacity is {capacity}"
    );
    // The socket already open keeps working: its send is stored and acked
    // (the store still has descriptors to write with).
    send_and_ack(&mut neighbour, "during-the-flood").await;
    // The flood ends; the server answers new connections again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match healthz(NEIGHBOUR, addr).await {
            Ok(answer) if answer.starts_with("HTTP/1.1 200") => break,
            other => assert!(
                Instant::now() < deadline,
                "no answer after the flood: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = chat.lines();
    assert!(
        !lines.iter().any(|l| l.contains("Too many open files")),
        "the server ran out of descriptors:\n{}",
        lines.join("\n")
    );
    let refusals = lines
        .iter()
        .filter(|l| l.contains("refusing connections over the cap"))
        .count();
    assert!(
        (1..=2).contains(&refusals),
        "{refusals} refusal lines for one flood"
    );
    drop(neighbour);
}
