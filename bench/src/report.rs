//! The tables a run prints (and `all` writes to its report): every step of
//! every system, then each system's best rate within the workload's target.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::chart::{self, Chart, Series};
use crate::cpu::Cpu;
use crate::idle;
use crate::kind::Kind;
use crate::measure::Step;

/// What a workload's summary line judges a step by.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Every message delivered, end-to-end p99 under this many ms.
    Delivery { p99_ms: f64 },
    /// Every send acknowledged, ack p99 under this many ms.
    Ack { p99_ms: f64 },
}

impl Target {
    fn met(self, step: &Step) -> bool {
        match self {
            Target::Delivery { p99_ms } => {
                step.delivered == step.expected && step.latency_ms[1] < p99_ms
            }
            Target::Ack { p99_ms } => step.acked == step.sent && step.ack_ms[1] < p99_ms,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::Delivery { p99_ms } => {
                format!("every message delivered and p99 < {p99_ms} ms")
            }
            Target::Ack { p99_ms } => format!("every send acknowledged and ack p99 < {p99_ms} ms"),
        }
    }
}

/// One workload's results: per system, its steps and peak RSS (KiB).
pub struct Outcome {
    pub title: String,
    pub target: Target,
    pub results: Vec<(Kind, Vec<Step>, u64)>,
}

impl Outcome {
    pub fn new(title: String, target: Target) -> Self {
        Self {
            title,
            target,
            results: Vec::new(),
        }
    }

    /// Draws p99 against offered load for every system to `path`: the
    /// end-to-end p99 where the target is delivery, the ack p99 where it
    /// is the store's.
    pub fn chart(&self, path: &Path) -> Result<()> {
        let (y_label, target_ms) = match self.target {
            Target::Delivery { p99_ms } => ("end-to-end p99 latency (ms)", p99_ms),
            Target::Ack { p99_ms } => ("acknowledgement p99 latency (ms)", p99_ms),
        };
        let series: Vec<Series> = self
            .results
            .iter()
            .map(|(kind, steps, _)| Series {
                name: kind.name().to_owned(),
                points: steps
                    .iter()
                    .map(|s| {
                        let p99 = match self.target {
                            Target::Delivery { .. } => s.latency_ms[1],
                            Target::Ack { .. } => s.ack_ms[1],
                        };
                        (f64::from(s.rate), p99)
                    })
                    // A step where nothing arrived has no latency to show.
                    .filter(|&(_, p99)| p99 > 0.0)
                    .collect(),
            })
            .collect();
        chart::draw(
            path,
            &Chart {
                title: &self.title,
                x_label: "offered messages per second",
                y_label,
                series: &series,
                target_ms: Some(target_ms),
            },
        )
    }

    /// A markdown table of every step, and the summary lines.
    pub fn table(&self) -> String {
        let mut out = format!(
            "### {}\n\n\
             | system | offered msg/s | acked/s | ack p50 ms | ack p99 ms | deliveries/s | delivered | p50 ms | p99 ms | p99.9 ms | server CPU s | database CPU s | deliveries per CPU-s | generator CPU s |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            self.title
        );
        for (kind, steps, _) in &self.results {
            for s in steps {
                let seconds = s.sent as f64 / s.rate.max(1) as f64;
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.2}% | {:.1} | {:.1} | {:.1} | {:.2} | {} | {:.0} | {:.2} |",
                    kind.name(),
                    s.rate,
                    s.acked as f64 / seconds.max(0.001),
                    s.ack_ms[0],
                    s.ack_ms[1],
                    s.deliveries_per_second,
                    100.0 * s.delivered as f64 / s.expected.max(1) as f64,
                    s.latency_ms[0],
                    s.latency_ms[1],
                    s.latency_ms[2],
                    s.cpu.server,
                    database_cell(s.cpu),
                    // The database's work is part of every delivery's cost.
                    s.delivered as f64 / s.cpu.total().max(0.001),
                    s.cpu.generator,
                );
            }
        }
        let _ = writeln!(out, "\nhighest rate with {}:", self.target.describe());
        for (kind, steps, rss) in &self.results {
            let _ = match self.best(steps) {
                Some(s) => writeln!(
                    out,
                    "- {}: {} msg/s, {:.0} deliveries/s (peak RSS {} MiB)",
                    kind.name(),
                    s.rate,
                    s.deliveries_per_second,
                    rss / 1024
                ),
                None => writeln!(out, "- {}: none of the offered rates", kind.name()),
            };
        }
        let sections = [
            (
                "ours against each peer",
                self.ratios(|kind| !kind.is_ours() && kind != Kind::Ceiling),
            ),
            (
                // The share of the ceiling ours holds: what durability costs.
                "ours against the ceiling (the same transport, nothing durable)",
                self.ratios(|kind| kind == Kind::Ceiling),
            ),
        ];
        for (heading, lines) in sections {
            if !lines.is_empty() {
                let _ = writeln!(out, "\n{heading}, by those rates:");
                for line in lines {
                    let _ = writeln!(out, "- {line}");
                }
            }
        }
        out
    }

    /// The step with the highest rate that met the target.
    fn best<'a>(&self, steps: &'a [Step]) -> Option<&'a Step> {
        steps
            .iter()
            .filter(|s| self.target.met(s))
            .max_by_key(|s| s.rate)
    }

    /// How many times the highest rate within the target of each system
    /// `against` picks each of ours reached, as the targets are put
    /// (same run, same generator). A system that met none of the rates held
    /// less than the lowest offered to it, so ours is more than that many
    /// times it.
    fn ratios(&self, against: impl Fn(Kind) -> bool) -> Vec<String> {
        let ours = self.results.iter().filter(|(kind, _, _)| kind.is_ours());
        let peers: Vec<_> = self
            .results
            .iter()
            .filter(|(kind, _, _)| against(*kind))
            .collect();
        let mut lines = Vec::new();
        for (kind, steps, _) in ours {
            let Some(best) = self.best(steps) else {
                continue;
            };
            let against: Vec<String> = peers
                .iter()
                .filter_map(|(peer, peer_steps, _)| {
                    let ratio = |rate: u32| f64::from(best.rate) / f64::from(rate);
                    Some(match self.best(peer_steps) {
                        Some(theirs) => format!("{:.1} × {}", ratio(theirs.rate), peer.name()),
                        None => {
                            let lowest = peer_steps.iter().map(|s| s.rate).min()?;
                            format!(
                                "more than {:.1} × {} (none of its rates; the lowest was {lowest} msg/s)",
                                ratio(lowest),
                                peer.name()
                            )
                        }
                    })
                })
                .collect();
            if !against.is_empty() {
                lines.push(format!("{}: {}", kind.name(), against.join(", ")));
            }
        }
        lines
    }
}

/// The idle-density table: per system, connections held, their cost in
/// server memory, and how fast they opened.
pub fn idle_table(results: &[(Kind, idle::Outcome)]) -> String {
    let mut out = String::from(
        "### idle density: authenticated idle connections on one node\n\n\
         | system | connections held | connects/s | server RSS before MiB | after MiB | bytes per connection | server CPU s to connect | database CPU s |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (kind, o) in results {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {} |",
            kind.name(),
            o.connected,
            o.connects_per_second,
            o.rss_before_kib as f64 / 1024.0,
            o.rss_after_kib as f64 / 1024.0,
            o.bytes_per_connection(),
            o.cpu.server,
            database_cell(o.cpu),
        );
    }
    out
}

/// The machine a run was measured on: CPU model and count, memory,
/// kernel (what `BENCHMARKS.md` records with every table).
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_owned();
    // The machine's CPUs, not this process's (the generator runs pinned).
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} × {model}, {memory_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}

/// A system's database CPU seconds, or a dash where it has no database
/// server (SQLite's work is in `chat`'s own seconds).
fn database_cell(cpu: Cpu) -> String {
    cpu.database
        .map_or_else(|| "—".to_owned(), |seconds| format!("{seconds:.2}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fan-out step of 1,000 members at `rate` msg/s with this p99.
    fn step(rate: u32, p99_ms: f64, delivered_share: f64) -> Step {
        let expected = u64::from(rate) * 5 * 999;
        Step {
            rate,
            sent: u64::from(rate) * 5,
            acked: u64::from(rate) * 5,
            expected,
            delivered: (expected as f64 * delivered_share) as u64,
            deliveries_per_second: f64::from(rate) * 999.0,
            latency_ms: [p99_ms / 2.0, p99_ms, p99_ms * 1.2],
            ack_ms: [1.0, 2.0, 3.0],
            cpu: Cpu::default(),
        }
    }

    #[test]
    fn the_summary_gives_ours_against_each_peer() {
        let mut outcome = Outcome::new("fan-out".into(), Target::Delivery { p99_ms: 50.0 });
        outcome.results = vec![
            (
                Kind::OursSqlite,
                // 700 is under 50 ms but lost messages: it does not count.
                vec![
                    step(10, 20.0, 1.0),
                    step(500, 49.0, 1.0),
                    step(700, 30.0, 0.99),
                ],
                0,
            ),
            (Kind::OursPostgres, vec![step(10, 60.0, 1.0)], 0),
            (
                Kind::NodeWs,
                vec![step(10, 15.0, 1.0), step(50, 40.0, 1.0)],
                0,
            ),
            (
                Kind::SocketIo,
                vec![step(10, 51.0, 1.0), step(50, 300.0, 1.0)],
                0,
            ),
            (
                Kind::Ceiling,
                vec![step(500, 20.0, 1.0), step(1000, 45.0, 1.0)],
                0,
            ),
        ];
        let table = outcome.table();
        assert!(
            table.contains("- chat (SQLite): 0.5 × ceiling (nothing durable)\n"),
            "the ceiling has a line of its own, not among the peers\n{table}"
        );
        assert!(table.contains("- chat (SQLite): 500 msg/s"), "{table}");
        assert!(
            table.contains(
                "- chat (SQLite): 10.0 × node ws, more than 50.0 × socket.io \
                 (none of its rates; the lowest was 10 msg/s)"
            ),
            "{table}"
        );
        assert_eq!(
            table.matches("- chat-gateway (PostgreSQL+Redis):").count(),
            1,
            "met none of the rates, so only its summary line and no ratio\n{table}"
        );
    }

    #[test]
    fn without_a_peer_there_is_no_ratio() {
        let mut outcome = Outcome::new("many rooms".into(), Target::Ack { p99_ms: 20.0 });
        outcome.results = vec![(Kind::OursPostgres, vec![step(2000, 10.0, 1.0)], 0)];
        assert!(!outcome.table().contains("against each peer"));
    }
}
