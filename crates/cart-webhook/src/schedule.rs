//! The retry schedule: `2x5m,7x15m,10x60m` (Xsolla's), or compressed for tests (`2x200ms`).

use std::time::Duration;

/// The delays before each retry, in order; its length is the number of retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad retry schedule {text:?}: {reason} (expected e.g. \"2x5m,7x15m,10x60m\")")]
pub struct ScheduleError {
    text: String,
    reason: &'static str,
}

impl RetrySchedule {
    /// Xsolla's order_paid policy: 2 retries 5 minutes apart, 7 at 15, 10 at 60.
    pub fn xsolla() -> Self {
        Self::parse("2x5m,7x15m,10x60m").unwrap_or(Self(Vec::new()))
    }

    /// `COUNTxDURATION` groups separated by commas; a duration is a whole number with
    /// `ms`, `s`, `m` or `h`. An empty text means no retries.
    ///
    /// # Errors
    /// A group that is not `COUNTxDURATION`.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let err = |reason| ScheduleError {
            text: text.to_owned(),
            reason,
        };
        let mut delays = Vec::new();
        for group in text.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let (count, delay) = group
                .split_once('x')
                .ok_or_else(|| err("a group is COUNTxDURATION"))?;
            let count: usize = count.trim().parse().map_err(|_| err("bad count"))?;
            let delay = duration(delay.trim()).ok_or_else(|| err("bad duration"))?;
            if delays.len() + count > 1000 {
                return Err(err("more than 1000 retries"));
            }
            delays.extend(std::iter::repeat_n(delay, count));
        }
        Ok(Self(delays))
    }

    /// The delay before retry number `retry` (1-based), or None when retries are over.
    pub fn delay_before_retry(&self, retry: usize) -> Option<Duration> {
        retry.checked_sub(1).and_then(|i| self.0.get(i)).copied()
    }

    pub fn retries(&self) -> usize {
        self.0.len()
    }
}

impl std::str::FromStr for RetrySchedule {
    type Err = ScheduleError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// `250ms`, `10s`, `5m`, `1h`.
pub fn duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xsolla_schedule_is_nineteen_retries() {
        let s = RetrySchedule::xsolla();
        assert_eq!(s.retries(), 19);
        assert_eq!(s.delay_before_retry(1), Some(Duration::from_secs(300)));
        assert_eq!(s.delay_before_retry(3), Some(Duration::from_secs(900)));
        assert_eq!(s.delay_before_retry(10), Some(Duration::from_secs(3600)));
        assert_eq!(s.delay_before_retry(19), Some(Duration::from_secs(3600)));
        assert_eq!(s.delay_before_retry(20), None);
        assert_eq!(s.delay_before_retry(0), None);
    }

    #[test]
    fn compressed_schedules_and_errors() {
        let s: RetrySchedule = "2x200ms, 1x1s".parse().unwrap();
        assert_eq!(s.retries(), 3);
        assert_eq!(s.delay_before_retry(2), Some(Duration::from_millis(200)));
        assert_eq!(s.delay_before_retry(3), Some(Duration::from_secs(1)));
        assert_eq!(RetrySchedule::parse("").unwrap().retries(), 0);
        assert!(RetrySchedule::parse("2x").is_err());
        assert!(RetrySchedule::parse("5m").is_err());
        assert!(RetrySchedule::parse("2x5d").is_err());
    }
}
