//! Many rooms: `rooms` rooms of `members` each, one sender per room, every
//! room sending at the same rate; the offered total steps up. What it
//! shows is the store's side: each send is an append that must commit
//! before its acknowledgement, so the ack latency percentiles and the
//! acknowledged appends per second are the store's throughput under many
//! small independent writers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::{stream, SinkExt, StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use crate::accounts;
use crate::fanout::source;
use crate::measure::{self, histogram, micros, percentiles_ms, receive, Step, StepClock};
use crate::proto::{self, Endpoint, Event, Socket};
use crate::receiver::BUSY_BUFFER;
use crate::system::System;

/// The shape of one many-rooms run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rooms: usize,
    pub members: usize,
    /// Total messages per second over all rooms, one step each.
    pub rates: Vec<u32>,
    pub step: Duration,
    pub body_len: usize,
}

/// Connections opened at once while setting up.
const CONNECTING: usize = 64;

/// How long each step's late acks and deliveries may still arrive.
const DRAIN: Duration = Duration::from_secs(2);

/// When each step starts, shared by the senders and the coordinator.
struct Schedule {
    starts: Vec<Instant>,
    step: Duration,
}

/// What one room's sender saw: per step, how many it sent and its ack
/// latencies.
struct SenderReport {
    sent: Vec<u64>,
    acks: Vec<Histogram<u64>>,
}

pub async fn run(system: &mut System, plan: &Plan) -> Result<Vec<Step>> {
    let rooms = accounts::rooms(system, plan.rooms, plan.members).await?;
    let epoch = std::time::Instant::now();
    let (stop, stopped) = watch::channel(false);
    let steps = plan.rates.len();
    let clock = StepClock::new(steps);
    let endpoints: Vec<Endpoint> = rooms
        .iter()
        .map(|room| system.endpoint(0, &room.name))
        .collect();

    // Every member but the first of each room only receives.
    let members: Vec<(usize, Endpoint, Option<String>)> = rooms
        .iter()
        .enumerate()
        .flat_map(|(r, room)| {
            let endpoints = &endpoints;
            (1..plan.members).map(move |m| {
                (
                    r * plan.members + m,
                    endpoints[r].clone(),
                    room.tokens.get(m).cloned(),
                )
            })
        })
        .collect();
    let receivers: Vec<_> = stream::iter(members)
        .map(|(i, endpoint, token)| async move {
            let receiver =
                proto::connect_receiver(&endpoint, token.as_deref(), source(i), BUSY_BUFFER)
                    .await
                    .with_context(|| format!("connecting member {i}"))?;
            Ok::<_, anyhow::Error>((receiver, endpoint.protocol))
        })
        .buffered(CONNECTING)
        .map_ok(|(receiver, protocol)| {
            tokio::spawn(receive(
                receiver,
                protocol,
                epoch,
                clock.clone(),
                stopped.clone(),
            ))
        })
        .try_collect()
        .await?;
    let senders: Vec<(Socket, Endpoint)> = stream::iter(rooms.iter().enumerate())
        .map(|(r, room)| {
            let endpoint = endpoints[r].clone();
            async move {
                let socket = proto::connect(
                    &endpoint,
                    room.tokens.first().map(String::as_str),
                    source(r * plan.members),
                )
                .await
                .with_context(|| format!("connecting the sender of room {r}"))?;
                Ok::<_, anyhow::Error>((socket, endpoint))
            }
        })
        .buffered(CONNECTING)
        .try_collect()
        .await?;
    eprintln!(
        "chat-bench: {} rooms of {} connected",
        plan.rooms, plan.members
    );
    system.settle().await;

    let first = Instant::now() + Duration::from_secs(1);
    let schedule = Arc::new(Schedule {
        starts: (0..steps)
            .map(|k| first + (plan.step + DRAIN) * k as u32)
            .collect(),
        step: plan.step,
    });
    // Every step's start is known before the first message goes.
    let epoch_at = tokio::time::Instant::from_std(epoch);
    for (k, start) in schedule.starts.iter().enumerate() {
        clock.begin(k, (*start - epoch_at).as_micros() as u64);
    }
    let per_room: Vec<f64> = plan
        .rates
        .iter()
        .map(|&rate| rate as f64 / plan.rooms as f64)
        .collect();
    let sending: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(r, (socket, endpoint))| {
            // Rooms start spread over one period, not all on the same tick.
            let phase = r as f64 / plan.rooms as f64;
            tokio::spawn(send(
                socket,
                endpoint,
                schedule.clone(),
                per_room.clone(),
                phase,
                epoch,
                plan.body_len,
            ))
        })
        .collect();

    let mut cpu = Vec::with_capacity(steps);
    for start in &schedule.starts {
        tokio::time::sleep_until(*start).await;
        let before = system.cpu();
        tokio::time::sleep_until(*start + plan.step + DRAIN).await;
        cpu.push(system.cpu().since(before));
        system.check_alive()?;
    }
    let mut reports = Vec::with_capacity(sending.len());
    for sender in sending {
        reports.push(sender.await??);
    }
    let _ = stop.send(true);
    let mut delivered = Vec::with_capacity(receivers.len());
    for receiver in receivers {
        delivered.push(receiver.await?);
    }
    let delivered = measure::merge_received(steps, delivered)?;
    let acks = measure::merge(steps, reports.iter().map(|r| r.acks.clone()))?;
    let receivers_per_room = (plan.members - 1) as u64;
    Ok((0..steps)
        .map(|k| {
            let sent: u64 = reports.iter().map(|r| r.sent[k]).sum();
            Step {
                rate: plan.rates[k],
                sent,
                acked: acks[k].len(),
                expected: sent * receivers_per_room,
                delivered: delivered[k].latencies.len(),
                deliveries_per_second: delivered[k].per_second(&clock, k, plan.step),
                latency_ms: percentiles_ms(&delivered[k].latencies),
                ack_ms: percentiles_ms(&acks[k]),
                cpu: cpu[k],
            }
        })
        .collect())
}

/// One room's sender: in each step, `rates[k]` messages per second from
/// `phase` of a period after the step's start; acknowledgements read
/// throughout, each recorded in the step its message was sent in.
async fn send(
    mut socket: Socket,
    endpoint: Endpoint,
    schedule: Arc<Schedule>,
    rates: Vec<f64>,
    phase: f64,
    epoch: std::time::Instant,
    body_len: usize,
) -> Result<SenderReport> {
    let mut report = SenderReport {
        sent: vec![0; rates.len()],
        acks: (0..rates.len()).map(|_| histogram()).collect(),
    };
    // Send time and step of every message not yet acknowledged.
    let mut pending: HashMap<u64, (u64, usize)> = HashMap::new();
    let mut seq = 0u64;
    for (k, &rate) in rates.iter().enumerate() {
        let period = Duration::from_secs_f64(1.0 / rate);
        let count = (rate * schedule.step.as_secs_f64()).round() as u64;
        let mut tick = tokio::time::interval_at(schedule.starts[k] + period.mul_f64(phase), period);
        // A late tick is sent at once: the offered rate holds.
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let end = schedule.starts[k] + schedule.step + DRAIN;
        loop {
            let sending = report.sent[k] < count;
            tokio::select! {
                _ = tick.tick(), if sending => {
                    seq += 1;
                    let now = micros(epoch);
                    pending.insert(seq, (now, k));
                    socket
                        .send(proto::send_frame(&endpoint, seq, &proto::body(now, body_len)))
                        .await?;
                    report.sent[k] += 1;
                }
                frame = socket.next() => {
                    let text = match frame.context("the sender's connection closed")?? {
                        Message::Text(text) => text,
                        _ => continue,
                    };
                    match proto::classify(endpoint.protocol, text.as_str(), true) {
                        Event::Ack { seq } => {
                            if let Some((at, step)) = pending.remove(&seq) {
                                let latency = micros(epoch).saturating_sub(at).max(1);
                                let _ = report.acks[step].record(latency);
                            }
                        }
                        Event::Ping => socket.send(Message::text("3")).await?,
                        _ => {}
                    }
                }
                _ = tokio::time::sleep_until(end) => break,
            }
        }
    }
    Ok(report)
}
