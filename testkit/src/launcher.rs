//! The real binaries (and the servers they need) as child processes on
//! loopback. A [`Service`] is one process that can be started, signalled,
//! frozen, killed and started again; it logs to a file of its own and is
//! stopped the way its operator would stop it when dropped, so nothing
//! outlives the suite that started it. Readiness is waited for (`/readyz`,
//! or a port that accepts), never slept for.

use std::ffi::OsString;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};

/// One child process that can be started again after it stops.
pub struct Service {
    /// Its name in logs and errors; its log file is `<name>.log`.
    pub name: String,
    /// Where it answers HTTP (`/readyz`), if it does.
    pub addr: Option<SocketAddr>,
    /// Where it serves `/metrics`: `addr`, but for `chat`, which keeps them
    /// off its public port.
    pub metrics: Option<SocketAddr>,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    run_as: Option<User>,
    /// `taskset -c` CPUs to run on, so a server and its load generator do
    /// not share cores.
    cpus: Option<String>,
    /// What stops it cleanly: SIGTERM unless told otherwise.
    stop_signal: Signal,
    log: PathBuf,
    child: Option<Child>,
}

impl Service {
    /// A service running `program`, logging to `<log_dir>/<name>.log`; not
    /// started yet.
    pub fn new(name: &str, program: impl Into<OsString>, log_dir: &Path) -> Self {
        Self {
            name: name.to_owned(),
            addr: None,
            metrics: None,
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            run_as: None,
            cpus: None,
            stop_signal: Signal::SIGTERM,
            log: log_dir.join(format!("{name}.log")),
            child: None,
        }
    }

    /// It answers HTTP (and serves `/metrics`) at `addr`.
    pub fn at(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self.metrics = Some(addr);
        self
    }

    /// It serves `/metrics` at `addr`, apart from its public port.
    pub fn metrics_at(mut self, addr: SocketAddr) -> Self {
        self.metrics = Some(addr);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Runs it as `user` (PostgreSQL refuses to run as root).
    pub fn run_as(mut self, user: Option<User>) -> Self {
        self.run_as = user;
        self
    }

    /// Pins it to `cpus` (`taskset -c`), if any.
    pub fn pinned(mut self, cpus: Option<&str>) -> Self {
        self.cpus = cpus.map(str::to_owned);
        self
    }

    /// Stops it with `signal` (SIGINT is PostgreSQL's fast shutdown;
    /// SIGKILL for a server whose goodbye is not under test).
    pub fn stop_signal(mut self, signal: Signal) -> Self {
        self.stop_signal = signal;
        self
    }

    /// Starts the process, appending its output to its log file.
    pub fn start(&mut self) -> Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut command = match &self.cpus {
            // taskset execs the program: the pid stays the server's.
            Some(cpus) => {
                let mut pinned = Command::new("taskset");
                pinned.args([OsString::from("-c"), cpus.into(), self.program.clone()]);
                pinned
            }
            None => Command::new(&self.program),
        };
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(user) = &self.run_as {
            use std::os::unix::process::CommandExt;
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        let child = command.spawn().with_context(|| {
            format!(
                "starting {} ({})",
                self.name,
                self.program.to_string_lossy()
            )
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| Pid::from_raw(c.id() as i32))
    }

    /// Whether it has been started and not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.exited(), Ok(None)) && self.child.is_some()
    }

    /// How it exited, if it has (`None` while it runs or was never started).
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?),
            None => Ok(None),
        }
    }

    /// Sends `signal` to the process and every child it started (a whole
    /// PostgreSQL instance: the postmaster and its backends).
    pub fn signal_tree(&self, signal: Signal) -> Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("{} is not running", self.name))?;
        for child in children_of(pid) {
            let _ = kill(child, signal);
        }
        kill(pid, signal).with_context(|| format!("signalling {}", self.name))
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its stop signal, and wait up to `grace` for the exit; SIGKILL after
    /// it. Returns how long the exit took.
    pub fn terminate(&mut self, grace: Duration) -> Result<Duration> {
        let Some(mut child) = self.child.take() else {
            return Ok(Duration::ZERO);
        };
        let started = Instant::now();
        let _ = kill(Pid::from_raw(child.id() as i32), self.stop_signal);
        while started.elapsed() < grace {
            if child.try_wait()?.is_some() {
                return Ok(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("{} did not exit within {grace:?} of SIGTERM", self.name)
    }

    /// Resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        status_kib(self.pid()?, "VmRSS:")
    }

    /// Peak resident memory, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        status_kib(self.pid()?, "VmHWM:")
    }

    /// The lines of its log that report a panic.
    pub fn panics(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("panicked at"))
            .map(str::to_owned)
            .collect()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until it answers `GET /readyz` with a success, failing at once
    /// if it exits (a server refusing its config).
    pub async fn wait_ready(&mut self, http: &reqwest::Client, within: Duration) -> Result<()> {
        self.wait_answering(http, Some("/readyz"), within).await
    }

    /// Waits until its `addr` answers `GET path` with a success, or (`None`)
    /// accepts a connection, failing at once if it exits.
    pub async fn wait_answering(
        &mut self,
        http: &reqwest::Client,
        path: Option<&str>,
        within: Duration,
    ) -> Result<()> {
        let addr = self
            .addr
            .with_context(|| format!("{} has no address", self.name))?;
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited()? {
                bail!(
                    "{} exited ({status}); its log ({}) ends:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(8)
                );
            }
            let ready = match path {
                None => tokio::net::TcpStream::connect(addr).await.is_ok(),
                Some(path) => http
                    .get(format!("http://{addr}{path}"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
            };
            if ready {
                return Ok(());
            }
            if started.elapsed() > within {
                bail!("{} not ready within {within:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Service {
    /// Stops the process the way its operator would (nginx's master must
    /// take its workers down with it; PostgreSQL must shut down fast), and
    /// kills it if it does not exit within five seconds.
    fn drop(&mut self) {
        let Some(pid) = self.pid() else { return };
        // A frozen process must be thawed to stop.
        let _ = self.signal_tree(Signal::SIGCONT);
        let _ = kill(pid, self.stop_signal);
        if let Some(child) = self.child.as_mut() {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(5) {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }
}

/// Every process whose parent is `parent`.
pub fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid …`; comm may hold spaces, so split after ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                == Some(parent.as_raw())
        })
        .map(Pid::from_raw)
        .collect()
}

fn status_kib(pid: Pid, field: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A loopback address with a port free a moment ago, for a server to bind.
pub fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Waits until something accepts connections at `addr`.
pub async fn wait_listening(addr: &str, within: Duration) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < within {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("nothing answered on {addr} within {within:?}")
}

/// The workspace binary `name` (`chat`, `chat-api`, `chat-gateway`,
/// `chat-bench`) of the running build: beside the running executable, or
/// one directory up from a test's (`target/<profile>/deps/`). It must have
/// been built (`cargo build --workspace --bins`).
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the running executable's directory")?;
    let candidates = [Some(dir), dir.parent()];
    for dir in candidates.into_iter().flatten() {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!(
        "{name} is missing beside {}: build it first (cargo build -p {name})",
        exe.display()
    )
}

/// A fresh, empty directory for one deployment's data and logs under the
/// temp dir (`<name>`), with its `logs/`; a crashed run's is removed.
pub fn scratch_dir(name: &str) -> Result<(PathBuf, PathBuf)> {
    let dir = std::env::temp_dir().join(name);
    let _ = fs::remove_dir_all(&dir);
    let logs = dir.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    Ok((dir, logs))
}
