//! The CPU of one cart reply, for `valgrind --tool=callgrind` (instruction counts are
//! repeatable on a shared, noisy machine; wall time is not): prices a representative
//! cart of the demo catalog (three lines, two of them promoted, a bonus line) and
//! renders and encodes it `N` times.
//!
//! ```text
//! cargo build --release -p cart-proto --example render_cost
//! valgrind --tool=callgrind target/release/examples/render_cost all 1000
//! ```
//! Run once with `N` = 0 and subtract: the difference over `N` is one reply's cost.
//! The step is `price`, `view` (price and build the `v1::Cart`), `json`, `protobuf`
//! (price, build and encode) or `all` (both encodings).

use std::hint::black_box;

use cart_domain::{Cart, CartEvent, Currency, Locale, PricingContext, ProjectId, Purchases, Sku};
use cart_proto::view::{self, AmountFormat};
use cart_proto::{encode, Encoding};

fn main() {
    let mut args = std::env::args().skip(1);
    let step = args.next().unwrap_or_else(|| "all".to_owned());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/catalog.json");
    let catalog = cart_proto::catalog::parse(&std::fs::read(path).expect("the demo catalog"))
        .expect("a valid catalog");
    let project = ProjectId::parse(44056).expect("a project id");
    let mut events = vec![CartEvent::CartOpened];
    for (sku, quantity) in [("gold", 5), ("com.xsolla.booster_mega_1", 1), ("cup01", 2)] {
        events.push(CartEvent::ItemQuantitySet {
            sku: Sku::parse(sku).expect("a sku"),
            quantity,
        });
    }
    let cart = events.iter().fold(Cart::default(), cart_domain::apply);
    let usd = Currency::usd();
    let locale = Locale::parse("en").expect("a locale");
    let purchases = Purchases::default();
    // 2026-12-07T18:00:00Z.
    let now = cart_domain::Timestamp::from_unix(1_796_666_400);
    let mut bytes = 0;
    for _ in 0..n {
        let priced = cart_domain::price(
            black_box(&cart),
            &PricingContext {
                project,
                catalog: &catalog,
                currency: &usd,
                country: None,
                now,
                purchases: &purchases,
                promo_code: None,
            },
        );
        if step == "price" {
            bytes += black_box(&priced).lines.len();
            continue;
        }
        let reply = view::cart("current-0123", &priced, &locale, AmountFormat::default());
        match step.as_str() {
            "view" => bytes += black_box(&reply).items.len(),
            "json" => bytes += encode(&reply, Encoding::Json).len(),
            "protobuf" => bytes += encode(&reply, Encoding::Protobuf).len(),
            _ => {
                bytes += encode(&reply, Encoding::Json).len();
                bytes += encode(&reply, Encoding::Protobuf).len();
            }
        }
    }
    println!("{step} x{n}: {bytes} bytes");
}
