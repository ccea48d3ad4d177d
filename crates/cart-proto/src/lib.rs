//! The only crate that knows bytes: the protobuf and JSON forms of requests, replies,
//! events and the catalog file, and their conversions to and from `cart-domain`.
//!
//! Decoding is an IO edge: it returns errors, never panics. Encoding cannot fail.

pub mod admin;
pub mod catalog;
mod error;
pub mod event;
pub mod feed;
pub mod nulls;
pub mod order;
pub mod request;
#[cfg(feature = "schema")]
pub mod schema;
pub mod subject;
pub mod view;

pub use error::{capitalized, ErrorReply};

/// Types generated from `proto/cart/v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs, unreachable_pub)]
    include!(concat!(env!("OUT_DIR"), "/cart.v1.rs"));
}

/// The request header that carries a command's idempotency key.
pub const COMMAND_ID_HEADER: &str = "Cart-Command-Id";

/// The request header that picks what a cart command answers with (after HTTP's
/// `Prefer: return=minimal`): [`ReplyMode`].
pub const REPLY_HEADER: &str = "Cart-Reply";

/// What a cart command answers with, by its `Cart-Reply` header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplyMode {
    /// The whole priced cart (`Cart`), the default.
    #[default]
    Full,
    /// Only `cart_id`, the new `version` and any `warnings` (`MinimalReply`): the cart
    /// is neither priced nor rendered.
    Minimal,
}

impl ReplyMode {
    /// Reads a header value: `full` or `minimal`, in any case, spaces around ignored;
    /// None for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim_matches([' ', '\t']);
        [ReplyMode::Full, ReplyMode::Minimal]
            .into_iter()
            .find(|mode| value.eq_ignore_ascii_case(mode.as_str()))
    }

    /// The header value that asks for this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyMode::Full => "full",
            ReplyMode::Minimal => "minimal",
        }
    }
}

/// How a message's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Protobuf,
}

impl Encoding {
    /// The `Content-Type` header value that selects protobuf.
    pub const PROTOBUF_CONTENT_TYPE: &'static str = "application/protobuf";
    pub const JSON_CONTENT_TYPE: &'static str = "application/json";

    /// Reads a `Content-Type` header; anything but protobuf is JSON, the default.
    ///
    /// The value is a media type (RFC 9110 §8.3.1): `type/subtype` then `;`-separated
    /// parameters, all compared without regard to case. Parameters (`charset=utf-8`)
    /// do not change the encoding, so `application/protobuf; charset=utf-8` is protobuf.
    pub fn from_content_type(value: Option<&str>) -> Self {
        let essence = value
            .and_then(|v| v.split(';').next())
            .map(str::trim)
            .unwrap_or_default();
        let protobuf = [Self::PROTOBUF_CONTENT_TYPE, "application/x-protobuf"]
            .iter()
            .any(|t| essence.eq_ignore_ascii_case(t));
        if protobuf {
            Encoding::Protobuf
        } else {
            Encoding::Json
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => Self::JSON_CONTENT_TYPE,
            Encoding::Protobuf => Self::PROTOBUF_CONTENT_TYPE,
        }
    }
}

/// The bytes a JSON reply starts with room for.
const JSON_CAPACITY: usize = 4096;

/// Encodes a reply message in the requested encoding.
pub fn encode<M: prost::Message + serde::Serialize>(message: &M, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        Encoding::Json => {
            // One allocation for a typical cart (about 2.3 KB for three lines), rather
            // than the doublings of a vector that starts empty.
            let mut out = Vec::with_capacity(JSON_CAPACITY);
            // Serializing generated structs of strings, numbers and vectors cannot fail.
            if serde_json::to_writer(&mut out, message).is_err() {
                out.clear();
            }
            out
        }
    }
}

/// Serde for a repeated field that Xsolla writes as null when empty.
pub(crate) mod null_if_empty {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        if v.is_empty() {
            s.serialize_none()
        } else {
            v.serialize(s)
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::{Encoding, ReplyMode};

    #[test]
    fn reply_modes_are_full_or_minimal_in_any_case() {
        for (value, expected) in [
            ("full", Some(ReplyMode::Full)),
            ("minimal", Some(ReplyMode::Minimal)),
            ("Minimal", Some(ReplyMode::Minimal)),
            (" MINIMAL\t", Some(ReplyMode::Minimal)),
            ("", None),
            ("min", None),
            ("minimal,full", None),
            ("return=minimal", None),
        ] {
            assert_eq!(ReplyMode::parse(value), expected, "{value:?}");
        }
        assert_eq!(ReplyMode::default(), ReplyMode::Full);
    }

    #[test]
    fn content_types_are_read_as_media_types_with_parameters() {
        for (value, expected) in [
            (None, Encoding::Json),
            (Some(""), Encoding::Json),
            (Some("application/json"), Encoding::Json),
            (Some("application/json; charset=utf-8"), Encoding::Json),
            (Some("text/plain"), Encoding::Json),
            (Some("application/protobuf"), Encoding::Protobuf),
            (Some("Application/ProtoBuf"), Encoding::Protobuf),
            (
                Some("application/protobuf; charset=utf-8"),
                Encoding::Protobuf,
            ),
            (
                Some(" application/protobuf ;charset=\"UTF-8\""),
                Encoding::Protobuf,
            ),
            (
                Some("application/x-protobuf; proto=cart.v1.FillRequest"),
                Encoding::Protobuf,
            ),
            (Some("application/protobufx"), Encoding::Json),
            (Some("application/protobuf-json"), Encoding::Json),
        ] {
            assert_eq!(Encoding::from_content_type(value), expected, "{value:?}");
        }
    }
}
