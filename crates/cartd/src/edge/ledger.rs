//! The command ledger's rules at the edge, shared by cart commands and checkouts: what
//! a valid `Cart-Command-Id` is, and the fingerprint that tells a retry (same request,
//! same reply mode) from a reuse of the id for another request. The ledger rows
//! themselves are the store's (`EventStore::processed`, `OrderStore::replay`).

use async_nats::HeaderMap;
use cart_proto::{Encoding, ErrorReply, ReplyMode, COMMAND_ID_HEADER};
use cart_store::ProcessedCommand;
use sha2::{Digest, Sha256};

use super::errors;
use super::headers;
use super::Endpoint;

/// The longest command id accepted, in bytes.
pub(crate) const MAX_COMMAND_ID_LEN: usize = 128;

/// A checked command id: 1 to 128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandId(String);

impl CommandId {
    pub(crate) fn parse(id: &str) -> Result<Self, ErrorReply> {
        let valid = !id.is_empty()
            && id.len() <= MAX_COMMAND_ID_LEN
            && id.chars().all(|c| c.is_ascii_graphic());
        if valid {
            Ok(Self(id.to_owned()))
        } else {
            Err(errors::bad_command_id(format_args!(
                "must be 1 to {MAX_COMMAND_ID_LEN} printable ASCII characters"
            )))
        }
    }

    /// The request's command id, its header name matched without regard to case. An
    /// invalid id, or two different ids, is refused on every endpoint: a client that
    /// believes it has idempotency must not silently lose it.
    pub(crate) fn from_headers(headers: Option<&HeaderMap>) -> Result<Option<Self>, ErrorReply> {
        match headers::single(headers, COMMAND_ID_HEADER) {
            Ok(None) => Ok(None),
            Ok(Some(id)) => Self::parse(id).map(Some),
            Err(headers::Conflicting) => Err(errors::bad_command_id(
                "is given more than once with different values",
            )),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A command to record in the ledger: its id and what it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) id: CommandId,
    pub(crate) fingerprint: Vec<u8>,
    pub(crate) encoding: Encoding,
}

impl Command {
    pub(crate) fn new(
        id: CommandId,
        endpoint: Endpoint,
        encoding: Encoding,
        reply: ReplyMode,
        body: &[u8],
    ) -> Self {
        Self {
            fingerprint: fingerprint(endpoint, encoding, reply, body),
            id,
            encoding,
        }
    }

    /// The ledger row, with the reply a retry will get.
    pub(crate) fn record(&self, reply: Vec<u8>) -> ProcessedCommand {
        ProcessedCommand {
            command_id: self.id.as_str().to_owned(),
            fingerprint: self.fingerprint.clone(),
            content_type: self.encoding.content_type().to_owned(),
            reply,
        }
    }
}

/// A digest of what a command asked: the endpoint, the encoding, the reply mode and the
/// body. The ledger keeps one reply, so a retry that asks for the other mode is another
/// request (409/1102), as one in the other encoding is: it could not be answered with
/// what it asked for.
fn fingerprint(endpoint: Endpoint, encoding: Encoding, reply: ReplyMode, body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(endpoint.subject().as_bytes());
    hasher.update([0]);
    hasher.update(encoding.content_type().as_bytes());
    // The full reply hashes as it did before the mode existed, so ledger rows written
    // then still match their retries. The marker sits before the NUL that ends the
    // (constant) content type, so no body can make one mode's input the other's.
    if reply == ReplyMode::Minimal {
        hasher.update(b"; reply=minimal");
    }
    hasher.update([0]);
    hasher.update(body);
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cart_proto::request;

    #[test]
    fn command_ids_are_short_printable_ascii() {
        assert!(CommandId::parse("abc-123").is_ok());
        assert!(CommandId::parse(&"a".repeat(128)).is_ok());
        for bad in ["", "a b", "é", "a\r\nb", &"a".repeat(129)] {
            let e = CommandId::parse(bad).unwrap_err();
            assert_eq!((e.status, e.code), (422, 1102), "{bad:?}");
        }
    }

    #[test]
    fn the_fingerprint_tells_endpoint_encoding_reply_mode_and_body_apart() {
        let fill = Endpoint::Cart(request::Endpoint::Fill);
        let put = Endpoint::Cart(request::Endpoint::PutItem);
        let full = ReplyMode::Full;
        let base = fingerprint(fill, Encoding::Json, full, b"{}");
        assert_eq!(base, fingerprint(fill, Encoding::Json, full, b"{}"));
        assert_ne!(base, fingerprint(put, Encoding::Json, full, b"{}"));
        assert_ne!(base, fingerprint(fill, Encoding::Protobuf, full, b"{}"));
        assert_ne!(base, fingerprint(fill, Encoding::Json, full, b"{ }"));
        assert_ne!(
            base,
            fingerprint(fill, Encoding::Json, ReplyMode::Minimal, b"{}")
        );
    }

    #[test]
    fn a_full_reply_keeps_the_fingerprint_of_rows_recorded_before_reply_modes() {
        // SHA-256 of "fill\0application/json\0{}", the digest the ledger has stored
        // for such a fill since before `Cart-Reply` existed.
        let mut before = Sha256::new();
        before.update(b"fill\0application/json\0{}");
        let fill = Endpoint::Cart(request::Endpoint::Fill);
        assert_eq!(
            fingerprint(fill, Encoding::Json, ReplyMode::Full, b"{}"),
            before.finalize().to_vec()
        );
    }
}
