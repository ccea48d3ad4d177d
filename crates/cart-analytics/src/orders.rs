//! The fold of order events (`CART_ORDERS`): what an analyst asks about checkouts,
//! payments, refunds and revenue. No IO, no clock.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cart_proto::order::OrderEventEnvelope;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::report::{Outcome, UnknownEvent};

/// Everything learnt from the order events folded so far. Build with `default()`, feed
/// with [`OrderReport::apply`], read with [`OrderReport::summary`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderReport {
    /// Per `(project, order)`: the last version applied and the status it left.
    orders: BTreeMap<(u64, u64), (i64, String)>,
    events_applied: u64,
    duplicates_ignored: u64,
    version_gaps: u64,
    counts: Counts,
    /// Per currency: paid, refunded.
    revenue: BTreeMap<String, (Decimal, Decimal)>,
    unknown: Vec<UnknownEvent>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// `OrderCreated`: orders checked out, free ones included.
    pub checkouts: u64,
    /// Of those, free orders (done at once, never paid).
    pub free_checkouts: u64,
    /// `OrderPaid`.
    pub payments: u64,
    /// `OrderDone`: paid orders whose fulfilment webhook was delivered, and free orders.
    pub done: u64,
    /// `OrderCanceled`: refunds of paid orders.
    pub refunds: u64,
    /// `OrderExpired`: unpaid orders a newer one of the same user expired.
    pub expired: u64,
}

impl OrderReport {
    /// Folds one envelope. Per order, only a version above the last one seen counts;
    /// anything else is a duplicate (JetStream keeps message ids for 2 minutes only).
    pub fn apply(&mut self, envelope: &OrderEventEnvelope) -> Outcome {
        let key = (envelope.project_id, envelope.order_id);
        let last = self.orders.get(&key).map_or(0, |(v, _)| *v);
        if envelope.version <= last {
            self.duplicates_ignored += 1;
            return Outcome::Duplicate;
        }
        if envelope.version != last + 1 {
            // Events before the stream's retention, or lost: the figures are incomplete.
            self.version_gaps += 1;
        }
        self.orders
            .insert(key, (envelope.version, envelope.status.clone()));
        let c = &mut self.counts;
        match envelope.event_type.as_str() {
            "OrderCreated" => {
                c.checkouts += 1;
                c.free_checkouts += u64::from(envelope.order.is_free);
            }
            "OrderDone" => c.done += 1,
            "OrderExpired" => c.expired += 1,
            // A payment is the order's total exactly, and a refund gives it all back.
            "OrderPaid" | "OrderCanceled" => match total(envelope) {
                Ok((currency, amount)) => {
                    let paid = envelope.event_type == "OrderPaid";
                    let money = self.revenue.entry(currency).or_default();
                    if paid {
                        c.payments += 1;
                        money.0 += amount;
                    } else {
                        c.refunds += 1;
                        money.1 += amount;
                    }
                }
                Err(reason) => {
                    self.unknown.push(unknown_event(envelope, reason));
                    return Outcome::Unknown;
                }
            },
            other => {
                let reason = format!("no order event this reader knows ({other:?})");
                self.unknown.push(unknown_event(envelope, reason));
                return Outcome::Unknown;
            }
        }
        self.events_applied += 1;
        Outcome::Applied
    }

    /// Records a message whose body is not an order envelope.
    pub fn apply_unreadable(&mut self, subject: &str, reason: &str) {
        self.unknown.push(UnknownEvent {
            stream_id: subject.to_owned(),
            version: 0,
            event_type: String::new(),
            position: String::new(),
            reason: format!("unreadable body: {reason}"),
        });
    }

    /// The figures.
    pub fn summary(&self) -> OrderSummary {
        let mut status_now: BTreeMap<String, usize> = BTreeMap::new();
        for (_, status) in self.orders.values() {
            *status_now.entry(status.clone()).or_default() += 1;
        }
        OrderSummary {
            orders_seen: self.orders.len(),
            events_applied: self.events_applied,
            duplicates_ignored: self.duplicates_ignored,
            version_gaps: self.version_gaps,
            unknown_events: self.unknown.len(),
            counts: self.counts,
            status_now,
            revenue: self
                .revenue
                .iter()
                .map(|(currency, (paid, refunded))| {
                    let revenue = Revenue {
                        paid: paid.to_string(),
                        refunded: refunded.to_string(),
                        net: (paid - refunded).to_string(),
                    };
                    (currency.clone(), revenue)
                })
                .collect(),
            unknown: self.unknown.clone(),
        }
    }
}

/// The order's total: its currency and exact amount.
fn total(envelope: &OrderEventEnvelope) -> Result<(String, Decimal), String> {
    let price = envelope
        .order
        .content
        .price
        .as_ref()
        .ok_or_else(|| "the order has no total".to_owned())?;
    let amount = Decimal::from_str(&price.amount)
        .map_err(|e| format!("total {:?} is not a decimal: {e}", price.amount))?;
    Ok((price.currency.clone(), amount))
}

fn unknown_event(envelope: &OrderEventEnvelope, reason: String) -> UnknownEvent {
    UnknownEvent {
        stream_id: format!("order {}/{}", envelope.project_id, envelope.order_id),
        version: envelope.version,
        event_type: envelope.event_type.clone(),
        position: envelope.position.clone(),
        reason,
    }
}

/// The order figures; `Display` renders them as rows, serde as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderSummary {
    pub orders_seen: usize,
    pub events_applied: u64,
    pub duplicates_ignored: u64,
    /// Versions that skipped ahead: earlier events missing from the stream.
    pub version_gaps: u64,
    pub unknown_events: usize,
    /// Events by kind.
    #[serde(flatten)]
    pub counts: Counts,
    /// Orders by the status their last event left them in.
    pub status_now: BTreeMap<String, usize>,
    /// Per currency, exact decimal strings.
    pub revenue: BTreeMap<String, Revenue>,
    pub unknown: Vec<UnknownEvent>,
}

/// Money of one currency, as exact decimal strings (never floats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revenue {
    /// The totals of the payments.
    pub paid: String,
    /// The totals of the refunded orders.
    pub refunded: String,
    /// `paid - refunded`.
    pub net: String,
}

impl fmt::Display for OrderSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        let statuses = self
            .status_now
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = [
            ("orders seen", self.orders_seen.to_string()),
            ("order events applied", self.events_applied.to_string()),
            ("order duplicates", self.duplicates_ignored.to_string()),
            ("unknown order events", self.unknown_events.to_string()),
            ("order version gaps", self.version_gaps.to_string()),
            (
                "checkouts",
                format!("{} ({} free)", c.checkouts, c.free_checkouts),
            ),
            ("payments", c.payments.to_string()),
            ("done", c.done.to_string()),
            ("refunds", c.refunds.to_string()),
            ("expired", c.expired.to_string()),
            (
                "orders now",
                if statuses.is_empty() {
                    "-".to_owned()
                } else {
                    statuses
                },
            ),
        ];
        for (label, value) in rows {
            writeln!(f, "{label:<22} {value}")?;
        }
        for (currency, r) in &self.revenue {
            writeln!(
                f,
                "{:<22} paid {}, refunded {}, net {}",
                format!("revenue {currency}"),
                r.paid,
                r.refunded,
                r.net
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use cart_proto::order::{OrderContent, OrderView, PriceView};

    use super::*;

    fn envelope(order_id: u64, version: i64, event_type: &str, amount: &str) -> OrderEventEnvelope {
        let status = match event_type {
            "OrderCreated" => "new",
            "OrderPaid" => "paid",
            "OrderDone" => "done",
            "OrderCanceled" => "canceled",
            "OrderExpired" => "expired",
            _ => "unknown",
        };
        OrderEventEnvelope {
            event_id: format!("{order_id}-{version}"),
            position: format!("1:{order_id}{version}"),
            project_id: 7,
            order_id,
            user_id: "ann".to_owned(),
            version,
            event_type: event_type.to_owned(),
            status: status.to_owned(),
            recorded_at: "2026-12-04T17:40:00.123456Z".to_owned(),
            order: OrderView {
                order_id,
                project_id: 7,
                status: status.to_owned(),
                user_id: "ann".to_owned(),
                cart_id: None,
                date_created: "2026-12-04T17:39:12Z".to_owned(),
                mode: None,
                invoice_id: None,
                is_free: amount == "0.00",
                promo_code: None,
                expired_by: None,
                cancel_reason: None,
                custom_parameters: None,
                content: OrderContent {
                    price: Some(PriceView {
                        amount: amount.to_owned(),
                        amount_without_discount: amount.to_owned(),
                        currency: if order_id == 4 { "EUR" } else { "USD" }.to_owned(),
                    }),
                    is_free: amount == "0.00",
                    items: vec![],
                    promotions: vec![],
                },
            },
        }
    }

    #[test]
    fn orders_are_counted_and_revenue_is_exact_per_currency() {
        let mut report = OrderReport::default();
        let events = [
            envelope(1, 1, "OrderCreated", "21.88"),
            envelope(1, 2, "OrderPaid", "21.88"),
            envelope(1, 3, "OrderDone", "21.88"),
            envelope(1, 4, "OrderCanceled", "21.88"),
            envelope(2, 1, "OrderCreated", "0.10"),
            envelope(2, 2, "OrderPaid", "0.10"),
            envelope(3, 1, "OrderCreated", "0.20"),
            envelope(3, 2, "OrderExpired", "0.20"),
            envelope(4, 1, "OrderCreated", "5.99"),
            envelope(4, 2, "OrderPaid", "5.99"),
            envelope(5, 1, "OrderCreated", "0.00"),
            envelope(5, 2, "OrderDone", "0.00"),
        ];
        for e in &events {
            assert_eq!(report.apply(e), Outcome::Applied, "{e:?}");
        }
        // A late copy of a payment counts once.
        assert_eq!(report.apply(&events[1]), Outcome::Duplicate);
        assert_eq!(
            report.apply(&envelope(6, 1, "OrderRefunded", "1")),
            Outcome::Unknown
        );
        let s = report.summary();
        assert_eq!(s.orders_seen, 6);
        assert_eq!(
            s.counts,
            Counts {
                checkouts: 5,
                free_checkouts: 1,
                payments: 3,
                done: 2,
                refunds: 1,
                expired: 1,
            }
        );
        assert_eq!((s.duplicates_ignored, s.unknown_events), (1, 1));
        // 21.88 + 0.10 in decimal, not 21.979999... in floats.
        let usd = &s.revenue["USD"];
        assert_eq!(
            (usd.paid.as_str(), usd.refunded.as_str(), usd.net.as_str()),
            ("21.98", "21.88", "0.10")
        );
        assert_eq!(s.revenue["EUR"].net, "5.99");
        assert_eq!(s.status_now["canceled"], 1);
        assert_eq!(s.status_now["done"], 1);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["payments"], 3);
        assert_eq!(json["revenue"]["USD"]["paid"], "21.98");
        let text = s.to_string();
        assert!(text.contains("revenue USD"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("checkouts ") && l.ends_with(" 5 (1 free)")),
            "{text}"
        );
    }
}
