//! What every workload measures the same way: latency histograms, the
//! receiving members' loop, and one rate step's figures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::watch;

use crate::cpu::Cpu;
use crate::proto::{self, Event, Protocol};
use crate::receiver::{Frame, Receiver};

/// What one rate step showed.
#[derive(Debug, Clone)]
pub struct Step {
    /// Offered messages per second (all senders together).
    pub rate: u32,
    pub sent: u64,
    pub acked: u64,
    pub expected: u64,
    pub delivered: u64,
    pub deliveries_per_second: f64,
    /// End-to-end latency percentiles in milliseconds: p50, p99, p99.9.
    pub latency_ms: [f64; 3],
    pub ack_ms: [f64; 3],
    /// Server (and database) CPU seconds spent in this step.
    pub cpu: Cpu,
}

/// When each rate step began, in µs since the run's epoch. A message
/// belongs to the step it was sent in (the last one begun at or before its
/// send time), however late it arrives: a slow step's tail is not counted
/// in the next.
pub struct StepClock {
    starts: Vec<AtomicU64>,
}

impl StepClock {
    pub fn new(steps: usize) -> Arc<Self> {
        Arc::new(Self {
            starts: (0..steps).map(|_| AtomicU64::new(u64::MAX)).collect(),
        })
    }

    /// Step `k` begins at `at_us` (set before any of its messages is sent).
    pub fn begin(&self, k: usize, at_us: u64) {
        self.starts[k].store(at_us, Ordering::Release);
    }

    /// The step a message sent at `sent_us` belongs to.
    pub fn of(&self, sent_us: u64) -> usize {
        self.starts
            .iter()
            .rposition(|start| start.load(Ordering::Acquire) <= sent_us)
            .unwrap_or(0)
    }
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub fn percentiles_ms(h: &Histogram<u64>) -> [f64; 3] {
    if h.is_empty() {
        return [0.0; 3];
    }
    [50.0, 99.0, 99.9].map(|q| h.value_at_quantile(q / 100.0) as f64 / 1000.0)
}

/// Microseconds since `epoch`: the clock every body's send time uses.
pub fn micros(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// What members received of one step's messages.
#[derive(Clone)]
pub struct Received {
    /// End-to-end latencies, one per delivery.
    pub latencies: Histogram<u64>,
    /// When the last delivery arrived, µs since the run's epoch.
    pub last_us: u64,
}

impl Received {
    fn new() -> Self {
        Self {
            latencies: histogram(),
            last_us: 0,
        }
    }

    /// Deliveries per second over the step's length, or until its last
    /// delivery if that came later: a server past saturation delivers a
    /// step's messages long after the step, and dividing by the step alone
    /// would credit it with a rate it never reached.
    pub fn per_second(&self, clock: &StepClock, step: usize, length: Duration) -> f64 {
        let start = clock.starts[step].load(Ordering::Acquire);
        let took = Duration::from_micros(self.last_us.saturating_sub(start)).max(length);
        self.latencies.len() as f64 / took.as_secs_f64()
    }
}

/// One member's receive loop: end-to-end latencies per step (the step
/// each message was sent in), until `stop`.
pub async fn receive(
    mut receiver: Receiver,
    protocol: Protocol,
    epoch: Instant,
    clock: Arc<StepClock>,
    mut stop: watch::Receiver<bool>,
) -> Vec<Received> {
    let mut steps: Vec<Received> = (0..clock.starts.len()).map(|_| Received::new()).collect();
    loop {
        let ping = tokio::select! {
            frame = receiver.next() => match frame {
                Ok(Frame::Text(text)) => match proto::classify(protocol, text, false) {
                    Event::Delivery { sent_us } => {
                        let now = micros(epoch);
                        let step = &mut steps[clock.of(sent_us)];
                        let _ = step.latencies.record(now.saturating_sub(sent_us).max(1));
                        step.last_us = now;
                        false
                    }
                    Event::Ping => true,
                    _ => false,
                },
                Ok(Frame::Closed) | Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        // Engine.io's server pings in a text frame; answer like a client.
        if ping && receiver.send_text("3").await.is_err() {
            break;
        }
    }
    steps
}

/// Adds each member's per-step receipts into one per step.
pub fn merge_received(
    steps: usize,
    members: impl IntoIterator<Item = Vec<Received>>,
) -> anyhow::Result<Vec<Received>> {
    let mut merged: Vec<Received> = (0..steps).map(|_| Received::new()).collect();
    for member in members {
        for (all, one) in merged.iter_mut().zip(member) {
            all.latencies.add(&one.latencies)?;
            all.last_us = all.last_us.max(one.last_us);
        }
    }
    Ok(merged)
}

/// Adds each member's per-step histograms into one per step.
pub fn merge(
    steps: usize,
    members: impl IntoIterator<Item = Vec<Histogram<u64>>>,
) -> anyhow::Result<Vec<Histogram<u64>>> {
    let mut merged: Vec<Histogram<u64>> = (0..steps).map(|_| histogram()).collect();
    for member in members {
        for (index, h) in member.into_iter().enumerate() {
            merged[index].add(&h)?;
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_belongs_to_the_step_it_was_sent_in() {
        let clock = StepClock::new(3);
        assert_eq!(clock.of(5), 0, "before any step: the first");
        clock.begin(0, 100);
        clock.begin(1, 200);
        assert_eq!(clock.of(150), 0);
        assert_eq!(clock.of(200), 1);
        assert_eq!(clock.of(10_000), 1, "step 2 has not begun");
        clock.begin(2, 300);
        assert_eq!(clock.of(299), 1, "sent in step 1, however late it arrives");
        assert_eq!(clock.of(300), 2);
    }

    #[test]
    fn a_step_delivered_late_is_rated_over_the_time_it_took() {
        let clock = StepClock::new(1);
        clock.begin(0, 1_000_000);
        let mut received = Received::new();
        for _ in 0..1000 {
            received.latencies.record(10_000).unwrap();
        }
        let second = Duration::from_secs(1);
        received.last_us = 1_900_000;
        assert_eq!(
            received.per_second(&clock, 0, second),
            1000.0,
            "within the step"
        );
        received.last_us = 5_000_000;
        assert_eq!(
            received.per_second(&clock, 0, second),
            250.0,
            "4 s to deliver"
        );
    }
}
