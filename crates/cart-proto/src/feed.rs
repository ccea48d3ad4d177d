//! The reply of `<prefix>.feed.status`: where the relays and the asynchronous
//! projections stand in the cart and order logs, and where each log ends
//! (docs/events.md, "Lag, for operators").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole reply. The log's figures are PostgreSQL's (the same whichever instance
/// answers); `this_instance` is the answering instance's own relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FeedStatusReply {
    /// The JetStream stream the relay publishes to, e.g. `CART_EVENTS`.
    pub stream: String,
    pub relay: RelayLag,
    /// The order relay (order events onto `CART_ORDERS`): its stream, checkpoint in the
    /// order log and lag. Absent in replies of instances from before it was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders_relay: Option<OrdersRelayLag>,
    /// Where each log ends for a reader now. Absent in replies of instances from before
    /// it was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<LogHeads>,
    /// Per asynchronous projection, by name (`sku_activity`).
    pub projections: BTreeMap<String, ProjectionLag>,
    /// Null when this instance runs no relay (`CART_RELAY=false`).
    pub this_instance: Option<InstanceRelay>,
}

/// The relay's checkpoint in the log and how far behind it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RelayLag {
    /// `<tx_id>:<global_position>` of the last event published.
    pub checkpoint: String,
    /// Committed events after the checkpoint, at most 100,000 (then "or more").
    pub lag_events: u64,
    /// Age of the oldest of them, in seconds; 0 when nothing is behind.
    pub lag_seconds: f64,
}

/// The order relay's stream, checkpoint in the order log and how far behind it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrdersRelayLag {
    /// The JetStream stream of order events, e.g. `CART_ORDERS`.
    pub stream: String,
    /// `<tx_id>:<global_position>` of the last order event published.
    pub checkpoint: String,
    /// Committed order events after the checkpoint, at most 100,000 (then "or more").
    pub lag_events: u64,
    /// Age of the oldest of them, in seconds; 0 when nothing is behind.
    pub lag_seconds: f64,
}

/// The position of the newest event of each log that a reader can see now (below the
/// read barrier), `<tx_id>:<global_position>` in that log's own order, `0:0` for an empty
/// log: where `cartctl events export --log carts` (or `orders`) started now would end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LogHeads {
    pub carts: String,
    pub orders: String,
}

/// A projection's checkpoint and the events after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProjectionLag {
    pub checkpoint: String,
    pub lag_events: u64,
}

/// The answering instance's relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InstanceRelay {
    /// Whether this instance holds the relay's lock (one instance at a time does).
    pub relay_active: bool,
    /// Events this instance's relay published since it started.
    pub published: u64,
    /// Publishes JetStream dropped as duplicates (`Nats-Msg-Id` seen before).
    pub duplicates_dropped: u64,
    /// The last publish error, null when none.
    pub last_error: Option<String>,
    /// Times this instance's relay found that JetStream had lost events it acknowledged
    /// (a purge, a deleted stream, a tail lost in a crash) and published them again.
    #[serde(default)]
    pub rewinds: u64,
    /// Why the last rewind happened, null when none.
    #[serde(default)]
    pub last_rewind: Option<String>,
}
