//! Request headers in (names matched without regard to case) and reply headers out
//! (values that cannot break a header, by construction).
//!
//! async-nats panics when a header value holds CR or LF, and error messages quote
//! request text (a property name, a SKU). So every reply header value is a
//! [`HeaderText`], whose only constructor replaces what a header may not hold, and
//! [`ReplyHeaders`] is the only way the edge builds a reply's headers.

use async_nats::header::{HeaderValue, IntoHeaderValue};
use async_nats::HeaderMap;

/// The longest header value sent: a message is cut there (the body has it whole).
const MAX_VALUE_LEN: usize = 512;

/// Text that is safe as a header value: printable ASCII and spaces only, at most
/// [`MAX_VALUE_LEN`] bytes. Anything else (CR, LF, NUL, other control characters,
/// non-ASCII) becomes `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderText(String);

impl HeaderText {
    pub(crate) fn new(text: &str) -> Self {
        let mut safe: String = text
            .chars()
            .map(|c| {
                if c == ' ' || c.is_ascii_graphic() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        // Every char is ASCII now, so any byte index is a char boundary.
        safe.truncate(MAX_VALUE_LEN);
        Self(safe)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl IntoHeaderValue for HeaderText {
    fn into_header_value(self) -> HeaderValue {
        // Cannot fail: the constructor removed CR and LF. Should it ever, an empty
        // value beats a panic.
        self.0.parse().unwrap_or_default()
    }
}

/// A reply's headers: static names, [`HeaderText`] values.
#[derive(Debug, Default)]
pub(crate) struct ReplyHeaders(HeaderMap);

impl ReplyHeaders {
    pub(crate) fn set(&mut self, name: &'static str, value: HeaderText) {
        self.0.insert(name, value);
    }

    pub(crate) fn into_map(self) -> HeaderMap {
        self.0
    }
}

/// The values of request header `name`, whatever the case of its name in the request
/// (`cart-command-id` is `Cart-Command-Id`). Several spellings may each carry values.
pub(crate) fn values<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Vec<&'a str> {
    let Some(headers) = headers else {
        return Vec::new();
    };
    headers
        .iter()
        .filter(|(key, _)| AsRef::<str>::as_ref(*key).eq_ignore_ascii_case(name))
        .flat_map(|(_, values)| values.iter().map(HeaderValue::as_str))
        .collect()
}

/// The one value of request header `name` (any case); an error when the request gives
/// different values for it.
pub(crate) fn single<'a>(
    headers: Option<&'a HeaderMap>,
    name: &str,
) -> Result<Option<&'a str>, Conflicting> {
    let found = values(headers, name);
    match found.split_first() {
        None => Ok(None),
        Some((first, rest)) if rest.iter().all(|v| v == first) => Ok(Some(first)),
        Some(_) => Err(Conflicting),
    }
}

/// A request header given more than once with different values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conflicting;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_holds_no_line_break_or_control_character() {
        let text = HeaderText::new("bad\r\nX: y\u{0}\t\u{85}\u{2028}é end");
        assert_eq!(text.as_str(), "bad??X: y????? end");
        let mut headers = ReplyHeaders::default();
        headers.set("Nats-Service-Error", text);
        let map = headers.into_map();
        assert_eq!(
            map.get("Nats-Service-Error").map(HeaderValue::as_str),
            Some("bad??X: y????? end")
        );
        assert_eq!(
            HeaderText::new(&"x".repeat(5000)).as_str().len(),
            MAX_VALUE_LEN
        );
    }

    #[test]
    fn request_headers_are_found_whatever_the_case_of_their_name() {
        let mut map = HeaderMap::new();
        map.insert("cart-command-id", "a");
        assert_eq!(single(Some(&map), "Cart-Command-Id"), Ok(Some("a")));
        map.insert("CART-COMMAND-ID", "a");
        assert_eq!(single(Some(&map), "Cart-Command-Id"), Ok(Some("a")));
        map.insert("Cart-Command-Id", "b");
        assert_eq!(single(Some(&map), "Cart-Command-Id"), Err(Conflicting));
        assert_eq!(single(None, "Cart-Command-Id"), Ok(None));
        assert_eq!(single(Some(&map), "Content-Type"), Ok(None));
    }
}
