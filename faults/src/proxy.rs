//! A TCP fault proxy: the suite's stand-in for toxiproxy, which cannot be
//! installed here. It sits between a client and a server on loopback and,
//! on command, passes bytes, delays them, silently drops them (a half-open
//! connection: both ends think it is alive), resets every connection, or
//! holds the server's replies on a connection once the client has sent a
//! given byte pattern (so "the request reached the server, the answer never
//! came back" can be staged exactly, e.g. after a `COMMIT`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the proxy does to traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Forward bytes as they come.
    Pass,
    /// Forward bytes after holding each read for this long.
    Delay(Duration),
    /// Keep every connection open but forward nothing, either way: the
    /// network went dark without a FIN or RST (new connections too). The
    /// streams have lost bytes, so connections caught in it are closed
    /// when it lifts.
    Blackhole,
    /// Reset every open connection (RST) and each new one at once.
    Reset,
    /// Forward normally, but once the client side of a connection has sent
    /// these bytes, stop forwarding the server's replies on it.
    HoldRepliesAfter(Vec<u8>),
}

/// A running proxy; dropping it stops it and closes its connections.
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    held: Arc<AtomicUsize>,
    _tasks: JoinSet<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, watcher) = watch::channel(Mode::Pass);
        let held = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        let counter = held.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(connection(
                    client,
                    upstream,
                    watcher.clone(),
                    counter.clone(),
                ));
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            mode,
            held: held.clone(),
            _tasks: tasks,
        })
    }

    /// The address clients connect to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches every connection, open or new, to `mode`.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// How many connections have had their replies held so far.
    pub fn held_connections(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    held: Arc<AtomicUsize>,
) {
    if *mode.borrow_and_update() == Mode::Reset {
        reset(client);
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok((client, client_ctl)), Ok((server, server_ctl))) =
        (with_control(client), with_control(server))
    else {
        return;
    };
    let mut reset_watch = mode.clone();
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Set when the client sent the pattern of `HoldRepliesAfter`.
    let (hold, holding) = watch::channel(false);
    let mut upstream_mode = mode.clone();
    let to_server = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let current = upstream_mode.borrow_and_update().clone();
            if let Mode::HoldRepliesAfter(pattern) = &current {
                // Search across read boundaries: keep the last bytes.
                tail.extend_from_slice(&buf[..n]);
                if contains(&tail, pattern) && !*hold.borrow() {
                    hold.send_replace(true);
                    held.fetch_add(1, Ordering::Relaxed);
                }
                let keep = pattern.len().saturating_sub(1);
                tail.drain(..tail.len().saturating_sub(keep));
            }
            if !forward(&current, &buf[..n], &mut server_write, &mut upstream_mode).await {
                return;
            }
        }
    };
    let to_client = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if *holding.borrow() {
                // The answer is lost; keep reading so the server is not
                // blocked, and wait for the client side to go away.
                continue;
            }
            let current = mode.borrow_and_update().clone();
            if !forward(&current, &buf[..n], &mut client_write, &mut mode).await {
                return;
            }
        }
    };
    // Either direction ending (EOF, error, reset) ends the connection.
    let reset_now = tokio::select! {
        () = to_server => false,
        () = to_client => false,
        () = wait_for(&mut reset_watch, Mode::Reset) => true,
    };
    if reset_now {
        // A write half shuts its side down (FIN) when dropped; forget them
        // so the last close, with linger zero, sends RST instead. (Linger is
        // deprecated for blocking drops; a zero linger never blocks.)
        #[allow(deprecated)]
        let _ = client_ctl.set_linger(Some(Duration::ZERO));
        #[allow(deprecated)]
        let _ = server_ctl.set_linger(Some(Duration::ZERO));
        client_write.forget();
        server_write.forget();
    }
}

/// A second handle on the same socket, to reset it while its halves are
/// busy in reads and writes.
fn with_control(stream: TcpStream) -> std::io::Result<(TcpStream, TcpStream)> {
    let stream = stream.into_std()?;
    let control = stream.try_clone()?;
    Ok((TcpStream::from_std(stream)?, TcpStream::from_std(control)?))
}

async fn wait_for(watch: &mut watch::Receiver<Mode>, wanted: Mode) {
    while *watch.borrow_and_update() != wanted {
        if watch.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Forwards one read under `mode`; false when the connection must end.
async fn forward(
    mode: &Mode,
    bytes: &[u8],
    out: &mut tokio::net::tcp::OwnedWriteHalf,
    changes: &mut watch::Receiver<Mode>,
) -> bool {
    match mode {
        Mode::Pass | Mode::HoldRepliesAfter(_) => out.write_all(bytes).await.is_ok(),
        Mode::Delay(by) => {
            tokio::time::sleep(*by).await;
            out.write_all(bytes).await.is_ok()
        }
        Mode::Blackhole => {
            // Drop these bytes and stall until the mode changes; the
            // stream has lost bytes, so the connection ends then.
            let _ = changes.changed().await;
            false
        }
        Mode::Reset => false,
    }
}

/// Closes with RST instead of FIN: linger zero, then drop.
fn reset(stream: TcpStream) {
    #[allow(deprecated)] // A zero linger resets at once; it never blocks.
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes every byte back.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(bytes).await?;
        let mut back = vec![0; bytes.len()];
        tokio::time::timeout(Duration::from_millis(500), stream.read_exact(&mut back))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
        Ok(back)
    }

    #[tokio::test]
    async fn passes_delays_and_blackholes() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"hello").await.unwrap(), b"hello");

        proxy.set(Mode::Delay(Duration::from_millis(100)));
        let started = std::time::Instant::now();
        assert_eq!(round_trip(&mut stream, b"slow").await.unwrap(), b"slow");
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "delayed both ways"
        );

        proxy.set(Mode::Blackhole);
        let err = round_trip(&mut stream, b"void").await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        // New connections fall into it too; lifting it closes the old ones.
        let mut late = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(round_trip(&mut late, b"x").await.is_err());
        proxy.set(Mode::Pass);
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "closed after the blackhole"
        );
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut fresh, b"again").await.unwrap(), b"again");
    }

    #[tokio::test]
    async fn resets_open_and_new_connections() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut open, b"hi").await.unwrap(), b"hi");
        proxy.set(Mode::Reset);
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(1), open.read(&mut buf))
            .await
            .expect("the reset arrives at once");
        assert_eq!(
            read.unwrap_err().kind(),
            std::io::ErrorKind::ConnectionReset
        );
        let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(1), new.read(&mut buf))
            .await
            .expect("the reset arrives at once");
        assert_eq!(
            read.unwrap_err().kind(),
            std::io::ErrorKind::ConnectionReset
        );
    }

    #[tokio::test]
    async fn holds_replies_once_the_pattern_was_sent() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        proxy.set(Mode::HoldRepliesAfter(b"COMMIT".to_vec()));
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"BEGIN").await.unwrap(), b"BEGIN");
        // The pattern split across two writes still counts.
        assert_eq!(round_trip(&mut stream, b"COM").await.unwrap(), b"COM");
        let err = round_trip(&mut stream, b"MIT").await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(proxy.held_connections(), 1);
        let mut other = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut other, b"fine").await.unwrap(), b"fine");
    }
}
