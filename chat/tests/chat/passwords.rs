//! Password hashing in bounded memory: a burst of registrations leaves the
//! process about where it started (argon2id takes 19 MiB per hash; the
//! work areas are reused, not left to the allocator).

use futures::StreamExt;

use crate::harness::Process;

/// The process's resident memory, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

#[tokio::test]
async fn a_burst_of_registrations_gives_its_memory_back() {
    const REGISTRATIONS: usize = 500;
    const CONCURRENT: usize = 32;
    const MIB: u64 = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let chat = Process::spawn(
        dir.path(),
        None,
        &[
            ("CHAT_MAX_CONCURRENT_HASHES", "2"),
            ("CHAT_AUTH_RATE_PER_MINUTE", "1000000"),
            ("CHAT_AUTH_RATE_BURST", "1000000"),
        ],
    );
    let base = format!("http://{}", chat.address().await);
    let before = rss(chat.pid());

    let client = reqwest::Client::new();
    let statuses: Vec<u16> = futures::stream::iter(0..REGISTRATIONS)
        .map(|i| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                client
                    .post(format!("{base}/v1/auth/register"))
                    .json(&serde_json::json!({
                        "username": format!("burst{i}"),
                        "password": format!("burst password {i}"),
                    }))
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16())
            }
        })
        .buffer_unordered(CONCURRENT)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 201),
        "not every registration succeeded: {:?}",
        statuses.iter().filter(|s| **s != 201).collect::<Vec<_>>()
    );
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let after = rss(chat.pid());
    eprintln!(
        "RSS before {} MiB, after {REGISTRATIONS} registrations {} MiB",
        before / MIB,
        after / MIB
    );
    assert!(
        after <= before + 64 * MIB,
        "RSS grew from {} MiB to {} MiB",
        before / MIB,
        after / MIB
    );
}
