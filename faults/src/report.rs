//! The suite's table: one row per scenario, in Markdown so the same text
//! prints to the terminal and goes into `docs/operations.md`.

use std::fmt::Write;

use crate::scenario::Outcome;

/// The table of every outcome, then each scenario's notes and failures.
pub fn render(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    out.push_str(
        "| system | scenario | sent | acked | unknown | deliveries | lost | duplicated | out of order | \
         retries (same seq) | worst catch-up | peak gateway RSS | result |\n",
    );
    out.push_str(
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for o in outcomes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {}/{} | {} | {} | {} | {}/{} | {:.1} s | {} MiB | {} |",
            o.system,
            o.name,
            o.sent,
            o.acked,
            o.unknown,
            o.delivered,
            o.expected,
            o.lost,
            o.duplicated,
            o.out_of_order,
            o.retry_checks - o.retry_mismatches,
            o.retry_checks,
            o.recovery.as_secs_f64(),
            o.peak_rss_kib / 1024,
            if o.failures.is_empty() {
                "pass"
            } else {
                "FAIL"
            },
        );
    }
    for o in outcomes {
        if o.notes.is_empty() && o.failures.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}, {}:", o.system, o.name);
        for note in &o.notes {
            let _ = writeln!(out, "- {note}");
        }
        for failure in &o.failures {
            let _ = writeln!(out, "- FAILED: {failure}");
        }
    }
    out
}
