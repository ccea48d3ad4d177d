//! RFC 3339 timestamps, parsed by hand so that the crate needs no date library.
//!
//! The relay writes `recorded_at` as `YYYY-MM-DDTHH:MM:SS.ffffffZ`; those strings would
//! even sort correctly as text, but `--now` is typed by people (`2026-11-22T10:00:00Z`,
//! `...+01:00`), so both are turned into microseconds since the Unix epoch.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

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
        parse_micros(text)
            .map(|micros| Self {
                micros,
                text: text.to_owned(),
            })
            .ok_or_else(|| InvalidTimestamp(text.to_owned()))
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

/// `YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|±HH:MM)`; leap seconds (`:60`) are read
/// as the next second's start, which is all an idle-time comparison needs.
fn parse_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }

    let mut i = 19;
    let mut fraction = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        let mut scale = 100_000;
        while i < b.len() && b[i].is_ascii_digit() {
            // Digits beyond microseconds cannot change an idle time measured in seconds.
            fraction += i64::from(b[i] - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2], 0, 2)?;
            let minutes = digits(&[*m1, *m2], 0, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'+' {
                seconds
            } else {
                -seconds
            }
        }
        _ => return None,
    };

    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(seconds * 1_000_000 + fraction)
}

fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    b.get(at..at + len)?.iter().try_fold(0, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
