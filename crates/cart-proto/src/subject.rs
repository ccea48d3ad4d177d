//! NATS subjects of the event feed.
//!
//! `{prefix}.events.{project}.{user}.{cart}.{EventType}.{sku}`, every free-text value
//! encoded as one token by [`token`], and `~` in the SKU place for an event without one.
//! A fixed number of tokens lets a consumer filter on any place with `*`, for example
//! `cart.v1.events.*.*.*.ItemQuantitySet.*` or `cart.v1.events.44056.>`.

use std::fmt::Write;

/// The token in the SKU place of an event that names no SKU. [`token`] never yields it.
pub const NO_SKU: &str = "~";

/// Encodes a value as a single subject token that no character can break: ASCII letters,
/// digits, `_` and `-` stay as they are; every other byte (`.`, `*`, `>`, spaces, `~`,
/// non-ASCII...) becomes `~` and two uppercase hex digits. The encoding is injective, so
/// [`decode_token`] gives the value back. Ids are never empty; an empty input still
/// yields a token, `~_`.
pub fn token(value: &str) -> String {
    if value.is_empty() {
        return "~_".to_owned();
    }
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "~{b:02X}");
        }
    }
    out
}

/// The value a [`token`] encodes, or None if `token` did not make it.
pub fn decode_token(token: &str) -> Option<String> {
    if token == "~_" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'~' => {
                let hex = token.get(i + 1..i + 3)?;
                if hex.bytes().any(|h| h.is_ascii_lowercase()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// The subject of one event.
pub fn event_subject(
    prefix: &str,
    project: i64,
    user: &str,
    cart: &str,
    event_type: &str,
    sku: Option<&str>,
) -> String {
    let sku = sku.map_or_else(|| NO_SKU.to_owned(), token);
    format!(
        "{prefix}.events.{project}.{}.{}.{}.{sku}",
        token(user),
        token(cart),
        token(event_type)
    )
}

/// The wildcard that covers every event subject under `prefix`.
pub fn events_wildcard(prefix: &str) -> String {
    format!("{prefix}.events.>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn readable_ids_stay_readable() {
        assert_eq!(token("demo-user_1"), "demo-user_1");
        assert_eq!(token("com.xsolla.booster"), "com~2Exsolla~2Ebooster");
        assert_eq!(token("a b*>~"), "a~20b~2A~3E~7E");
        assert_eq!(
            event_subject("cart.v1", 7, "u@x.io", "c", "ItemRemoved", Some("a.b")),
            "cart.v1.events.7.u~40x~2Eio.c.ItemRemoved.a~2Eb"
        );
        assert_eq!(
            event_subject("cart.v1", 7, "u", "c", "CartCleared", None),
            "cart.v1.events.7.u.c.CartCleared.~"
        );
    }

    proptest! {
        #[test]
        fn any_value_is_one_safe_token_and_round_trips(value in any::<String>()) {
            let t = token(&value);
            prop_assert!(!t.is_empty());
            prop_assert!(t.bytes().all(|b| b.is_ascii_graphic() && b != b'.' && b != b'*' && b != b'>'));
            prop_assert_ne!(t.as_str(), NO_SKU);
            prop_assert_eq!(decode_token(&t), Some(value));
        }
    }
}
