//! Idle density: how many authenticated, idle connections one node holds,
//! what each costs it in resident memory, and how fast they connect.
//!
//! Registering 100,000 users would mostly measure argon2, so ours opens
//! many connections per user (a user on many devices costs the gateway
//! the same as many users): `users` accounts in one room, and connection
//! `i` uses account `i % users`. Each connection completes its protocol's
//! opening (ours: `hello`, then `sync`; Socket.IO: the namespace connect)
//! and then only answers pings, like a client left open in a tab. Memory
//! is the server's resident set after every connection is up and settled,
//! minus its resident set before the first, divided by the connections:
//! what one more connection costs, not what the process started with.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{stream, StreamExt, TryStreamExt};
use tokio::sync::watch;

use crate::accounts;
use crate::cpu::Cpu;
use crate::fanout::source;
use crate::proto::{self, Event};
use crate::receiver::{Frame, Receiver};
use crate::system::System;

/// The shape of one idle-density run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub connections: usize,
    /// Accounts the connections share (ours only).
    pub users: usize,
}

/// What one system showed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub connected: usize,
    pub connects_per_second: f64,
    /// Resident memory before the first connection and once all are up.
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// Server (and database) CPU seconds spent connecting them.
    pub cpu: Cpu,
}

impl Outcome {
    pub fn bytes_per_connection(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 * 1024.0
            / self.connected.max(1) as f64
    }
}

/// Handshakes in flight at once.
const CONNECTING: usize = 256;

/// A quiet connection's first read buffer: grows if a frame needs it.
const IDLE_BUFFER: usize = 2048;

/// How long the server gets to settle (lazy frees, timers) before its
/// memory is read.
const SETTLE: Duration = Duration::from_secs(5);

pub async fn run(system: &mut System, plan: &Plan) -> Result<Outcome> {
    let room = accounts::room(system, plan.users.max(2)).await?;
    let endpoint = system.endpoint(0, &room.name);
    // Registration's argon2 buffers are freed by now, or stay in the
    // baseline: either way not counted against the connections.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_kib = system.rss_kib();
    let cpu_before = system.cpu();
    let (stop, stopped) = watch::channel(false);
    let started = Instant::now();
    let holders: Vec<_> = stream::iter(0..plan.connections)
        .map(|i| {
            let endpoint = endpoint.clone();
            let token = room.tokens.get(i % room.tokens.len().max(1)).cloned();
            async move {
                proto::connect_receiver(&endpoint, token.as_deref(), source(i), IDLE_BUFFER)
                    .await
                    .with_context(|| format!("connection {i}"))
            }
        })
        .buffer_unordered(CONNECTING)
        .map_ok(|receiver| tokio::spawn(hold(receiver, endpoint.protocol, stopped.clone())))
        .try_collect()
        .await?;
    let connect_time = started.elapsed();
    let cpu = system.cpu().since(cpu_before);
    tokio::time::sleep(SETTLE).await;
    system.check_alive()?;
    let rss_after_kib = system.rss_kib();
    let _ = stop.send(true);
    let mut connected = 0;
    for holder in holders {
        // A connection the server closed while we held it does not count.
        if holder.await? {
            connected += 1;
        }
    }
    Ok(Outcome {
        connected,
        connects_per_second: plan.connections as f64 / connect_time.as_secs_f64(),
        rss_before_kib,
        rss_after_kib,
        cpu,
    })
}

/// Keeps one connection open, answering pings, until `stop`; whether it
/// was still open then.
async fn hold(
    mut receiver: Receiver,
    protocol: proto::Protocol,
    mut stop: watch::Receiver<bool>,
) -> bool {
    loop {
        let ping = tokio::select! {
            frame = receiver.next() => match frame {
                Ok(Frame::Text(text)) => proto::classify(protocol, text, false) == Event::Ping,
                Ok(Frame::Closed) | Err(_) => return false,
            },
            _ = stop.changed() => return true,
        };
        // Engine.io's server pings in a text frame; answer like a client.
        if ping && receiver.send_text("3").await.is_err() {
            return false;
        }
    }
}
