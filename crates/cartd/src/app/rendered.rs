//! The cache of rendered gets: the reply bytes of a get of a cart at a version, kept
//! with everything else they depend on, so that a get of an unchanged cart costs the
//! grouped version read (which then sends no lines), the counts pricing needs, a lookup
//! and a copy. A get still reads PostgreSQL every time (another instance may have
//! written the cart): the cache only saves decoding, pricing and rendering, never the
//! read. Bounded by the bytes it holds; the least recently used cart goes first.

use std::sync::{Arc, Mutex};

use cart_domain::{Cart, Catalog, ProjectId, Purchases, Sku, Timestamp};
use cart_proto::request::ViewOptions;
use cart_proto::Encoding;
use uuid::Uuid;

/// Everything a get's reply depends on besides the cart at its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Variant {
    /// The project's catalog version the reply was priced against (None: no catalog).
    pub(super) catalog_version: Option<i64>,
    /// Currency, locale and country.
    pub(super) view: ViewOptions,
    pub(super) encoding: Encoding,
    /// The counts it was priced with (`available`, limits, promotion uses, a code's
    /// redemptions): the very value, not a digest, so that no two differ unseen.
    pub(super) purchases: Purchases,
}

/// A get's reply as rendered.
#[derive(Debug, Clone)]
pub(super) struct Rendered {
    pub(super) version: i64,
    /// The cart at `version`, to count for it when the read says it is unchanged.
    pub(super) cart: Arc<Cart>,
    pub(super) variant: Arc<Variant>,
    /// Rendered at this time, the reply is the same for any time before `until`: the
    /// next start or end of a sales period, promotion or code window, or reset of a
    /// recurrent limit, that could change it (None: no such time).
    pub(super) until: Option<Timestamp>,
    pub(super) body: Arc<[u8]>,
}

impl Rendered {
    /// Whether this reply is the get of the cart at `version` with `variant` at `now`.
    pub(super) fn serves(&self, version: i64, variant: &Variant, now: Timestamp) -> bool {
        self.version == version
            && self.until.is_none_or(|until| now < until)
            && *self.variant == *variant
    }

    /// About what the entry keeps in memory.
    fn size(&self) -> usize {
        const OVERHEAD: usize = 512;
        OVERHEAD + self.body.len() + self.cart.lines().len() * 64
    }
}

/// Rendered gets by stream id, one variant per cart (the last one rendered).
pub(super) struct ReplyCache {
    state: Mutex<State>,
    budget: usize,
}

struct State {
    entries: lru::LruCache<Uuid, Rendered>,
    bytes: usize,
}

impl ReplyCache {
    /// A cache holding about `budget` bytes.
    pub(super) fn new(budget: usize) -> Self {
        Self {
            state: Mutex::new(State {
                entries: lru::LruCache::unbounded(),
                bytes: 0,
            }),
            budget,
        }
    }

    pub(super) fn get(&self, stream_id: Uuid) -> Option<Rendered> {
        self.state.lock().ok()?.entries.get(&stream_id).cloned()
    }

    pub(super) fn put(&self, stream_id: Uuid, rendered: Rendered) {
        let size = rendered.size();
        if size > self.budget {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.bytes += size;
        if let Some((_, replaced)) = state.entries.push(stream_id, rendered) {
            state.bytes = state.bytes.saturating_sub(replaced.size());
        }
        while state.bytes > self.budget {
            let Some((_, evicted)) = state.entries.pop_lru() else {
                break;
            };
            state.bytes = state.bytes.saturating_sub(evicted.size());
        }
    }
}

/// The first time after `now` at which pricing `cart` could give another reply with the
/// same catalog and counts: a sales period of one of its items or of an item a
/// promotion or its code could add, a promotion's window (any promotion of the project:
/// bonus promotions apply to any cart), its code's window, or the next reset of one of
/// those items' recurrent limits (`reset_next_date`, and the window counted).
pub(super) fn valid_until(
    catalog: &Catalog,
    project: ProjectId,
    cart: &Cart,
    now: Timestamp,
) -> Option<Timestamp> {
    let mut until: Option<Timestamp> = None;
    let mut at = |t: Option<Timestamp>| {
        if let Some(t) = t.filter(|t| *t > now) {
            until = Some(until.map_or(t, |u| u.min(t)));
        }
    };
    let mut skus: Vec<&Sku> = cart.lines().iter().map(|l| &l.sku).collect();
    for promotion in catalog.promotions(project) {
        at(promotion.window.start);
        at(promotion.window.end);
        if let cart_domain::PromotionKind::Bonus { items } = &promotion.kind {
            skus.extend(items.iter().map(|(sku, _)| sku));
        }
    }
    if let Some(code) = cart
        .promo_code()
        .and_then(|c| catalog.promo_code(project, &c.code))
    {
        at(code.window.start);
        at(code.window.end);
        skus.extend(code.bonus.iter().map(|(sku, _)| sku));
        skus.extend(code.discounted_items.iter().map(|(sku, _)| sku));
        skus.extend(
            code.selectable
                .iter()
                .flat_map(|(unit, items)| std::iter::once(unit).chain(items.iter())),
        );
    }
    for item in skus
        .into_iter()
        .filter_map(|sku| catalog.item(project, sku))
    {
        for period in &item.periods {
            at(Some(period.from));
            at(period.until);
        }
        let schedule = item
            .limits
            .per_user
            .as_ref()
            .and_then(|p| p.recurrent_schedule);
        at(schedule.map(|s| s.next_reset(now)));
    }
    until
}

#[cfg(test)]
mod tests {
    use super::*;
    use cart_domain::CartEvent;

    fn cart_of(sku: &str) -> Cart {
        [
            CartEvent::CartOpened,
            CartEvent::ItemQuantitySet {
                sku: Sku::parse(sku).unwrap(),
                quantity: 1,
            },
        ]
        .iter()
        .fold(Cart::default(), cart_domain::apply)
    }

    fn rendered(version: i64, body: usize) -> Rendered {
        Rendered {
            version,
            cart: Arc::new(Cart::default()),
            variant: Arc::new(Variant {
                catalog_version: Some(1),
                view: ViewOptions {
                    currency: cart_domain::Currency::usd(),
                    locale: cart_domain::Locale::parse("en").unwrap(),
                    country: None,
                },
                encoding: Encoding::Json,
                purchases: Purchases::default(),
            }),
            until: None,
            body: vec![b'x'; body].into(),
        }
    }

    #[test]
    fn the_cache_keeps_about_its_budget_and_lets_the_least_recently_used_go() {
        let size = rendered(1, 1000).size();
        let cache = ReplyCache::new(size * 2);
        let [a, b, c] = [1, 2, 3].map(Uuid::from_u128);
        cache.put(a, rendered(1, 1000));
        cache.put(b, rendered(1, 1000));
        assert!(cache.get(a).is_some(), "a is now the most recently used");
        cache.put(c, rendered(1, 1000));
        assert!(cache.get(b).is_none());
        assert!(cache.get(a).is_some() && cache.get(c).is_some());
        // A newer version of a cart replaces its entry without growing the cache.
        cache.put(a, rendered(2, 1000));
        assert_eq!(cache.get(a).map(|r| r.version), Some(2));
        assert!(cache.get(c).is_some());
        // A reply larger than the whole budget is not kept.
        cache.put(b, rendered(1, size * 3));
        assert!(cache.get(b).is_none());
    }

    #[test]
    fn a_rendered_get_serves_until_the_next_window_or_reset_of_its_pricing() {
        let doc = serde_json::json!({ "projects": [{
            "project_id": 7,
            "items": [
                { "sku": "sword", "type": "virtual_good", "name": {"en": "Sword"},
                  "prices": [{ "currency": "USD", "amount": "5", "is_default": true }],
                  "periods": [{ "date_from": "2026-01-01T00:00:00Z",
                                "date_until": "2027-03-01T00:00:00Z" }] },
                { "sku": "chest", "type": "virtual_good", "name": {"en": "Chest"},
                  "prices": [{ "currency": "USD", "amount": "2", "is_default": true }],
                  "limits": { "per_user": 1, "recurrent_schedule":
                      { "interval_type": "daily", "time": "03:00:00+00:00" } } }
            ],
            "promotions": [{ "id": "sale", "name": "Sale", "date_start": "2026-01-01T00:00:00Z",
                "date_end": "2027-02-01T00:00:00Z", "skus": ["sword"],
                "discount": { "percent": "10" } }]
        }]});
        let catalog = cart_proto::catalog::parse(doc.to_string().as_bytes()).unwrap();
        let project = ProjectId::parse(7).unwrap();
        let at = |s: &str| {
            let date = cart_domain::DateTime::parse(s).unwrap();
            date.timestamp()
        };
        let now = at("2026-12-07T18:00:00Z");
        // The sale ends before the sword's sales period.
        let sword = valid_until(&catalog, project, &cart_of("sword"), now);
        assert_eq!(sword, Some(at("2027-02-01T00:00:00Z")));
        // The chest's limit resets at 03:00 every day.
        let chest = valid_until(&catalog, project, &cart_of("chest"), now);
        assert_eq!(chest, Some(at("2026-12-08T03:00:00Z")));
        let none = valid_until(
            &catalog,
            project,
            &Cart::default(),
            at("2027-06-01T00:00:00Z"),
        );
        assert_eq!(none, None);
    }
}
