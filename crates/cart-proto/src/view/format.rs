//! Money and dates as the cart's replies write them.

use cart_domain::Timestamp;
use rust_decimal::Decimal;

/// How many decimals money strings carry. Xsolla's examples vary (see docs/protocol.md);
/// two is the form of its cart fill examples (`"5.99"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountFormat {
    pub scale: u32,
}

impl Default for AmountFormat {
    fn default() -> Self {
        Self { scale: 2 }
    }
}

impl AmountFormat {
    pub fn format(self, amount: Decimal) -> String {
        // Half away from zero, as pricing rounds its discount steps: a price shown with
        // fewer decimals than it has rounds the same way the discounts did.
        let mut rounded = amount.round_dp_with_strategy(
            self.scale,
            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
        );
        rounded.rescale(self.scale);
        fixed_point(rounded).unwrap_or_else(|| rounded.to_string())
    }
}

/// `amount` as `Decimal`'s `Display` writes it (all its scale's decimals), with the
/// digits put straight into a buffer: through the formatting machinery, money strings
/// were a sixth of building a cart's view (callgrind, `examples/render_cost.rs`). None
/// where the two might differ (a negative zero, a mantissa beyond 64 bits): the caller
/// then uses `Display`.
fn fixed_point(amount: Decimal) -> Option<String> {
    let mantissa = amount.mantissa();
    if mantissa == 0 && amount.is_sign_negative() {
        return None;
    }
    let mut digits = u64::try_from(mantissa.unsigned_abs()).ok()?;
    let scale = usize::try_from(amount.scale()).ok()?;
    // 20 digits of a u64, or the scale's 28 and a leading zero; a point and a sign.
    let mut buf = [0u8; 32];
    let mut at = buf.len();
    let mut written = 0;
    loop {
        if written == scale && scale > 0 {
            at -= 1;
            buf[at] = b'.';
        }
        at -= 1;
        buf[at] = b'0' + (digits % 10) as u8;
        digits /= 10;
        written += 1;
        if digits == 0 && written > scale {
            break;
        }
    }
    if mantissa < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    std::str::from_utf8(&buf[at..]).ok().map(str::to_owned)
}

/// An instant as Xsolla writes dates: RFC 3339, here always in UTC.
pub fn date(at: Timestamp) -> String {
    let civil = at.civil();
    // `Civil`'s `Display` (`write!` with padded fields), but written straight into the
    // 25 bytes: it was a tenth of building a cart's view with promotions.
    let fields = [
        civil.month,
        civil.day,
        civil.hour,
        civil.minute,
        civil.second,
    ];
    let Ok(year) = u32::try_from(civil.year) else {
        return civil.to_string();
    };
    if year > 9999 || fields.iter().any(|f| *f > 99) {
        return civil.to_string();
    }
    let mut text = *b"0000-00-00T00:00:00+00:00";
    let mut put = |at: usize, width: u32, value: u32| {
        for i in 0..width {
            let digit = (value / 10u32.pow(width - 1 - i)) % 10;
            text[at + i as usize] = b'0' + digit as u8;
        }
    };
    put(0, 4, year);
    for (at, value) in [5, 8, 11, 14, 17].into_iter().zip(fields) {
        put(at, 2, value);
    }
    String::from_utf8(text.to_vec()).unwrap_or_else(|_| civil.to_string())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn amounts_are_rounded_and_padded_to_the_scale() {
        let f = AmountFormat::default();
        assert_eq!(f.format(Decimal::from_str("5.99").unwrap()), "5.99");
        assert_eq!(f.format(Decimal::from(6150)), "6150.00");
        assert_eq!(f.format(Decimal::from_str("0.125").unwrap()), "0.13");
        assert_eq!(f.format(Decimal::from_str("2.345").unwrap()), "2.35");
        assert_eq!(f.format(Decimal::from_str("-0.125").unwrap()), "-0.13");
        let sixteen = AmountFormat { scale: 16 };
        assert_eq!(sixteen.format(Decimal::from(50)), "50.0000000000000000");
        assert_eq!(f.format(Decimal::from_str("-0.001").unwrap()), "0.00");
        assert_eq!(f.format(Decimal::from_str("0.05").unwrap()), "0.05");
        assert_eq!(AmountFormat { scale: 0 }.format(Decimal::from(7)), "7");
    }

    proptest::proptest! {
        /// The digits written straight are those `Display` writes, whatever the value
        /// and scale.
        #[test]
        fn money_strings_are_what_display_writes(mantissa: i64, scale in 0u32..=28, to in 0u32..=28) {
            let amount = Decimal::from_i128_with_scale(i128::from(mantissa), scale);
            let mut rounded = amount;
            rounded.rescale(to);
            let expected = rounded.to_string();
            proptest::prop_assert_eq!(fixed_point(rounded).unwrap_or_else(|| rounded.to_string()), expected);
        }

        #[test]
        fn dates_are_what_civil_display_writes(unix in -62_135_596_800i64..253_402_300_799) {
            let at = Timestamp::from_unix(unix);
            proptest::prop_assert_eq!(date(at), at.civil().to_string());
        }
    }
}
