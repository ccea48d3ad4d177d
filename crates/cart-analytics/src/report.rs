//! The fold: envelopes in, a [`Report`] out; no IO, no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use cart_proto::v1::{event_envelope::Event, EventEnvelope};
use serde::Serialize;

use crate::time::Timestamp;

/// The only clear reason that means the shopper emptied the cart.
pub const SHOPPER: &str = "shopper";

/// What [`Report::apply`] did with an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Its version was not above the last one applied for its cart.
    Duplicate,
    /// New version, but no event this reader understands; recorded in [`Report::unknown`].
    Unknown,
}

/// An event the report could not fold, kept so that it is reported, never lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownEvent {
    pub stream_id: String,
    pub version: i64,
    pub event_type: String,
    pub position: String,
    pub reason: String,
}

/// How a cart that held items became empty.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Emptied {
    /// Cleared with reason "shopper", or its last line removed.
    Shopper,
    /// Cleared for another reason (a later schema's, e.g. a paid order).
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Cart {
    project_id: i64,
    version: i64,
    last_at: Option<Timestamp>,
    lines: BTreeMap<String, u32>,
    ever_added: BTreeSet<String>,
    emptied: Option<Emptied>,
}

/// Everything learnt from the events folded so far. Build with `default()`, feed with
/// [`Report::apply`], read with [`Report::summary`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    carts: BTreeMap<String, Cart>,
    events_applied: u64,
    duplicates_ignored: u64,
    version_gaps: u64,
    unknown: Vec<UnknownEvent>,
    newest: Option<Timestamp>,
}

impl Report {
    /// Folds one envelope. Per cart, only a version above the last one seen counts:
    /// anything else is a duplicate (JetStream keeps message ids for 2 minutes only) or
    /// arrived late, and is ignored.
    pub fn apply(&mut self, envelope: &EventEnvelope) -> Outcome {
        let Some(cart) = self.admit(envelope) else {
            return Outcome::Duplicate;
        };
        let Some(event) = &envelope.event else {
            let reason = format!("no event this reader knows ({:?})", envelope.event_type);
            self.unknown.push(unknown_event(envelope, reason));
            return Outcome::Unknown;
        };
        match event {
            // Promo codes do not change the lines this report follows.
            Event::CartOpened(_) | Event::PromoCodeRedeemed(_) | Event::PromoCodeRemoved(_) => {}
            Event::ItemQuantitySet(set) if set.quantity == 0 => {
                // The contract promises > 0; a line of 0 would count as held.
                let reason = format!("quantity 0 for SKU {:?}", set.sku);
                self.unknown.push(unknown_event(envelope, reason));
                return Outcome::Unknown;
            }
            Event::ItemQuantitySet(set) => {
                cart.lines.insert(set.sku.clone(), set.quantity);
                cart.ever_added.insert(set.sku.clone());
                cart.emptied = None;
            }
            Event::ItemRemoved(removed) => {
                if cart.lines.remove(&removed.sku).is_some() && cart.lines.is_empty() {
                    cart.emptied = Some(Emptied::Shopper);
                }
            }
            Event::CartCleared(cleared) => {
                // Clearing an empty cart changes nothing, so keeps how it became empty.
                if !cart.lines.is_empty() {
                    cart.lines.clear();
                    cart.emptied = Some(if cleared.reason == SHOPPER {
                        Emptied::Shopper
                    } else {
                        Emptied::Other(cleared.reason.clone())
                    });
                }
            }
        }
        self.events_applied += 1;
        Outcome::Applied
    }

    /// Records a message whose body could not be read as an envelope; `headers` holds
    /// what its headers say (stream id, version, type, position) and no event. Goes
    /// through the same duplicate check when it names its cart and version.
    pub fn apply_unreadable(&mut self, headers: &EventEnvelope, reason: &str) -> Outcome {
        let reason = format!("unreadable body: {reason}");
        if headers.stream_id.is_empty() || headers.version <= 0 {
            self.unknown.push(unknown_event(headers, reason));
            return Outcome::Unknown;
        }
        if self.admit(headers).is_none() {
            return Outcome::Duplicate;
        }
        self.unknown.push(unknown_event(headers, reason));
        Outcome::Unknown
    }

    /// The envelope's cart, with version and time moved on, or None for a duplicate.
    fn admit(&mut self, envelope: &EventEnvelope) -> Option<&mut Cart> {
        let last = self.carts.get(&envelope.stream_id).map_or(0, |c| c.version);
        if envelope.version <= last {
            self.duplicates_ignored += 1;
            return None;
        }
        if envelope.version != last + 1 {
            // Events before the stream's retention, or lost: the report is incomplete.
            self.version_gaps += 1;
        }
        let at = Timestamp::parse(&envelope.recorded_at).ok();
        if let Some(at) = &at {
            if self.newest.as_ref().is_none_or(|newest| at > newest) {
                self.newest = Some(at.clone());
            }
        }
        let cart = self
            .carts
            .entry(envelope.stream_id.clone())
            .or_insert_with(|| Cart {
                project_id: envelope.project_id,
                version: 0,
                last_at: None,
                lines: BTreeMap::new(),
                ever_added: BTreeSet::new(),
                emptied: None,
            });
        cart.version = envelope.version;
        if at.is_some() {
            cart.last_at = at;
        }
        Some(cart)
    }

    /// Events that could not be folded, in the order they came.
    pub fn unknown(&self) -> &[UnknownEvent] {
        &self.unknown
    }

    /// The time of the newest event folded.
    pub fn newest(&self) -> Option<&Timestamp> {
        self.newest.as_ref()
    }

    /// The figures, with open carts idle for longer than `idle` before `now` (default:
    /// the newest event's time) counted as abandoned.
    pub fn summary(&self, now: Option<&Timestamp>, idle: Duration) -> Summary {
        let reference = now.or(self.newest.as_ref());
        let idle_micros = i64::try_from(idle.as_micros()).unwrap_or(i64::MAX);
        let mut summary = Summary {
            reference_time: reference.map(|t| t.as_str().to_owned()),
            idle_seconds: idle.as_secs(),
            carts_seen: self.carts.len(),
            events_applied: self.events_applied,
            duplicates_ignored: self.duplicates_ignored,
            unknown_events: self.unknown.len(),
            version_gaps: self.version_gaps,
            open_carts: 0,
            abandoned_carts: 0,
            empty_carts: 0,
            emptied_by_shopper: 0,
            emptied_other: BTreeMap::new(),
            skus: Vec::new(),
            unknown: self.unknown.clone(),
            orders: None,
        };
        let mut skus: BTreeMap<(i64, &str), SkuSummary> = BTreeMap::new();
        for cart in self.carts.values() {
            if cart.lines.is_empty() {
                summary.empty_carts += 1;
                match &cart.emptied {
                    Some(Emptied::Shopper) => summary.emptied_by_shopper += 1,
                    Some(Emptied::Other(reason)) => {
                        *summary.emptied_other.entry(reason.clone()).or_default() += 1;
                    }
                    None => {}
                }
            } else {
                summary.open_carts += 1;
                let idle_for = reference
                    .zip(cart.last_at.as_ref())
                    .map(|(reference, last)| reference.micros().saturating_sub(last.micros()));
                if idle_for.is_some_and(|idle_for| idle_for > idle_micros) {
                    summary.abandoned_carts += 1;
                }
            }
            for sku in &cart.ever_added {
                let row = skus
                    .entry((cart.project_id, sku))
                    .or_insert_with(|| SkuSummary::new(cart.project_id, sku));
                row.carts_added += 1;
                if let Some(&quantity) = cart.lines.get(sku) {
                    row.carts_holding += 1;
                    row.units_held += u64::from(quantity);
                }
            }
        }
        summary.skus = skus
            .into_values()
            .map(|mut row| {
                // A row exists only once some cart added the SKU, so never 0 / 0.
                row.kept_rate = row.carts_holding as f64 / row.carts_added as f64;
                row
            })
            .collect();
        summary
    }
}

fn unknown_event(envelope: &EventEnvelope, reason: String) -> UnknownEvent {
    UnknownEvent {
        stream_id: envelope.stream_id.clone(),
        version: envelope.version,
        event_type: envelope.event_type.clone(),
        position: envelope.position.clone(),
        reason,
    }
}

/// The report's figures; `Display` renders the human-readable table, serde the JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// `--now`, or the time of the newest event; None when neither exists.
    pub reference_time: Option<String>,
    pub idle_seconds: u64,
    pub carts_seen: usize,
    pub events_applied: u64,
    pub duplicates_ignored: u64,
    pub unknown_events: usize,
    /// Versions that skipped ahead: earlier events missing from the stream.
    pub version_gaps: u64,
    /// Carts holding at least one line now.
    pub open_carts: usize,
    /// Open carts without any event for longer than `idle_seconds` before the reference.
    pub abandoned_carts: usize,
    /// Carts holding nothing now (never filled, or emptied).
    pub empty_carts: usize,
    /// Empty carts that the shopper emptied (clear with reason "shopper" or removal of
    /// the last line).
    pub emptied_by_shopper: usize,
    /// Empty carts cleared for another reason, by reason.
    pub emptied_other: BTreeMap<String, usize>,
    /// By project, then SKU.
    pub skus: Vec<SkuSummary>,
    pub unknown: Vec<UnknownEvent>,
    /// The order figures, when the orders were replayed too (their unknown events are
    /// listed there and counted in `unknown_events`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<crate::orders::OrderSummary>,
}

/// One SKU of one project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkuSummary {
    pub project_id: i64,
    pub sku: String,
    /// Carts whose history sets a quantity of this SKU at least once.
    pub carts_added: usize,
    /// Of those, carts holding it now.
    pub carts_holding: usize,
    /// Units in the carts holding it now.
    pub units_held: u64,
    /// `carts_holding / carts_added`.
    pub kept_rate: f64,
}

impl SkuSummary {
    fn new(project_id: i64, sku: &str) -> Self {
        Self {
            project_id,
            sku: sku.to_owned(),
            carts_added: 0,
            carts_holding: 0,
            units_held: 0,
            kept_rate: 0.0,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reference = self.reference_time.as_deref().unwrap_or("-");
        let rows: [(&str, String); 10] = [
            ("events applied", self.events_applied.to_string()),
            ("duplicates ignored", self.duplicates_ignored.to_string()),
            ("unknown events", self.unknown_events.to_string()),
            ("version gaps", self.version_gaps.to_string()),
            ("carts seen", self.carts_seen.to_string()),
            ("open carts", format!("{} (holding items)", self.open_carts)),
            (
                "abandoned carts",
                format!(
                    "{} (open, idle > {} s before {reference})",
                    self.abandoned_carts, self.idle_seconds
                ),
            ),
            ("empty carts", self.empty_carts.to_string()),
            ("emptied by shopper", self.emptied_by_shopper.to_string()),
            (
                "emptied, other reason",
                if self.emptied_other.is_empty() {
                    "0".to_owned()
                } else {
                    self.emptied_other
                        .iter()
                        .map(|(reason, n)| format!("{n} ({reason:?})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
        ];
        for (label, value) in rows {
            writeln!(f, "{label:<22} {value}")?;
        }

        if let Some(orders) = &self.orders {
            write!(f, "{orders}")?;
        }
        writeln!(f)?;
        if self.skus.is_empty() {
            return writeln!(f, "no SKU was ever added");
        }
        let header = ["project", "sku", "carts added", "holding", "units", "kept"];
        let table: Vec<[String; 6]> = self
            .skus
            .iter()
            .map(|row| {
                [
                    row.project_id.to_string(),
                    row.sku.clone(),
                    row.carts_added.to_string(),
                    row.carts_holding.to_string(),
                    row.units_held.to_string(),
                    format!("{:.1}%", row.kept_rate * 100.0),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &table {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 6]| {
            // Text columns left, numbers right.
            let [project, sku, added, holding, units, kept] = cells;
            let [w0, w1, w2, w3, w4, w5] = widths;
            writeln!(
                f,
                "{project:<w0$}  {sku:<w1$}  {added:>w2$}  {holding:>w3$}  {units:>w4$}  {kept:>w5$}"
            )
        };
        line(f, header)?;
        let mut previous = None;
        for (row, cells) in self.skus.iter().zip(&table) {
            // The project is printed once per group.
            let project = if previous == Some(row.project_id) {
                ""
            } else {
                cells[0].as_str()
            };
            previous = Some(row.project_id);
            line(
                f,
                [
                    project, &cells[1], &cells[2], &cells[3], &cells[4], &cells[5],
                ],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
