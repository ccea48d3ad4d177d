//! The bodies of the admin requests not yet taken from `cart_proto::admin::request`
//! (import, export, get, changes; JSON, unknown properties refused).

use cart_proto::admin::{self, CatalogDocument};
use cart_proto::ErrorReply;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::edge::errors::reply;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportRequest {
    pub(super) catalog: CatalogDocument,
    #[serde(default)]
    pub(super) mode: Option<String>,
    /// Applies to every project of the document.
    #[serde(default)]
    pub(super) expected_version: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportRequest {
    #[serde(default)]
    pub(super) project_id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GetRequest {
    pub(super) project_id: u64,
    #[serde(default)]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) key: Option<String>,
    #[serde(default)]
    pub(super) at_version: Option<i64>,
    #[serde(default)]
    pub(super) at_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangesRequest {
    pub(super) project_id: u64,
    #[serde(default)]
    pub(super) after_version: Option<i64>,
    #[serde(default)]
    pub(super) limit: Option<i64>,
}

pub(super) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ErrorReply> {
    admin::decode(body).map_err(reply)
}

pub(super) fn decode_or_default<T: DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ErrorReply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    decode(body)
}
