//! `chat-bench smoke`: a few seconds of every kind of work the tool does,
//! failing unless every frame is answered and delivered. It checks the
//! tool (CI runs it), not a speed: `chat` on SQLite with messages and
//! reactions, a pair of ceiling nodes (so the link between them is
//! exercised), the store alone, and a small `messages` round.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::kind::Kind;
use crate::system::Start;
use crate::{fanout, measure_all, messages, rooms, store, Workload};

/// Runs every check in turn.
pub async fn run(start: &Start<'_>, tag: &str) -> Result<()> {
    let ours = [fanout::Frames::Messages, fanout::Frames::Reactions];
    for frames in ours {
        fan_out(start, Kind::OursSqlite, 1, frames, &[50, 100]).await?;
    }
    // One step over two nodes: members on both, the sender on the first.
    fan_out(start, Kind::Ceiling, 2, fanout::Frames::Messages, &[100]).await?;

    let plan = rooms::Plan {
        rooms: 5,
        members: 3,
        rates: vec![200],
        step: Duration::from_secs(1),
        body_len: 100,
    };
    let results = vec![(
        Kind::OursSqlite,
        store::run(Kind::OursSqlite, &plan, tag).await?,
    )];
    println!("{}", store::table(&plan, &results));
    let offered = |rate: u32| u64::from(rate) * plan.step.as_secs();
    if results[0]
        .1
        .iter()
        .any(|s| s.failed > 0 || s.appended != offered(s.rate))
    {
        bail!("smoke: the store alone did not append every message");
    }

    let plan = messages::Plan {
        events: 500,
        members: 5,
        reads: 10,
        ops: 10,
    };
    let figures = messages::run(Kind::OursSqlite, &plan, tag).await?;
    println!("{}", messages::table(&plan, &[(Kind::OursSqlite, figures)]));
    Ok(())
}

/// A room of 20 on `kind` over `nodes`, a second per rate: every frame
/// must be acknowledged and delivered.
async fn fan_out(
    start: &Start<'_>,
    kind: Kind,
    nodes: usize,
    frames: fanout::Frames,
    rates: &[u32],
) -> Result<()> {
    let workload = Workload::Fanout {
        plan: fanout::Plan {
            members: 20,
            rates: rates.to_vec(),
            step: Duration::from_secs(1),
            body_len: 100,
            frames,
        },
        nodes,
    };
    let outcome = measure_all(&workload, &[kind], start).await?;
    println!("{}", outcome.table());
    for (_, steps, _) in &outcome.results {
        for step in steps {
            if step.delivered != step.expected || step.acked != step.sent {
                bail!(
                    "smoke: {} {frames:?}: {step:?}: not every frame was acknowledged and delivered",
                    kind.name()
                );
            }
        }
    }
    Ok(())
}
