//! Where both relays stand: the cart relay's lag as cartd's `feed.status` reports it, and
//! the order relay's, which `feed.status` does not report yet (docs/events.md), counted
//! from the database the same way (events after the relay's checkpoint, capped at
//! 100,000, and the age of the oldest).

use std::time::Duration;

use async_nats::Client;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Row};
use tokio::sync::oneshot;

use crate::orders::request;

/// Events behind and the age of the oldest of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Lag {
    pub events: u64,
    pub seconds: f64,
}

impl Lag {
    fn max(self, other: Lag) -> Lag {
        Lag {
            events: self.events.max(other.events),
            seconds: self.seconds.max(other.seconds),
        }
    }
}

/// Both relays at one moment; the whole `feed.status` reply beside, so that figures it
/// gains later (the order relay's) are kept in the JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Relays {
    pub cart: Option<Lag>,
    pub order: Option<Lag>,
    pub feed_status: Value,
}

/// Where to ask.
#[derive(Clone)]
pub struct Probe {
    pub client: Client,
    pub prefix: String,
    pub pool: PgPool,
    /// The order relay's checkpoint, `relay:<orders stream>`.
    pub order_checkpoint: String,
}

impl Probe {
    /// A NATS connection (`name` in the server's monitoring) and a small lazy pool: the
    /// service creates its database, possibly after this process started.
    pub async fn connect(
        nats_url: &str,
        database_url: &str,
        prefix: &str,
        orders_stream: &str,
        name: &str,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let client = crate::runner::connect(nats_url, name).await?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy(database_url)
            .with_context(|| format!("parse {database_url}"))?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            pool,
            order_checkpoint: format!("relay:{orders_stream}"),
        })
    }

    pub async fn relays(&self) -> Relays {
        let feed_status = request(
            &self.client,
            format!("{}.feed.status", self.prefix),
            serde_json::json!({}),
        )
        .await
        .unwrap_or_else(|e| Value::String(format!("feed.status failed: {e:#}")));
        let relay = &feed_status["relay"];
        let cart = relay["lag_events"].as_u64().map(|events| Lag {
            events,
            seconds: relay["lag_seconds"].as_f64().unwrap_or_default(),
        });
        let order = match self.order_lag().await {
            Ok(lag) => Some(lag),
            Err(e) => {
                eprintln!("cart-bench fulfilment: order relay lag: {e:#}");
                None
            }
        };
        Relays {
            cart,
            order,
            feed_status,
        }
    }

    async fn order_lag(&self) -> anyhow::Result<Lag> {
        // Not prepared: each call is planned with the table as it is now.
        let checkpoint = sqlx::query(
            "select tx_id::text as tx_id, global_position from feed_checkpoints where name = $1",
        )
        .bind(&self.order_checkpoint)
        .persistent(false)
        .fetch_optional(&self.pool)
        .await?;
        let (tx_id, position) = match checkpoint {
            Some(row) => (
                row.try_get::<String, _>("tx_id")?,
                row.try_get("global_position")?,
            ),
            None => ("0".to_owned(), 0i64),
        };
        let row = sqlx::query(
            "select count(*) as n, \
                    coalesce(extract(epoch from now() - min(recorded_at))::float8, 0) as age \
             from (select recorded_at from order_events \
                   where (tx_id, global_position) > ($1::text::xid8, $2) \
                   order by tx_id, global_position limit 100000) ahead",
        )
        .bind(tx_id)
        .bind(position)
        .persistent(false)
        .fetch_one(&self.pool)
        .await?;
        Ok(Lag {
            events: u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or_default(),
            seconds: row.try_get("age")?,
        })
    }

    /// Samples both lags once a second until `stop` fires; the largest of each.
    pub async fn max_until(&self, mut stop: oneshot::Receiver<()>) -> (Lag, Lag) {
        let (mut cart, mut order) = (Lag::default(), Lag::default());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = &mut stop => return (cart, order),
                _ = tick.tick() => {
                    let now = self.relays().await;
                    cart = cart.max(now.cart.unwrap_or_default());
                    order = order.max(now.order.unwrap_or_default());
                }
            }
        }
    }
}
