//! CPU seconds, read from `/proc`: a system's processes, the PostgreSQL
//! backends serving its database, and the generator's own.

/// CPU seconds (user + system) a system has used: its own processes, and
/// the PostgreSQL backends serving its database (ours on PostgreSQL;
/// SQLite runs inside `chat`, the peers store nothing). Redis is shared by
/// every system on the machine and is not counted (0.03–0.05 CPU-s per
/// second at 10,000 sends/s, sampled from `/proc`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub server: f64,
    /// `None` for a system without a database server of its own.
    pub database: Option<f64>,
    /// This generator's own seconds: not the system's cost, but a step
    /// where it is near a whole core measured the generator, not the
    /// server.
    pub generator: f64,
}

impl Cpu {
    pub fn total(self) -> f64 {
        self.server + self.database.unwrap_or(0.0)
    }

    /// What was used since `before`. A backend that exits in between takes
    /// its seconds with it (the pool keeps its connections, so rarely):
    /// never below zero.
    pub fn since(self, before: Cpu) -> Cpu {
        Cpu {
            server: (self.server - before.server).max(0.0),
            database: self
                .database
                .map(|now| (now - before.database.unwrap_or(0.0)).max(0.0)),
            generator: (self.generator - before.generator).max(0.0),
        }
    }
}

/// CPU seconds of the PostgreSQL backends connected to `database`: each
/// names its database in its title (`postgres: <user> <database> <client>
/// <state>`).
pub fn backends_cpu_seconds(database: &str) -> f64 {
    let needle = format!(" {database} ");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|title| {
                let title = String::from_utf8_lossy(&title);
                title.starts_with("postgres: ") && title.contains(&needle)
            })
        })
        .map(cpu_seconds)
        .sum()
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}
