//! Fan-out: one room of many members, one sender stepping its rate up.
//! Every member measures each message's end-to-end latency (send time in
//! the body → receipt); the sender measures its acknowledgements.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::accounts;
use crate::measure::{self, histogram, micros, percentiles_ms, receive, Step, StepClock};
use crate::proto::{self, Event};
use crate::receiver::BUSY_BUFFER;
use crate::system::System;

/// The shape of one fan-out run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub members: usize,
    /// Messages per second, one step each.
    pub rates: Vec<u32>,
    pub step: Duration,
    pub body_len: usize,
    /// What the sender sends.
    pub frames: Frames,
}

/// What the sender of a fan-out sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frames {
    /// Messages (every system).
    Messages,
    /// Reactions to one message, added and taken back in turn (ours only).
    Reactions,
}

/// The loopback source address for connection `i`: 127.0.0.2, .3, … so no
/// single address runs out of ephemeral ports.
pub fn source(i: usize) -> IpAddr {
    let n = (i / 20_000) as u32 + 2;
    IpAddr::V4(Ipv4Addr::from(0x7f00_0000 + n))
}

/// Runs the plan against a started system (members spread over its nodes).
pub async fn run(system: &mut System, plan: &Plan) -> Result<Vec<Step>> {
    let room = accounts::room(system, plan.members).await?;
    let epoch = Instant::now();
    let clock = StepClock::new(plan.rates.len());
    let (stop, stopped) = watch::channel(false);
    let mut receivers = Vec::new();
    for i in 1..plan.members {
        let endpoint = system.endpoint(i, &room.name);
        let receiver = proto::connect_receiver(
            &endpoint,
            room.tokens.get(i).map(String::as_str),
            source(i),
            BUSY_BUFFER,
        )
        .await
        .with_context(|| format!("connecting member {i}"))?;
        receivers.push(tokio::spawn(receive(
            receiver,
            endpoint.protocol,
            epoch,
            clock.clone(),
            stopped.clone(),
        )));
    }
    let endpoint = system.endpoint(0, &room.name);
    let sender = proto::connect(
        &endpoint,
        room.tokens.first().map(String::as_str),
        source(0),
    )
    .await?;
    let (mut sink, mut acks_in) = sender.split();
    let target = match plan.frames {
        Frames::Messages => String::new(),
        Frames::Reactions => target_message(&endpoint, &mut sink, &mut acks_in).await?,
    };
    // Shared with the ack reader, which must answer engine.io pings.
    let sink = Arc::new(tokio::sync::Mutex::new(sink));
    // Send times by message number, for the ack latencies.
    let sent_at: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
    let ack_hist: Arc<Mutex<Vec<Histogram<u64>>>> = Arc::new(Mutex::new(
        (0..plan.rates.len()).map(|_| histogram()).collect(),
    ));
    let acks = {
        let (sent_at, ack_hist, clock, protocol, sink) = (
            sent_at.clone(),
            ack_hist.clone(),
            clock.clone(),
            endpoint.protocol,
            sink.clone(),
        );
        let mut stop = stopped.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    frame = acks_in.next() => frame,
                    _ = stop.changed() => break,
                };
                let Some(Ok(Message::Text(text))) = frame else {
                    if frame.is_none() {
                        break;
                    }
                    continue;
                };
                let event = proto::classify(protocol, text.as_str(), true);
                if event == Event::Ping {
                    let _ = sink.lock().await.send(Message::text("3")).await;
                }
                if let Event::Ack { seq } = event {
                    let now = epoch.elapsed().as_micros() as u64;
                    if let Some(at) = sent_at.lock().expect("sent_at").remove(&seq) {
                        let _ = ack_hist.lock().expect("acks")[clock.of(at)]
                            .record(now.saturating_sub(at).max(1));
                    }
                }
            }
        })
    };

    system.settle().await;
    let mut seq = 0u64;
    let mut sent_per_step = Vec::new();
    let mut cpu_per_step = Vec::new();
    for (index, &rate) in plan.rates.iter().enumerate() {
        clock.begin(index, micros(epoch));
        let cpu_before = system.cpu();
        let started = Instant::now();
        let total = (rate as f64 * plan.step.as_secs_f64()) as u64;
        let mut sent = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let mut cut_off = None;
        while sent < total && cut_off.is_none() {
            tick.tick().await;
            let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
            let mut sink = sink.lock().await;
            while sent < due {
                seq += 1;
                let now = epoch.elapsed().as_micros() as u64;
                sent_at.lock().expect("sent_at").insert(seq, now);
                let frame = match plan.frames {
                    Frames::Messages => {
                        proto::send_frame(&endpoint, seq, &proto::body(now, plan.body_len))
                    }
                    Frames::Reactions => proto::reaction_frame(&endpoint, seq, now, &target),
                };
                if let Err(e) = sink.feed(frame).await {
                    cut_off = Some(e);
                    break;
                }
                sent += 1;
            }
            if let Err(e) = sink.flush().await {
                cut_off.get_or_insert(e);
            }
        }
        // Let the step drain before the next begins.
        tokio::time::sleep(Duration::from_secs(2)).await;
        cpu_per_step.push(system.cpu().since(cpu_before));
        sent_per_step.push(sent);
        system.check_alive()?;
        // A server that drops an overloaded sender (Socket.IO does, once
        // its pings go unanswered) ends the run there: the steps so far
        // stand, and the table shows where it stopped.
        if let Some(e) = cut_off {
            eprintln!("chat-bench: the server closed the sender at {rate} msg/s ({e}); later steps skipped");
            break;
        }
    }
    let _ = stop.send(true);
    let _ = acks.await;
    let mut members = Vec::with_capacity(receivers.len());
    for receiver in receivers {
        members.push(receiver.await?);
    }
    let merged = measure::merge_received(plan.rates.len(), members)?;
    let ack_hist = ack_hist.lock().expect("acks").clone();
    let receivers = (plan.members - 1) as u64;
    Ok(plan
        .rates
        .iter()
        .take(sent_per_step.len())
        .enumerate()
        .map(|(i, &rate)| Step {
            rate,
            sent: sent_per_step[i],
            acked: ack_hist[i].len(),
            expected: sent_per_step[i] * receivers,
            delivered: merged[i].latencies.len(),
            deliveries_per_second: merged[i].per_second(&clock, i, plan.step),
            latency_ms: percentiles_ms(&merged[i].latencies),
            ack_ms: percentiles_ms(&ack_hist[i]),
            cpu: cpu_per_step[i],
        })
        .collect())
}

/// Sends the message the reactions go to and returns its id, from its ack.
async fn target_message(
    endpoint: &proto::Endpoint,
    sink: &mut futures::stream::SplitSink<proto::Socket, Message>,
    acks: &mut futures::stream::SplitStream<proto::Socket>,
) -> Result<String> {
    // Number 0: the reactions count from 1.
    sink.send(proto::send_frame(endpoint, 0, "react to me"))
        .await?;
    while let Some(frame) = acks.next().await {
        if let Message::Text(text) = frame? {
            let frame: serde_json::Value = serde_json::from_str(text.as_str())?;
            if frame["type"] == "ack" {
                return frame["id"]
                    .as_str()
                    .map(str::to_owned)
                    .context("an ack without an id");
            }
        }
    }
    anyhow::bail!("the sender's connection closed before the target message's ack")
}
