//! The flags of `cart-bench load` and their checks.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::bail;
use cart_proto::ReplyMode;

use crate::workload::Mix;

/// Load a running cart service and compare it with this machine's limits.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// NATS server of the service; must be on this machine (loopback).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub(crate) nats_url: String,
    /// PostgreSQL server for the insert limits (loopback); the scratch database
    /// `cart_bench_limits` is created on it and its table recreated every run.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub(crate) database_url: String,
    /// Subject prefix of the service's endpoints.
    #[arg(long, env = "CART_SUBJECT_PREFIX", default_value = "cart.v1")]
    pub(crate) subject_prefix: String,
    /// Service name to wait for ($SRV.PING.<name>) before starting.
    #[arg(long, env = "CART_SERVICE_NAME", default_value = "cart")]
    pub(crate) service_name: String,
    /// Seconds to wait for the service to answer $SRV.PING before giving up.
    #[arg(long, default_value_t = 60)]
    pub(crate) wait_secs: u64,
    /// Project id of every request.
    #[arg(long, default_value_t = 44056)]
    pub(crate) project_id: u64,
    /// Distinct users; ids are `bench-<run tag>-u<n>`.
    #[arg(long, default_value_t = 1000)]
    pub(crate) users: usize,
    /// Carts per user; ids `c0`, `c1`, ... Commands pick a cart uniformly at random.
    #[arg(long, default_value_t = 2)]
    pub(crate) carts: usize,
    /// SKUs to put in carts, comma-separated [default: the project's SKUs in --catalog].
    #[arg(long, value_delimiter = ',')]
    pub(crate) skus: Vec<String>,
    /// Catalog file to take the SKUs from when --skus is not given.
    #[arg(long, env = "CART_CATALOG", default_value = "deploy/catalog.json")]
    pub(crate) catalog: PathBuf,
    /// Operation weights (fill, put, delete, get, clear; no checkout yet).
    #[arg(long, default_value = "fill=30,put=30,delete=10,get=25,clear=5")]
    pub(crate) mix: Mix,
    /// Requests in flight (closed-loop clients) for the command phases and the mix; also
    /// the PostgreSQL connections of the insert limits (capped by --pg-max-connections).
    /// Issue 17 sets its command targets at 256.
    #[arg(long, default_value_t = 256)]
    pub(crate) clients: usize,
    /// Requests in flight for the gets-only phase and the NATS echo limit.
    #[arg(long, default_value_t = 256)]
    pub(crate) get_clients: usize,
    /// NATS connections the clients share (round robin).
    #[arg(long, default_value_t = 1)]
    pub(crate) nats_connections: usize,
    /// Seconds of each limit and each load phase.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) phase_secs: f64,
    /// Seconds of the command mix at `--clients` before the command phases, not
    /// measured; 0 skips it. Carts start empty, so without it the first command phase
    /// would run on smaller carts (shorter replies, more cart creations) than the next.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) warmup_secs: f64,
    /// Most requests (or transactions) per phase; a phase ends at whichever bound comes first.
    #[arg(long, default_value_t = 2_000_000)]
    pub(crate) max_requests: u64,
    /// Concurrency steps of the sweep, comma-separated; `none` skips the sweep.
    #[arg(long, default_value = "1,4,16,64,256")]
    pub(crate) sweep: Steps,
    /// Seconds of each sweep step (and of its insert limit).
    #[arg(long, default_value_t = 3.0)]
    pub(crate) sweep_secs: f64,
    /// The cartd process: report its resident memory (VmRSS) and run the fresh-cart phase.
    #[arg(long)]
    pub(crate) pid: Option<u32>,
    /// Fresh carts of the memory phase: one put each, each of a distinct user; 0 skips it.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) memory_carts: u64,
    /// Most seconds of the memory phase.
    #[arg(long, default_value_t = 300)]
    pub(crate) memory_max_secs: u64,
    /// Send JSON requests; without it requests are protobuf (`Content-Type:
    /// application/protobuf`).
    #[arg(long)]
    pub(crate) json: bool,
    /// What commands ask to be answered with: `full`, the priced cart, or `minimal`, only
    /// the cart's id, version and warnings (`Cart-Reply: minimal`, docs/protocol.md).
    #[arg(long, default_value = "full", value_parser = parse_reply)]
    pub(crate) reply: ReplyMode,
    /// Milliseconds to wait for a reply before counting a timeout.
    #[arg(long, default_value_t = 5000)]
    pub(crate) timeout_ms: u64,
    /// The service's database (loopback): `pg_stat_statements` of the commands phase are
    /// read from it (the extension is created when missing). Without it, no statements.
    #[arg(long, env = "CART_BENCH_SERVICE_DATABASE_URL")]
    pub(crate) service_database_url: Option<String>,
    /// Most PostgreSQL connections of the insert limits.
    #[arg(long, default_value_t = 64)]
    pub(crate) pg_max_connections: usize,
    /// Rows per transaction of the batched insert limit.
    #[arg(long, default_value_t = 100)]
    pub(crate) pg_batch_rows: usize,
    /// Where the charts (and by default the JSON) go.
    #[arg(long, default_value = "target/bench")]
    pub(crate) out_dir: PathBuf,
    /// Where to write every figure as JSON [default: <out-dir>/load.json].
    #[arg(long)]
    pub(crate) json_out: Option<PathBuf>,
    /// Tag in user ids [default: random], so that every run starts from fresh carts.
    #[arg(long)]
    pub(crate) run_tag: Option<String>,
}

impl LoadArgs {
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        ensure_loopback("--nats-url", &self.nats_url)?;
        ensure_loopback("--database-url", &self.database_url)?;
        if let Some(url) = &self.service_database_url {
            ensure_loopback("--service-database-url", url)?;
        }
        for (flag, value) in [
            ("--clients", self.clients),
            ("--get-clients", self.get_clients),
            ("--nats-connections", self.nats_connections),
            ("--users", self.users),
            ("--carts", self.carts),
            ("--pg-max-connections", self.pg_max_connections),
            ("--pg-batch-rows", self.pg_batch_rows),
        ] {
            if value == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        if self.clients.max(self.get_clients) > 100_000 {
            bail!("at most 100000 clients");
        }
        if self.pg_batch_rows > 10_000 {
            bail!("--pg-batch-rows must be at most 10000");
        }
        for (flag, secs) in [
            ("--phase-secs", self.phase_secs),
            ("--sweep-secs", self.sweep_secs),
        ] {
            if !(0.1..=3600.0).contains(&secs) {
                bail!("{flag} must be between 0.1 and 3600");
            }
        }
        if !(0.0..=3600.0).contains(&self.warmup_secs) {
            bail!("--warmup-secs must be between 0 and 3600");
        }
        if !(1..=600_000).contains(&self.timeout_ms) {
            bail!("--timeout-ms must be between 1 and 600000");
        }
        if self.memory_max_secs > 3600 {
            bail!("--memory-max-secs must be at most 3600");
        }
        if let Some(tag) = &self.run_tag {
            let ok = !tag.is_empty()
                && tag.len() <= 32
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                bail!("--run-tag must be 1-32 characters of A-Z a-z 0-9 - _");
            }
        }
        Ok(())
    }
}

/// The concurrency steps of the sweep.
#[derive(Debug, Clone)]
pub(crate) struct Steps(pub(crate) Vec<usize>);

impl FromStr for Steps {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        if s.trim().is_empty() || s.trim() == "none" {
            return Ok(Self(Vec::new()));
        }
        let steps = s
            .split(',')
            .map(|step| match step.trim().parse::<usize>() {
                Ok(n @ 1..=100_000) => Ok(n),
                _ => bail!("a sweep step is a number of clients from 1 to 100000, not `{step}`"),
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self(steps))
    }
}

/// `--reply`: the values of the `Cart-Reply` header.
fn parse_reply(value: &str) -> Result<ReplyMode, String> {
    ReplyMode::parse(value).ok_or_else(|| format!("`{value}` is not `full` or `minimal`"))
}

/// Refuses a URL whose host is not this machine: the bench sends load, and load only
/// ever goes to loopback addresses (or a PostgreSQL Unix socket).
fn ensure_loopback(flag: &str, url: &str) -> anyhow::Result<()> {
    let is_local = |host: &str| {
        host.is_empty()
            || host.starts_with('/')
            || host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    let refuse = |host: &str| {
        anyhow::anyhow!(
            "{flag}: `{host}` is not a loopback address; cart-bench load only loads this machine"
        )
    };
    // Several servers may be listed, comma-separated, each with or without a scheme.
    for part in url.split(',') {
        let rest = part.split_once("://").map_or(part, |(_, rest)| rest);
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host_port.split(':').next().unwrap_or_default(),
        };
        if !is_local(host) {
            return Err(refuse(host));
        }
    }
    // A PostgreSQL URL may also name its host in the query string.
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split('&') {
            let host = pair
                .strip_prefix("host=")
                .or_else(|| pair.strip_prefix("hostaddr="));
            if let Some(host) = host {
                if !host.split(',').all(is_local) {
                    return Err(refuse(host));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_loaded() {
        for url in [
            "nats://127.0.0.1:4222",
            "127.0.0.1:4222",
            "nats://localhost",
            "nats://127.0.0.1:4222,nats://[::1]:4223",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://u:p@[::1]/db?sslmode=disable",
            "postgres:///db?host=/var/run/postgresql",
        ] {
            ensure_loopback("x", url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        for url in [
            "nats://10.0.0.1:4222",
            "nats://example.com",
            "postgres://postgres@192.168.1.5/db",
            "postgres://127.0.0.1/db?host=10.1.1.1",
            "nats://127.0.0.1,nats://8.8.8.8",
        ] {
            assert!(ensure_loopback("x", url).is_err(), "{url}");
        }
    }

    #[test]
    fn sweep_steps_parse() {
        assert_eq!("1, 4,16".parse::<Steps>().unwrap().0, [1, 4, 16]);
        assert!("none".parse::<Steps>().unwrap().0.is_empty());
        assert!("".parse::<Steps>().unwrap().0.is_empty());
        for bad in ["0", "1,,2", "x", "-1", "100001"] {
            assert!(bad.parse::<Steps>().is_err(), "{bad:?}");
        }
    }
}
