//! The tables a run prints (and `all` writes to its report): every step of
//! every system, then each system's best rate within the workload's target.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::chart::{self, Chart, Series};
use crate::idle;
use crate::measure::Step;
use crate::system::{Cpu, Kind};

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
            Target::Delivery { p99_ms } => step.within_target() && step.latency_ms[1] < p99_ms,
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
             | system | offered msg/s | acked/s | ack p50 ms | ack p99 ms | deliveries/s | delivered | p50 ms | p99 ms | p99.9 ms | server CPU s | database CPU s | deliveries per CPU-s |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            self.title
        );
        for (kind, steps, _) in &self.results {
            for s in steps {
                let seconds = s.sent as f64 / s.rate.max(1) as f64;
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.2}% | {:.1} | {:.1} | {:.1} | {:.2} | {} | {:.0} |",
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
                );
            }
        }
        let _ = writeln!(out, "\nhighest rate with {}:", self.target.describe());
        for (kind, steps, rss) in &self.results {
            let best = steps
                .iter()
                .filter(|s| self.target.met(s))
                .max_by_key(|s| s.rate);
            let _ = match best {
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
        out
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
