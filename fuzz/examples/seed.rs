//! Writes the seed corpora into `fuzz/corpus/<target>/` from real bodies: the demo
//! catalog, the requests of docs/protocol.md, and events as the service stores them.
//! Run from `fuzz/`: `cargo run --example seed` (`make fuzz` does when a corpus is
//! missing). Seeds only start the fuzzer off; what it finds is kept by `cargo fuzz cmin`.

use std::path::Path;

use cart_domain::{
    CartEvent, CartId, ClearReason, Currency, Discount, LinePrice, OrderEvent, OrderLine,
    OrderPromotion, OrderSnapshot, OrderTotal, PaymentMode, ProjectId, PromotionRef, Sku,
    Timestamp, UserId,
};
use cart_fuzz::harness::{join_stored, CART_EVENT_TYPES, ORDER_EVENT_TYPES};
use cart_proto::{event, order, v1};
use prost::Message;
use serde_json::{json, Value};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");
    let requests = cart_requests();
    write(
        &corpus,
        "cart_request_json",
        requests.iter().map(|v| v.to_string().into_bytes()),
    );
    write(
        &corpus,
        "cart_request_protobuf",
        requests.iter().flat_map(protobuf),
    );
    write(
        &corpus,
        "order_request",
        order_requests().iter().map(|v| v.to_string().into_bytes()),
    );
    write(&corpus, "admin_document", admin_documents(&root.join("..")));
    write(&corpus, "admin_request", admin_requests(&root.join("..")));
    write(&corpus, "cart_event", cart_events());
    write(&corpus, "order_event", order_events());
}

fn write(corpus: &Path, target: &str, seeds: impl IntoIterator<Item = Vec<u8>>) {
    let dir = corpus.join(target);
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    let mut n = 0;
    for seed in seeds {
        // Named by content, as libFuzzer names its finds, so reruns add nothing twice.
        let name = format!("seed-{:016x}", fnv1a(&seed));
        std::fs::write(dir.join(name), &seed).expect("write seed");
        n += 1;
    }
    println!("{target}: {n} seeds");
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A request body of every cart endpoint, in the shapes docs/protocol.md shows.
fn cart_requests() -> Vec<Value> {
    let who = json!({"project_id": 44056, "user_id": "ann"});
    let with = |extra: Value| {
        let mut body = who.clone();
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        body
    };
    vec![
        who.clone(),
        with(json!({"cart_id": "c1", "currency": "EUR", "locale": "de", "country": "DE"})),
        with(
            json!({"items": [{"sku": "cup01", "quantity": 2}, {"sku": "gold", "quantity": 100}], "replace": true}),
        ),
        with(json!({"items": [{"sku": "cup01", "quantity": 1.5}]})),
        with(json!({"sku": "cup01", "quantity": 3})),
        with(json!({"sku": "cup01"})),
        with(json!({"at_version": 3})),
        with(json!({"at_time": "2026-12-01T10:00:00Z"})),
        with(
            json!({"coupon_code": "BOOSTER50", "selected_unit_items": {"box": "cup01"}, "cart": {"id": "current"}}),
        ),
        with(json!({"cart": {"id": "c1"}})),
        with(json!({"code": "BOOSTER50"})),
        with(json!({"code": "BOOSTER50", "currency": "USD", "locale": "en"})),
    ]
}

/// The JSON of `body` as the protobuf message of each endpoint that takes its fields.
fn protobuf(body: &Value) -> Vec<Vec<u8>> {
    fn encoded<M: Message + serde::de::DeserializeOwned>(body: &Value) -> Option<Vec<u8>> {
        serde_json::from_value::<M>(body.clone())
            .ok()
            .map(|m| m.encode_to_vec())
    }
    [
        encoded::<v1::FillRequest>(body),
        encoded::<v1::PutItemRequest>(body),
        encoded::<v1::DeleteItemRequest>(body),
        encoded::<v1::ClearRequest>(body),
        encoded::<v1::GetCartRequest>(body),
        encoded::<v1::RedeemPromoCodeRequest>(body),
        encoded::<v1::RemovePromoCodeRequest>(body),
        encoded::<v1::PromoCodeRewardsRequest>(body),
        encoded::<v1::VerifyPromoCodeRequest>(body),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn order_requests() -> Vec<Value> {
    vec![
        json!({"project_id": 44056, "user_id": "ann"}),
        json!({"project_id": 44056, "user_id": "ann", "cart_id": "c1", "currency": "EUR", "country": "DE", "custom_parameters": {"character_id": "hero"}}),
        json!({"project_id": 44056, "user_id": "ann", "sku": "cup01", "quantity": 2, "promo_code": "BOOSTER50"}),
        json!({"project_id": 44056, "user_id": "ann", "order_id": 17}),
        json!({"project_id": 44056, "user_id": "ann", "token": "3f6c0d"}),
        json!({"project_id": 44056, "user_id": "ann", "limit": 5, "offset": 0, "created_date_from": "2026-12-01", "created_date_until": "2026-12-04T17:39:12Z"}),
        json!({"project_id": 44056, "order_id": 17, "invoice_id": "inv-1", "amount": "5.99", "currency": "USD", "mode": "sandbox"}),
        json!({"project_id": 44056, "order_id": 17, "reason": "refund"}),
    ]
}

/// The demo catalogs whole, each project, and each entity of them.
fn admin_documents(repo: &Path) -> Vec<Vec<u8>> {
    let mut out = vec![];
    for file in ["deploy/catalog.json", "tests/fixtures/catalog.json"] {
        let bytes = std::fs::read(repo.join(file)).expect("read a demo catalog");
        let doc: Value = serde_json::from_slice(&bytes).expect("demo catalogs are JSON");
        out.push(bytes);
        for project in doc["projects"].as_array().into_iter().flatten() {
            out.push(project.to_string().into_bytes());
            for kind in ["items", "promotions", "promo_codes"] {
                for entity in project[kind].as_array().into_iter().flatten() {
                    out.push(entity.to_string().into_bytes());
                }
            }
        }
    }
    out
}

/// A body of every `admin.catalog.*` endpoint, its entities taken from the demo catalog.
fn admin_requests(repo: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(repo.join("tests/fixtures/catalog.json")).expect("read a catalog");
    let doc: Value = serde_json::from_slice(&bytes).expect("demo catalogs are JSON");
    let project = &doc["projects"][0];
    let id = project["project_id"].clone();
    let mut out = vec![
        json!({"catalog": doc, "mode": "replace", "expected_version": 3}),
        json!({"catalog": doc, "mode": "merge"}),
        json!({"project_id": id}),
        json!({"project_id": id, "sku": "cup01", "expected_version": 2}),
        json!({"project_id": id, "id": "spring", "expected_version": 2}),
        json!({"project_id": id, "code": "BOOSTER50"}),
        json!({"project_id": id, "kind": "item", "key": "cup01", "at_version": 4}),
        json!({"project_id": id, "at_time": "2026-12-04T17:39:12Z"}),
        json!({"project_id": id, "after_version": 2, "limit": 50}),
    ];
    for (kind, field) in [
        ("items", "item"),
        ("promotions", "promotion"),
        ("promo_codes", "promo_code"),
    ] {
        for entity in project[kind].as_array().into_iter().flatten() {
            out.push(json!({"project_id": id, "expected_version": 1, field: entity}));
        }
    }
    let mut out: Vec<Vec<u8>> = out.iter().map(|v| v.to_string().into_bytes()).collect();
    out.push(vec![]);
    out
}

fn cart_events() -> Vec<Vec<u8>> {
    let sku = |s: &str| Sku::parse(s).expect("a seed SKU");
    let events = [
        CartEvent::CartOpened,
        CartEvent::ItemQuantitySet {
            sku: sku("cup01"),
            quantity: 3,
        },
        CartEvent::ItemRemoved { sku: sku("cup01") },
        CartEvent::CartCleared {
            reason: ClearReason::Shopper,
        },
        CartEvent::CartCleared {
            reason: ClearReason::Purchased,
        },
        CartEvent::PromoCodeRedeemed {
            code: "BOOSTER50".into(),
            selected_unit_items: [(sku("box"), sku("cup01"))].into(),
        },
        CartEvent::PromoCodeRemoved,
    ];
    let mut out: Vec<Vec<u8>> = events
        .iter()
        .map(|e| {
            let encoded = event::encode(e);
            join_stored(
                &CART_EVENT_TYPES,
                encoded.event_type,
                encoded.schema_version,
                &encoded.payload,
            )
        })
        .collect();
    // The one older version still read: CartCleared v1, with no reason.
    out.push(join_stored(&CART_EVENT_TYPES, "CartCleared", 1, &json!({})));
    out
}

fn order_events() -> Vec<Vec<u8>> {
    let sku = |s: &str| Sku::parse(s).expect("a seed SKU");
    let usd = || Currency::parse("USD").expect("USD");
    let dec = |s: &str| s.parse().expect("a seed amount");
    let line = OrderLine {
        sku: sku("sword"),
        quantity: 3,
        item_type: Some("virtual_good".into()),
        price: Some(LinePrice {
            amount: dec("6.8400"),
            amount_without_discount: dec("7.2"),
            currency: usd(),
        }),
        is_free: false,
        is_bonus: false,
        promotions: vec![OrderPromotion {
            source: PromotionRef::Promotion(7),
            discount: Some(Discount::Percent(dec("5"))),
            bonus: vec![],
            step: Some((dec("7.2"), dec("6.84"))),
        }],
        problem: None,
    };
    let bonus = OrderLine {
        sku: sku("gem"),
        quantity: 2,
        item_type: None,
        price: None,
        is_free: true,
        is_bonus: true,
        promotions: vec![],
        problem: None,
    };
    let events = [
        OrderEvent::OrderCreated {
            order_id: 641,
            payment_token: "tok".into(),
            project: ProjectId::parse(44056).expect("a project"),
            user: UserId::parse("u.1").expect("a user"),
            cart_id: Some(CartId::parse("c1").expect("a cart")),
            snapshot: OrderSnapshot {
                lines: vec![line, bonus],
                promo_code: Some("WINTER".into()),
                promotions: vec![OrderPromotion {
                    source: PromotionRef::PromoCode("WINTER".into()),
                    discount: Some(Discount::Value(dec("1.08"))),
                    bonus: vec![(sku("gem"), 2)],
                    step: None,
                }],
                total: Some(OrderTotal {
                    amount: dec("20.52"),
                    amount_without_discount: dec("21.6"),
                    currency: usd(),
                }),
                currency: Some(usd()),
            },
            catalog_version: 3,
            created_at: Timestamp::from_unix(1_700_000_000),
            custom_parameters: Some(r#"{"character_id":"hero"}"#.into()),
        },
        OrderEvent::OrderPaid {
            invoice_id: "inv-1".into(),
            amount: dec("20.5200"),
            currency: usd(),
            mode: PaymentMode::Sandbox,
        },
        OrderEvent::OrderDone,
        OrderEvent::OrderCanceled {
            reason: "refund".into(),
        },
        OrderEvent::OrderExpired {
            by_order: Some(642),
        },
    ];
    events
        .iter()
        .map(|e| {
            let encoded = order::encode(e);
            join_stored(
                &ORDER_EVENT_TYPES,
                encoded.event_type,
                encoded.schema_version,
                &encoded.payload,
            )
        })
        .collect()
}
