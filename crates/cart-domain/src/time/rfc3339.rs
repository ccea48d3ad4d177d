//! The one reader of dates and times written as text: RFC 3339 date-times and plain
//! dates. Every date that arrives from outside (request bodies, catalog documents,
//! analytics flags) goes through here, so that PostgreSQL never sees a literal of its
//! own (`now`, `epoch`, `infinity`) and a bad date is refused before any SQL runs.

use std::fmt;

use super::{days_from_civil, days_in_month, Timestamp, DAY};

const MICROS: i64 = 1_000_000;
/// Longer text is refused outright: no valid date-time needs it, and a fraction of
/// thousands of digits is not worth reading.
const MAX_LEN: usize = 64;

/// An instant read from text, to the microsecond, between 0001-01-01T00:00:00Z and
/// 9999-12-31T23:59:59.999999Z (PostgreSQL has no year 0, and four-digit years are all
/// RFC 3339 writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DateTime {
    micros: i64,
}

/// Text that is not a date (or date-time) of the accepted forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time such as 2026-11-22T10:00:00Z")]
pub struct NotADate;

impl DateTime {
    /// `YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|±HH:MM)`. Digits of the fraction past
    /// the microsecond are dropped; a leap second (`:60`) is read as the next second.
    ///
    /// # Errors
    /// Anything else, including dates that do not exist and out-of-range parts.
    pub fn parse(text: &str) -> Result<Self, NotADate> {
        if text.len() > MAX_LEN {
            return Err(NotADate);
        }
        date_time(text.as_bytes()).ok_or(NotADate)
    }

    /// As [`DateTime::parse`], or a plain date `YYYY-MM-DD`, read as its midnight UTC.
    ///
    /// # Errors
    /// Anything else.
    pub fn parse_date_or_time(text: &str) -> Result<Self, NotADate> {
        let b = text.as_bytes();
        if b.len() == 10 {
            let (year, month, day) = date(b).ok_or(NotADate)?;
            return Self::checked(days_from_civil(year, month, day) * DAY * MICROS);
        }
        Self::parse(text)
    }

    /// Microseconds since 1970-01-01T00:00:00Z.
    pub const fn micros(self) -> i64 {
        self.micros
    }

    /// The whole second this instant falls in.
    pub const fn timestamp(self) -> Timestamp {
        Timestamp::from_unix(self.micros.div_euclid(MICROS))
    }

    fn checked(micros: i64) -> Result<Self, NotADate> {
        // 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z.
        const MIN: i64 = -62_135_596_800 * MICROS;
        const END: i64 = 253_402_300_800 * MICROS;
        if (MIN..END).contains(&micros) {
            Ok(Self { micros })
        } else {
            Err(NotADate)
        }
    }
}

impl From<Timestamp> for DateTime {
    fn from(t: Timestamp) -> Self {
        Self {
            micros: t.unix().saturating_mul(MICROS),
        }
    }
}

impl fmt::Display for DateTime {
    /// RFC 3339 in UTC, with microseconds when there are any:
    /// `2026-11-22T10:00:00Z`, `2026-11-22T10:00:00.500000Z`. PostgreSQL reads it as a
    /// `timestamptz` whatever the session's time zone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.timestamp().civil();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )?;
        match self.micros.rem_euclid(MICROS) {
            0 => f.write_str("Z"),
            fraction => write!(f, ".{fraction:06}Z"),
        }
    }
}

/// `YYYY-MM-DD` of an existing day, year 1 to 9999.
fn date(b: &[u8]) -> Option<(i64, u32, u32)> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = u32::try_from(digits(b, 5, 2)?).ok()?;
    let day = u32::try_from(digits(b, 8, 2)?).ok()?;
    let exists = year >= 1 && (1..=12).contains(&month) && day >= 1;
    (exists && day <= days_in_month(year, month)).then_some((year, month, day))
}

fn date_time(b: &[u8]) -> Option<DateTime> {
    let (year, month, day) = date(b)?;
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut fraction = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        let mut scale = MICROS / 10;
        while i < b.len() && b[i].is_ascii_digit() {
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
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(b, i + 1, 2)?, digits(b, i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let seconds = h * 3600 + m * 60;
            if *sign == b'+' {
                seconds
            } else {
                -seconds
            }
        }
        _ => return None,
    };
    let seconds =
        days_from_civil(year, month, day) * DAY + hour * 3600 + minute * 60 + second - offset;
    DateTime::checked(seconds * MICROS + fraction).ok()
}

/// `len` ASCII digits at `at` as a number.
fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    b.get(at..at + len)?.iter().try_fold(0, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> i64 {
        DateTime::parse(text).unwrap().micros()
    }

    #[test]
    fn reads_rfc3339_with_offsets_and_fractions() {
        assert_eq!(micros("1970-01-01T00:00:00Z"), 0);
        assert_eq!(micros("1970-01-01T01:00:00+01:00"), 0);
        assert_eq!(micros("1970-01-01T00:00:01.000001Z"), 1_000_001);
        assert_eq!(micros("1969-12-31T23:59:59Z"), -1_000_000);
        assert_eq!(micros("2000-03-01T00:00:00Z"), 951_868_800_000_000);
        assert_eq!(
            micros("2026-11-22t10:00:00.5z"),
            micros("2026-11-22T10:00:00Z") + 500_000
        );
        assert_eq!(
            micros("2026-11-22 11:00:00+01:00"),
            micros("2026-11-22T10:00:00.000000Z")
        );
        // Past the microsecond, digits are dropped.
        assert_eq!(micros("1970-01-01T00:00:00.1234567Z"), 123_456);
        // A leap second is the next second's start.
        assert_eq!(
            micros("2016-12-31T23:59:60Z"),
            micros("2017-01-01T00:00:00Z")
        );
        assert_eq!(
            DateTime::parse("2024-02-29T10:00:00Z").unwrap().timestamp(),
            Timestamp::from_civil(2024, 2, 29, 10, 0, 0)
        );
    }

    #[test]
    fn a_plain_date_is_its_midnight_utc_where_dates_are_allowed() {
        assert_eq!(
            DateTime::parse_date_or_time("2026-11-22").unwrap(),
            DateTime::parse("2026-11-22T00:00:00Z").unwrap()
        );
        assert_eq!(
            DateTime::parse_date_or_time("2026-11-22T10:00:00+02:00").unwrap(),
            DateTime::parse("2026-11-22T08:00:00Z").unwrap()
        );
        assert_eq!(DateTime::parse("2026-11-22"), Err(NotADate));
        assert_eq!(DateTime::parse_date_or_time("2026-02-30"), Err(NotADate));
    }

    #[test]
    fn refuses_what_is_not_a_date() {
        for bad in [
            "",
            "not a date",
            "now",
            "today",
            "yesterday",
            "tomorrow",
            "epoch",
            "infinity",
            "-infinity",
            "allballs",
            "2026-11-22T10:00:00",
            "2026-02-29T10:00:00Z",
            "2026-13-01T10:00:00Z",
            "2026-00-10T10:00:00Z",
            "2026-11-00T10:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:60:00Z",
            "2026-11-22T10:00:61Z",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00+0100",
            "2026-11-22T10:00:00+24:00",
            "2026-11-22T10:00:00Zjunk",
            "2026-11-22T10:00:00Z ",
            " 2026-11-22T10:00:00Z",
            "2026-11-22X10:00:00Z",
            "+2026-11-22T10:00:00Z",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:60Z",
            "\u{ff12}026-11-22T10:00:00Z",
            "2026-11-22T10:00:00\u{0}Z",
            "2026-11-22\u{0}",
        ] {
            assert_eq!(DateTime::parse(bad), Err(NotADate), "{bad:?}");
            assert_eq!(DateTime::parse_date_or_time(bad), Err(NotADate), "{bad:?}");
        }
        let long = format!("2026-11-22T10:00:00.{}Z", "1".repeat(60));
        assert_eq!(DateTime::parse(&long), Err(NotADate));
    }

    #[test]
    fn the_range_ends_are_accepted_and_displayed_in_utc() {
        let first = DateTime::parse("0001-01-01T00:00:00Z").unwrap();
        assert_eq!(first.to_string(), "0001-01-01T00:00:00Z");
        let last = DateTime::parse("9999-12-31T23:59:59.999999Z").unwrap();
        assert_eq!(last.to_string(), "9999-12-31T23:59:59.999999Z");
        let t = DateTime::parse("2026-11-22T12:30:00.25+02:30").unwrap();
        assert_eq!(t.to_string(), "2026-11-22T10:00:00.250000Z");
        assert_eq!(DateTime::parse(&t.to_string()), Ok(t));
        assert_eq!(
            DateTime::from(Timestamp::from_unix(86_400)).to_string(),
            "1970-01-02T00:00:00Z"
        );
    }
}
