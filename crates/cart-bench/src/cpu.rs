//! Where the CPU went during a phase: the whole machine, cartd, nats-server, PostgreSQL
//! and the bench itself, from /proc. On a 2-core machine where all of them share the
//! cores, this says which one a faster service would have to take time from.

use std::collections::BTreeMap;

use serde::Serialize;

/// Clock ticks per second of /proc's counters; 100 on every Linux this runs on.
const TICKS_PER_SEC: f64 = 100.0;

/// Cumulative CPU ticks at one moment.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    machine_busy: u64,
    cores: usize,
    /// Per process group, the ticks of each of its processes by pid: a phase's use is
    /// the sum of each process's own increase, so a process that ends during the phase
    /// (a PostgreSQL backend of a closed connection) takes only its own ticks away, not
    /// those of the others (a group total could even fall below the earlier one).
    by_process: BTreeMap<&'static str, BTreeMap<u32, u64>>,
    at: Option<std::time::Instant>,
}

/// CPU used over a phase.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    /// Busy share of the whole machine, in percent of all its cores.
    pub machine_percent: f64,
    pub cores: usize,
    /// Per process group: percent of one core.
    pub percent_of_a_core: BTreeMap<String, f64>,
    /// Per process group, and `machine`: CPU microseconds per OK request.
    pub us_per_request: BTreeMap<String, f64>,
}

/// Reads the counters; groups that cannot be read count zero.
pub fn sample(cartd: Option<u32>) -> Sample {
    let (machine_busy, cores) = machine_ticks().unwrap_or_default();
    let one = |pid: u32| BTreeMap::from([(pid, pid_ticks(&pid.to_string()).unwrap_or(0))]);
    let mut by_process = BTreeMap::new();
    by_process.insert("cart-bench", one(std::process::id()));
    if let Some(pid) = cartd {
        by_process.insert("cartd", one(pid));
    }
    let (nats, postgres) = named_ticks();
    by_process.insert("nats-server", nats);
    by_process.insert("postgres", postgres);
    Sample {
        machine_busy,
        cores,
        by_process,
        at: Some(std::time::Instant::now()),
    }
}

impl Sample {
    /// The use between `self` (earlier) and `later`, per `requests` OK requests.
    /// PostgreSQL backends that ended during the phase are missed, so its figure is a
    /// lower bound (the service and the bench keep their connections); backends that
    /// started during it count whole.
    pub fn until(&self, later: &Sample, requests: u64) -> Option<CpuUse> {
        let secs = later.at?.duration_since(self.at?).as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let per_request = |ticks: u64| {
            (requests > 0).then(|| ticks as f64 / TICKS_PER_SEC * 1e6 / requests as f64)
        };
        let mut percent_of_a_core = BTreeMap::new();
        let mut us_per_request = BTreeMap::new();
        for (name, after) in &later.by_process {
            let before = self.by_process.get(name);
            let ticks: u64 = after
                .iter()
                .map(|(pid, &t)| {
                    let earlier = before.and_then(|b| b.get(pid)).copied().unwrap_or(0);
                    t.saturating_sub(earlier)
                })
                .sum();
            percent_of_a_core.insert(
                (*name).to_owned(),
                ticks as f64 / TICKS_PER_SEC / secs * 100.0,
            );
            if let Some(us) = per_request(ticks) {
                us_per_request.insert((*name).to_owned(), us);
            }
        }
        let busy = later.machine_busy.saturating_sub(self.machine_busy);
        if let Some(us) = per_request(busy) {
            us_per_request.insert("machine".to_owned(), us);
        }
        let cores = later.cores.max(1);
        Some(CpuUse {
            machine_percent: busy as f64 / TICKS_PER_SEC / secs / cores as f64 * 100.0,
            cores,
            percent_of_a_core,
            us_per_request,
        })
    }
}

/// Busy ticks of all cores (everything but idle and iowait), and the number of cores.
/// Waits until the machine is nearly idle (under `idle_percent` busy over half a
/// second), at most `max`; returns how long it waited and the last busy share seen. The
/// service's background work (relay, projections) and PostgreSQL's (autovacuum, the
/// checkpoint) catching up on an earlier phase's writes would otherwise be measured as
/// the cost and the latency of the next one.
pub async fn settle(idle_percent: f64, max: std::time::Duration) -> (std::time::Duration, f64) {
    let started = std::time::Instant::now();
    let mut busy = 100.0;
    while started.elapsed() < max {
        let Some((a, cores)) = machine_ticks() else {
            break;
        };
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let Some((b, _)) = machine_ticks() else {
            break;
        };
        let capacity = TICKS_PER_SEC * 0.5 * cores.max(1) as f64;
        busy = b.saturating_sub(a) as f64 / capacity * 100.0;
        if busy < idle_percent {
            break;
        }
    }
    (started.elapsed(), busy)
}

fn machine_ticks() -> Option<(u64, usize)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let total = stat.lines().next()?;
    let fields: Vec<u64> = total
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .take(8)
        .map(|(_, v)| v)
        .sum();
    let cores = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some((busy, cores))
}

/// utime + stime of a process (`self` or a pid).
fn pid_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ticks(&stat)
}

fn parse_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are the 12th and 13th after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

type PidTicks = BTreeMap<u32, u64>;

/// The databases whose client backends the `postgres` group counts (set once, by the
/// bench, before its first sample); unset, every postgres process counts.
static DATABASES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Counts only the client backends of `databases` in the `postgres` group, with every
/// process that serves the whole server (postmaster, WAL writer, checkpointer,
/// autovacuum...): the bench's own work, not that of another test suite or session
/// sharing the server. A second call changes nothing.
pub fn count_postgres_databases(databases: Vec<String>) {
    let _ = DATABASES.set(databases);
}

/// The database a PostgreSQL URL names, if it names one.
pub fn database_of(url: &str) -> Option<String> {
    let options: sqlx::postgres::PgConnectOptions = url.parse().ok()?;
    options.get_database().map(str::to_owned)
}

fn counted_backend(pid: u32) -> bool {
    let Some(databases) = DATABASES.get() else {
        return true;
    };
    // The process title is in the command line (`update_process_title`).
    std::fs::read(format!("/proc/{pid}/cmdline")).map_or(true, |cmdline| {
        counts(&String::from_utf8_lossy(&cmdline), databases)
    })
}

/// Whether a postgres process with this title is counted. A client backend's title is
/// `postgres: <cluster>: <user> <database> <host(port) or [local]> <state>`; anything
/// else (the postmaster's command line, `checkpointer`, `walwriter`, `autovacuum
/// launcher`...) serves every database and is counted.
fn counts(title: &str, databases: &[String]) -> bool {
    let Some(rest) = title.strip_prefix("postgres: ") else {
        return true;
    };
    // Debian's titles carry the cluster (`15/main: `); others do not.
    let rest = match rest.split_once(": ") {
        Some((cluster, rest)) if !cluster.contains(' ') => rest,
        _ => rest,
    };
    let words: Vec<&str> = rest.split_whitespace().collect();
    let client = words
        .get(2)
        .is_some_and(|host| host.ends_with(')') || *host == "[local]");
    !client || databases.iter().any(|d| d == words[1])
}

/// Ticks of every nats-server and every postgres process, by pid.
fn named_ticks() -> (PidTicks, PidTicks) {
    let (mut nats, mut postgres) = (BTreeMap::new(), BTreeMap::new());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (nats, postgres);
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        let target = match comm.trim() {
            "nats-server" => &mut nats,
            "postgres" if counted_backend(pid) => &mut postgres,
            _ => continue,
        };
        if let Some(ticks) = pid_ticks(&pid.to_string()) {
            target.insert(pid, ticks);
        }
    }
    (nats, postgres)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bench_databases_backends_and_the_servers_own_processes_count() {
        let ours = ["cart_bench_load".to_owned(), "cart_bench_limits".to_owned()];
        for title in [
            "postgres: 15/main: postgres cart_bench_load 127.0.0.1(52570) idle",
            "postgres: 15/main: postgres cart_bench_limits [local] INSERT",
            "postgres: 15/main: checkpointer ",
            "postgres: 15/main: walwriter ",
            "postgres: 15/main: autovacuum launcher ",
            "postgres: postgres cart_bench_load 127.0.0.1(1) idle in transaction",
            "/usr/lib/postgresql/15/bin/postgres\0-D\0/var/lib/postgresql/15/main",
        ] {
            assert!(counts(title, &ours), "{title}");
        }
        for title in [
            "postgres: 15/main: postgres cart_e2e_3795 127.0.0.1(52580) idle",
            "postgres: 15/main: postgres test [local] SELECT",
            "postgres: postgres cart_e2e_1 127.0.0.1(2) COMMIT",
        ] {
            assert!(!counts(title, &ours), "{title}");
        }
    }

    #[test]
    fn ticks_are_read_after_the_command_name() {
        let stat = "42 (tokio (rt) worker) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 1";
        assert_eq!(parse_ticks(stat), Some(325));
    }

    #[test]
    fn a_process_that_ends_takes_only_its_own_ticks_away() {
        let at = std::time::Instant::now();
        let sample = |postgres: &[(u32, u64)], busy, secs| Sample {
            machine_busy: busy,
            cores: 2,
            by_process: BTreeMap::from([("postgres", postgres.iter().copied().collect())]),
            at: Some(at + std::time::Duration::from_secs(secs)),
        };
        // Backend 2 (50 ticks) ends, backend 3 starts and uses 20, backend 1 uses 30.
        let before = sample(&[(1, 100), (2, 50)], 1_000, 0);
        let after = sample(&[(1, 130), (3, 20)], 1_100, 1);
        let used = before.until(&after, 10).unwrap();
        assert_eq!(used.percent_of_a_core["postgres"], 50.0);
        assert_eq!(used.us_per_request["postgres"], 50_000.0);
        assert_eq!(used.us_per_request["machine"], 100_000.0);
        assert_eq!(used.machine_percent, 50.0);
    }

    /// Spins until this process has used 20 ticks (0.2 s) of CPU, however long that takes
    /// on a busy machine, so the figure it checks does not depend on the machine's load.
    #[test]
    fn a_phase_of_this_process_is_measured() {
        const BURN: u64 = 20;
        let before = sample(None);
        let own = |s: &Sample| s.by_process["cart-bench"].values().sum::<u64>();
        let mut x = 0u64;
        while pid_ticks("self").unwrap() < own(&before) + BURN {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
        let used = before.until(&sample(None), 100).unwrap();
        // 20 ticks over 100 requests: at least 2 ms of this process's CPU per request.
        assert!(used.us_per_request["cart-bench"] >= 2_000.0, "{used:?}");
        assert!(used.percent_of_a_core["cart-bench"] > 0.0, "{used:?}");
        assert!(used.cores >= 1);
    }
}
