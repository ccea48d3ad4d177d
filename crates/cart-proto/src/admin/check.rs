//! The checks of single values of a catalog document, each naming its field.

use std::collections::BTreeMap;

use cart_domain::DateTime;
use rust_decimal::Decimal;

use super::error::Check;
use super::{
    Bonus, Dec, ValidationError, AMOUNT_DECIMALS, ISO_4217, MAX_AMOUNT, MAX_SKU_LEN,
    PERCENT_DECIMALS,
};

pub(super) fn check_key(field: &str, value: &str, what: &'static str, max: usize) -> Check {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Key {
            field: field.to_owned(),
            value: value.to_owned(),
            what,
            max,
        })
    }
}

/// A SKU: `[A-Za-z0-9_.-]`, 1 to 255 characters.
pub fn check_sku(field: &str, value: &str) -> Check {
    check_key(field, value, "SKU", MAX_SKU_LEN)
}

pub fn check_currency(field: &str, value: &str) -> Check {
    if ISO_4217.contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::Currency {
            field: field.to_owned(),
            value: value.to_owned(),
        })
    }
}

pub(super) fn check_country(field: &str, value: &str) -> Check {
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ValidationError::Country {
            field: field.to_owned(),
            value: value.to_owned(),
        })
    }
}

pub(super) fn check_amount(field: &str, value: Dec) -> Check {
    let reason = if value.0.is_sign_negative() && !value.0.is_zero() {
        "is negative"
    } else if value.0 > Decimal::from(MAX_AMOUNT) {
        "is more than 1000000000000"
    } else if value.0.normalize().scale() > AMOUNT_DECIMALS {
        "has more than 4 decimals"
    } else {
        return Ok(());
    };
    Err(ValidationError::Amount {
        field: field.to_owned(),
        value: value.to_string(),
        reason,
    })
}

pub(super) fn check_percent(field: &str, value: Dec) -> Check {
    let ok = value.0 > Decimal::ZERO
        && value.0 <= Decimal::ONE_HUNDRED
        && value.0.normalize().scale() <= PERCENT_DECIMALS;
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Percent {
            field: field.to_owned(),
            value: value.to_string(),
        })
    }
}

pub(super) fn check_limit(field: &str, value: Option<i64>) -> Check {
    match value {
        Some(n) if n < 1 => Err(ValidationError::Limit {
            field: field.to_owned(),
        }),
        // Stored as `u32` in the domain catalog: a larger limit would not convert.
        Some(n) if n > i64::from(u32::MAX) => Err(invalid(
            field,
            format!("{n} is more than the maximum {}", u32::MAX),
        )),
        _ => Ok(()),
    }
}

/// Seconds since the Unix epoch of an RFC 3339 date-time (`DateTime::parse`, the
/// service's one date reader), or a field-named error.
pub fn parse_date(field: &str, value: &str) -> Result<i64, ValidationError> {
    DateTime::parse(value)
        .map(|t| t.timestamp().unix())
        .map_err(|_| ValidationError::Date {
            field: field.to_owned(),
            value: value.to_owned(),
        })
}

pub(super) fn check_window(
    start_field: &str,
    start: Option<&str>,
    end_field: &str,
    end: Option<&str>,
) -> Check {
    let start = start.map(|s| parse_date(start_field, s)).transpose()?;
    let end = end.map(|e| parse_date(end_field, e)).transpose()?;
    if let (Some(s), Some(e)) = (start, end) {
        if s >= e {
            return Err(ValidationError::DateOrder {
                field: end_field.to_owned(),
                start_field: start_field.to_owned(),
            });
        }
    }
    Ok(())
}

pub(super) fn check_name(field: &str, name: &BTreeMap<String, String>) -> Check {
    if name.is_empty() || name.values().all(|n| n.trim().is_empty()) {
        return Err(ValidationError::Required {
            field: field.to_owned(),
        });
    }
    Ok(())
}

pub(super) fn invalid(field: &str, reason: impl Into<String>) -> ValidationError {
    ValidationError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

pub(super) fn check_bonus(field: &str, bonus: &[Bonus]) -> Check {
    for (i, b) in bonus.iter().enumerate() {
        check_sku(&format!("{field}[{i}].sku"), &b.sku)?;
        check_limit(&format!("{field}[{i}].quantity"), Some(b.quantity))?;
    }
    Ok(())
}

/// `HH:00:00+hh:mm` or `HH:00:00-hh:mm`.
pub(super) fn valid_schedule_time(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 14
        && two_digits(b, 0).is_some_and(|h| h <= 23)
        && &b[2..8] == b":00:00"
        && matches!(b[8], b'+' | b'-')
        && two_digits(b, 9).is_some_and(|h| h <= 14)
        && b[11] == b':'
        && two_digits(b, 12).is_some_and(|m| m <= 59)
}

pub(super) fn two_digits(b: &[u8], at: usize) -> Option<u8> {
    let (x, y) = (*b.get(at)?, *b.get(at + 1)?);
    (x.is_ascii_digit() && y.is_ascii_digit()).then(|| (x - b'0') * 10 + (y - b'0'))
}
