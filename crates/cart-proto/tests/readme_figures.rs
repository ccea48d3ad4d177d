//! The figures README.md shows, priced from the demo catalog (deploy/catalog.json) as
//! cartd prices them, today and decades ahead: a promotion that ends, a price that
//! changes or a README edit that drifts from the catalog fails here, not in front of a
//! newcomer.

use std::time::{SystemTime, UNIX_EPOCH};

use cart_domain::{
    decide, price, unavailable, AppliedCode, Cart, CartCommand, CartEvent, Catalog, Currency,
    FillItem, Locale, PricingContext, ProjectId, Purchases, Quantity, Sku, Timestamp,
};
use cart_proto::view::{self, AmountFormat};

const README: &str = include_str!("../../../README.md");
const DEMO: &[u8] = include_bytes!("../../../deploy/catalog.json");

/// About forty years in seconds: "whatever the date" within any reader's lifetime.
const DECADES: i64 = 40 * 366 * 24 * 3600;

struct Demo {
    catalog: Catalog,
    project: ProjectId,
    now: Timestamp,
}

impl Demo {
    fn at(now: Timestamp) -> Demo {
        Demo {
            catalog: cart_proto::catalog::parse(DEMO).expect("the demo catalog loads"),
            project: ProjectId::parse(44056).unwrap(),
            now,
        }
    }

    /// The cart after `cartctl fill SKU=QTY...` on an empty cart, decided as cartd
    /// decides a fill (unlisted and unavailable SKUs skipped), and the SKUs skipped.
    fn fill(&self, items: &[(&str, i64)]) -> (Cart, Vec<String>) {
        let purchases = Purchases::default();
        let items: Vec<FillItem> = items
            .iter()
            .map(|&(sku, quantity)| {
                let sku = Sku::parse(sku).unwrap();
                let quantity = Quantity::parse(quantity).unwrap();
                let item = self.catalog.item(self.project, &sku);
                FillItem {
                    listed: item.is_some(),
                    unavailable: item
                        .and_then(|i| unavailable(i, quantity.get(), self.now, &purchases)),
                    sku,
                    quantity,
                }
            })
            .collect();
        let skipped = cart_domain::fill_warnings(&items)
            .into_iter()
            .map(|s| s.sku.to_string())
            .collect();
        let command = CartCommand::Fill {
            items,
            replace: false,
        };
        let events = decide(&Cart::default(), &command).expect("the fill is accepted");
        (Cart::replay(&events), skipped)
    }

    /// The cart as cartd renders it in USD, with `code` attached when given.
    fn render(&self, cart: &Cart, code: Option<&str>) -> serde_json::Value {
        let mut events = vec![CartEvent::CartOpened];
        events.extend(cart.lines().iter().map(|l| CartEvent::ItemQuantitySet {
            sku: l.sku.clone(),
            quantity: l.quantity,
        }));
        if let Some(code) = code {
            events.push(CartEvent::PromoCodeRedeemed {
                code: code.to_owned(),
                selected_unit_items: Default::default(),
            });
        }
        let cart = Cart::replay(&events);
        let applied: Option<AppliedCode> = cart.promo_code().cloned();
        let purchases = Purchases::default();
        let usd = Currency::parse("USD").unwrap();
        let ctx = PricingContext {
            project: self.project,
            catalog: &self.catalog,
            currency: &usd,
            country: None,
            now: self.now,
            purchases: &purchases,
            promo_code: applied.as_ref(),
        };
        let priced = price(&cart, &ctx);
        let locale = Locale::parse("en").unwrap();
        let rendered = view::cart("current", &priced, &locale, AmountFormat::default());
        serde_json::to_value(rendered).unwrap()
    }
}

fn readme_shows(text: &str) {
    assert!(
        README.contains(text),
        "README.md no longer shows {text:?}, which the demo catalog prices"
    );
}

/// `{ "amount": "5.39", "amount_without_discount": "5.99", "currency": "USD" }`, the
/// way the README writes a price object.
fn price_object(price: &serde_json::Value) -> String {
    format!(
        r#"{{ "amount": {}, "amount_without_discount": {}, "currency": {} }}"#,
        price["amount"], price["amount_without_discount"], price["currency"]
    )
}

fn amount(cart: &serde_json::Value) -> (String, String) {
    let text = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
    (
        text(&cart["price"]["amount"]),
        text(&cart["price"]["amount_without_discount"]),
    )
}

fn check_readme_figures(now: Timestamp) {
    let demo = Demo::at(now);

    // "Try it": fill cup01=2 t-shirt01=1 hut01=1, with merch_sale's 10 % on both lines.
    let (cart, skipped) = demo.fill(&[("cup01", 2), ("t-shirt01", 1), ("hut01", 1)]);
    assert_eq!(skipped, ["hut01"], "only hut01 is skipped (4001)");
    let reply = demo.render(&cart, None);
    let items = reply["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        readme_shows(&price_object(&item["price"]));
    }
    readme_shows(&format!(r#""price": {}"#, price_object(&reply["price"])));
    assert_eq!(
        amount(&reply),
        ("14.37".to_owned(), "15.97".to_owned()),
        "merch_sale applies"
    );

    // Promo codes: 123 mega boosters, then BOOSTER50, removed, then WINTER2026.
    let (boosters, _) = demo.fill(&[("com.xsolla.booster_mega_1", 123)]);
    let plain = amount(&demo.render(&boosters, None));
    readme_shows(&format!("123 x 50.00 = {}", plain.0));
    readme_shows(&format!("back to {}", plain.0));
    let booster50 = demo.render(&boosters, Some("BOOSTER50"));
    assert_eq!(booster50["promo_code"]["applies"], true, "{booster50}");
    let (with, without) = amount(&booster50);
    readme_shows(&format!(
        "{with} of {without}, a bonus line com.xsolla.swords_1"
    ));
    let bonus = booster50["items"].as_array().unwrap();
    assert!(
        bonus
            .iter()
            .any(|i| i["sku"] == "com.xsolla.swords_1" && i["is_bonus"] == true),
        "{booster50}"
    );
    let winter = demo.render(&boosters, Some("WINTER2026"));
    assert_eq!(winter["promo_code"]["applies"], true, "{winter}");
    readme_shows(&format!("# {}: 10 % off the cart", amount(&winter).0));

    // "Buy it": fill cup01=2 gold=10, checked out and paid with this amount.
    let (cart, skipped) = demo.fill(&[("cup01", 2), ("gold", 10)]);
    assert!(skipped.is_empty());
    let total = amount(&demo.render(&cart, None)).0;
    readme_shows(&format!("total ({total} USD)"));
    readme_shows(&format!("pay 1 --amount {total} "));
}

fn now() -> Timestamp {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    Timestamp::from_unix(i64::try_from(secs).unwrap())
}

#[test]
fn readme_figures_hold_today() {
    check_readme_figures(now());
}

#[test]
fn readme_figures_hold_decades_ahead() {
    check_readme_figures(Timestamp::from_unix(now().unix() + DECADES));
}
