//! The fault scenarios and the judge: steady traffic from many clients,
//! one fault in the middle of it, then the delivery contract checked from
//! every client's books.
//!
//! Why one long file: it is the list of scenarios, each a method of the
//! [`Suite`] that shares its pool, its traffic and its judge, so a reader sees
//! every fault the suite breaks the system with, and how each is judged, in
//! one place. The traffic the clients send is at its end.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use tokio::sync::watch;

use crate::client::{Account, Client, Command, Rest, Stalled};
use crate::pool::{Database, Pool, Shape, Which, HEARTBEAT};
use crate::proxy::Mode;
use crate::uploads::{self, Carried, UploadBooks, Uploader};

/// One row of the report.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The deployment it ran on: the scaled pool or the embedded `chat`.
    pub system: &'static str,
    pub name: &'static str,
    pub sent: usize,
    pub acked: usize,
    /// Sends whose outcome the client could not know (connection or request
    /// failed before the answer); all were retried with the same client_id.
    pub unknown: usize,
    /// (event, member) deliveries expected and made.
    pub expected: usize,
    pub delivered: usize,
    pub lost: usize,
    /// Delivered, but more than 10 s after the fault ended (or the ack).
    pub late: usize,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Deliberate re-sends of acknowledged messages / those whose ack
    /// carried another seq.
    pub retry_checks: u64,
    pub retry_mismatches: u64,
    /// REST retries that found their send already committed (200 with the
    /// original event after a failed attempt).
    pub recovered_originals: usize,
    /// The worst delay of a delivery past the later of its ack and the
    /// fault's end: how long the system took to catch up.
    pub recovery: Duration,
    pub peak_rss_kib: u64,
    /// What the fault itself showed (detection times, close codes …).
    pub notes: Vec<String>,
    pub failures: Vec<String>,
}

/// The load every scenario runs under.
#[derive(Debug, Clone)]
pub struct Load {
    pub clients: usize,
    pub rooms: usize,
    /// Messages per second, all senders together.
    pub rate: u32,
    pub duration: Duration,
}

/// Every scenario, in the order they run.
pub const SCENARIOS: &[&str] = &[
    "baseline",
    "gateway-sigkill",
    "rolling-restart",
    "redis-restart",
    "redis-pubsub-kill",
    "redis-pause",
    "postgres-sigstop",
    "postgres-terminate",
    "client-slow-network",
    "client-reset",
    "client-half-open",
    "stalled-reader",
    "api-killed-after-commit",
    "object-storage-down",
    "disk-full",
    "read-only-disk",
];

/// The scenarios of the embedded default (`chat` on SQLite): the others
/// break parts it does not have.
pub const EMBEDDED_SCENARIOS: &[&str] = &["baseline", "disk-full", "read-only-disk"];

/// How long a broken disk stays broken.
const DISK_FAULT_HOLD: Duration = Duration::from_secs(6);
/// How soon after the disk is given room (or repaired) sends must commit
/// again.
const DISK_RECOVERY: Duration = Duration::from_secs(5);

/// How many clients upload files in `object-storage-down`.
const UPLOADERS: usize = 4;
/// How long the object storage stays killed, and then frozen.
const OBJECT_STORAGE_DOWN: Duration = Duration::from_secs(5);
const OBJECT_STORAGE_FROZEN: Duration = Duration::from_secs(3);

/// How late an acknowledged event may reach a member after the fault.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);
/// Memory a gateway may reach under this load before we call it unbounded.
const RSS_LIMIT_KIB: u64 = 256 * 1024;
/// The same for `chat`, which also hashes the suite's passwords: argon2id
/// takes 19 MiB a hash, and the allocator keeps those arenas.
const EMBEDDED_RSS_LIMIT_KIB: u64 = 512 * 1024;

pub struct Suite {
    pub pool: Pool,
    rest: Rest,
    clients: Vec<Client>,
    /// Clients from this index on connect through the client fault proxy.
    proxied_from: usize,
    rooms: Vec<String>,
    load: Load,
    _stop: watch::Sender<bool>,
    peak_rss_kib: u64,
    /// What a storage scenario broke, when, and what `/readyz` said.
    disk: Option<DiskFault>,
    /// When the object storage was killed and when it answered again.
    object_storage_outage: Option<(Instant, Instant)>,
}

/// What a storage scenario saw while the store's disk was broken.
struct DiskFault {
    /// "full" or "read-only".
    what: &'static str,
    broke_at: Instant,
    /// When the disk had room again (or was repaired, as the store started
    /// again).
    healed_at: Instant,
    /// `/readyz` said the store could not take writes (`degraded`) or
    /// could not be reached (503) at least once meanwhile.
    readyz_told: bool,
}

impl Suite {
    /// Registers the users, creates the rooms (everyone joins every room)
    /// and connects the clients: half straight to nginx, half through the
    /// client fault proxy.
    pub async fn start(pool: Pool, load: Load) -> Result<Self> {
        let rest = Rest::new(pool.entry)?;
        let run = std::process::id();
        let mut accounts = Vec::new();
        for i in 0..load.clients {
            accounts.push(rest.register(&format!("f{run}u{i}")).await?);
        }
        let mut rooms = Vec::new();
        for r in 0..load.rooms {
            let room = rest
                .create_room(&accounts[0], &format!("faults {run} {r}"))
                .await?;
            for account in &accounts[1..] {
                rest.join(account, &room).await?;
            }
            rooms.push(room);
        }
        let (stop, stopped) = watch::channel(false);
        let proxied_from = load.clients / 2;
        let clients = accounts
            .into_iter()
            .enumerate()
            .map(|(i, account)| {
                let via = if i >= proxied_from {
                    pool.client_proxy.addr()
                } else {
                    pool.entry
                };
                Client::spawn(account, format!("ws://{via}/v1/ws"), stopped.clone())
            })
            .collect::<Vec<_>>();
        let suite = Self {
            pool,
            rest,
            clients,
            proxied_from,
            rooms,
            load,
            _stop: stop,
            peak_rss_kib: 0,
            disk: None,
            object_storage_outage: None,
        };
        // Everyone connected and resumed before the first scenario.
        let started = Instant::now();
        while suite.clients.iter().any(|c| c.books().connects == 0) {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("clients did not connect within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(suite)
    }

    /// Runs one scenario by name.
    pub async fn run(&mut self, name: &'static str) -> Result<Outcome> {
        for client in &self.clients {
            client.books().reset();
        }
        self.peak_rss_kib = 0;
        let mut outcome = Outcome {
            system: match self.pool.shape {
                Shape::Scaled => "pool (PostgreSQL)",
                Shape::Embedded => "chat (SQLite)",
            },
            name,
            ..Outcome::default()
        };
        let rest_sends = name == "api-killed-after-commit";
        let body_len = if name == "stalled-reader" { 2000 } else { 100 };
        let mut stalled = None;
        if name == "stalled-reader" {
            let account = self
                .rest
                .register(&format!("stall{}", std::process::id()))
                .await?;
            for room in &self.rooms {
                self.rest.join(&account, room).await?;
            }
            let closes = self.closes_by_code().await;
            stalled = Some((Stalled::connect(self.pool.entry, &account).await?, closes));
        }
        let traffic = tokio::spawn(traffic(
            self.handles(),
            self.rest.clone(),
            self.rooms.clone(),
            self.load.clone(),
            name,
            body_len,
            rest_sends,
        ));
        let uploads = (name == "object-storage-down").then(|| {
            let uploaders = self
                .clients
                .iter()
                .take(UPLOADERS)
                .map(|c| Uploader {
                    account: c.account.clone(),
                    books: c.clone_sender().books,
                })
                .collect();
            tokio::spawn(uploads::run(
                self.pool.entry,
                uploaders,
                self.rooms.clone(),
                Instant::now() + self.load.duration,
                name,
            ))
        });
        let fault_end = self.inject(name, &mut outcome).await?;
        let stats = traffic.await.context("traffic task")?;
        let uploads = match uploads {
            Some(task) => Some(task.await.context("uploads task")??),
            None => None,
        };
        outcome.recovered_originals = stats.recovered_originals;
        if rest_sends {
            outcome.notes.push(format!(
                "{} retries found their send already committed and got its original seq",
                stats.recovered_originals
            ));
        }
        self.judge(fault_end, &mut outcome).await?;
        if let Some(uploads) = uploads {
            self.judge_uploads(uploads, &mut outcome).await?;
        }
        if let Some(disk) = self.disk.take() {
            self.judge_storage(disk, &mut outcome).await?;
        }
        if let Some((stalled, closes_before)) = stalled {
            self.judge_stalled(stalled, closes_before, &mut outcome)
                .await;
        }
        outcome.peak_rss_kib = self.peak_rss_kib;
        let limit = match self.pool.shape {
            Shape::Scaled => RSS_LIMIT_KIB,
            Shape::Embedded => EMBEDDED_RSS_LIMIT_KIB,
        };
        if outcome.peak_rss_kib > limit {
            outcome.failures.push(format!(
                "a gateway reached {} MiB",
                outcome.peak_rss_kib / 1024
            ));
        }
        Ok(outcome)
    }

    fn handles(&self) -> Vec<Handle> {
        self.clients
            .iter()
            .map(|c| Handle {
                account: c.account.clone(),
                client: c.clone_sender(),
            })
            .collect()
    }

    /// Sleeps, sampling the gateways' memory.
    async fn pause(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            self.peak_rss_kib = self.peak_rss_kib.max(self.pool.peak_gateway_rss_kib());
            tokio::time::sleep(Duration::from_millis(250).min(until - Instant::now())).await;
        }
    }

    /// Injects the scenario's fault while the traffic runs; returns when the
    /// fault ended (everything healed).
    async fn inject(&mut self, name: &str, outcome: &mut Outcome) -> Result<Instant> {
        let start = Instant::now();
        self.pause(Duration::from_secs(5)).await;
        match name {
            "baseline" | "stalled-reader" => {}
            "gateway-sigkill" => {
                self.pool.gateways[0].kill();
                self.pause(Duration::from_secs(5)).await;
                self.pool.restart(Which::Gateway(0)).await?;
            }
            "rolling-restart" => {
                for i in 0..self.pool.gateways.len() {
                    let took = self.pool.gateways[i].terminate(Duration::from_secs(15))?;
                    outcome.notes.push(format!(
                        "gateway {} drained in {:.1} s",
                        i + 1,
                        took.as_secs_f64()
                    ));
                    self.pool.restart(Which::Gateway(i)).await?;
                    self.pause(Duration::from_secs(1)).await;
                }
            }
            "redis-restart" => {
                self.pool
                    .service(Which::Redis)
                    .terminate(Duration::from_secs(5))?;
                self.pause(Duration::from_secs(4)).await;
                self.pool.restart(Which::Redis).await?;
            }
            "redis-pubsub-kill" => {
                for _ in 0..2 {
                    let killed = self
                        .redis_command(&["CLIENT", "KILL", "TYPE", "pubsub"])
                        .await?;
                    outcome
                        .notes
                        .push(format!("killed {killed} pub/sub connections"));
                    self.pause(Duration::from_secs(5)).await;
                }
            }
            "redis-pause" => {
                self.redis_command(&["CLIENT", "PAUSE", "5000", "ALL"])
                    .await?;
                self.pause(Duration::from_secs(5)).await;
            }
            "postgres-sigstop" => {
                self.pool.postgres()?.signal_tree(Signal::SIGSTOP)?;
                self.pause(Duration::from_secs(5)).await;
                self.pool.postgres()?.signal_tree(Signal::SIGCONT)?;
            }
            "postgres-terminate" => {
                for _ in 0..2 {
                    let ended = self.terminate_backends().await?;
                    outcome
                        .notes
                        .push(format!("terminated {ended} connections"));
                    self.pause(Duration::from_secs(5)).await;
                }
            }
            "client-slow-network" => {
                self.pool
                    .client_proxy
                    .set(Mode::Delay(Duration::from_millis(250)));
                self.pause(Duration::from_secs(5)).await;
                self.pool.client_proxy.set(Mode::Pass);
            }
            "client-reset" => {
                for _ in 0..2 {
                    self.pool.client_proxy.set(Mode::Reset);
                    self.pause(Duration::from_millis(300)).await;
                    self.pool.client_proxy.set(Mode::Pass);
                    self.pause(Duration::from_secs(5)).await;
                }
            }
            "client-half-open" => self.half_open(outcome).await?,
            "api-killed-after-commit" => self.kill_api_after_commit(outcome).await?,
            "object-storage-down" => self.object_storage_down(outcome).await?,
            "disk-full" => self.disk_full(outcome).await?,
            "read-only-disk" => self.read_only_disk(outcome).await?,
            other => bail!("no scenario named {other}"),
        }
        let fault_end = Instant::now();
        let rest = self.load.duration.saturating_sub(start.elapsed());
        self.pause(rest).await;
        Ok(fault_end)
    }

    async fn redis_command(&self, args: &[&str]) -> Result<i64> {
        let client = redis::Client::open(self.pool.redis_url()?)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        let reply: redis::Value = command.query_async(&mut conn).await?;
        Ok(match reply {
            redis::Value::Int(n) => n,
            _ => 0,
        })
    }

    async fn terminate_backends(&self) -> Result<i64> {
        let mut admin = self.pool.postgres_admin().await?;
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = 'chat' AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut admin)
        .await?;
        Ok(ended)
    }

    /// The proxied clients' network goes dark: the gateways must close them
    /// (4000) within two heartbeat intervals.
    async fn half_open(&mut self, outcome: &mut Outcome) -> Result<()> {
        let series = "chat_gateway_connections_closed_total";
        let before = self.pool.gateway_metric(series, &[("code", "4000")]).await;
        let cut = (self.clients.len() - self.proxied_from) as f64;
        self.pool.client_proxy.set(Mode::Blackhole);
        let started = Instant::now();
        let mut detected = None;
        while started.elapsed() < HEARTBEAT * 4 {
            let closed = self.pool.gateway_metric(series, &[("code", "4000")]).await - before;
            if closed >= cut {
                detected = Some(started.elapsed());
                break;
            }
            self.pause(Duration::from_millis(100)).await;
        }
        match detected {
            Some(took) => {
                outcome.notes.push(format!(
                    "{cut} half-open connections closed (4000) {:.1} s after the blackhole (heartbeat {} s)",
                    took.as_secs_f64(),
                    HEARTBEAT.as_secs()
                ));
                if took > HEARTBEAT * 2 {
                    outcome.failures.push(format!(
                        "half-open detected after {took:?}, more than two heartbeat intervals"
                    ));
                }
            }
            None => outcome
                .failures
                .push("the gateways did not close the half-open connections".into()),
        }
        self.pause(Duration::from_secs(3)).await;
        self.pool.client_proxy.set(Mode::Pass);
        Ok(())
    }

    /// Transactions commit but their answers never reach the api, which is
    /// then killed: each client retries, and must get the original seq.
    async fn kill_api_after_commit(&mut self, outcome: &mut Outcome) -> Result<()> {
        self.pool
            .db_proxy()?
            .set(Mode::HoldRepliesAfter(b"COMMIT".to_vec()));
        let started = Instant::now();
        while self.pool.db_proxy()?.held_connections() < 3
            && started.elapsed() < Duration::from_secs(5)
        {
            self.pause(Duration::from_millis(50)).await;
        }
        outcome.notes.push(format!(
            "{} commits left unanswered when the api was killed",
            self.pool.db_proxy()?.held_connections()
        ));
        self.pool.api.kill();
        self.pool.db_proxy()?.set(Mode::Pass);
        self.pause(Duration::from_secs(1)).await;
        self.pool.restart(Which::Api).await?;
        Ok(())
    }

    /// The object storage goes away while clients upload: s3s-fs is killed
    /// (SIGKILL: connections refused, those in flight cut, as a crash or a
    /// partition shows) for a few seconds and started again on the same
    /// directory; then, once it answers, frozen (SIGSTOP: connections
    /// accepted by the kernel, never answered, as an overloaded or stalled
    /// server) for a few more. Uploads are refused `unavailable` meanwhile,
    /// or wait out the freeze; none may hang past the client's timeout.
    async fn object_storage_down(&mut self, outcome: &mut Outcome) -> Result<()> {
        self.pool.service(Which::ObjectStorage).kill();
        let down_at = Instant::now();
        self.pause(OBJECT_STORAGE_DOWN / 2).await;
        let readyz = self.readyz_body().await;
        outcome.notes.push(format!(
            "/readyz while the object storage was down: {}",
            if readyz.contains("degraded") {
                "degraded"
            } else {
                "said ready"
            }
        ));
        self.pause(OBJECT_STORAGE_DOWN - OBJECT_STORAGE_DOWN / 2)
            .await;
        self.pool.restart_object_storage().await?;
        let up_at = Instant::now();
        self.object_storage_outage = Some((down_at, up_at));
        self.pause(Duration::from_secs(2)).await;
        self.pool
            .service(Which::ObjectStorage)
            .signal_tree(Signal::SIGSTOP)?;
        self.pause(OBJECT_STORAGE_FROZEN).await;
        self.pool
            .service(Which::ObjectStorage)
            .signal_tree(Signal::SIGCONT)?;
        outcome.notes.push(format!(
            "s3s-fs killed for {:.1} s (restarted on its directory), then frozen (SIGSTOP) for {} s",
            up_at.duration_since(down_at).as_secs_f64(),
            OBJECT_STORAGE_FROZEN.as_secs()
        ));
        Ok(())
    }

    /// `object-storage-down`'s own checks: every upload was answered 201
    /// or refused `unavailable` (or its connection failed), within the
    /// client's timeout; some were refused while the storage was down and
    /// succeeded on a retry after; every attachment a stored message
    /// carries is `ready` and reads back through its link as uploaded; and
    /// every acknowledged message's attachment is carried.
    async fn judge_uploads(&mut self, books: UploadBooks, outcome: &mut Outcome) -> Result<()> {
        let (down_at, up_at) = self
            .object_storage_outage
            .take()
            .context("the object storage was never taken down")?;
        let while_down = books
            .refused
            .iter()
            .filter(|at| **at >= down_at && **at <= up_at + Duration::from_secs(1))
            .count();
        outcome.notes.push(format!(
            "{} upload requests: {} accepted (201), {} refused 503 unavailable ({while_down} while s3s-fs was down), \
             {} connection errors; {} files accepted on a retry; slowest answer {:.1} s",
            books.attempts,
            books.uploaded.len(),
            books.refused.len(),
            books.connection_errors,
            books.accepted_after_retry,
            books.slowest.as_secs_f64()
        ));
        if !books.unexpected.is_empty() {
            outcome.failures.push(format!(
                "{} upload requests answered neither 201 nor 503 unavailable (e.g. {:?})",
                books.unexpected.len(),
                &books.unexpected[..books.unexpected.len().min(3)]
            ));
        }
        if books.refused.is_empty() && books.connection_errors == 0 {
            outcome
                .failures
                .push("no upload was refused while the object storage was down".into());
        }
        if books.accepted_after_retry == 0 {
            outcome
                .failures
                .push("no refused upload was accepted on a retry".into());
        }
        if books.gave_up > 0 {
            outcome.failures.push(format!(
                "{} uploads were still refused 30 s on, after the storage came back",
                books.gave_up
            ));
        }
        let mut admin = self.pool.postgres_admin().await?;
        let rooms: Vec<sqlx::types::Uuid> = self
            .rooms
            .iter()
            .map(|r| r.parse())
            .collect::<Result<_, _>>()
            .context("room id")?;
        let rows: Vec<(String, String, Option<i64>, bool)> = sqlx::query_as(
            "SELECT id::text, state, size, thumbnail_type IS NOT NULL FROM attachments \
             WHERE room_id = ANY($1) AND seq IS NOT NULL",
        )
        .bind(&rooms)
        .fetch_all(&mut admin)
        .await?;
        let mut carried = Vec::new();
        for (id, state, size, has_thumbnail) in rows {
            if state != "ready" {
                outcome.failures.push(format!(
                    "attachment {id} is carried by a message but {state}"
                ));
            }
            carried.push(Carried {
                id,
                size,
                has_thumbnail,
            });
        }
        let carried_ids: HashSet<&str> = carried.iter().map(|c| c.id.as_str()).collect();
        let uncarried = books
            .sent
            .iter()
            .filter(|id| !carried_ids.contains(id.as_str()))
            .count();
        if uncarried > 0 {
            outcome.failures.push(format!(
                "{uncarried} attachments of acknowledged messages are carried by no stored message"
            ));
        }
        let reader = self.clients[0].account.clone();
        let problems =
            uploads::check_blobs(self.pool.entry, &reader, &carried, &books.uploaded).await?;
        let images = carried
            .iter()
            .filter(|c| books.uploaded.get(&c.id).is_some_and(|u| u.image))
            .count();
        outcome.notes.push(format!(
            "{} messages carry attachments ({images} images); {} read back through their links as uploaded",
            carried.len(),
            carried.len() - problems.len().min(carried.len())
        ));
        if !problems.is_empty() {
            outcome.failures.push(format!(
                "{} attachments do not read back as uploaded (e.g. {:?})",
                problems.len(),
                &problems[..problems.len().min(3)]
            ));
        }
        Ok(())
    }

    /// The store's disk fills to the last block under load and stays full
    /// for a few seconds, then 64 MiB are freed: sends are refused
    /// (`unavailable`) while nothing can commit, and commit again once
    /// there is room.
    async fn disk_full(&mut self, outcome: &mut Outcome) -> Result<()> {
        if self.pool.storage.is_none() {
            bail!("the storage scenarios mount a disk for the store: run the suite as root");
        }
        if let Database::Postgres(_) = self.pool.database {
            // A fresh WAL segment (16 MiB, allocated now): PostgreSQL stops
            // with a PANIC when it cannot create the next one, so the
            // scenario's few seconds of traffic must fit in this one and
            // meet the full disk where it does in production first: in
            // extending the tables. A checkpoint first, for the same
            // reason: a timed one (every 5 min) that falls in the full
            // seconds ends in a PANIC writing its state files, and
            // recovery cannot run on the full disk; one now moves the next
            // 5 minutes away. Where the suite's scenarios put this one
            // relative to PostgreSQL's start is otherwise chance.
            let mut admin = self.pool.postgres_admin().await?;
            sqlx::query("CHECKPOINT").execute(&mut admin).await?;
            sqlx::query("SELECT pg_switch_wal()")
                .execute(&mut admin)
                .await?;
        }
        let storage = self.pool.storage.as_ref().context("storage")?;
        let filled = storage.fill()?;
        let full_at = Instant::now();
        outcome.notes.push(format!(
            "the store's disk filled with {} MiB of ballast, held full for {} s",
            filled >> 20,
            DISK_FAULT_HOLD.as_secs()
        ));
        let readyz_told = self.watch_readyz(full_at).await;
        self.pool.storage.as_ref().context("storage")?.free(64)?;
        self.disk = Some(DiskFault {
            what: "full",
            broke_at: full_at,
            healed_at: Instant::now(),
            readyz_told,
        });
        Ok(())
    }

    /// The store's filesystem turns read-only under load, as the kernel
    /// makes it after an error, for a few seconds; then the operator's
    /// repair: stop what holds files there (`chat`, or PostgreSQL), unmount,
    /// `e2fsck`, mount, start it again. Sends are refused meanwhile and
    /// commit again once it is back.
    async fn read_only_disk(&mut self, outcome: &mut Outcome) -> Result<()> {
        let storage =
            self.pool.storage.as_ref().context(
                "the storage scenarios mount a disk for the store: run the suite as root",
            )?;
        storage.break_read_only()?;
        let broke_at = Instant::now();
        let readyz_told = self.watch_readyz(broke_at).await;
        let repairing = Instant::now();
        let holder = match self.pool.shape {
            Shape::Embedded => Which::Api,
            Shape::Scaled => Which::Postgres,
        };
        self.pool
            .service(holder)
            .terminate(Duration::from_secs(15))?;
        self.pool.storage.as_ref().context("storage")?.repair()?;
        // Healed from here: what commits once the store runs again is
        // recovery, not an ack while broken.
        let healed_at = Instant::now();
        self.pool.restart(holder).await?;
        if matches!(holder, Which::Postgres) {
            let started = Instant::now();
            while self.pool.postgres_admin().await.is_err() {
                if started.elapsed() > Duration::from_secs(30) {
                    bail!("PostgreSQL did not accept connections within 30 s of its repair");
                }
                self.pause(Duration::from_millis(100)).await;
            }
        }
        outcome.notes.push(format!(
            "the store's filesystem was read-only for {} s (an ext4 error, errors=remount-ro), \
             then repaired: stop, unmount, e2fsck, mount, start ({:.1} s)",
            DISK_FAULT_HOLD.as_secs(),
            repairing.elapsed().as_secs_f64()
        ));
        self.disk = Some(DiskFault {
            what: "read-only",
            broke_at,
            healed_at,
            readyz_told,
        });
        Ok(())
    }

    /// Polls `/readyz` until [`DISK_FAULT_HOLD`] after `since`: whether it
    /// ever said the store could not take writes, or could not be reached.
    async fn watch_readyz(&mut self, since: Instant) -> bool {
        let mut told = false;
        while since.elapsed() < DISK_FAULT_HOLD {
            let bodies = self.readyz_body().await;
            told |= bodies.contains("degraded") || bodies.contains("unreachable");
            self.pause(Duration::from_millis(250)).await;
        }
        told
    }

    /// What `/readyz` answers, of every process that writes to the store
    /// (the api and the gateways, or `chat`), one body after another.
    async fn readyz_body(&mut self) -> String {
        let addrs: Vec<_> = std::iter::once(&self.pool.api)
            .chain(&self.pool.gateways)
            .filter_map(|s| s.addr)
            .collect();
        let mut bodies = String::new();
        for addr in addrs {
            if let Ok(response) = reqwest::get(format!("http://{addr}/readyz")).await {
                bodies.push_str(&response.text().await.unwrap_or_default());
            }
        }
        bodies
    }

    /// A storage scenario's own checks: sends were refused while the disk
    /// was broken, committed again soon after it healed, `/readyz` said so;
    /// and, with the writers stopped, the database read directly holds
    /// every acknowledged send at its seq.
    async fn judge_storage(&mut self, disk: DiskFault, outcome: &mut Outcome) -> Result<()> {
        let (mut refused, mut recovered_at) = (0, None::<Instant>);
        let mut acked: HashMap<String, (String, i64)> = HashMap::new();
        // Acks that came while the disk was broken, past a second for the
        // commits already under way: on a full disk a write that needs no
        // new block may still commit (and is then stored, checked below);
        // on a read-only one nothing can.
        let settled = disk.broke_at + Duration::from_secs(1);
        let mut acked_while_broken = 0;
        for client in &self.clients {
            let books = client.books();
            refused += books
                .refused
                .iter()
                .filter(|at| **at >= disk.broke_at && **at <= disk.healed_at)
                .count();
            for (client_id, (room, seq, at)) in &books.acked {
                acked.insert(client_id.clone(), (room.clone(), *seq));
                if *at > disk.healed_at {
                    recovered_at = Some(recovered_at.map_or(*at, |r| r.min(*at)));
                } else if *at > settled {
                    acked_while_broken += 1;
                }
            }
        }
        let what = disk.what;
        outcome.notes.push(format!(
            "{acked_while_broken} sends acknowledged while the disk was {what} (after its first second)"
        ));
        if what == "read-only" && acked_while_broken > 0 {
            outcome.failures.push(format!(
                "{acked_while_broken} sends were acknowledged while nothing could be written"
            ));
        }
        outcome.notes.push(format!(
            "{refused} sends refused (unavailable) while the disk was {what}; /readyz {}",
            if disk.readyz_told {
                "said so"
            } else {
                "said ready"
            }
        ));
        if refused == 0 {
            outcome
                .failures
                .push(format!("no send was refused while the disk was {what}"));
        } else if !disk.readyz_told {
            outcome.failures.push(format!(
                "/readyz said ready throughout while the disk was {what}"
            ));
        }
        match recovered_at.map(|at| at.saturating_duration_since(disk.healed_at)) {
            Some(took) => {
                outcome.notes.push(format!(
                    "sends committed again {:.1} s after the disk was {}",
                    took.as_secs_f64(),
                    if what == "full" {
                        "given room"
                    } else {
                        "repaired"
                    }
                ));
                if took > DISK_RECOVERY {
                    outcome.failures.push(format!(
                        "sends committed again only {took:?} after the disk healed"
                    ));
                }
            }
            None => outcome
                .failures
                .push("no send committed after the disk healed".into()),
        }
        let stored = self.stored_with_writers_stopped().await?;
        let missing: Vec<&String> = acked
            .iter()
            .filter(|(client_id, at)| stored.get(*client_id) != Some(*at))
            .map(|(client_id, _)| client_id)
            .collect();
        outcome.notes.push(format!(
            "{} acknowledged sends, all read back from the database with the writers stopped",
            acked.len()
        ));
        if !missing.is_empty() {
            outcome.failures.push(format!(
                "{} acknowledged sends are not in the database at their seq (e.g. {:?})",
                missing.len(),
                &missing[..missing.len().min(3)]
            ));
        }
        if let Some(storage) = &self.pool.storage {
            storage.clear()?;
        }
        Ok(())
    }

    /// Stops every process that writes to the store, reads the suite's
    /// rooms straight from the database (client_id → room, seq), and
    /// starts them again.
    async fn stored_with_writers_stopped(&mut self) -> Result<HashMap<String, (String, i64)>> {
        for i in 0..self.pool.gateways.len() {
            self.pool.gateways[i].terminate(Duration::from_secs(15))?;
        }
        self.pool.api.terminate(Duration::from_secs(15))?;
        const MESSAGES: &str = "SELECT client_id, seq FROM room_events \
             WHERE room_id = $1 AND client_id IS NOT NULL";
        let mut stored = HashMap::new();
        for room in &self.rooms {
            let id: sqlx::types::Uuid = room.parse().context("room id")?;
            let rows: Vec<(String, i64)> = match &self.pool.database {
                Database::Postgres(url) => {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(url).await?;
                    sqlx::query_as(MESSAGES)
                        .bind(id)
                        .fetch_all(&mut conn)
                        .await?
                }
                Database::Sqlite(path) => {
                    use sqlx::Connection;
                    let url = format!("sqlite://{}", path.display());
                    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
                    sqlx::query_as(MESSAGES)
                        .bind(id)
                        .fetch_all(&mut conn)
                        .await?
                }
            };
            for (client_id, seq) in rows {
                stored.insert(client_id, (room.clone(), seq));
            }
        }
        self.pool.restart(Which::Api).await?;
        for i in 0..self.pool.gateways.len() {
            self.pool.restart(Which::Gateway(i)).await?;
        }
        Ok(stored)
    }

    /// Checks the contract from every client's books.
    async fn judge(&mut self, fault_end: Instant, outcome: &mut Outcome) -> Result<()> {
        // Every send gets its answer (retries included).
        let started = Instant::now();
        while self.clients.iter().any(|c| c.books().pending() > 0) {
            if started.elapsed() > Duration::from_secs(30) {
                let pending: usize = self.clients.iter().map(|c| c.books().pending()).sum();
                outcome.failures.push(format!(
                    "{pending} sends still unacknowledged 30 s after the load"
                ));
                break;
            }
            self.pause(Duration::from_millis(100)).await;
        }
        let mut acked: HashMap<(String, i64), (String, Instant)> = HashMap::new();
        for client in &self.clients {
            let books = client.books();
            outcome.sent += books.sent.len();
            outcome.unknown += books.unknown.len();
            outcome.retry_checks += books.retry_checks;
            outcome.retry_mismatches += books.retry_mismatches;
            for (client_id, (room, seq, at)) in &books.acked {
                if let Some((other, _)) =
                    acked.insert((room.clone(), *seq), (client_id.clone(), *at))
                {
                    outcome.failures.push(format!(
                        "{client_id} and {other} were both acked as {room}#{seq}"
                    ));
                }
            }
        }
        outcome.acked = acked.len();
        // Wait for every acknowledged event to reach every member.
        let members = self.clients.len();
        outcome.expected = acked.len() * members;
        let last_ack = acked.values().map(|(_, at)| *at).max().unwrap_or(fault_end);
        let deadline = fault_end.max(last_ack) + DELIVERY_DEADLINE + Duration::from_secs(5);
        loop {
            let delivered: usize = self
                .clients
                .iter()
                .map(|c| {
                    let books = c.books();
                    acked.keys().filter(|k| books.seen.contains_key(*k)).count()
                })
                .sum();
            outcome.delivered = delivered;
            if delivered == outcome.expected || Instant::now() > deadline {
                break;
            }
            self.pause(Duration::from_millis(100)).await;
        }
        outcome.lost = outcome.expected - outcome.delivered;
        let mut recovery = Duration::ZERO;
        let mut ids_seen: HashSet<String> = HashSet::new();
        for (i, client) in self.clients.iter().enumerate() {
            let books = client.books();
            outcome.duplicated += books.duplicates;
            outcome.out_of_order += books.out_of_order;
            for (key, (client_id, acked_at)) in &acked {
                let Some(at) = books.seen.get(key) else {
                    continue;
                };
                let due = (*acked_at).max(fault_end);
                recovery = recovery.max(at.saturating_duration_since(due));
                if at.saturating_duration_since(due) > DELIVERY_DEADLINE {
                    outcome.late += 1;
                }
                if books.messages.get(key) != Some(client_id) {
                    outcome.failures.push(format!(
                        "{}#{}: acked for {client_id}, delivered as {:?}",
                        key.0,
                        key.1,
                        books.messages.get(key)
                    ));
                }
            }
            if i == 0 {
                // At most once in the log: no client_id under two seqs.
                for client_id in books.messages.values() {
                    if !ids_seen.insert(client_id.clone()) {
                        outcome
                            .failures
                            .push(format!("{client_id} is stored more than once"));
                    }
                }
            }
        }
        outcome.recovery = recovery;
        // Nothing stored past what the clients hold (a lost last event).
        let owner = self.clients[0].account.clone();
        let heads = self.rest.heads(&owner).await?;
        let last = self.clients[0].books().last.clone();
        for room in &self.rooms {
            if heads.get(room) != last.get(room) {
                outcome.failures.push(format!(
                    "room {room}: the store's head is {:?}, clients reached {:?}",
                    heads.get(room),
                    last.get(room)
                ));
            }
        }
        for (what, count) in [
            ("lost", outcome.lost as u64),
            ("late", outcome.late as u64),
            ("duplicated", outcome.duplicated),
            ("out of order", outcome.out_of_order),
            (
                "retries answered with another seq",
                outcome.retry_mismatches,
            ),
        ] {
            if count > 0 {
                outcome.failures.push(format!("{count} {what}"));
            }
        }
        if outcome.acked == 0 {
            outcome.failures.push("nothing was acknowledged".into());
        }
        if outcome.name == "api-killed-after-commit" && outcome.recovered_originals == 0 {
            outcome
                .failures
                .push("no retry found its send already committed".into());
        }
        outcome.failures.extend(self.pool.panics());
        match self.pool.wait_all_ready(Duration::from_secs(10)).await {
            Ok(_) => {}
            Err(e) => outcome
                .failures
                .push(format!("/readyz did not recover: {e}")),
        }
        Ok(())
    }

    /// The stalled client must have been cut off by the gateway; which
    /// close the gateway chose is reported (1013 if its queue overflowed
    /// first, 4000 if the missing pong counted first).
    async fn judge_stalled(
        &mut self,
        stalled: Stalled,
        closes_before: HashMap<&'static str, f64>,
        outcome: &mut Outcome,
    ) {
        let closes_after = self.closes_by_code().await;
        let chosen: Vec<String> = closes_after
            .iter()
            .filter(|(code, n)| **n > closes_before.get(*code).copied().unwrap_or(0.0))
            .map(|(code, n)| {
                format!(
                    "{code} ×{}",
                    n - closes_before.get(code).copied().unwrap_or(0.0)
                )
            })
            .collect();
        match stalled.how_it_ended(Duration::from_secs(5)).await {
            Ok(_) => outcome.notes.push(format!(
                "the stalled reader was disconnected by the gateway (closes during the scenario: {})",
                if chosen.is_empty() { "none".to_owned() } else { chosen.join(", ") }
            )),
            Err(e) => outcome.failures.push(format!("{e}")),
        }
    }

    async fn closes_by_code(&mut self) -> HashMap<&'static str, f64> {
        let mut closes = HashMap::new();
        for code in [
            "1000", "1001", "1012", "1013", "4000", "4001", "4003", "abnormal",
        ] {
            let n = self
                .pool
                .gateway_metric("chat_gateway_connections_closed_total", &[("code", code)])
                .await;
            closes.insert(code, n);
        }
        closes
    }
}

/// What the traffic task needs of a client.
struct Handle {
    account: Account,
    client: crate::client::Sender,
}

struct TrafficStats {
    recovered_originals: usize,
}

/// Sends `load.rate` messages a second for `load.duration`, spread over the
/// clients and rooms; every 20th send also re-sends an acknowledged one.
async fn traffic(
    handles: Vec<Handle>,
    rest: Rest,
    rooms: Vec<String>,
    load: Load,
    tag: &'static str,
    body_len: usize,
    over_rest: bool,
) -> TrafficStats {
    let body: String = "x".repeat(body_len);
    let total = (load.rate as u64 * load.duration.as_secs()) as usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / load.rate);
    let mut rest_tasks = tokio::task::JoinSet::new();
    let run = std::process::id();
    for n in 0..total {
        tick.tick().await;
        let handle = &handles[n % handles.len()];
        let room = rooms[(n / handles.len()) % rooms.len()].clone();
        let client_id = format!("{tag}-{run}-{n}");
        if over_rest {
            let (rest, account, books, body) = (
                rest.clone(),
                handle.account.clone(),
                handle.client.books.clone(),
                body.clone(),
            );
            rest_tasks.spawn(rest_send(rest, account, books, room, client_id, body));
        } else {
            handle.client.send(Command::Send {
                room,
                client_id,
                body: body.clone(),
            });
            if n % 20 == 19 && n >= handles.len() * 4 {
                let earlier = format!("{tag}-{run}-{}", n - handles.len() * 4);
                let owner = &handles[(n - handles.len() * 4) % handles.len()];
                if owner
                    .client
                    .books
                    .lock()
                    .expect("books")
                    .acked
                    .contains_key(&earlier)
                {
                    owner.client.send(Command::Resend { client_id: earlier });
                }
            }
        }
    }
    let mut recovered = 0;
    while let Some(result) = rest_tasks.join_next().await {
        if let Ok(true) = result {
            recovered += 1;
        }
    }
    TrafficStats {
        recovered_originals: recovered,
    }
}

/// A REST send retried with the same client_id until it is answered; true
/// when a retry found it already committed (a 200 after a failure).
async fn rest_send(
    rest: Rest,
    account: Account,
    books: std::sync::Arc<std::sync::Mutex<crate::client::Books>>,
    room: String,
    client_id: String,
    body: String,
) -> bool {
    books
        .lock()
        .expect("books")
        .sent
        .insert(client_id.clone(), room.clone());
    let started = Instant::now();
    let mut failed = false;
    while started.elapsed() < Duration::from_secs(60) {
        match rest.send(&account, &room, &client_id, &body).await {
            Ok((seq, existed)) => {
                books
                    .lock()
                    .expect("books")
                    .record_ack(&client_id, &room, seq);
                return failed && existed;
            }
            Err(_) => {
                failed = true;
                books
                    .lock()
                    .expect("books")
                    .unknown
                    .insert(client_id.clone());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    false
}
