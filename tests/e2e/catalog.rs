//! The catalog admin endpoints (`<prefix>.admin.catalog.*`): changes of items, promotions
//! and promo codes, each recorded in `catalog_changes` with the next version; bad input
//! refused with a clear error and nothing stored; import and export.

use cart_proto::admin::CatalogDocument;
use cart_tests::World;
use serde_json::{json, Value};

/// A project of its own, so that the versions start at 0 (the service imports the demo
/// catalog into project 44056 at start).
const P: u64 = 900_001;

fn item(sku: &str, usd: &str) -> Value {
    json!({
        "sku": sku,
        "type": "virtual_good",
        "name": {"en": "Sword", "de": "Schwert"},
        "prices": [
            {"currency": "USD", "amount": usd, "is_default": true},
            {"currency": "EUR", "amount": "1.79"},
            {"currency": "EUR", "amount": "1.59", "country": "DE"}
        ],
        "limits": {"per_user": 3, "recurrent_schedule": {"interval_type": "weekly", "day_of_week": 1, "time": "10:00:00+03:00"}},
        "periods": [{"date_from": "2026-01-01T00:00:00Z", "date_until": null}]
    })
}

async fn admin(w: &World, endpoint: &str, body: Value) -> Value {
    w.client
        .json(&format!("admin.catalog.{endpoint}"), None, body)
        .await
        .unwrap_or_else(|e| panic!("{endpoint} refused: {e:?}"))
}

async fn refused(w: &World, endpoint: &str, body: Vec<u8>) -> cart_proto::ErrorReply {
    w.client
        .send(
            &format!("admin.catalog.{endpoint}"),
            async_nats::HeaderMap::new(),
            body,
        )
        .await
        .expect_err("refused")
        .error
}

async fn recorded(w: &World, project: u64) -> Vec<(i64, String, String, String)> {
    let pool = w.db.pool().await;
    let rows = sqlx::query_as(
        "select version, kind, key, operation from catalog_changes
          where project_id = $1 order by version, kind, key",
    )
    .bind(i64::try_from(project).unwrap())
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn items_promotions_and_promo_codes_are_created_updated_and_deleted_with_versions() {
    let w = World::start().await;
    let created = admin(
        &w,
        "item.create",
        json!({"project_id": P, "item": item("sword_1", "1.99")}),
    )
    .await;
    assert_eq!(created["version"], 1);
    assert_eq!(
        created["changes"],
        json!([{"kind": "item", "key": "sword_1", "operation": "create"}])
    );
    let got = admin(
        &w,
        "get",
        json!({"project_id": P, "kind": "item", "key": "sword_1"}),
    )
    .await;
    assert_eq!(got["document"]["prices"][0]["amount"], "1.99");
    assert_eq!(got["document"]["prices"][2]["country"], "DE");
    assert_eq!(
        got["document"]["limits"]["recurrent_schedule"]["day_of_week"],
        1
    );

    let dup = refused(
        &w,
        "item.create",
        serde_json::to_vec(&json!({"project_id": P, "item": item("sword_1", "5")})).unwrap(),
    )
    .await;
    assert_eq!((dup.status, dup.code), (409, 1102), "{dup:?}");
    assert!(dup.text.contains("sword_1 already exists"), "{dup:?}");

    let updated = admin(
        &w,
        "item.update",
        json!({"project_id": P, "item": item("sword_1", "2.49"), "expected_version": 1}),
    )
    .await;
    assert_eq!(updated["version"], 2);
    let stale = refused(
        &w,
        "item.update",
        serde_json::to_vec(
            &json!({"project_id": P, "item": item("sword_1", "3"), "expected_version": 1}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(stale.status, 409, "{stale:?}");
    let missing = refused(
        &w,
        "item.update",
        serde_json::to_vec(&json!({"project_id": P, "item": item("nope", "3")})).unwrap(),
    )
    .await;
    assert_eq!((missing.status, missing.code), (404, 4001), "{missing:?}");

    let promotion = json!({
        "id": "sale", "name": "Sale", "date_start": "2026-01-01T00:00:00Z",
        "date_end": "2027-01-01T00:00:00Z", "skus": ["sword_1"], "discount": {"percent": "10"},
        "limits": {"per_user": 2}
    });
    assert_eq!(
        admin(
            &w,
            "promotion.create",
            json!({"project_id": P, "promotion": promotion})
        )
        .await["version"],
        3
    );
    let mut changed = promotion.clone();
    changed["discount"] = json!({"value": "0.50"});
    assert_eq!(
        admin(
            &w,
            "promotion.update",
            json!({"project_id": P, "promotion": changed})
        )
        .await["version"],
        4
    );

    let code = json!({
        "code": "HALF", "discounted_items": [{"sku": "sword_1", "discount": {"percent": "50"}}],
        "bonus": [{"sku": "sword_1", "quantity": 1}], "redeem_user_limit": 1,
        "excluded_promotions": ["sale"], "regions": ["US"]
    });
    assert_eq!(
        admin(
            &w,
            "promocode.create",
            json!({"project_id": P, "promo_code": code})
        )
        .await["version"],
        5
    );
    // An item referred to by a promotion or promo code cannot go.
    let in_use = refused(
        &w,
        "item.delete",
        serde_json::to_vec(&json!({"project_id": P, "sku": "sword_1"})).unwrap(),
    )
    .await;
    assert_eq!(in_use.status, 422, "{in_use:?}");
    assert!(in_use.text.contains("is not an item"), "{in_use:?}");
    let got = admin(
        &w,
        "get",
        json!({"project_id": P, "kind": "promo_code", "key": "HALF"}),
    )
    .await;
    assert_eq!(
        got["document"]["discounted_items"][0]["discount"]["percent"],
        "50"
    );

    assert_eq!(
        admin(
            &w,
            "promocode.delete",
            json!({"project_id": P, "code": "HALF"})
        )
        .await["version"],
        6
    );
    assert_eq!(
        admin(
            &w,
            "promotion.delete",
            json!({"project_id": P, "id": "sale"})
        )
        .await["version"],
        7
    );
    assert_eq!(
        admin(
            &w,
            "item.delete",
            json!({"project_id": P, "sku": "sword_1"})
        )
        .await["version"],
        8
    );
    let gone = refused(
        &w,
        "get",
        serde_json::to_vec(&json!({"project_id": P, "kind": "item", "key": "sword_1"})).unwrap(),
    )
    .await;
    assert_eq!((gone.status, gone.code), (404, 4001), "{gone:?}");
    let gone = refused(
        &w,
        "promocode.delete",
        serde_json::to_vec(&json!({"project_id": P, "code": "HALF"})).unwrap(),
    )
    .await;
    assert_eq!((gone.status, gone.code), (404, 9802), "{gone:?}");

    let log = recorded(&w, P).await;
    let expected: Vec<(i64, &str, &str, &str)> = vec![
        (1, "item", "sword_1", "create"),
        (2, "item", "sword_1", "update"),
        (3, "promotion", "sale", "create"),
        (4, "promotion", "sale", "update"),
        (5, "promo_code", "HALF", "create"),
        (6, "promo_code", "HALF", "delete"),
        (7, "promotion", "sale", "delete"),
        (8, "item", "sword_1", "delete"),
    ];
    let log: Vec<(i64, &str, &str, &str)> = log
        .iter()
        .map(|(v, k, key, o)| (*v, k.as_str(), key.as_str(), o.as_str()))
        .collect();
    assert_eq!(log, expected);
    let changes = admin(&w, "changes", json!({"project_id": P, "after_version": 6})).await;
    assert_eq!(changes["changes"].as_array().unwrap().len(), 2);

    // The catalog as it was: at version 2 the updated price, at 5 all three, now none.
    let at2 = admin(&w, "get", json!({"project_id": P, "at_version": 2})).await;
    assert_eq!(at2["catalog"]["items"][0]["prices"][0]["amount"], "2.49");
    let at5 = admin(&w, "get", json!({"project_id": P, "at_version": 5})).await;
    assert_eq!(at5["catalog"]["promotions"][0]["discount"]["value"], "0.50");
    assert_eq!(at5["catalog"]["promo_codes"][0]["code"], "HALF");
    let now = admin(&w, "get", json!({"project_id": P})).await;
    assert_eq!(
        (
            now["version"].as_i64(),
            now["catalog"]["items"].as_array().map(Vec::len)
        ),
        (Some(8), Some(0))
    );
    w.finish().await;
}

#[tokio::test]
async fn bad_admin_input_gets_a_clear_error_and_stores_nothing() {
    let w = World::start().await;
    let with_prices = |prices: Value| {
        let mut i = item("sword_1", "1");
        i["prices"] = prices;
        json!({"project_id": P, "item": i})
    };
    let promo = |percent: Value| {
        json!({"project_id": P, "promotion": {
            "id": "p", "name": "P", "date_start": "2026-01-01T00:00:00Z", "skus": ["x"],
            "discount": {"percent": percent}}})
    };
    let bytes = |v: Value| serde_json::to_vec(&v).unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "item.create",
            bytes(with_prices(
                json!([{"currency": "USD", "amount": "1", "is_default": true}, {"currency": "EUR", "amount": "1", "is_default": true}]),
            )),
            422,
            "`item.prices`: needs exactly one default price, has 2",
        ),
        (
            "item.create",
            bytes(with_prices(
                json!([{"currency": "XYZ", "amount": "1", "is_default": true}]),
            )),
            422,
            "`item.prices[0].currency`: \"XYZ\" is not an ISO 4217 currency code",
        ),
        (
            "item.create",
            bytes(with_prices(
                json!([{"currency": "USD", "amount": "-0.01", "is_default": true}]),
            )),
            422,
            "`item.prices[0].amount`: \"-0.01\" is negative",
        ),
        (
            "item.create",
            bytes(json!({"project_id": P, "item": item(&"s".repeat(256), "1")})),
            422,
            "`item.sku`",
        ),
        (
            "item.create",
            b"{\"project_id\": 900001, \"item\": {".to_vec(),
            400,
            "could not be decoded",
        ),
        ("import", b"not json".to_vec(), 400, "could not be decoded"),
        (
            "promotion.create",
            bytes(promo(json!("150"))),
            422,
            "`promotion.discount.percent`: \"150\" must be more than 0 and at most 100",
        ),
        (
            "promotion.create",
            bytes(promo(json!("0"))),
            422,
            "`promotion.discount.percent`",
        ),
        (
            "promocode.create",
            bytes(
                json!({"project_id": P, "promo_code": {"code": "C", "discount": {"percent": "10.555"}}}),
            ),
            422,
            "`promo_code.discount.percent`",
        ),
        (
            "promocode.create",
            bytes(
                json!({"project_id": P, "promo_code": {"code": "C", "discount": {"percent": "10"}, "date_start": "2027-01-01T00:00:00Z", "date_end": "2026-01-01T00:00:00Z"}}),
            ),
            422,
            "`promo_code.date_end`: must be later than `promo_code.date_start`",
        ),
        // Valid alone, but the promotion names an item the catalog does not have.
        (
            "promotion.create",
            bytes(promo(json!("10"))),
            422,
            "`promotion.skus[0]`: \"x\" is not an item",
        ),
        (
            "item.create",
            bytes(
                json!({"project_id": P, "item": {"sku": "a", "type": "spaceship", "name": {"en": "x"}}}),
            ),
            422,
            "unknown variant `spaceship`",
        ),
        (
            "item.create",
            bytes(json!({"project_id": P})),
            422,
            "missing field `item`",
        ),
        (
            "import",
            bytes(
                json!({"catalog": {"projects": [{"project_id": P, "items": [item("a", "1"), item("a", "2")]}]}}),
            ),
            422,
            "`catalog.projects[0].items[1].sku`: duplicate \"a\"",
        ),
    ];
    for (endpoint, body, status, text) in cases {
        let e = refused(&w, endpoint, body).await;
        assert_eq!((e.status, e.code), (status, 1102), "{endpoint}: {e:?}");
        assert!(
            e.text.contains(text),
            "{endpoint}: {:?} should contain {text:?}",
            e.text
        );
    }
    assert!(recorded(&w, P).await.is_empty(), "nothing is stored");
    let now = admin(&w, "get", json!({"project_id": P})).await;
    assert_eq!(now["version"], 0);
    w.finish().await;
}

fn document(bytes: &[u8]) -> CatalogDocument {
    cart_proto::admin::parse_document(bytes).unwrap()
}

#[tokio::test]
async fn the_demo_catalog_is_imported_at_start_and_import_export_round_trip() {
    let w = World::start().await;
    // The harness seeds the demo items (tests/fixtures/catalog.json).
    let demo = document(include_bytes!("../fixtures/catalog.json"));
    // Imported at start, as one version.
    let exported: CatalogDocument =
        serde_json::from_value(admin(&w, "export", json!({"project_id": 44056})).await).unwrap();
    let mut expected = demo.clone();
    expected.projects[0].items.sort_by(|a, b| a.sku.cmp(&b.sku));
    assert_eq!(exported, expected);
    assert_eq!(
        admin(&w, "get", json!({"project_id": 44056})).await["version"],
        1
    );

    // The demo catalog merges in its promotions and promo codes (its items are the same).
    let promotions: Value =
        serde_json::from_slice(include_bytes!("../../deploy/catalog.json")).unwrap();
    let merged = admin(&w, "import", json!({"catalog": promotions})).await;
    assert_eq!(merged["projects"][0]["version"], 2);
    assert_eq!(
        merged["projects"][0]["changes"].as_array().unwrap().len(),
        4
    );
    let code = admin(
        &w,
        "get",
        json!({"project_id": 44056, "kind": "promo_code", "key": "BOOSTER50"}),
    )
    .await;
    assert_eq!(
        code["document"]["bonus"],
        json!([{"sku": "com.xsolla.swords_1", "quantity": 1}])
    );
    // The same import again changes nothing.
    let again = admin(&w, "import", json!({"catalog": promotions})).await;
    assert_eq!(
        (
            again["projects"][0]["version"].as_i64(),
            again["projects"][0]["changes"].as_array().map(Vec::len)
        ),
        (Some(2), Some(0))
    );

    // Export then import elsewhere (replace) gives the same document back.
    let all = admin(&w, "export", json!({})).await;
    let mut moved: CatalogDocument = serde_json::from_value(all).unwrap();
    assert_eq!(moved.projects.len(), 1);
    moved.projects[0].project_id = P;
    admin(&w, "import", json!({"catalog": moved, "mode": "replace"})).await;
    let back: CatalogDocument =
        serde_json::from_value(admin(&w, "export", json!({"project_id": P})).await).unwrap();
    assert_eq!(back, moved);

    // A replace deletes what the document does not list.
    let mut fewer = moved.clone();
    fewer.projects[0].promotions.clear();
    fewer.projects[0].promo_codes.clear();
    fewer.projects[0].items.retain(|i| i.sku == "gold");
    let replaced = admin(&w, "import", json!({"catalog": fewer, "mode": "replace"})).await;
    let deletes = replaced["projects"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["operation"] == "delete")
        .count();
    assert_eq!(deletes, moved.projects[0].items.len() - 1 + 4);
    let back: CatalogDocument =
        serde_json::from_value(admin(&w, "export", json!({"project_id": P})).await).unwrap();
    assert_eq!(back, fewer);
    // ... and the catalog before it can still be read.
    let before = admin(&w, "get", json!({"project_id": P, "at_version": 1})).await;
    let before: cart_proto::admin::ProjectCatalog =
        serde_json::from_value(before["catalog"].clone()).unwrap();
    assert_eq!(before, moved.projects[0]);
    w.finish().await;
}

/// A merge import checks its references against the stored version it read, and writes
/// only if that version is still current: an item deleted meanwhile is never left
/// referred to by the imported promotion (the import is refused, or the delete is).
#[tokio::test]
async fn a_merge_import_racing_an_item_delete_leaves_no_dangling_reference() {
    const Q: u64 = 900_002;
    let w = World::start().await;
    for round in 0..30 {
        let sku = format!("race_{round}");
        admin(
            &w,
            "item.create",
            json!({"project_id": Q, "item": item(&sku, "1")}),
        )
        .await;
        let promotion = json!({
            "id": format!("promo_{round}"), "name": "Sale",
            "date_start": "2026-01-01T00:00:00Z", "skus": [sku], "discount": {"percent": "10"}
        });
        let import = serde_json::to_vec(&json!({"catalog": {"projects": [
            {"project_id": Q, "promotions": [promotion]}
        ]}}))
        .unwrap();
        let delete = serde_json::to_vec(&json!({"project_id": Q, "sku": sku})).unwrap();
        let send = |endpoint: &'static str, body: Vec<u8>| {
            let client = w.client.clone();
            async move {
                client
                    .send(
                        &format!("admin.catalog.{endpoint}"),
                        async_nats::HeaderMap::new(),
                        body,
                    )
                    .await
                    .is_ok()
            }
        };
        let (imported, deleted) = tokio::join!(send("import", import), send("item.delete", delete));
        assert!(
            imported != deleted,
            "round {round}: exactly one of the import and the delete succeeds \
             (imported {imported}, deleted {deleted})"
        );
        let exported: CatalogDocument =
            serde_json::from_value(admin(&w, "export", json!({"project_id": Q})).await).unwrap();
        exported
            .validate()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
}
