//! What must hold after a fault, read once the cluster is quiet again (load stopped,
//! both relays caught up, webhooks drained): against the log in PostgreSQL, the
//! streams in JetStream and the receiver's arrivals.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;

use crate::fulfilment::figures::{idempotency_key, Arrival, Paid};

/// A stream against its log: every event exactly once, each cart's (or order's) events
/// in version order.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StreamCheck {
    pub log_events: usize,
    pub messages: usize,
    /// Events of the log never published.
    pub missing: usize,
    /// Events published more than once (copies beyond the first).
    pub duplicated: usize,
    /// Messages whose event id the log does not hold.
    pub extra: usize,
    /// Messages that came after a later version of their own cart or order.
    pub out_of_order: usize,
}

impl StreamCheck {
    pub fn ok(&self) -> bool {
        self.missing + self.duplicated + self.extra + self.out_of_order == 0
    }
}

/// The suite's checks of one fault.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checks {
    /// Command ids answered OK that the command ledger does not hold.
    pub acked_missing: usize,
    /// Command ids whose cart events were written by more than one transaction.
    pub duplicate_commands: usize,
    /// Buying users (one checkout each, retried under one id) with more than one order.
    pub duplicate_orders: usize,
    pub events: StreamCheck,
    pub orders: StreamCheck,
    /// Paid orders whose `order_paid` never reached the receiver.
    pub webhooks_missing: usize,
    /// Arrivals beyond the first of one idempotency key.
    pub webhook_duplicates: usize,
    /// Arrivals whose key is not the one of their body's order and type.
    pub webhook_key_mismatches: usize,
}

impl Checks {
    pub fn ok(&self) -> bool {
        self.acked_missing + self.duplicate_commands + self.duplicate_orders == 0
            && self.events.ok()
            && self.orders.ok()
            && self.webhooks_missing + self.webhook_key_mismatches == 0
    }
}

/// Command ids answered OK but absent from the ledger (`processed_commands`, written in
/// the transaction of the command's events), and ids written by two transactions.
pub async fn commands(pool: &PgPool, acked: &[String]) -> anyhow::Result<(usize, usize)> {
    let missing: i64 = sqlx::query_scalar(
        "select count(*) from unnest($1::text[]) as c(id) \
         where not exists (select 1 from processed_commands p where p.command_id = c.id)",
    )
    .bind(acked)
    .persistent(false)
    .fetch_one(pool)
    .await
    .context("look up acked commands in the ledger")?;
    let twice: i64 = sqlx::query_scalar(
        "select count(*) from (select metadata->>'command_id' from cart_events \
           where metadata->>'command_id' = any($1) group by 1 having count(distinct tx_id) > 1) d",
    )
    .bind(acked)
    .persistent(false)
    .fetch_one(pool)
    .await
    .context("count commands written twice")?;
    Ok((usize::try_from(missing)?, usize::try_from(twice)?))
}

/// Buying users with more than one order (each checks out once, under one command id).
pub async fn duplicate_orders(
    pool: &PgPool,
    project: u64,
    users: &[String],
) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar(
        "select count(*) from (select user_id from orders where project_id = $1 \
           and user_id = any($2) group by user_id having count(*) > 1) d",
    )
    .bind(i64::try_from(project)?)
    .bind(users)
    .persistent(false)
    .fetch_one(pool)
    .await
    .context("count users with two orders")?;
    Ok(usize::try_from(n)?)
}

/// One message as the check needs it: event id, the cart or order it belongs to, version.
type Message = (String, String, i64);

/// Every message of `stream` (an ordered consumer from the first to the stream's end).
pub async fn read_stream(
    js: &async_nats::jetstream::Context,
    stream: &str,
    filter: String,
    key: fn(&async_nats::jetstream::Message) -> Option<(String, i64)>,
) -> anyhow::Result<Vec<Message>> {
    let mut out = Vec::new();
    let mut unreadable = 0usize;
    cart_analytics::replay_stream(js, stream, filter, |m| {
        let id = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(ToString::to_string);
        match (id, key(m)) {
            (Some(id), Some((owner, version))) => out.push((id, owner, version)),
            _ => unreadable += 1,
        }
    })
    .await
    .with_context(|| format!("read stream {stream}"))?;
    anyhow::ensure!(
        unreadable == 0,
        "{unreadable} messages of {stream} lack their headers"
    );
    Ok(out)
}

/// A cart event's stream and version, from its headers.
pub fn cart_key(m: &async_nats::jetstream::Message) -> Option<(String, i64)> {
    let h = m.headers.as_ref()?;
    Some((
        h.get("Cart-Stream-Id")?.to_string(),
        h.get("Cart-Version")?.as_str().parse().ok()?,
    ))
}

/// An order event's order (its subject without the status) and version.
pub fn order_key(m: &async_nats::jetstream::Message) -> Option<(String, i64)> {
    let version = m
        .headers
        .as_ref()?
        .get("Order-Version")?
        .as_str()
        .parse()
        .ok()?;
    let subject = m.subject.as_str();
    Some((subject[..subject.rfind('.')?].to_owned(), version))
}

/// The log's event ids (`table`: `cart_events` or `order_events`).
pub async fn log_ids(pool: &PgPool, table: &str) -> anyhow::Result<HashSet<String>> {
    let ids: Vec<String> = sqlx::query_scalar(&format!("select event_id::text from {table}"))
        .persistent(false)
        .fetch_all(pool)
        .await
        .with_context(|| format!("read {table}"))?;
    Ok(ids.into_iter().collect())
}

/// `messages` (in stream order) against the log's event ids.
pub fn compare(log: &HashSet<String>, messages: &[Message]) -> StreamCheck {
    let mut seen: HashSet<&str> = HashSet::with_capacity(messages.len());
    let mut last: HashMap<&str, i64> = HashMap::new();
    let mut check = StreamCheck {
        log_events: log.len(),
        messages: messages.len(),
        ..StreamCheck::default()
    };
    for (id, owner, version) in messages {
        if !seen.insert(id) {
            check.duplicated += 1;
            continue;
        }
        if !log.contains(id) {
            check.extra += 1;
        }
        let previous = last.entry(owner).or_insert(0);
        if *version <= *previous {
            check.out_of_order += 1;
        }
        *previous = (*previous).max(*version);
    }
    check.missing = log.iter().filter(|id| !seen.contains(id.as_str())).count();
    check
}

/// (missing, duplicates, key mismatches) of the paid orders' webhooks.
pub fn webhooks(project: u64, paid: &[Paid], arrivals: &[Arrival]) -> (usize, usize, usize) {
    let mine: HashSet<u64> = paid.iter().map(|p| p.order_id).collect();
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    let mut mismatches = 0;
    for a in arrivals {
        let Some(order) = a.order_id.filter(|o| mine.contains(o)) else {
            continue;
        };
        *per_key.entry(&a.key).or_default() += 1;
        if a.key != idempotency_key(project, order, &a.notification_type) {
            mismatches += 1;
        }
    }
    let missing = paid
        .iter()
        .filter(|p| {
            !per_key.contains_key(idempotency_key(project, p.order_id, "order_paid").as_str())
        })
        .count();
    let duplicates = per_key.values().map(|n| n - 1).sum();
    (missing, duplicates, mismatches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, owner: &str, version: i64) -> Message {
        (id.to_owned(), owner.to_owned(), version)
    }

    #[test]
    fn a_stream_is_held_to_its_log_once_each_in_version_order() {
        let log: HashSet<String> = ["a", "b", "c", "d"].map(str::to_owned).into();
        let messages = [
            m("a", "cart1", 1),
            m("c", "cart2", 1),
            m("b", "cart1", 2),
            m("b", "cart1", 2),
            m("x", "cart3", 1),
        ];
        let check = compare(&log, &messages);
        assert_eq!(
            (
                check.missing,
                check.duplicated,
                check.extra,
                check.out_of_order
            ),
            (1, 1, 1, 0),
            "{check:?}"
        );
        let swapped = [m("b", "cart1", 2), m("a", "cart1", 1)];
        let check = compare(&["a", "b"].map(str::to_owned).into(), &swapped);
        assert_eq!(check.out_of_order, 1);
        assert!(!check.ok());
    }

    #[test]
    fn webhooks_missing_duplicated_and_under_a_foreign_key() {
        let arrival = |key: &str, order: u64| Arrival {
            key: key.to_owned(),
            notification_type: "order_paid".to_owned(),
            order_id: Some(order),
            at: 0.0,
        };
        let paid = [1, 2, 3].map(|order_id| Paid {
            order_id,
            replied_at: 0.0,
        });
        let arrivals = [
            arrival("7:1:order_paid", 1),
            arrival("7:1:order_paid", 1),
            arrival("7:9:order_paid", 2),
            arrival("7:4:order_paid", 4),
        ];
        // Order 2 arrived under order 9's key: a mismatch, and order 2 counts as missing.
        assert_eq!(webhooks(7, &paid, &arrivals), (2, 1, 1));
    }
}
