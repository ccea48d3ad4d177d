use serde_json::json;

use super::*;

fn item() -> serde_json::Value {
    json!({
        "sku": "sword_1",
        "type": "virtual_good",
        "name": {"en": "Sword"},
        "prices": [
            {"currency": "USD", "amount": "1.99", "is_default": true},
            {"currency": "EUR", "amount": "1.79"},
            {"currency": "EUR", "amount": "1.59", "country": "DE"}
        ]
    })
}

fn check(value: serde_json::Value) -> Result<Item, String> {
    let item: Item = serde_json::from_value(value).map_err(|e| e.to_string())?;
    item.validate().map_err(|e| e.to_string())?;
    Ok(item)
}

fn with(patch: serde_json::Value) -> serde_json::Value {
    let mut v = item();
    for (k, x) in patch.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[test]
fn the_iso_list_is_sorted_and_of_three_uppercase_letters() {
    assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
    assert!(ISO_4217
        .iter()
        .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
    for c in ["USD", "EUR", "GBP", "JPY", "XCG", "ZWG"] {
        assert!(ISO_4217.contains(&c), "{c}");
    }
}

#[test]
fn a_good_item_passes_and_round_trips() {
    let item = check(item()).unwrap();
    let back: Item = serde_json::from_value(serde_json::to_value(&item).unwrap()).unwrap();
    assert_eq!(item, back);
    assert_eq!(
        serde_json::to_value(&item).unwrap()["prices"][1]["amount"],
        "1.79"
    );
}

#[test]
fn bad_items_are_refused_naming_the_field() {
    let prices = |p: serde_json::Value| with(json!({ "prices": p }));
    let cases = [
        (
            prices(
                json!([{"currency": "USD", "amount": "1", "is_default": true},
                          {"currency": "EUR", "amount": "1", "is_default": true}]),
            ),
            "`prices`: needs exactly one default price, has 2",
        ),
        (
            prices(json!([{"currency": "USD", "amount": "1"}])),
            "`prices`: needs exactly one default price, has 0",
        ),
        (
            prices(
                json!([{"currency": "USD", "amount": "1", "is_default": true, "country": "US"}]),
            ),
            "`prices`: the default price must not have a country",
        ),
        (
            prices(json!([{"currency": "DOLLARS", "amount": "1", "is_default": true}])),
            "`prices[0].currency`: \"DOLLARS\" is not an ISO 4217",
        ),
        (
            prices(json!([{"currency": "ABC", "amount": "1", "is_default": true}])),
            "`prices[0].currency`: \"ABC\" is not an ISO 4217",
        ),
        (
            prices(json!([{"currency": "USD", "amount": "-1", "is_default": true}])),
            "`prices[0].amount`: \"-1\" is negative",
        ),
        (
            prices(json!([{"currency": "USD", "amount": "1.00001", "is_default": true}])),
            "`prices[0].amount`: \"1.00001\" has more than 4 decimals",
        ),
        (
            prices(
                json!([{"currency": "USD", "amount": "1", "is_default": true},
                          {"currency": "EUR", "amount": "2", "country": "de"}]),
            ),
            "`prices[1].country`",
        ),
        (
            with(json!({"sku": "a b"})),
            "`sku`: \"a b\" is not a valid SKU",
        ),
        (with(json!({"sku": "a".repeat(256)})), "is not a valid SKU"),
        (with(json!({"sku": ""})), "is not a valid SKU"),
        (with(json!({"name": {}})), "`name` is required"),
        (
            with(json!({"limits": {"per_user": 0}})),
            "`limits.per_user`: must be at least 1",
        ),
        (
            with(
                json!({"limits": {"per_user": 5, "recurrent_schedule": {"interval_type": "weekly", "time": "10:00:00+03:00"}}}),
            ),
            "`limits.recurrent_schedule.day_of_week`",
        ),
        (
            with(
                json!({"limits": {"per_user": 5, "recurrent_schedule": {"interval_type": "daily", "time": "10:30:00+03:00"}}}),
            ),
            "`limits.recurrent_schedule.time`",
        ),
        (
            with(
                json!({"periods": [{"date_from": "2026-02-01T00:00:00Z", "date_until": "2026-01-01T00:00:00Z"}]}),
            ),
            "`periods[0].date_until`: must be later than `periods[0].date_from`",
        ),
        (
            with(json!({"periods": [{"date_from": "yesterday"}]})),
            "`periods[0].date_from`: \"yesterday\" is not an RFC 3339",
        ),
    ];
    for (value, expected) in cases {
        let e = check(value.clone()).unwrap_err();
        assert!(
            e.contains(expected),
            "{e}\n  should contain {expected}\n  for {value}"
        );
    }
    // Shape errors from serde name the field too.
    let e = check(prices(
        json!([{"currency": "USD", "amount": 1.5, "is_default": true}]),
    ))
    .unwrap_err();
    assert!(e.contains("decimal string"), "{e}");
    let e = check(with(json!({"type": "spaceship"}))).unwrap_err();
    assert!(e.contains("unknown variant `spaceship`"), "{e}");
    let e = check(with(json!({"prise": 1}))).unwrap_err();
    assert!(e.contains("unknown field `prise`"), "{e}");
}

#[test]
fn whole_numbers_and_full_item_shape_are_accepted() {
    check(with(json!({
        "prices": [{"currency": "USD", "amount": 5, "is_default": true, "is_enabled": true}],
        "virtual_item_type": "non_renewing_subscription",
        "inventory_options": {"consumable": {"usages_count": 1}, "expiration_period": {"type": "day", "value": 30}},
        "limits": {"per_user": 5, "per_item": 1000,
                   "recurrent_schedule": {"interval_type": "monthly", "day_of_month": 31, "time": "00:00:00-05:00"}},
        "periods": [{"date_from": "2026-01-01T00:00:00+01:00", "date_until": null}],
        "vp_rewards": [{"item_id": 1, "sku": "vp", "amount": 10, "is_clan": false}],
        "enabled": false,
        "is_free": false
    })))
    .unwrap();
}

#[test]
fn percents_are_in_range_with_two_decimals() {
    let promo = |percent: serde_json::Value| -> Result<(), String> {
        let p: Promotion = serde_json::from_value(json!({
            "id": "p1", "name": "Sale", "date_start": "2026-01-01T00:00:00Z",
            "skus": ["sword_1"], "discount": {"percent": percent}
        }))
        .map_err(|e| e.to_string())?;
        p.validate().map_err(|e| e.to_string())
    };
    for ok in [
        json!("0.01"),
        json!("10"),
        json!("100"),
        json!(50),
        json!("12.50"),
    ] {
        promo(ok.clone()).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        json!("0"),
        json!("100.01"),
        json!("-5"),
        json!("10.001"),
        json!(101),
    ] {
        let e = promo(bad.clone()).unwrap_err();
        assert!(e.contains("`discount.percent`"), "{bad}: {e}");
    }
}

#[test]
fn promotions_and_promo_codes_are_checked() {
    let p: Promotion = serde_json::from_value(json!({
        "id": "p1", "name": "Sale", "date_start": "2026-02-01T00:00:00Z",
        "date_end": "2026-01-01T00:00:00Z", "skus": ["a"], "discount": {"percent": "10"}
    }))
    .unwrap();
    assert_eq!(p.validate().unwrap_err().field(), "date_end");
    let p: Promotion = serde_json::from_value(json!({
        "id": "p1", "name": "Sale", "date_start": "2026-01-01T00:00:00Z",
        "skus": ["a"], "discount": {"percent": "10"}, "bonus": [{"sku": "b", "quantity": 1}]
    }))
    .unwrap();
    assert!(p.validate().unwrap_err().to_string().contains("not both"));

    let code: PromoCode = serde_json::from_value(json!({
        "code": "WINTER2026", "discount": {"percent": "10"},
        "price_conditions": [{"operator": "ge", "value": "10.5"}], "regions": ["US", "DE"]
    }))
    .unwrap();
    code.validate().unwrap();
    let code: PromoCode =
        serde_json::from_value(json!({"code": "NOTHING", "redeem_user_limit": 1})).unwrap();
    assert_eq!(code.validate().unwrap_err().field(), "discount");
    let code: PromoCode = serde_json::from_value(json!({
        "code": "X", "discount": {"percent": "10"}, "redeem_total_limit": 0
    }))
    .unwrap();
    assert_eq!(code.validate().unwrap_err().field(), "redeem_total_limit");
    let e = serde_json::from_value::<PromoCode>(json!({
        "code": "X", "price_conditions": [{"operator": "approx", "value": "1"}]
    }))
    .unwrap_err();
    assert!(e.to_string().contains("unknown variant `approx`"));
}

#[test]
fn a_catalog_checks_duplicates_and_references() {
    let doc = |items: serde_json::Value, codes: serde_json::Value| {
        let bytes = serde_json::to_vec(&json!({"projects": [
            {"project_id": 1, "items": items, "promo_codes": codes}
        ]}))
        .unwrap();
        parse_document(&bytes).map_err(|e| e.to_string())
    };
    let e = doc(json!([item(), item()]), json!([])).unwrap_err();
    assert!(
        e.contains("`projects[0].items[1].sku`: duplicate \"sword_1\""),
        "{e}"
    );
    let e = doc(
        json!([with(
            json!({"virtual_prices": [{"sku": "gold", "amount": 5, "is_default": true}]})
        )]),
        json!([]),
    )
    .unwrap_err();
    assert!(
        e.contains("`projects[0].items[0].virtual_prices[0].sku`"),
        "{e}"
    );
    let e = doc(
        json!([item()]),
        json!([{"code": "C", "bonus": [{"sku": "nope", "quantity": 1}]}]),
    )
    .unwrap_err();
    assert!(
        e.contains("`projects[0].promo_codes[0].bonus[0].sku`: \"nope\" is not an item"),
        "{e}"
    );
    doc(
        json!([item()]),
        json!([{"code": "C", "bonus": [{"sku": "sword_1", "quantity": 1}]}]),
    )
    .unwrap();
}

#[test]
fn the_demo_catalog_is_valid_and_round_trips() {
    let bytes = include_bytes!("../../../../deploy/catalog.json");
    let doc = parse_document(bytes).unwrap();
    assert!(!doc.projects[0].items.is_empty());
    let again = parse_document(&serde_json::to_vec(&doc).unwrap()).unwrap();
    assert_eq!(doc, again);
}

#[test]
fn dates_are_read_by_the_one_date_parser() {
    assert_eq!(parse_date("f", "1970-01-01T00:00:00Z"), Ok(0));
    assert_eq!(parse_date("f", "1970-01-01T01:00:00+01:00"), Ok(0));
    assert_eq!(
        parse_date("f", "2026-01-01T00:00:00.123Z"),
        Ok(1_767_225_600)
    );
    for bad in [
        "2026-02-30T00:00:00Z",
        "2026-01-01",
        "2026-01-01T00:00:00",
        "x",
        "now",
        "epoch",
        "infinity",
    ] {
        assert_eq!(
            parse_date("periods[0].date_from", bad),
            Err(ValidationError::Date {
                field: "periods[0].date_from".to_owned(),
                value: bad.to_owned()
            }),
            "{bad}"
        );
    }
}

#[test]
fn limits_above_u32_are_refused_and_a_valid_document_converts() {
    let big = i64::from(u32::MAX) + 1;
    let e = check(with(json!({"limits": {"per_user": big}}))).unwrap_err();
    assert!(e.contains("`limits.per_user`"), "{e}");
    let e = check(with(json!({"limits": {"per_item": big}}))).unwrap_err();
    assert!(e.contains("`limits.per_item`"), "{e}");
    check(with(json!({"limits": {"per_item": i64::from(u32::MAX)}}))).unwrap();
    let p: Promotion = serde_json::from_value(json!({
        "id": "p1", "name": "Sale", "date_start": "2026-01-01T00:00:00Z",
        "skus": ["a"], "bonus": [{"sku": "b", "quantity": big}]
    }))
    .unwrap();
    assert_eq!(p.validate().unwrap_err().field(), "bonus[0].quantity");
    for field in [
        "redeem_total_limit",
        "redeem_user_limit",
        "redeem_code_limit",
    ] {
        let mut v = json!({"code": "X", "discount": {"percent": "10"}});
        v[field] = json!(big);
        let code: PromoCode = serde_json::from_value(v).unwrap();
        assert_eq!(code.validate().unwrap_err().field(), field);
    }
    let bytes = include_bytes!("../../../../deploy/catalog.json");
    let doc = parse_document(bytes).unwrap();
    cart_domain::Catalog::try_from(&doc).unwrap();
}

#[test]
fn promotion_ids_map_to_distinct_domain_ids() {
    let promotion = |id: &str| {
        json!({
            "id": id, "name": "Sale", "date_start": "2026-01-01T00:00:00Z",
            "skus": ["sword_1"], "discount": {"percent": "10"}
        })
    };
    let check_promotion = |id: &str| {
        serde_json::from_value::<Promotion>(promotion(id))
            .unwrap()
            .validate()
    };
    check_promotion("7").unwrap();
    check_promotion("0").unwrap();
    check_promotion("summer_7").unwrap();
    check_promotion(&((1_u64 << 53) - 1).to_string()).unwrap();
    for bad in ["07", "007", "9007199254740992", "99999999999999999999"] {
        assert_eq!(check_promotion(bad).unwrap_err().field(), "id", "{bad}");
    }
    assert_eq!(promotion_id("7"), 7);
    assert_ne!(promotion_id("07"), 7);
    assert!(promotion_id("9007199254740993") < 1 << 53);

    // Two ids of one project with the same domain id: a hash equal to a number.
    let hashed = promotion_id("summer_sale");
    let bytes = serde_json::to_vec(&json!({"projects": [{
        "project_id": 1, "items": [item()],
        "promotions": [promotion("summer_sale"), promotion(&hashed.to_string())]
    }]}))
    .unwrap();
    let e = parse_document(&bytes).unwrap_err().to_string();
    assert!(
        e.contains("`projects[0].promotions[1].id`: duplicate"),
        "{e}"
    );
}

#[test]
fn amounts_and_discount_values_are_capped() {
    let price =
        |a: &str| with(json!({"prices": [{"currency": "USD", "amount": a, "is_default": true}]}));
    check(price("1000000000000")).unwrap();
    let e = check(price("1000000000000.0001")).unwrap_err();
    assert!(
        e.contains("`prices[0].amount`") && e.contains("more than"),
        "{e}"
    );
    let promotion = |v: &str| {
        serde_json::from_value::<Promotion>(json!({
            "id": "p1", "name": "Sale", "date_start": "2026-01-01T00:00:00Z",
            "skus": ["sword_1"], "discount": {"value": v}
        }))
        .unwrap()
    };
    promotion("1000000000000").validate().unwrap();
    assert_eq!(
        promotion("79000000000000000000000000000")
            .validate()
            .unwrap_err()
            .field(),
        "discount.value"
    );
    let code: PromoCode = serde_json::from_value(json!({
        "code": "X", "discount": {"percent": "10"},
        "price_conditions": [{"operator": "ge", "value": "1000000000001"}]
    }))
    .unwrap();
    assert_eq!(
        code.validate().unwrap_err().field(),
        "price_conditions[0].value"
    );
}

#[test]
fn the_default_price_is_enabled_and_a_paid_item_has_a_price() {
    let e = check(with(json!({"prices": [
        {"currency": "USD", "amount": "1", "is_default": true, "is_enabled": false},
        {"currency": "EUR", "amount": "1"}
    ]})))
    .unwrap_err();
    assert!(
        e.contains("`prices`: the default price must be enabled"),
        "{e}"
    );
    let e = check(with(json!({"prices": []}))).unwrap_err();
    assert!(e.contains("`prices`: an item that is not free"), "{e}");
    check(with(json!({"prices": [], "is_free": true}))).unwrap();
    check(with(json!({"prices": [
        {"currency": "USD", "amount": "1", "is_default": true},
        {"currency": "EUR", "amount": "1", "is_enabled": false}
    ]})))
    .unwrap();
}

#[test]
fn admin_bodies_are_objects_without_nul() {
    let e = decode::<CatalogDocument>(br#"[[]]"#).unwrap_err();
    assert!(
        matches!(&e, DecodeError::Shape(e) if e.to_string().contains("one JSON object, not an array")),
        "{e}"
    );
    let mut doc = json!({"projects": [{"project_id": 1, "items": [item()]}]});
    doc["projects"][0]["items"][0]["description"] = json!({"en": "two\nlines\tand a tab"});
    assert!(parse_document(&serde_json::to_vec(&doc).unwrap()).is_ok());
    doc["projects"][0]["items"][0]["description"] = json!({"en": "nul\u{0}"});
    let e = parse_document(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
    let DecodeError::Invalid(e) = e else {
        panic!("{e}")
    };
    assert_eq!(e.field(), "projects[0].items[0].description.en");
    doc["projects"][0]["items"][0]["description"] = json!({"e\nn": "x"});
    let e = parse_document(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
    assert!(
        matches!(&e, DecodeError::Invalid(v) if v.field() == r#"projects[0].items[0].description["e\nn"]"#),
        "{e}"
    );
}

#[test]
fn admin_request_bodies_decode_into_checked_values() {
    let body = serde_json::to_vec(&json!({"project_id": 7, "item": item()})).unwrap();
    let change = request::decode_item(&body).unwrap();
    assert_eq!(
        (change.project.get(), change.subject.sku.as_str()),
        (7, "sword_1")
    );
    let mut bad = item();
    bad["prices"][0]["currency"] = json!("XYZ");
    let body = serde_json::to_vec(&json!({"project_id": 7, "item": bad})).unwrap();
    let e = request::decode_item(&body).unwrap_err();
    assert_eq!((e.status, e.code), (422, 1102));
    assert!(e.message().contains("`item.prices[0].currency`"), "{e}");
    for body in [&br#"[7, {"sku": "a"}]"#[..], br#"[7, "a"]"#, b"null"] {
        let e = request::decode_item(body).unwrap_err();
        assert_eq!(e.status, 422, "{e}");
        let e = request::decode_delete(body, request::KeyField::Sku).unwrap_err();
        assert!(e.message().contains("one JSON object"), "{e}");
    }
    let e = request::decode_delete(
        br#"{"project_id":7,"sku":"a\u0000"}"#,
        request::KeyField::Sku,
    )
    .unwrap_err();
    assert!(e.message().contains("`sku`"), "{e}");
    let key =
        request::decode_delete(br#"{"project_id":7,"code":"C"}"#, request::KeyField::Code).unwrap();
    assert_eq!(key.subject, "C");
    assert!(
        request::decode_delete(br#"{"project_id":7,"sku":"a"}"#, request::KeyField::Code).is_err()
    );
    assert_eq!(request::decode_export(b"  ").unwrap(), None);
    assert!(request::decode_export(br#"{"project_id":0}"#).is_err());
}

#[test]
fn admin_get_reads_at_time_with_the_date_parser() {
    let get = request::decode_get(
        br#"{"project_id":7,"at_time":"2026-01-01T01:00:00+01:00","kind":"item","key":"a"}"#,
    )
    .unwrap();
    assert_eq!(
        get.at,
        Some(request::CatalogPoint::Time(
            cart_domain::DateTime::parse("2026-01-01T00:00:00Z").unwrap()
        ))
    );
    for bad in ["now", "epoch", "infinity", "2026-01-01"] {
        let body = format!(r#"{{"project_id":7,"at_time":"{bad}"}}"#);
        let e = request::decode_get(body.as_bytes()).unwrap_err();
        assert!(e.message().contains("`at_time`"), "{e}");
    }
    assert!(request::decode_get(br#"{"project_id":7,"kind":"shoe","key":"a"}"#).is_err());
    assert!(request::decode_import(br#"{"catalog":{"projects":[]},"mode":"wipe"}"#).is_err());
    assert!(
        request::decode_import(br#"{"catalog":{"projects":[]},"mode":"replace"}"#)
            .unwrap()
            .replace
    );
    let changes = request::decode_changes(br#"{"project_id":7,"limit":99999}"#).unwrap();
    assert_eq!(changes.limit, request::MAX_CHANGES);
}
