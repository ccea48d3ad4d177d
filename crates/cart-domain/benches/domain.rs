//! Micro-benchmarks of the pure domain: the event fold (`apply`) and cart pricing (`price`).
//!
//! `cargo bench -p cart-domain --bench domain` (or `make bench-domain`). The fold is reported
//! in events per second; the target is at least 5 million events per second in one thread.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::str::FromStr;

use cart_domain::{
    apply, price, Cart, CartEvent, Catalog, ClearReason, Currency, Item, ItemPrice, PricingContext,
    ProjectId, Purchases, Sku, Timestamp,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rust_decimal::Decimal;

/// SKUs in the fold's history: a shopper touches only a handful.
const HISTORY_SKUS: usize = 8;

/// A small deterministic generator (xorshift64*), so every run folds the same history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn sku(i: usize) -> Sku {
    Sku::parse(format!("com.example.item_{i:03}")).expect("valid sku")
}

/// A history such as `decide` records: `CartOpened`, then quantity changes, removals of
/// lines the cart holds and now and then a clear, over a handful of SKUs. Roughly 80 %
/// quantity sets, 17 % removals and 3 % clears (a clear only when the cart has lines).
fn history(len: usize) -> Vec<CartEvent> {
    let skus: Vec<Sku> = (0..HISTORY_SKUS).map(sku).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // The quantity of each SKU in the cart as the history goes, 0 for no line.
    let mut held = [0u32; HISTORY_SKUS];
    let mut events = Vec::with_capacity(len);
    events.push(CartEvent::CartOpened);
    while events.len() < len {
        let roll = rng.below(100);
        let i = rng.below(HISTORY_SKUS as u64) as usize;
        if roll < 3 && held.iter().any(|&q| q > 0) {
            held = [0; HISTORY_SKUS];
            events.push(CartEvent::CartCleared {
                reason: ClearReason::Shopper,
            });
        } else if roll < 20 && held[i] > 0 {
            held[i] = 0;
            events.push(CartEvent::ItemRemoved {
                sku: skus[i].clone(),
            });
        } else {
            // A quantity the line does not already have, never zero.
            let mut quantity = 1 + rng.below(10) as u32;
            if quantity == held[i] {
                quantity += 1;
            }
            held[i] = quantity;
            events.push(CartEvent::ItemQuantitySet {
                sku: skus[i].clone(),
                quantity,
            });
        }
    }
    events
}

fn fold(c: &mut Criterion) {
    let mut group = c.benchmark_group("fold");
    for len in [1_000usize, 100_000] {
        let events = history(len);
        // Sanity: the fold ends in an opened cart with no more lines than SKUs.
        let cart = events.iter().fold(Cart::default(), apply);
        assert!(cart.is_opened() && cart.lines().len() <= HISTORY_SKUS);
        if len >= 100_000 {
            group.sample_size(30);
        }
        group.throughput(Throughput::Elements(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(len), &events, |b, events| {
            b.iter(|| black_box(events).iter().fold(Cart::default(), apply));
        });
    }
    group.finish();
}

fn catalog_item(i: usize) -> Item {
    let usd = Decimal::from_str("0.99").expect("decimal") + Decimal::from(i % 50);
    let eur = Decimal::from_str("0.89").expect("decimal") + Decimal::from(i % 50);
    Item {
        item_type: "virtual_good".into(),
        virtual_item_type: Some("non_consumable".into()),
        name: BTreeMap::from([
            ("en".into(), format!("Item {i}")),
            ("de".into(), format!("Artikel {i}")),
        ]),
        description: BTreeMap::from([("en".into(), format!("The item number {i}."))]),
        image_url: format!("https://cdn.example.com/items/{i}.png"),
        prices: vec![
            ItemPrice {
                currency: Currency::usd(),
                amount: usd,
                is_default: true,
                country: None,
            },
            ItemPrice {
                currency: Currency::parse("EUR").expect("currency"),
                amount: eur,
                is_default: false,
                country: None,
            },
        ],
        virtual_prices: vec![],
        is_free: false,
        ..Item::new(sku(i), "virtual_good")
    }
}

/// 200 items in the priced project and 200 in another, so lookups hit a map of 400.
fn catalog(project: ProjectId, other: ProjectId) -> Catalog {
    let mut catalog = Catalog::default();
    for i in 0..200 {
        catalog.insert(project, catalog_item(i));
        catalog.insert(other, catalog_item(i));
    }
    catalog
}

fn cart_of(lines: usize) -> Cart {
    // Every third catalog item, so the cart's SKUs are spread over the catalog.
    (0..lines).fold(Cart::default(), |cart, n| {
        apply(
            cart,
            &CartEvent::ItemQuantitySet {
                sku: sku(n * 3),
                quantity: 1 + (n % 5) as u32,
            },
        )
    })
}

fn pricing(c: &mut Criterion) {
    let project = ProjectId::parse(1).expect("project");
    let other = ProjectId::parse(2).expect("project");
    let catalog = catalog(project, other);
    let usd = Currency::usd();
    let purchases = Purchases::default();
    let ctx = PricingContext {
        project,
        catalog: &catalog,
        currency: &usd,
        country: None,
        now: Timestamp::from_unix(1_700_000_000),
        purchases: &purchases,
        promo_code: None,
    };
    let mut group = c.benchmark_group("price");
    for lines in [1usize, 10, 50] {
        let cart = cart_of(lines);
        let priced = price(&cart, &ctx);
        assert_eq!(priced.lines.len(), lines);
        assert!(priced.total.is_some() && priced.lines.iter().all(|l| l.item.is_some()));
        group.bench_with_input(BenchmarkId::new("lines", lines), &cart, |b, cart| {
            b.iter(|| price(black_box(cart), &ctx));
        });
    }
    group.finish();
}

criterion_group!(benches, fold, pricing);
criterion_main!(benches);
