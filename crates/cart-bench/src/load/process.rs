//! The cartd process under load: waiting for its service, whether it still runs, and its
//! resident memory.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::runner::Driver;

/// Pings `$SRV.PING.<service>` until an instance answers, the process of `--pid` is
/// gone, or `wait_secs` pass.
pub async fn wait_for_service(
    driver: &Driver,
    service: &str,
    wait_secs: u64,
    pid: Option<u32>,
) -> anyhow::Result<()> {
    let subject = format!("$SRV.PING.{service}");
    let started = Instant::now();
    loop {
        let ping = driver
            .client()
            .request(subject.clone(), bytes::Bytes::new());
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), ping).await {
            return Ok(());
        }
        if let Some(pid) = pid.filter(|&pid| !alive(pid)) {
            bail!("process {pid} (--pid) ended before the service answered {subject}");
        }
        if started.elapsed() >= Duration::from_secs(wait_secs) {
            bail!("no `{service}` service answered {subject} within {wait_secs} s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether `pid` runs: it exists and is not a zombie (a crashed cartd stays a zombie
/// until the shell that started it reaps it).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses and may hold spaces.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        !matches!(state, None | Some('Z' | 'X'))
    })
}

/// Resident memory of `pid` in MB (VmRSS).
pub fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    status_mb(pid, "VmRSS")
}

/// A `kB` field of /proc/<pid>/status, in MB.
pub fn status_mb(pid: u32, field: &str) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path} (--pid)"))?;
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .with_context(|| format!("no {field} in {path}"))?;
    Ok(kb as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_mb() {
        let me = std::process::id();
        let rss = rss_mb(me).unwrap();
        assert!(rss > 0.1 && rss < 100_000.0, "{rss}");
        assert!(status_mb(me, "NoSuchField").is_err());
        assert!(rss_mb(u32::MAX).is_err());
        assert!(alive(me));
        assert!(!alive(u32::MAX));
    }
}
