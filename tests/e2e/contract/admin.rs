//! The catalog admin bodies against their schemas: every request sent is one the
//! request schema accepts, and every real reply (changes, import, export, get, changes
//! log) and error of a running service validates against its schema.

use cart_tests::World;
use serde_json::{json, Value};

use super::{ok, refused, Schemas};

/// A project of its own, so that its versions start at 0.
const P: u64 = 900_101;

fn item(usd: &str) -> Value {
    json!({
        "sku": "sword_1",
        "type": "virtual_good",
        "name": {"en": "Sword", "de": "Schwert"},
        "prices": [
            {"currency": "USD", "amount": usd, "is_default": true},
            {"currency": "EUR", "amount": "1.59", "country": "DE"}
        ],
        "virtual_prices": [{"sku": "gold", "amount": 100, "is_default": true}],
        "limits": {"per_user": 3, "recurrent_schedule": {"interval_type": "weekly", "day_of_week": 1, "time": "10:00:00+03:00"}},
        "periods": [{"date_from": "2026-01-01T00:00:00Z", "date_until": null}]
    })
}

fn gold() -> Value {
    json!({"sku": "gold", "type": "virtual_currency", "name": {"en": "Gold"}, "is_free": true})
}

#[test]
fn the_admin_schemas_are_not_vacuous() {
    let s = Schemas::load();
    let bare = json!({"sku": "a", "type": "virtual_good", "name": {"en": "A"}});
    assert!(!s.rejects(
        "catalog-item-request",
        &json!({"project_id": P, "item": bare})
    ));
    let mut coloured = bare.clone();
    coloured["colour"] = json!(1);
    assert!(s.rejects(
        "catalog-item-request",
        &json!({"project_id": P, "item": coloured})
    ));
    assert!(s.rejects("catalog-item-request", &json!({"item": bare})));
    let mut float = bare.clone();
    float["prices"] = json!([{"currency": "USD", "amount": 1.5}]);
    assert!(s.rejects(
        "catalog-item-request",
        &json!({"project_id": P, "item": float})
    ));
    assert!(s.rejects(
        "catalog-delete-request",
        &json!({"project_id": P, "name": "a"})
    ));
    assert!(s.rejects(
        "catalog-import-request",
        &json!({"catalog": {"projects": []}, "mode": "wipe"})
    ));
    assert!(s.rejects(
        "catalog-get-request",
        &json!({"project_id": P, "kind": "sku", "key": "a"})
    ));
    assert!(s.rejects(
        "catalog-change-reply",
        &json!({"project_id": P, "changes": []})
    ));
    let bad_op = json!({"project_id": P, "version": 1, "changes": [{"kind": "item", "key": "a", "operation": "upsert"}]});
    assert!(s.rejects("catalog-change-reply", &bad_op));
    assert!(s.rejects("catalog-get-reply", &json!({"project_id": P, "version": 1})));
    assert!(s.rejects(
        "catalog-changes-reply",
        &json!({"project_id": P, "changes": [{"version": 1}]})
    ));
    assert!(s.rejects("catalog-document", &json!({"projects": [{"items": []}]})));
}

/// Every `admin.catalog.*` operation of docs/asyncapi.yaml replies with one of the
/// generated catalog schemas (or an error), none with a plain object.
#[test]
fn every_catalog_admin_operation_uses_the_generated_schemas() {
    let text = std::fs::read_to_string(super::docs().join("asyncapi.yaml")).unwrap();
    let operations: Vec<&str> = text.split("\n  admin-catalog-").skip(1).collect();
    assert_eq!(operations.len(), 13, "13 catalog admin operations");
    assert!(
        !text.contains("AdminCatalogRequest"),
        "a plain admin request remains"
    );
    for operation in operations {
        let block = operation.split("\n  admin-webhook-").next().unwrap();
        let replies: Vec<&str> = block
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- $ref: '#/channels/Inbox/messages/"))
            .collect();
        assert_eq!(replies.len(), 2, "{block}");
        assert!(replies[0].starts_with("Catalog"), "{block}");
        assert_eq!(replies[1], "Error'", "{block}");
    }
}

#[tokio::test]
async fn real_admin_replies_and_errors_match_the_schemas() {
    let s = Schemas::load();
    let w = World::start().await;
    let change = |endpoint: &'static str, body: Value| {
        let (s, w) = (&s, &w);
        async move {
            let request = match endpoint {
                e if e.ends_with(".delete") => "catalog-delete-request",
                e if e.starts_with("item.") => "catalog-item-request",
                e if e.starts_with("promotion.") => "catalog-promotion-request",
                _ => "catalog-promo-code-request",
            };
            let subject = format!("admin.catalog.{endpoint}");
            ok(s, w, &subject, request, body, "catalog-change-reply").await
        }
    };

    // Creates, updates and deletes of every kind of entity.
    change("item.create", json!({"project_id": P, "item": gold()})).await;
    let created = change(
        "item.create",
        json!({"project_id": P, "item": item("1.99")}),
    )
    .await;
    assert_eq!(created["version"], 2);
    // `country_iso` is read as `country`: the schema takes it too.
    let mut updated = item("2.49");
    updated["prices"][1] = json!({"currency": "EUR", "amount": "1.59", "country_iso": "DE"});
    let update = json!({"project_id": P, "expected_version": 2, "item": updated});
    change("item.update", update).await;
    let promotion = json!({"id": "half", "name": "Half", "date_start": "2026-01-01T00:00:00Z",
        "skus": ["sword_1"], "discount": {"percent": "50"}, "limits": {"per_user": 1}});
    change(
        "promotion.create",
        json!({"project_id": P, "promotion": promotion}),
    )
    .await;
    let code = json!({"code": "WINTER", "discount": {"percent": "10"}, "bonus": [{"sku": "gold", "quantity": 5}],
        "price_conditions": [{"operator": "ge", "value": "1"}], "excluded_promotions": ["half"]});
    change(
        "promocode.create",
        json!({"project_id": P, "promo_code": code}),
    )
    .await;
    change(
        "promocode.delete",
        json!({"project_id": P, "code": "WINTER"}),
    )
    .await;
    let deleted = change("promotion.delete", json!({"project_id": P, "id": "half"})).await;
    assert_eq!(deleted["changes"][0]["operation"], "delete");

    // Reads: the whole catalog, one entity, one as it was, the export and the log.
    let get = |body: Value| {
        ok(
            &s,
            &w,
            "admin.catalog.get",
            "catalog-get-request",
            body,
            "catalog-get-reply",
        )
    };
    let whole = get(json!({"project_id": P})).await;
    assert_eq!(whole["catalog"]["items"].as_array().unwrap().len(), 2);
    let one = get(json!({"project_id": P, "kind": "item", "key": "sword_1"})).await;
    assert_eq!(one["document"]["prices"][0]["amount"], "2.49");
    let then =
        get(json!({"project_id": P, "kind": "promotion", "key": "half", "at_version": 4})).await;
    assert_eq!(then["document"]["discount"]["percent"], "50");
    let by_time =
        json!({"project_id": P, "kind": "item", "key": "gold", "at_time": "2999-01-01T00:00:00Z"});
    get(by_time).await;
    let exported = ok(
        &s,
        &w,
        "admin.catalog.export",
        "catalog-export-request",
        json!({"project_id": P}),
        "catalog-document",
    )
    .await;
    let all = ok(
        &s,
        &w,
        "admin.catalog.export",
        "catalog-export-request",
        json!({}),
        "catalog-document",
    )
    .await;
    assert!(all["projects"].as_array().unwrap().len() > 1, "{all}");
    let log = json!({"project_id": P, "after_version": 0, "limit": 100});
    let changes = ok(
        &s,
        &w,
        "admin.catalog.changes",
        "catalog-changes-request",
        log,
        "catalog-changes-reply",
    )
    .await;
    let records = changes["changes"].as_array().unwrap();
    assert_eq!(records.len(), 7);
    assert_eq!(
        records[6]["document"],
        Value::Null,
        "a delete has no document"
    );

    // An export is an import: its document is one an import request may carry.
    let merge = json!({"catalog": exported, "mode": "merge"});
    let imported = ok(
        &s,
        &w,
        "admin.catalog.import",
        "catalog-import-request",
        merge,
        "catalog-import-reply",
    )
    .await;
    assert_eq!(imported["mode"], "merge");
    let replace = json!({"catalog": exported, "mode": "replace", "expected_version": imported["projects"][0]["version"]});
    ok(
        &s,
        &w,
        "admin.catalog.import",
        "catalog-import-request",
        replace,
        "catalog-import-reply",
    )
    .await;

    // Errors: a field, a missing entity, a stale version, a body that is not JSON-shaped.
    let mut bad = item("1.99");
    bad["prices"] = json!([{"currency": "XYZ", "amount": "1"}]);
    let bad = json!({"project_id": P, "item": bad});
    let e = refused(&s, &w, "admin.catalog.item.update", bad).await;
    assert_eq!(e["statusCode"], 422);
    let e = refused(
        &s,
        &w,
        "admin.catalog.get",
        json!({"project_id": P, "kind": "item", "key": "nope"}),
    )
    .await;
    assert_eq!(e["statusCode"], 404);
    let stale = json!({"project_id": P, "expected_version": 1, "sku": "sword_1"});
    let e = refused(&s, &w, "admin.catalog.item.delete", stale).await;
    assert_eq!(e["statusCode"], 409);
    let e = refused(&s, &w, "admin.catalog.changes", json!({"project_id": "P"})).await;
    assert_eq!(e["statusCode"], 422);
    w.finish().await;
}
