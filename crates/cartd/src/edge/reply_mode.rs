//! The `Cart-Reply` header at the edge: what a cart command answers with, the whole
//! priced cart (`full`, the default) or `cart_id`, `version` and `warnings` only
//! (`minimal`, after HTTP's `Prefer: return=minimal`).
//!
//! Like `Cart-Command-Id` it is checked on every endpoint, so that a client that asked
//! for something it will not get hears so (422/1102) instead of guessing from the reply;
//! a valid value is honoured on cart commands and has no effect elsewhere (queries,
//! orders, payments, admin, `feed.status`), whose replies have no smaller form.

use async_nats::HeaderMap;
use cart_proto::{ErrorReply, ReplyMode, REPLY_HEADER};

use super::errors;
use super::headers;
use super::Endpoint;

/// The reply mode a request asks for, its header name matched without regard to case.
/// A value other than `full` or `minimal`, or two spellings of the name that ask for
/// different modes, is refused on every endpoint.
pub(crate) fn from_headers(headers: Option<&HeaderMap>) -> Result<ReplyMode, ErrorReply> {
    let mut asked = None;
    for value in headers::values(headers, REPLY_HEADER) {
        let mode = ReplyMode::parse(value)
            .ok_or_else(|| errors::bad_reply_mode("must be `minimal` or `full`"))?;
        if asked.is_some_and(|first| first != mode) {
            return Err(errors::bad_reply_mode(
                "is given more than once with different values",
            ));
        }
        asked = Some(mode);
    }
    Ok(asked.unwrap_or_default())
}

/// The mode `endpoint` answers in: the one asked on a cart command, the full reply on
/// every other endpoint (a query's reply is what it reads; the rest have one form). The
/// command ledger's fingerprint takes this mode, so on a checkout the header changes
/// nothing, not even which retries match.
pub(crate) fn for_endpoint(endpoint: Endpoint, asked: ReplyMode) -> ReplyMode {
    match endpoint {
        Endpoint::Cart(e) if !e.is_query() => asked,
        _ => ReplyMode::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cart_proto::request;

    fn asked(pairs: &[(&str, &str)]) -> Result<ReplyMode, ErrorReply> {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, *value);
        }
        from_headers(Some(&map))
    }

    #[test]
    fn the_header_is_full_or_minimal_whatever_the_case_of_its_name() {
        assert_eq!(from_headers(None), Ok(ReplyMode::Full));
        assert_eq!(asked(&[]), Ok(ReplyMode::Full));
        assert_eq!(asked(&[("Cart-Reply", "minimal")]), Ok(ReplyMode::Minimal));
        assert_eq!(asked(&[("cart-reply", "Minimal")]), Ok(ReplyMode::Minimal));
        assert_eq!(asked(&[("CART-REPLY", "full")]), Ok(ReplyMode::Full));
        // The same mode under two spellings is one request for it.
        assert_eq!(
            asked(&[("cart-reply", "minimal"), ("Cart-Reply", "MINIMAL")]),
            Ok(ReplyMode::Minimal)
        );
    }

    #[test]
    fn other_values_and_contradictions_are_structured_refusals() {
        for pairs in [
            &[("Cart-Reply", "compact")][..],
            &[("Cart-Reply", "")],
            &[("Cart-Reply", "return=minimal")],
            &[("cart-reply", "minimal"), ("Cart-Reply", "full")],
        ] {
            let e = asked(pairs).unwrap_err();
            assert_eq!((e.status, e.code), (422, 1102), "{pairs:?}");
            assert!(e.message().contains("Cart-Reply"), "{}", e.message());
        }
    }

    #[test]
    fn only_cart_commands_answer_minimally() {
        let minimal = ReplyMode::Minimal;
        for e in request::Endpoint::ALL {
            let expected = if e.is_query() {
                ReplyMode::Full
            } else {
                minimal
            };
            assert_eq!(for_endpoint(Endpoint::Cart(e), minimal), expected, "{e:?}");
        }
        let checkout = Endpoint::Order(super::super::OrderEndpoint::Checkout);
        assert_eq!(for_endpoint(checkout, minimal), ReplyMode::Full);
        assert_eq!(for_endpoint(Endpoint::FeedStatus, minimal), ReplyMode::Full);
    }
}
