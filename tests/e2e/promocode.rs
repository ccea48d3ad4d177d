//! Promo codes on the cart, over NATS: redeem, remove, rewards and verify, with a
//! catalog of the test's own (Xsolla's redeem example: BOOSTER50).

use cart_tests::{lines, Client, World};
use serde_json::{json, Value};

/// A project of this test's own: the world's first instance has already seeded the
/// demo catalog's projects into the database, and a seed never overwrites a project.
const PROJECT: u64 = 77001;

fn req(user: &str, cart: Option<&str>, extra: Value) -> Value {
    let mut body = crate::req(user, cart, extra);
    body["project_id"] = json!(PROJECT);
    body
}

const BOOSTER: &str = "com.xsolla.booster_mega_1";
const SWORDS: &str = "com.xsolla.swords_1";

fn catalog() -> Value {
    let item = |sku: &str, name: &str, amount: &str| {
        json!({"sku": sku, "type": "virtual_good", "name": {"en": name},
               "description": {"en": format!("{name}, described")},
               "image_url": format!("https://cdn.example.com/{sku}.png"),
               "prices": [{"currency": "USD", "amount": amount, "is_default": true}]})
    };
    json!({"projects": [{
        "project_id": PROJECT,
        "items": [
            item(BOOSTER, "Mega booster", "100"),
            item(SWORDS, "Swords", "2.99"),
            item("cup01", "Cup", "5"),
            item("mug", "Mug", "5"),
        ],
        "promotions": [
            {"id": "merch_sale", "name": "Merch sale", "date_start": "2020-01-01T00:00:00Z",
             "skus": ["mug"], "discount": {"percent": "10"}}
        ],
        "promo_codes": [
            {"code": "BOOSTER50", "name": "Half-price boosters",
             "discounted_items": [{"sku": BOOSTER, "discount": {"percent": "50"}}],
             "bonus": [{"sku": SWORDS, "quantity": 1}],
             "excluded_promotions": ["merch_sale"]},
            {"code": "WINTER2026", "discount": {"percent": "10"}},
            {"code": "BIG10", "discount": {"percent": "10"},
             "price_conditions": [{"operator": "ge", "value": "50"}]},
            {"code": "OLD", "discount": {"percent": "10"},
             "date_start": "2020-01-01T00:00:00Z", "date_end": "2021-01-01T00:00:00Z"},
            {"code": "GERMANY", "discount": {"percent": "10"}, "regions": ["DE"]}
        ]
    }]})
}

/// A world whose service reads the test's catalog.
struct PromoWorld {
    world: World,
    client: Client,
    server: Option<cartd::Server>,
}

async fn start() -> PromoWorld {
    let world = World::start().await;
    let dir =
        std::env::temp_dir().join(format!("cart-e2e-promo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("catalog.json");
    std::fs::write(&path, catalog().to_string()).unwrap();
    // The file only seeds projects without a catalog, and the world's service seeded
    // the demo items: replace them (every instance prices the stored catalog).
    world
        .client
        .json(
            "admin.catalog.import",
            None,
            serde_json::json!({"catalog": catalog(), "mode": "replace"}),
        )
        .await
        .unwrap();
    let prefix = cart_tests::unique_prefix();
    let mut config = cart_tests::config(&world.db.url, &cart_tests::nats_url(), &prefix);
    config.catalog = path;
    let server = cartd::start(&config).await.unwrap();
    let client = Client::connect(&cart_tests::nats_url(), &prefix).await;
    PromoWorld {
        world,
        client,
        server: Some(server),
    }
}

impl PromoWorld {
    async fn finish(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.world.finish().await;
    }
}

fn price(cart: &Value) -> (String, String) {
    (
        cart["price"]["amount"].as_str().unwrap().to_owned(),
        cart["price"]["amount_without_discount"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

fn refusal(res: Result<Value, cart_tests::Refusal>) -> (u16, u32, String) {
    let e = res.unwrap_err().error;
    (e.status, e.code, e.message())
}

#[tokio::test]
async fn redeem_applies_xsollas_example_and_remove_takes_it_back() {
    let w = start().await;
    let c = &w.client;
    let filled = c
        .json(
            "fill",
            None,
            req(
                "u1",
                None,
                json!({"items": [{"sku": BOOSTER, "quantity": 123}]}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(price(&filled), ("12300.00".into(), "12300.00".into()));
    assert!(filled.get("promo_code").is_none());

    let events_before = w.world.db.count_events().await;
    let cart = c
        .json(
            "promocode.redeem",
            Some("redeem-1"),
            req(
                "u1",
                None,
                json!({"coupon_code": "BOOSTER50", "cart": {"id": "current"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(w.world.db.count_events().await, events_before + 1);
    assert_eq!(price(&cart), ("6150.00".into(), "12300.00".into()));
    assert_eq!(lines(&cart), [(BOOSTER.into(), 123), (SWORDS.into(), 1)]);
    let booster = &cart["items"][0];
    assert_eq!(booster["price"]["amount"], "50.00");
    assert_eq!(booster["price"]["amount_without_discount"], "100.00");
    let bonus = &cart["items"][1];
    assert_eq!(bonus["is_bonus"], true);
    assert_eq!(bonus["is_free"], true);
    assert_eq!(bonus["price"], Value::Null);
    assert_eq!(
        cart["promo_code"],
        json!({"code": "BOOSTER50", "applies": true, "reason": "", "error_code": 0})
    );
    assert_eq!(
        cart["rewards"],
        json!({
            "bonus": [{"item": {"sku": SWORDS, "name": "Swords", "type": "virtual_good",
                                 "description": "Swords, described",
                                 "image_url": format!("https://cdn.example.com/{SWORDS}.png")},
                       "quantity": 1}],
            "discount": null,
            "discounted_items": [{"sku": BOOSTER, "discount": {"percent": "50.00"}}],
            "is_selectable": false
        })
    );
    // A retry with the same command id gets the same reply and appends nothing.
    let again = c
        .json(
            "promocode.redeem",
            Some("redeem-1"),
            req(
                "u1",
                None,
                json!({"coupon_code": "BOOSTER50", "cart": {"id": "current"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(again, cart);
    assert_eq!(w.world.db.count_events().await, events_before + 1);

    // Get shows the code; the rewards are only on the redeem reply.
    let got = c
        .json("get", None, req("u1", None, json!({})))
        .await
        .unwrap();
    assert_eq!(price(&got), ("6150.00".into(), "12300.00".into()));
    assert!(got.get("rewards").is_none());
    assert_eq!(got["promo_code"]["code"], "BOOSTER50");

    // Remove: the bonus goes and the discount with it.
    let removed = c
        .json("promocode.remove", None, req("u1", None, json!({})))
        .await
        .unwrap();
    assert_eq!(lines(&removed), [(BOOSTER.into(), 123)]);
    let (amount, without) = price(&removed);
    assert_eq!(amount, without);
    assert!(removed.get("promo_code").is_none());
    w.finish().await;
}

/// `excluded_promotions`, Xsolla's way: BOOSTER50 lists merch_sale, and a cart with a
/// mug on merch_sale still gets the code (200, applies), not a code that gives nothing.
#[tokio::test]
async fn a_code_wins_over_the_promotions_it_excludes() {
    let w = start().await;
    let c = &w.client;
    let items =
        json!({"items": [{"sku": BOOSTER, "quantity": 123}, {"sku": "mug", "quantity": 2}]});
    let filled = c.json("fill", None, req("u5", None, items)).await.unwrap();
    // 123 x 100.00 + 2 x 4.50 (merch_sale).
    assert_eq!(price(&filled), ("12309.00".into(), "12310.00".into()));
    let cart = c
        .json(
            "promocode.redeem",
            None,
            req("u5", None, json!({"coupon_code": "BOOSTER50"})),
        )
        .await
        .unwrap();
    assert_eq!(
        cart["promo_code"],
        json!({"code": "BOOSTER50", "applies": true, "reason": "", "error_code": 0})
    );
    // The booster at half price, and merch_sale stays on the mugs, which the code does
    // not discount: 6150.00 + 9.00.
    assert_eq!(price(&cart), ("6159.00".into(), "12310.00".into()));
    let skus: Vec<&str> = cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, [BOOSTER, "mug", SWORDS]);
    assert_eq!(cart["items"][0]["price"]["amount"], "50.00");
    assert_eq!(cart["items"][1]["price"]["amount"], "4.50");
    w.finish().await;
}

#[tokio::test]
async fn one_code_per_cart_and_a_code_that_stops_applying_stays_and_says_so() {
    let w = start().await;
    let c = &w.client;
    let cart_id = Some("c-promo");
    c.json(
        "fill",
        None,
        req(
            "u2",
            cart_id,
            json!({"items": [{"sku": "cup01", "quantity": 20}]}),
        ),
    )
    .await
    .unwrap();
    let cart = c
        .json(
            "promocode.redeem",
            None,
            req("u2", cart_id, json!({"coupon_code": "BIG10"})),
        )
        .await
        .unwrap();
    assert_eq!(price(&cart), ("90.00".into(), "100.00".into()));
    assert_eq!(cart["rewards"]["discount"]["percent"], "10.00");
    assert_eq!(cart["rewards"]["discounted_items"], Value::Null);

    // Below the price condition: the code stays attached, gives nothing, and says why.
    let cart = c
        .json(
            "item.put",
            None,
            req("u2", cart_id, json!({"sku": "cup01", "quantity": 2})),
        )
        .await
        .unwrap();
    assert_eq!(price(&cart), ("10.00".into(), "10.00".into()));
    assert_eq!(cart["promo_code"]["code"], "BIG10");
    assert_eq!(cart["promo_code"]["applies"], false);
    assert_eq!(cart["promo_code"]["error_code"], 9807);
    assert!(cart["promo_code"]["reason"]
        .as_str()
        .unwrap()
        .contains("price conditions"));

    // A clear keeps the code too; back above the condition, it applies again.
    c.json("clear", None, req("u2", cart_id, json!({})))
        .await
        .unwrap();
    let cart = c
        .json(
            "item.put",
            None,
            req("u2", cart_id, json!({"sku": "cup01", "quantity": 10})),
        )
        .await
        .unwrap();
    assert_eq!(cart["promo_code"]["applies"], true);
    assert_eq!(price(&cart), ("45.00".into(), "50.00".into()));

    // Another code replaces it: one code per cart.
    let cart = c
        .json(
            "promocode.redeem",
            None,
            req(
                "u2",
                None,
                json!({"coupon_code": "WINTER2026", "cart": {"id": "c-promo"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(cart["promo_code"]["code"], "WINTER2026");
    assert_eq!(price(&cart), ("45.00".into(), "50.00".into()));
    w.finish().await;
}

#[tokio::test]
async fn refusals_have_xsollas_codes_and_append_nothing() {
    let w = start().await;
    let c = &w.client;
    c.json(
        "fill",
        None,
        req(
            "u3",
            Some("mine"),
            json!({"items": [{"sku": "cup01", "quantity": 1}]}),
        ),
    )
    .await
    .unwrap();
    c.json(
        "promocode.redeem",
        None,
        req("u3", Some("mine"), json!({"coupon_code": "WINTER2026"})),
    )
    .await
    .unwrap();
    let events = w.world.db.count_events().await;
    let redeem = |code: &'static str, extra: Value| {
        let mut body = req("u3", Some("mine"), json!({"coupon_code": code}));
        if let Value::Object(fields) = extra {
            for (k, v) in fields {
                body[k] = v;
            }
        }
        c.json("promocode.redeem", Some(code), body)
    };
    let (s, code, msg) = refusal(redeem("NOPE", json!({})).await);
    assert_eq!((s, code), (404, 9807));
    assert_eq!(msg, "[0401-9807]: Enter a valid promo code.");
    // Codes are case-sensitive.
    assert_eq!(refusal(redeem("winter2026", json!({})).await).1, 9807);
    let (s, code, _) = refusal(redeem("OLD", json!({})).await);
    assert_eq!((s, code), (422, 9810));
    let (s, code, _) = refusal(redeem("GERMANY", json!({})).await);
    assert_eq!((s, code), (422, 9808));
    let (s, code, _) = refusal(redeem("GERMANY", json!({"country": "US"})).await);
    assert_eq!((s, code), (422, 9808));
    let (s, code, msg) = refusal(
        c.json("promocode.redeem", None, req("u3", Some("mine"), json!({})))
            .await,
    );
    assert_eq!((s, code), (422, 1102));
    assert!(
        msg.contains("The property `coupon_code` is required"),
        "{msg}"
    );
    // Nothing of that changed the cart: the code is still WINTER2026.
    assert_eq!(w.world.db.count_events().await, events);
    let cart = c
        .json("get", None, req("u3", Some("mine"), json!({})))
        .await
        .unwrap();
    assert_eq!(cart["promo_code"]["code"], "WINTER2026");

    // Region codes apply from their region.
    let cart = redeem("GERMANY", json!({"country": "de"})).await.unwrap();
    assert_eq!(cart["promo_code"]["applies"], true);

    // An unknown cart, and another user's cart, are 404/1401 for redeem and remove.
    for (user, cart) in [("u3", "never-used"), ("intruder", "mine")] {
        let (s, code, msg) = refusal(
            c.json(
                "promocode.redeem",
                None,
                req(user, Some(cart), json!({"coupon_code": "WINTER2026"})),
            )
            .await,
        );
        assert_eq!((s, code), (404, 1401), "{user} {cart}");
        assert_eq!(msg, format!("[0401-1401]: Cart for user {user} not found"));
        let (s, code, _) = refusal(
            c.json("promocode.remove", None, req(user, Some(cart), json!({})))
                .await,
        );
        assert_eq!((s, code), (404, 1401));
        let (s, code, _) = refusal(c.json("get", None, req(user, Some(cart), json!({}))).await);
        assert_eq!((s, code), (404, 1401));
    }
    let owner = c
        .json(
            "get",
            None,
            req("u3", Some("mine"), json!({"country": "DE"})),
        )
        .await
        .unwrap();
    assert_eq!(owner["promo_code"]["code"], "GERMANY");
    assert_eq!(owner["promo_code"]["applies"], true);
    // Without the country the region code does not apply, and the cart says so.
    let owner = c
        .json("get", None, req("u3", Some("mine"), json!({})))
        .await
        .unwrap();
    assert_eq!(owner["promo_code"]["applies"], false);
    assert_eq!(owner["promo_code"]["error_code"], 9808);
    w.finish().await;
}

#[tokio::test]
async fn rewards_and_verify_are_queries() {
    let w = start().await;
    let c = &w.client;
    let events = w.world.db.count_events().await;
    let rewards = c
        .json(
            "promocode.rewards",
            None,
            json!({"project_id": PROJECT, "user_id": "u4", "code": "BOOSTER50"}),
        )
        .await
        .unwrap();
    assert_eq!(rewards["bonus"][0]["item"]["sku"], SWORDS);
    assert_eq!(rewards["bonus"][0]["quantity"], 1);
    assert_eq!(
        rewards["discounted_items"][0]["discount"]["percent"],
        "50.00"
    );
    assert_eq!(rewards["is_selectable"], false);

    let verified = c
        .json(
            "promocode.verify",
            None,
            json!({"project_id": PROJECT, "user_id": "u4", "code": "WINTER2026"}),
        )
        .await
        .unwrap();
    assert_eq!(verified["type"], "promocode");
    assert_eq!(verified["code"], "WINTER2026");
    assert_eq!(verified["rewards"]["discount"]["percent"], "10.00");
    assert_eq!(verified["rewards"]["bonus"], json!([]));

    let by_code = |endpoint: &'static str, code: &'static str, extra: Value| {
        let mut body = json!({"project_id": PROJECT, "user_id": "u4", "code": code});
        if let Value::Object(fields) = extra {
            for (k, v) in fields {
                body[k] = v;
            }
        }
        c.json(endpoint, None, body)
    };
    let (s, code, msg) = refusal(by_code("promocode.verify", "NOPE", json!({})).await);
    assert_eq!((s, code), (404, 9811));
    assert_eq!(msg, "[0401-9811]: Code not found.");
    let (s, code, _) = refusal(by_code("promocode.rewards", "NOPE", json!({})).await);
    assert_eq!((s, code), (404, 9807));
    for endpoint in ["promocode.rewards", "promocode.verify"] {
        let (s, code, _) = refusal(by_code(endpoint, "OLD", json!({})).await);
        assert_eq!((s, code), (422, 9810));
        let (s, code, _) = refusal(by_code(endpoint, "GERMANY", json!({"country": "FR"})).await);
        assert_eq!((s, code), (422, 9808));
        by_code(endpoint, "GERMANY", json!({"country": "DE"}))
            .await
            .unwrap();
    }
    assert_eq!(w.world.db.count_events().await, events);
    w.finish().await;
}
