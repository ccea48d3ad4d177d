//! Value types that parse, so that a value which exists is valid.

use std::fmt;

/// The most units of one SKU a cart line may hold.
pub const MAX_QUANTITY: u32 = 10_000;
/// The most lines one cart may hold.
pub const MAX_LINES: usize = 100;

const MAX_SKU_LEN: usize = 255;
const MAX_CART_ID_LEN: usize = 128;
const MAX_USER_ID_LEN: usize = 128;

/// Why a value was refused. Messages name the property, as Xsolla's 1102 errors do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("the property `{0}` is required")]
    Missing(&'static str),
    #[error("the property `{property}` is longer than {max} characters")]
    TooLong { property: &'static str, max: usize },
    #[error("the property `{property}` may contain only {allowed}")]
    BadCharacters {
        property: &'static str,
        allowed: &'static str,
    },
    #[error("item quantity must be non-negative integer")]
    BadQuantity,
    #[error("item quantity must be at most {MAX_QUANTITY}")]
    QuantityTooLarge,
    #[error("the property `project_id` must be a positive integer")]
    BadProject,
    #[error("the property `currency` must be a three-letter ISO 4217 code")]
    BadCurrency,
    #[error("the property `locale` must be a two-letter ISO 639-1 code")]
    BadLocale,
    #[error("a fill may name at most {MAX_LINES} items")]
    TooManyItems,
    #[error("the property `at_version` must be a positive integer")]
    BadVersion,
    #[error("the property `{0}` must be an RFC 3339 date-time such as 2026-11-22T10:00:00Z")]
    BadTime(&'static str),
    #[error("the property `{0}` must be a date such as 2026-11-22 or an RFC 3339 date-time such as 2026-11-22T10:00:00Z")]
    BadDate(&'static str),
    #[error("the property `{0}` must be a two-letter ISO 3166-1 alpha-2 country code")]
    BadCountry(&'static str),
    #[error("the property `{0}` must not contain control characters")]
    ControlCharacters(String),
    #[error("the property `{0}` must be a non-negative decimal string such as \"6.84\"")]
    BadAmount(&'static str),
    #[error("the property `{property}` must be {expected}")]
    Invalid {
        property: &'static str,
        expected: &'static str,
    },
    #[error("give at most one of the properties `{0}` and `{1}`")]
    OneOf(&'static str, &'static str),
}

fn check_id(
    value: &str,
    property: &'static str,
    max: usize,
    allowed_char: fn(char) -> bool,
    allowed: &'static str,
) -> Result<(), InvalidInput> {
    if value.is_empty() {
        return Err(InvalidInput::Missing(property));
    }
    if value.chars().count() > max {
        return Err(InvalidInput::TooLong { property, max });
    }
    if !value.chars().all(allowed_char) {
        return Err(InvalidInput::BadCharacters { property, allowed });
    }
    Ok(())
}

/// A project: the scope of catalogs, users and carts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(u64);

impl ProjectId {
    pub fn parse(value: u64) -> Result<Self, InvalidInput> {
        // Stored as a PostgreSQL bigint, so the top half of u64 is refused up front.
        if value == 0 || i64::try_from(value).is_err() {
            return Err(InvalidInput::BadProject);
        }
        Ok(Self(value))
    }
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $property:literal, $max:expr, $pred:expr, $allowed:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidInput> {
                let value = value.into();
                check_id(&value, $property, $max, $pred, $allowed)?;
                Ok(Self(value))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

// Xsolla's SKU pattern is Latin letters, digits, `.`, `-` and `_`. Nothing here can break a
// NATS subject token except `.`, which the event feed encodes.
string_id!(
    /// A catalog item's stock-keeping unit.
    Sku, "sku", MAX_SKU_LEN,
    |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'),
    "Latin letters, digits, `.`, `-` and `_`"
);

// Cart ids are chosen by clients, so they are held to a subject-safe charset: no dots,
// wildcards, whitespace or control characters.
string_id!(
    /// A cart id, chosen by the client and scoped to its user.
    CartId, "cart_id", MAX_CART_ID_LEN,
    |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'),
    "Latin letters, digits, `-` and `_`"
);

string_id!(
    /// A user of a project, as the calling platform service identified them.
    UserId, "user_id", MAX_USER_ID_LEN,
    |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+' | ':'),
    "Latin letters, digits and `-_.@+:`"
);

/// A number of units: 0 means "no line".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(u32);

impl Quantity {
    pub fn parse(value: i64) -> Result<Self, InvalidInput> {
        if value < 0 {
            return Err(InvalidInput::BadQuantity);
        }
        if value > i64::from(MAX_QUANTITY) {
            return Err(InvalidInput::QuantityTooLarge);
        }
        // The range check above makes this conversion exact.
        Ok(Self(value as u32))
    }
    pub fn get(self) -> u32 {
        self.0
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// An ISO 4217 currency code, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(String);

impl Currency {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        if value.len() != 3 || !value.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(InvalidInput::BadCurrency);
        }
        Ok(Self(value.to_ascii_uppercase()))
    }
    pub fn usd() -> Self {
        Self("USD".to_owned())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 639-1 language code, lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Locale(String);

impl Locale {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        if value.len() != 2 || !value.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(InvalidInput::BadLocale);
        }
        Ok(Self(value.to_ascii_lowercase()))
    }
    pub fn en() -> Self {
        Self("en".to_owned())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO 3166-1 alpha-2 country code, upper case: where the buyer is (country prices,
/// region-limited promo codes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(String);

impl Country {
    /// Two Latin letters, in any case.
    ///
    /// # Errors
    /// Anything else, as `BadCountry("country")`.
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(InvalidInput::BadCountry("country"));
        }
        Ok(Self(value.to_ascii_uppercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_empty_long_and_subject_unsafe_values() {
        assert_eq!(Sku::parse(""), Err(InvalidInput::Missing("sku")));
        assert!(matches!(
            Sku::parse("a".repeat(256)),
            Err(InvalidInput::TooLong { .. })
        ));
        assert!(Sku::parse("a".repeat(255)).is_ok());
        for bad in ["a b", "a*", "a>", "a\n", "ä", "a/b"] {
            assert!(Sku::parse(bad).is_err(), "{bad:?} accepted as sku");
        }
        assert!(Sku::parse("com.xsolla.booster_mega-1").is_ok());
        for bad in ["a.b", "a*", ">", "a b", "", "\u{0}"] {
            assert!(CartId::parse(bad).is_err(), "{bad:?} accepted as cart id");
        }
        assert!(CartId::parse("my-cart_1").is_ok());
        assert!(UserId::parse("user 1").is_err());
        assert!(UserId::parse("user@example.com").is_ok());
    }

    #[test]
    fn quantity_bounds() {
        assert_eq!(Quantity::parse(-1), Err(InvalidInput::BadQuantity));
        assert_eq!(
            Quantity::parse(i64::from(MAX_QUANTITY) + 1),
            Err(InvalidInput::QuantityTooLarge)
        );
        assert_eq!(Quantity::parse(0).map(Quantity::get), Ok(0));
        assert_eq!(
            Quantity::parse(i64::from(MAX_QUANTITY)).map(Quantity::get),
            Ok(MAX_QUANTITY)
        );
    }

    #[test]
    fn currency_and_locale_are_normalised() {
        assert_eq!(Currency::parse("eur").unwrap().as_str(), "EUR");
        assert!(Currency::parse("EURO").is_err());
        assert_eq!(Locale::parse("DE").unwrap().as_str(), "de");
        assert!(Locale::parse("deu").is_err());
        assert_eq!(ProjectId::parse(0), Err(InvalidInput::BadProject));
        assert_eq!(ProjectId::parse(u64::MAX), Err(InvalidInput::BadProject));
        assert!(ProjectId::parse(i64::MAX as u64).is_ok());
    }

    #[test]
    fn countries_are_two_latin_letters_in_upper_case() {
        assert_eq!(Country::parse("de").unwrap().as_str(), "DE");
        assert_eq!(Country::parse("US").unwrap().to_string(), "US");
        for bad in ["", "D", "DEU", "D1", "ä", "d\u{0}", "\u{0}\u{0}", " D"] {
            assert_eq!(
                Country::parse(bad),
                Err(InvalidInput::BadCountry("country")),
                "{bad:?}"
            );
        }
    }
}
