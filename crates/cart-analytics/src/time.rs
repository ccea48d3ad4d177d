//! RFC 3339 timestamps, read by `cart_domain::DateTime`, so that there is one date
//! reader in the workspace and no date library.
//!
//! The relay writes `recorded_at` as `YYYY-MM-DDTHH:MM:SS.ffffffZ`; those strings would
//! even sort correctly as text, but `--now` is typed by people (`2026-11-22T10:00:00Z`,
//! `...+01:00`), so both are turned into microseconds since the Unix epoch.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use cart_domain::DateTime;

/// A point in time as given, with its value in microseconds since the Unix epoch.
/// Equality and order use the value only.
#[derive(Debug, Clone)]
pub struct Timestamp {
    micros: i64,
    text: String,
}

/// A string that is not an RFC 3339 date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time (e.g. 2026-11-22T10:00:00Z): {0:?}")]
pub struct InvalidTimestamp(pub String);

impl Timestamp {
    pub fn parse(text: &str) -> Result<Self, InvalidTimestamp> {
        // Leap seconds are the next second's start; digits past the microsecond are
        // dropped: neither matters to an idle time measured in seconds.
        DateTime::parse(text)
            .map(|t| Self {
                micros: t.micros(),
                text: text.to_owned(),
            })
            .map_err(|_| InvalidTimestamp(text.to_owned()))
    }

    /// Microseconds since 1970-01-01T00:00:00Z.
    pub fn micros(&self) -> i64 {
        self.micros
    }

    /// The timestamp as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Timestamp {
    type Err = InvalidTimestamp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.micros == other.micros
    }
}

impl Eq for Timestamp {}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.micros.cmp(&other.micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(s: &str) -> i64 {
        Timestamp::parse(s).unwrap().micros()
    }

    #[test]
    fn reads_the_relay_format_and_offsets() {
        assert_eq!(micros("1970-01-01T00:00:00Z"), 0);
        assert_eq!(micros("1970-01-01T00:00:01.000001Z"), 1_000_001);
        assert_eq!(micros("2000-03-01T00:00:00Z"), 951_868_800_000_000);
        assert_eq!(
            micros("2026-11-22T11:00:00+01:00"),
            micros("2026-11-22T10:00:00.000000Z")
        );
        assert_eq!(
            micros("2026-11-22t10:00:00.5z"),
            micros("2026-11-22T10:00:00Z") + 500_000
        );
        assert_eq!(micros("1969-12-31T23:59:59Z"), -1_000_000);
    }

    #[test]
    fn refuses_what_is_not_a_date_time() {
        for bad in [
            "",
            "2026-11-22",
            "2026-11-22T10:00:00",
            "2026-02-29T10:00:00Z",
            "2026-13-01T10:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00+0100",
            "2026-11-22T10:00:00Zjunk",
            "２026-11-22T10:00:00Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
        assert!(Timestamp::parse("2024-02-29T10:00:00Z").is_ok());
    }

    #[test]
    fn order_follows_the_instant_not_the_text() {
        let a = Timestamp::parse("2026-11-22T10:00:00+01:00").unwrap();
        let b = Timestamp::parse("2026-11-22T09:30:00Z").unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "2026-11-22T10:00:00+01:00");
    }
}
