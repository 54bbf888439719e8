//! Accepting TCP connections under limits that hold before any handler
//! runs, shared by `chat-api`, `chat-gateway` and `chat`:
//!
//! - a cap on the connections open from one client address
//!   (`CHAT_MAX_CONNECTIONS_PER_ADDRESS`), counted from `accept` to close,
//!   WebSocket upgrades included, so one host cannot hold every slot;
//! - a cap on all connections below the process's descriptor limit, so
//!   the descriptors the process needs besides its clients (database,
//!   Redis, files) are never the ones a flood takes ([`RESERVED_DESCRIPTORS`]);
//! - accept errors met with a short back-off and one log line per
//!   [`LOG_EVERY`], not a busy loop printing each.
//!
//! A refused connection is closed at once, before a byte is read. The
//! header-read timeout, the other half of the defence against idle
//! connections, is hyper's (see [`crate::http_server`]).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics;

/// Descriptors kept back from clients for everything else the process
/// opens: database and Redis connections, the SQLite files, the web
/// client's files, the runtime's own.
pub const RESERVED_DESCRIPTORS: usize = 128;

/// At most one log line per kind of trouble (refusals, accept errors) in
/// this long; the line says how many it stands for.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Longest back-off after an accept error that persists (out of
/// descriptors, memory).
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A bound listener that admits connections within its limits.
pub struct Listener {
    tcp: TcpListener,
    book: Arc<Book>,
    refusals: Mutex<Throttle>,
    errors: Mutex<Throttle>,
}

/// An admitted connection: the stream counts against its address until it
/// is dropped (after a WebSocket upgrade, when the socket closes).
pub struct Connection {
    /// The client's stream.
    pub stream: Counted<TcpStream>,
    /// The client's address.
    pub peer: SocketAddr,
}

impl Listener {
    /// Binds `addr` and raises the descriptor limit to what the system
    /// allows, admitting at most `per_address` connections from one client
    /// address (0: no cap) and, in all, the descriptor limit less
    /// [`RESERVED_DESCRIPTORS`].
    pub async fn bind(addr: SocketAddr, per_address: usize) -> io::Result<Self> {
        let tcp = TcpListener::bind(addr).await?;
        let descriptors = descriptor_limit();
        let capacity = capacity(descriptors);
        tracing::info!(
            %addr,
            descriptors,
            capacity,
            per_address,
            "listening; connections beyond these caps are closed on accept"
        );
        Ok(Self {
            tcp,
            book: Arc::new(Book {
                per_address,
                capacity,
                open: Mutex::new(Open::default()),
            }),
            refusals: Mutex::new(Throttle::default()),
            errors: Mutex::new(Throttle::default()),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.tcp
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// How many connections are open in all (admitted and not yet closed).
    pub fn open(&self) -> usize {
        self.book.lock().total
    }

    /// Waits for the next connection within the limits; refuses (closes)
    /// the others, and rides out accept errors.
    pub async fn accept(&self) -> Connection {
        let mut backoff = Duration::from_millis(10);
        loop {
            let (stream, peer) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors or memory: accepting again at once
                    // would fail again at once.
                    if let Some(count) = self.errors.lock().expect("not poisoned").note() {
                        tracing::warn!(error = %e, count, ?backoff, "accept failed; backing off");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            match Book::admit(&self.book, peer.ip()) {
                Ok(ticket) => {
                    // Small frames (acks, events) must not wait for the
                    // peer's delayed ACK (Nagle's algorithm).
                    let _ = stream.set_nodelay(true);
                    return Connection {
                        stream: Counted {
                            inner: stream,
                            _ticket: ticket,
                        },
                        peer,
                    };
                }
                Err(refusal) => {
                    metrics::rate_limited(refusal.scope());
                    drop(stream);
                    if let Some(count) = self.refusals.lock().expect("not poisoned").note() {
                        tracing::warn!(
                            %peer,
                            count,
                            reason = refusal.scope(),
                            "refusing connections over the cap"
                        );
                    }
                }
            }
        }
    }
}

/// The address a client's limits are kept under: an IPv4 address as it is
/// (an IPv4-mapped IPv6 one as the IPv4 it is), an IPv6 address by its
/// /64, the block one subscriber gets: counted per address, one host
/// could otherwise pass for 2^64 clients.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let net = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(net))
            }
        },
    }
}

/// Errors that concern one connection only: the next accept is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The soft descriptor limit, first raised to the hard one (what most
/// servers do: the soft default of 1,024 is a relic of `select`).
fn descriptor_limit() -> usize {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the descriptor limit; assuming 1024");
            1024
        }
    }
}

/// Connections admitted at once under `descriptors`: all but the reserve,
/// or half of a limit too small to keep the whole reserve.
fn capacity(descriptors: usize) -> usize {
    if descriptors > 2 * RESERVED_DESCRIPTORS {
        descriptors - RESERVED_DESCRIPTORS
    } else {
        (descriptors / 2).max(1)
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    PerAddress,
    Capacity,
}

impl Refusal {
    fn scope(self) -> &'static str {
        match self {
            Self::PerAddress => metrics::scope::CONNECTIONS_PER_ADDRESS,
            Self::Capacity => metrics::scope::DESCRIPTORS,
        }
    }
}

/// The open connections, in all and by address.
struct Book {
    per_address: usize,
    capacity: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl Book {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().expect("the book is never poisoned")
    }

    fn admit(book: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let ip = client_key(ip);
        let mut open = book.lock();
        if open.total >= book.capacity {
            return Err(Refusal::Capacity);
        }
        let from_ip = open.by_address.entry(ip).or_default();
        if book.per_address != 0 && *from_ip >= book.per_address {
            return Err(Refusal::PerAddress);
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Ticket {
            book: book.clone(),
            ip,
        })
    }
}

/// One admitted connection's place in the book, given back on drop.
struct Ticket {
    book: Arc<Book>,
    ip: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.book.lock();
        open.total -= 1;
        if let Some(count) = open.by_address.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&self.ip);
            }
        }
    }
}

/// A stream that holds its connection's place in the book for as long as
/// it lives, whoever ends up owning it (hyper, or a WebSocket session
/// after the upgrade).
pub struct Counted<S> {
    inner: S,
    _ticket: Ticket,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Counts occurrences and says when one is due a log line: the first, then
/// at most one per [`LOG_EVERY`], with how many it stands for.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    unlogged: u64,
}

impl Throttle {
    fn note(&mut self) -> Option<u64> {
        self.unlogged += 1;
        let due = self.last.is_none_or(|last| last.elapsed() >= LOG_EVERY);
        due.then(|| {
            self.last = Some(Instant::now());
            std::mem::take(&mut self.unlogged)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(per_address: usize, capacity: usize) -> Arc<Book> {
        Arc::new(Book {
            per_address,
            capacity,
            open: Mutex::new(Open::default()),
        })
    }

    #[test]
    fn one_address_gets_its_cap_and_no_more_while_others_still_get_in() {
        let book = book(2, 10);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let first = Book::admit(&book, a).unwrap();
        let _second = Book::admit(&book, a).unwrap();
        assert_eq!(Book::admit(&book, a).err(), Some(Refusal::PerAddress));
        assert!(Book::admit(&book, b).is_ok());
        drop(first);
        assert!(
            Book::admit(&book, a).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn the_total_stops_at_capacity_and_the_map_forgets_closed_addresses() {
        let book = book(0, 2);
        let tickets: Vec<_> = (1..=2)
            .map(|i| Book::admit(&book, IpAddr::from([10, 0, 0, i])).unwrap())
            .collect();
        assert_eq!(
            Book::admit(&book, IpAddr::from([10, 0, 0, 3])).err(),
            Some(Refusal::Capacity)
        );
        drop(tickets);
        let open = book.lock();
        assert_eq!(open.total, 0);
        assert!(open.by_address.is_empty());
    }

    #[test]
    fn an_ipv6_subscriber_is_one_client_across_its_slash_64() {
        let book = book(1, 10);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_block: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let next_block: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _held = Book::admit(&book, one).unwrap();
        assert_eq!(
            Book::admit(&book, same_block).err(),
            Some(Refusal::PerAddress)
        );
        assert!(Book::admit(&book, next_block).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_reserve_is_kept_even_under_a_small_limit() {
        assert_eq!(capacity(20_000), 20_000 - RESERVED_DESCRIPTORS);
        assert_eq!(capacity(200), 100);
        assert_eq!(capacity(1), 1);
    }

    #[test]
    fn a_burst_of_trouble_is_one_line() {
        let mut throttle = Throttle::default();
        assert_eq!(throttle.note(), Some(1));
        assert_eq!(throttle.note(), None);
        assert_eq!(throttle.note(), None);
        throttle.last = Some(Instant::now() - LOG_EVERY);
        assert_eq!(
            throttle.note(),
            Some(3),
            "the line stands for the two unlogged"
        );
    }
}
