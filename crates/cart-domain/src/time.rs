//! Time as plain data: unix seconds, civil dates and recurrent limit resets.
//!
//! The domain has no clock: the shell reads it and passes a [`Timestamp`] in. Calendar
//! arithmetic is done here with integers (proleptic Gregorian calendar), so no date
//! library is needed. `rfc3339` is the one reader of dates written as text.

mod rfc3339;

pub use rfc3339::{DateTime, NotADate};

/// An instant, in whole seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

impl Timestamp {
    pub const fn from_unix(seconds: i64) -> Self {
        Self(seconds)
    }

    pub const fn unix(self) -> i64 {
        self.0
    }

    /// The instant at `year-month-day hour:minute:second` UTC. Out-of-range parts roll
    /// over (day 0 is the last day of the previous month), as in `timegm`.
    pub fn from_civil(
        year: i64,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    ) -> Self {
        let days = days_from_civil(year, month, 1) + i64::from(day) - 1;
        Self(days * DAY + i64::from(hour) * HOUR + i64::from(minute) * 60 + i64::from(second))
    }

    /// The UTC calendar date and time of this instant.
    pub fn civil(self) -> Civil {
        let days = self.0.div_euclid(DAY);
        let secs = self.0.rem_euclid(DAY);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: u32::try_from(secs / HOUR).unwrap_or(0),
            minute: u32::try_from(secs % HOUR / 60).unwrap_or(0),
            second: u32::try_from(secs % 60).unwrap_or(0),
        }
    }
}

/// A UTC calendar date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl std::fmt::Display for Civil {
    /// RFC 3339 in UTC, for example `2020-08-11T10:00:00+00:00` (the form of Xsolla's
    /// dates).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let month = i64::from(month);
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// The number of days of a month (1..=12) of a year.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// How often a per-user purchase limit resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Daily,
    /// 1 = Monday .. 7 = Sunday.
    Weekly {
        day_of_week: u8,
    },
    /// 1..=31; in a shorter month the reset is on its last day.
    Monthly {
        day_of_month: u8,
    },
}

impl Interval {
    /// Xsolla's `interval_type`.
    pub fn name(self) -> &'static str {
        match self {
            Interval::Daily => "daily",
            Interval::Weekly { .. } => "weekly",
            Interval::Monthly { .. } => "monthly",
        }
    }
}

/// When a per-user limit resets: an interval, at a whole hour of a fixed UTC offset
/// (Xsolla's `time: "HH:00:00+hh:mm"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrentSchedule {
    pub interval: Interval,
    /// 0..=23, local to `utc_offset_minutes`.
    pub hour: u8,
    /// The offset of the schedule's clock from UTC, e.g. +180 for `+03:00`.
    pub utc_offset_minutes: i32,
}

impl RecurrentSchedule {
    /// The first reset strictly after `now`.
    pub fn next_reset(&self, now: Timestamp) -> Timestamp {
        let last = self.last_reset(now);
        let offset = i64::from(self.utc_offset_minutes) * 60;
        let local = last.0 + offset;
        let next_local = match self.interval {
            Interval::Daily => local + DAY,
            Interval::Weekly { .. } => local + 7 * DAY,
            Interval::Monthly { day_of_month } => {
                let c = Timestamp(local).civil();
                let (y, m) = if c.month == 12 {
                    (c.year + 1, 1)
                } else {
                    (c.year, c.month + 1)
                };
                self.monthly_at(y, m, day_of_month)
            }
        };
        Timestamp(next_local - offset)
    }

    /// The last reset at or before `now`: the start of the current window, in which
    /// the shell counts the user's purchases.
    pub fn last_reset(&self, now: Timestamp) -> Timestamp {
        let offset = i64::from(self.utc_offset_minutes) * 60;
        let local = now.0 + offset;
        let today = local.div_euclid(DAY);
        let at = |day: i64| day * DAY + i64::from(self.hour.min(23)) * HOUR;
        let last_local = match self.interval {
            Interval::Daily => {
                let t = at(today);
                if t <= local {
                    t
                } else {
                    t - DAY
                }
            }
            Interval::Weekly { day_of_week } => {
                // 1970-01-01 was a Thursday: (days + 3) mod 7 is 0 on Mondays.
                let weekday = (today + 3).rem_euclid(7);
                let target = i64::from(day_of_week.clamp(1, 7)) - 1;
                let t = at(today - (weekday - target).rem_euclid(7));
                if t <= local {
                    t
                } else {
                    t - 7 * DAY
                }
            }
            Interval::Monthly { day_of_month } => {
                let c = Timestamp(local).civil();
                let t = self.monthly_at(c.year, c.month, day_of_month);
                if t <= local {
                    t
                } else {
                    let (y, m) = if c.month == 1 {
                        (c.year - 1, 12)
                    } else {
                        (c.year, c.month - 1)
                    };
                    self.monthly_at(y, m, day_of_month)
                }
            }
        };
        Timestamp(last_local - offset)
    }

    /// Local seconds of the reset in a month, the day clamped to the month's last day.
    fn monthly_at(&self, year: i64, month: u32, day_of_month: u8) -> i64 {
        let day = u32::from(day_of_month.max(1)).min(days_in_month(year, month));
        Timestamp::from_civil(year, month, day, u32::from(self.hour.min(23)), 0, 0).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(y: i64, mo: u32, d: u32, h: u32) -> Timestamp {
        Timestamp::from_civil(y, mo, d, h, 0, 0)
    }

    #[test]
    fn civil_round_trips() {
        for secs in [
            0,
            1,
            86_399,
            951_782_400,
            1_677_553_200,
            -1,
            -86_401,
            4_102_444_800,
        ] {
            let ts = Timestamp::from_unix(secs);
            let c = ts.civil();
            assert_eq!(
                Timestamp::from_civil(c.year, c.month, c.day, c.hour, c.minute, c.second),
                ts
            );
        }
        assert_eq!(t(2023, 2, 28, 3).unix(), 1_677_553_200);
        assert_eq!(
            t(2024, 2, 29, 0).civil().to_string(),
            "2024-02-29T00:00:00+00:00"
        );
    }

    #[test]
    fn daily_resets_at_the_hour_of_its_offset() {
        // 03:00 at +03:00 is midnight UTC.
        let s = RecurrentSchedule {
            interval: Interval::Daily,
            hour: 3,
            utc_offset_minutes: 180,
        };
        assert_eq!(s.next_reset(t(2023, 2, 27, 10)), t(2023, 2, 28, 0));
        assert_eq!(s.last_reset(t(2023, 2, 27, 10)), t(2023, 2, 27, 0));
        // Exactly at a reset, the window has just started.
        assert_eq!(s.last_reset(t(2023, 2, 28, 0)), t(2023, 2, 28, 0));
        assert_eq!(s.next_reset(t(2023, 2, 28, 0)), t(2023, 3, 1, 0));
    }

    #[test]
    fn weekly_resets_on_its_day() {
        // Monday 2024-01-01; reset on Wednesdays (3) at 12:00 UTC.
        let s = RecurrentSchedule {
            interval: Interval::Weekly { day_of_week: 3 },
            hour: 12,
            utc_offset_minutes: 0,
        };
        assert_eq!(s.next_reset(t(2024, 1, 1, 8)), t(2024, 1, 3, 12));
        assert_eq!(s.last_reset(t(2024, 1, 1, 8)), t(2023, 12, 27, 12));
        assert_eq!(s.next_reset(t(2024, 1, 3, 12)), t(2024, 1, 10, 12));
        assert_eq!(s.next_reset(t(2024, 1, 3, 11)), t(2024, 1, 3, 12));
        // Sunday (7) from a Sunday afternoon: a week later.
        let sunday = RecurrentSchedule {
            interval: Interval::Weekly { day_of_week: 7 },
            hour: 0,
            utc_offset_minutes: 0,
        };
        assert_eq!(sunday.next_reset(t(2024, 1, 7, 15)), t(2024, 1, 14, 0));
    }

    #[test]
    fn monthly_resets_clamp_to_the_last_day_of_the_month() {
        let s = RecurrentSchedule {
            interval: Interval::Monthly { day_of_month: 31 },
            hour: 0,
            utc_offset_minutes: 0,
        };
        assert_eq!(s.next_reset(t(2023, 1, 31, 1)), t(2023, 2, 28, 0));
        assert_eq!(s.next_reset(t(2024, 2, 10, 0)), t(2024, 2, 29, 0));
        assert_eq!(s.next_reset(t(2024, 2, 29, 0)), t(2024, 3, 31, 0));
        assert_eq!(s.next_reset(t(2024, 4, 1, 0)), t(2024, 4, 30, 0));
        assert_eq!(s.last_reset(t(2024, 4, 15, 0)), t(2024, 3, 31, 0));
        assert_eq!(s.next_reset(t(2024, 12, 31, 5)), t(2025, 1, 31, 0));
        // With an offset: 31st at 00:00 +02:00 is the 30th at 22:00 UTC.
        let plus2 = RecurrentSchedule {
            utc_offset_minutes: 120,
            ..s
        };
        assert_eq!(plus2.next_reset(t(2024, 1, 30, 21)), t(2024, 1, 30, 22));
        assert_eq!(plus2.next_reset(t(2024, 1, 30, 22)), t(2024, 2, 28, 22));
    }
}
