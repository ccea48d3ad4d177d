//! The bodies of the admin requests not yet taken from `cart_proto::admin::request`
//! (get; JSON, unknown properties refused).

use cart_proto::admin;
use cart_proto::ErrorReply;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::edge::errors::reply;

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

pub(super) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ErrorReply> {
    admin::decode(body).map_err(reply)
}
