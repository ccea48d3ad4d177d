//! The order log's part of an import: its events written back in the export's order,
//! the user keys a restored sealed field needs, the webhook notifications the source
//! already made, and, before the commit, everything the order store counts from the log
//! (`orders`, `order_units`, `promo_code_redemptions`, `order_promotions`, the order
//! number sequences) rebuilt from the imported events (docs/operations.md, "Logical
//! backup").

use std::collections::{BTreeMap, HashMap};

use cart_domain::{Order, OrderEvent, OrderStatus};
use cart_proto::order as wire;
use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{invalid, line::ImportedOrderEvent};
use crate::orders::sealed::{self, UserKey};
use crate::StoreError;

/// The order log's import state.
#[derive(Default)]
pub(super) struct OrderImport {
    /// Whether the target's order tables were found empty (checked at the first event).
    checked: bool,
    /// The last version and the user of each order stream written.
    streams: HashMap<Uuid, (i64, String)>,
    /// The key made in this import for each user with a field to seal again.
    keys: HashMap<(i64, String), UserKey>,
    pub(super) events: u64,
}

impl OrderImport {
    pub(super) fn orders(&self) -> u64 {
        self.streams.len() as u64
    }

    /// Writes a batch of order events, in the export's order.
    pub(super) async fn add(
        &mut self,
        conn: &mut PgConnection,
        batch: &[ImportedOrderEvent],
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        if !self.checked {
            let present: bool = sqlx::query_scalar(
                "select exists (select 1 from order_events) or exists (select 1 from orders) \
                   or exists (select 1 from user_keys) \
                   or exists (select 1 from webhook_deliveries)",
            )
            .fetch_one(&mut *conn)
            .await?;
            if present {
                return Err(invalid(
                    "the database already holds orders (order events, orders, user keys or \
                     webhook deliveries): import restores into an empty database only",
                ));
            }
            self.checked = true;
        }
        let mut payloads = Vec::with_capacity(batch.len());
        let mut new_keys = Vec::new();
        for e in batch {
            let stream_id = e.stream_id();
            let (last, user) = self
                .streams
                .get(&stream_id)
                .cloned()
                .unwrap_or((0, e.user_id.clone()));
            if e.version != last + 1 {
                return Err(invalid(format!(
                    "event {} is version {} of order {} (project {}), after version {last}: \
                     import needs each order's whole history in order (an unfiltered export \
                     of the order log)",
                    e.event_id, e.version, e.order_id, e.project_id
                )));
            }
            if (e.version == 1) != (e.event_type == "OrderCreated") || user != e.user_id {
                return Err(invalid(format!(
                    "event {} ({} of user {:?}) at version {} of order {} (project {}) of \
                     user {user:?}: an order starts with OrderCreated and keeps its user",
                    e.event_id, e.event_type, e.user_id, e.version, e.order_id, e.project_id
                )));
            }
            self.streams.insert(stream_id, (e.version, user));
            let mut payload = e.payload.clone();
            if let (Some(clear), Some(field)) = (&e.reseal, sealed::personal_field(&e.event_type)) {
                let owner = (e.project_id, e.user_id.clone());
                let key = self.keys.entry(owner).or_insert_with(|| {
                    new_keys.push((e.project_id, e.user_id.clone()));
                    UserKey::generate()
                });
                payload[field] = clear.clone();
                sealed::seal(&e.event_type, &mut payload, key, e.project_id, &e.user_id);
            }
            payloads.push(payload.to_string());
        }
        if !new_keys.is_empty() {
            sqlx::query(
                "insert into user_keys (project_id, user_id, key) \
                 select * from unnest($1::int8[], $2::text[], $3::bytea[])",
            )
            .bind(new_keys.iter().map(|k| k.0).collect::<Vec<_>>())
            .bind(new_keys.iter().map(|k| k.1.clone()).collect::<Vec<_>>())
            .bind(
                new_keys
                    .iter()
                    .map(|k| self.keys.get(k).map(|key| key.as_bytes().to_vec()))
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query(
            "insert into order_events (stream_id, version, event_id, project_id, order_id, \
               user_id, event_type, schema_version, payload, metadata, recorded_at) \
             select s, v, id, pr, o, u, t, sv, p::jsonb, m::jsonb, r::timestamptz \
             from unnest($1::uuid[], $2::int8[], $3::uuid[], $4::int8[], $5::int8[], \
               $6::text[], $7::text[], $8::int2[], $9::text[], $10::text[], $11::text[]) \
               with ordinality as e(s, v, id, pr, o, u, t, sv, p, m, r, n) \
             order by n",
        )
        .bind(batch.iter().map(|e| e.stream_id()).collect::<Vec<_>>())
        .bind(batch.iter().map(|e| e.version).collect::<Vec<_>>())
        .bind(batch.iter().map(|e| e.event_id).collect::<Vec<_>>())
        .bind(batch.iter().map(|e| e.project_id).collect::<Vec<_>>())
        .bind(batch.iter().map(|e| e.order_id).collect::<Vec<_>>())
        .bind(batch.iter().map(|e| e.user_id.clone()).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|e| e.event_type.clone())
                .collect::<Vec<_>>(),
        )
        .bind(batch.iter().map(|e| e.schema_version).collect::<Vec<_>>())
        .bind(&payloads)
        .bind(
            batch
                .iter()
                .map(|e| e.metadata.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|e| e.recorded_at.clone())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await
        .map_err(super::invalid_value)?;
        self.record_notifications(conn, batch).await?;
        self.events += batch.len() as u64;
        Ok(())
    }

    /// Records every notification the batch's events caused as delivered, so that
    /// neither the webhook worker's intake (from the relay's republished messages) nor
    /// its reconciler (from the log) sends it again: the source sent it, and an
    /// `order_paid` may have been granted. `finish` then takes back the `order_paid` of
    /// orders still `paid`, the grants the log shows are still owed.
    async fn record_notifications(
        &self,
        conn: &mut PgConnection,
        batch: &[ImportedOrderEvent],
    ) -> Result<(), StoreError> {
        let notified: Vec<_> = batch
            .iter()
            .filter_map(|e| e.notification.as_ref().map(|n| (e, n)))
            .collect();
        if notified.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "insert into webhook_deliveries (event_id, project_id, order_id, version, \
               notification_type, envelope, status, next_attempt_at, created_at, finished_at, \
               followed_up_at) \
             select id, p, o, v, t, env::jsonb, 'delivered', r::timestamptz, r::timestamptz, \
               r::timestamptz, r::timestamptz \
             from unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::text[], \
               $6::text[], $7::text[]) as d(id, p, o, v, t, env, r) \
             on conflict do nothing",
        )
        .bind(notified.iter().map(|(e, _)| e.event_id).collect::<Vec<_>>())
        .bind(
            notified
                .iter()
                .map(|(e, _)| e.project_id)
                .collect::<Vec<_>>(),
        )
        .bind(notified.iter().map(|(e, _)| e.order_id).collect::<Vec<_>>())
        .bind(notified.iter().map(|(e, _)| e.version).collect::<Vec<_>>())
        .bind(notified.iter().map(|(_, n)| n.0).collect::<Vec<_>>())
        .bind(
            notified
                .iter()
                .map(|(_, n)| n.1.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            notified
                .iter()
                .map(|(e, _)| e.recorded_at.clone())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await
        .map_err(super::invalid_value)?;
        Ok(())
    }

    /// Rebuilds what the order store counts from the imported log, takes back the owed
    /// grants' notifications, and moves each project's order number sequence past its
    /// last order. Run once, after the last event and before the commit.
    pub(super) async fn finish(&mut self, conn: &mut PgConnection) -> Result<(), StoreError> {
        if self.events == 0 {
            return Ok(());
        }
        rebuild(&mut *conn).await?;
        sqlx::query(
            "delete from webhook_deliveries w using orders o \
             where o.project_id = w.project_id and o.order_id = w.order_id \
               and o.status = 'paid' and w.notification_type = 'order_paid'",
        )
        .execute(&mut *conn)
        .await?;
        let last: Vec<(i64, i64)> =
            sqlx::query_as("select project_id, max(order_id) from orders group by project_id")
                .fetch_all(&mut *conn)
                .await?;
        for (project, order_id) in last {
            // The name as the order store makes it (`orders::checkout`); a project id is
            // a number, so it needs no quoting.
            let sequence = format!("order_ids_{project}");
            sqlx::query(&format!("create sequence if not exists {sequence}"))
                .execute(&mut *conn)
                .await?;
            sqlx::query("select setval($1::regclass, $2)")
                .bind(&sequence)
                .bind(order_id)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

const PAGE: i64 = 20_000;
const FLUSH: usize = 2_000;

/// One order folded from its stream, with the times the rows need.
struct Folded {
    stream_id: Uuid,
    order: Order,
    version: i64,
    /// The last event's `recorded_at` (RFC 3339 text).
    updated_at: String,
    /// When it was bought: its `OrderPaid`, or a free order's `OrderDone`.
    bought_at: Option<String>,
}

/// Folds every imported order stream, read in (stream, version) order, into the order
/// store's rows, written in batches.
async fn rebuild(conn: &mut PgConnection) -> Result<(), StoreError> {
    let mut rows = Rows::default();
    let mut current: Option<Folded> = None;
    let mut after = (Uuid::nil(), 0i64);
    loop {
        let page = sqlx::query(
            "select stream_id, version, order_id, event_type, schema_version, payload, \
               project_id, user_id, \
               to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') as at \
             from order_events where (stream_id, version) > ($1, $2) \
             order by stream_id, version limit $3",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = page.last() else { break };
        after = (last.try_get("stream_id")?, last.try_get("version")?);
        for row in &page {
            let stream_id: Uuid = row.try_get("stream_id")?;
            let version: i64 = row.try_get("version")?;
            let at: String = row.try_get("at")?;
            let event_type: &str = row.try_get("event_type")?;
            let mut payload: Value = row.try_get("payload")?;
            // The rows hold no personal data: the fold needs no key.
            let (project, user): (i64, &str) =
                (row.try_get("project_id")?, row.try_get("user_id")?);
            sealed::open(event_type, &mut payload, None, project, user);
            let event = wire::decode(event_type, row.try_get("schema_version")?, payload)
                .map_err(|e| invalid(format!("order stream {stream_id} version {version}: {e}")))?;
            let mut folded = match current.take() {
                Some(f) if f.stream_id == stream_id => f,
                other => {
                    if let Some(done) = other {
                        rows.push(done);
                    }
                    Folded {
                        stream_id,
                        order: Order::default(),
                        version: 0,
                        updated_at: at.clone(),
                        bought_at: None,
                    }
                }
            };
            let free_done =
                matches!(event, OrderEvent::OrderDone) && folded.order.payment().is_none();
            if matches!(event, OrderEvent::OrderPaid { .. }) || free_done {
                folded.bought_at = Some(at.clone());
            }
            folded.order = cart_domain::apply_order(folded.order, &event);
            folded.version = version;
            folded.updated_at = at;
            current = Some(folded);
        }
        if rows.len() >= FLUSH {
            rows.flush(&mut *conn).await?;
        }
    }
    if let Some(done) = current {
        rows.push(done);
    }
    rows.flush(conn).await
}

/// The rows of a batch of folded orders, column by column.
#[derive(Default)]
struct Rows {
    orders: Vec<Folded>,
}

impl Rows {
    fn len(&self) -> usize {
        self.orders.len()
    }

    fn push(&mut self, folded: Folded) {
        self.orders.push(folded);
    }

    async fn flush(&mut self, conn: &mut PgConnection) -> Result<(), StoreError> {
        if self.orders.is_empty() {
            return Ok(());
        }
        let mut orders = OrderColumns::default();
        let mut units = UnitColumns::default();
        let mut promotions = UnitColumns::default();
        for f in self.orders.drain(..) {
            let Some(d) = f.order.details() else { continue };
            let status = f.order.status().unwrap_or(OrderStatus::New).name();
            let (project, order_id) = (
                i64::try_from(d.project.get()).unwrap_or(i64::MAX),
                i64::try_from(d.order_id).unwrap_or(i64::MAX),
            );
            orders.project.push(project);
            orders.order_id.push(order_id);
            orders.stream_id.push(f.stream_id);
            orders.user.push(d.user.as_str().to_owned());
            orders
                .cart_id
                .push(d.cart_id.as_ref().map(|c| c.as_str().to_owned()));
            orders.token.push(d.payment_token.clone());
            orders.status.push(status);
            orders.promo_code.push(d.snapshot.promo_code.clone());
            orders.version.push(f.version);
            orders.created_at.push(d.created_at.unix());
            orders.updated_at.push(f.updated_at.clone());
            orders.bought_at.push(f.bought_at.clone());
            let mut bought: BTreeMap<&str, i64> = BTreeMap::new();
            for line in d.snapshot.bought() {
                *bought.entry(line.sku.as_str()).or_default() += i64::from(line.quantity);
            }
            for (sku, quantity) in bought {
                units.push(project, order_id, sku.to_owned(), quantity);
            }
            for id in d.snapshot.promotion_ids() {
                promotions.push(
                    project,
                    order_id,
                    String::new(),
                    i64::try_from(id).unwrap_or(i64::MAX),
                );
            }
        }
        // Units count from the order's creation, and as bought from its payment (to the
        // second, as the payment's clock is stored); a promo code is redeemed, and a
        // promotion used, when the order is bought.
        sqlx::query(
            "with o as (select * from unnest($1::int8[], $2::int8[], $3::uuid[], $4::text[], \
                 $5::text[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], \
                 $11::text[], $12::text[]) \
               as o(p, id, s, u, c, tok, st, code, v, created, updated, bought)), \
             ins as (insert into orders (project_id, order_id, stream_id, user_id, cart_id, \
                 payment_token, status, promo_code, version, created_at, updated_at) \
               select p, id, s, u, c, tok, st, code, v, to_timestamp(created), \
                 updated::timestamptz from o) \
             insert into promo_code_redemptions (project_id, order_id, user_id, code, redeemed_at) \
             select p, id, u, code, bought::timestamptz from o \
             where code is not null and bought is not null",
        )
        .bind(&orders.project)
        .bind(&orders.order_id)
        .bind(&orders.stream_id)
        .bind(&orders.user)
        .bind(&orders.cart_id)
        .bind(&orders.token)
        .bind(&orders.status)
        .bind(&orders.promo_code)
        .bind(&orders.version)
        .bind(&orders.created_at)
        .bind(&orders.updated_at)
        .bind(&orders.bought_at)
        .execute(&mut *conn)
        .await?;
        // Units and promotions take the order's columns from `orders`, just written.
        sqlx::query(
            "insert into order_units (project_id, order_id, user_id, sku, quantity, status, \
               created_at, paid_at) \
             select o.project_id, o.order_id, o.user_id, u.sku, u.q, o.status, o.created_at, \
               date_trunc('second', b.bought::timestamptz) \
             from unnest($1::int8[], $2::int8[], $3::text[], $4::int8[]) as u(p, id, sku, q) \
             join orders o on o.project_id = u.p and o.order_id = u.id \
             join unnest($5::int8[], $6::int8[], $7::text[]) as b(p, id, bought) \
               on b.p = u.p and b.id = u.id",
        )
        .bind(&units.project)
        .bind(&units.order_id)
        .bind(&units.text)
        .bind(&units.number)
        .bind(&orders.project)
        .bind(&orders.order_id)
        .bind(&orders.bought_at)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "insert into order_promotions (project_id, order_id, user_id, promotion_id, used_at) \
             select o.project_id, o.order_id, o.user_id, u.promotion, \
               date_trunc('second', b.bought::timestamptz) \
             from unnest($1::int8[], $2::int8[], $3::int8[]) as u(p, id, promotion) \
             join orders o on o.project_id = u.p and o.order_id = u.id \
             join unnest($4::int8[], $5::int8[], $6::text[]) as b(p, id, bought) \
               on b.p = u.p and b.id = u.id",
        )
        .bind(&promotions.project)
        .bind(&promotions.order_id)
        .bind(&promotions.number)
        .bind(&orders.project)
        .bind(&orders.order_id)
        .bind(&orders.bought_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

#[derive(Default)]
struct OrderColumns {
    project: Vec<i64>,
    order_id: Vec<i64>,
    stream_id: Vec<Uuid>,
    user: Vec<String>,
    cart_id: Vec<Option<String>>,
    token: Vec<String>,
    status: Vec<&'static str>,
    promo_code: Vec<Option<String>>,
    version: Vec<i64>,
    created_at: Vec<i64>,
    updated_at: Vec<String>,
    bought_at: Vec<Option<String>>,
}

/// Rows keyed by order with one text and one number column (a unit's SKU and
/// quantity; a promotion's id).
#[derive(Default)]
struct UnitColumns {
    project: Vec<i64>,
    order_id: Vec<i64>,
    text: Vec<String>,
    number: Vec<i64>,
}

impl UnitColumns {
    fn push(&mut self, project: i64, order_id: i64, text: String, number: i64) {
        self.project.push(project);
        self.order_id.push(order_id);
        self.text.push(text);
        self.number.push(number);
    }
}
