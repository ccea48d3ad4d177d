//! The only crate that knows bytes: the protobuf and JSON forms of requests, replies,
//! events and the catalog file, and their conversions to and from `cart-domain`.
//!
//! Decoding is an IO edge: it returns errors, never panics. Encoding cannot fail.

pub mod admin;
pub mod catalog;
mod error;
pub mod event;
pub mod feed;
pub mod order;
pub mod request;
#[cfg(feature = "schema")]
pub mod schema;
pub mod subject;
pub mod view;

pub use error::ErrorReply;

/// Types generated from `proto/cart/v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs, unreachable_pub)]
    include!(concat!(env!("OUT_DIR"), "/cart.v1.rs"));
}

/// The request header that carries a command's idempotency key.
pub const COMMAND_ID_HEADER: &str = "Cart-Command-Id";

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
    pub fn from_content_type(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case(Self::PROTOBUF_CONTENT_TYPE) => Encoding::Protobuf,
            Some(v) if v.eq_ignore_ascii_case("application/x-protobuf") => Encoding::Protobuf,
            _ => Encoding::Json,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => Self::JSON_CONTENT_TYPE,
            Encoding::Protobuf => Self::PROTOBUF_CONTENT_TYPE,
        }
    }
}

/// Encodes a reply message in the requested encoding.
pub fn encode<M: prost::Message + serde::Serialize>(message: &M, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        // Serializing generated structs of strings, numbers and vectors cannot fail.
        Encoding::Json => serde_json::to_vec(message).unwrap_or_default(),
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
