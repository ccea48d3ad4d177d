use std::str::FromStr;

use cart_domain as d;
use rust_decimal::Decimal;

use super::super::{decode, CatalogDocument, Item, PromoCode, Promotion};
use super::*;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn at(s: &str) -> d::Timestamp {
    d::Timestamp::from_unix(parse_date("t", s).unwrap())
}

#[test]
fn an_item_converts_with_every_field() {
    let item: Item = decode(
        br#"{
        "sku": "booster", "type": "virtual_good", "virtual_item_type": "consumable",
        "name": {"en": "Booster", "de": "Verstaerker"}, "description": {"en": "Fast"},
        "image_url": "https://cdn/b.png",
        "groups": [{"external_id": "g", "name": "G"}],
        "attributes": [{"external_id": "a", "name": "A", "values": [{"external_id": "v", "value": "V"}]}],
        "inventory_options": {"consumable": {"usages_count": 3}, "expiration_period": {"type": "day", "value": 7}},
        "prices": [
            {"currency": "USD", "amount": "10", "is_default": true},
            {"currency": "USD", "amount": "8.50", "country": "DE"},
            {"currency": "EUR", "amount": "9", "is_enabled": false}
        ],
        "virtual_prices": [{"sku": "gold", "amount": 100, "is_default": true}],
        "enabled": false,
        "limits": {"per_user": 5, "per_item": 1000, "recurrent_schedule":
            {"interval_type": "weekly", "day_of_week": 2, "time": "03:00:00+03:00"}},
        "periods": [{"date_from": "2026-01-01T00:00:00Z", "date_until": "2026-02-01T12:00:00+02:00"}],
        "vp_rewards": [{"item_id": 7, "sku": "vp", "amount": 20, "name": "VP", "is_clan": true}]
    }"#,
    )
    .unwrap();
    let got = d::Item::try_from(&item).unwrap();
    assert_eq!(got.sku.as_str(), "booster");
    assert_eq!(got.item_type, "virtual_good");
    assert_eq!(got.virtual_item_type.as_deref(), Some("consumable"));
    assert_eq!(got.name["de"], "Verstaerker");
    assert_eq!(got.image_url, "https://cdn/b.png");
    assert_eq!(got.prices.len(), 2, "the disabled EUR price is dropped");
    assert_eq!(got.prices[1].country.as_deref(), Some("DE"));
    assert_eq!(got.prices[1].amount, dec("8.50"));
    let usd = d::Currency::parse("USD").unwrap();
    assert_eq!(got.price_for(&usd, Some("de")).unwrap().amount, dec("8.50"));
    assert_eq!(got.price_for(&usd, Some("US")).unwrap().amount, dec("10"));
    assert_eq!(got.virtual_prices[0].amount, 100);
    assert!(!got.enabled);
    assert_eq!(got.groups[0].external_id, "g");
    assert_eq!(got.attributes[0].values[0].value, "V");
    assert_eq!(
        got.inventory_options.expiration_period,
        Some(d::ExpirationPeriod {
            unit: d::PeriodUnit::Day,
            value: 7
        })
    );
    assert_eq!(got.inventory_options.consumable.unwrap().usages_count, 3);
    let per_user = got.limits.per_user.clone().unwrap();
    assert_eq!(per_user.total, 5);
    assert_eq!(
        per_user.recurrent_schedule,
        Some(d::RecurrentSchedule {
            interval: d::Interval::Weekly { day_of_week: 2 },
            hour: 3,
            utc_offset_minutes: 180,
        })
    );
    assert_eq!(got.limits.per_item, Some(1000));
    assert_eq!(got.periods[0].from, d::Timestamp::from_unix(1_767_225_600));
    assert_eq!(
        got.periods[0].until,
        Some(d::Timestamp::from_unix(1_769_940_000))
    );
    assert!(got.on_sale(at("2026-01-15T00:00:00Z")));
    assert!(!got.on_sale(at("2026-02-01T10:00:00Z")));
    assert_eq!(got.vp_rewards[0].item_id, 7);
    assert!(got.vp_rewards[0].is_clan);
}

#[test]
fn recurrent_schedules_convert_hour_offset_and_day() {
    let schedule = |json: &str| {
        let s: super::super::RecurrentSchedule = decode(json.as_bytes()).unwrap();
        d::RecurrentSchedule::try_from(&s)
    };
    assert_eq!(
        schedule(r#"{"interval_type": "daily", "time": "00:00:00+00:00"}"#).unwrap(),
        d::RecurrentSchedule {
            interval: d::Interval::Daily,
            hour: 0,
            utc_offset_minutes: 0
        }
    );
    assert_eq!(
        schedule(r#"{"interval_type": "monthly", "day_of_month": 31, "time": "23:00:00-05:30"}"#)
            .unwrap(),
        d::RecurrentSchedule {
            interval: d::Interval::Monthly { day_of_month: 31 },
            hour: 23,
            utc_offset_minutes: -330
        }
    );
    let e = schedule(r#"{"interval_type": "daily", "time": "03:30:00+00:00"}"#).unwrap_err();
    assert_eq!(e.field(), "time");
    let e = schedule(r#"{"interval_type": "weekly", "time": "03:00:00+00:00"}"#).unwrap_err();
    assert_eq!(e.field(), "day_of_week");
    // The converted schedule resets where the domain says: daily at 03:00 Moscow time
    // is 00:00 UTC.
    let daily = schedule(r#"{"interval_type": "daily", "time": "03:00:00+03:00"}"#).unwrap();
    assert_eq!(
        daily.next_reset(at("2026-03-10T12:00:00Z")),
        at("2026-03-11T00:00:00Z")
    );
}

#[test]
fn promotions_convert_discounts_bonuses_windows_and_limits() {
    let p: Promotion = decode(
        br#"{"id": "merch_sale", "name": "Merch", "date_start": "2026-01-01T00:00:00Z",
        "date_end": "2027-01-01T00:00:00Z", "skus": ["cup01", "t-shirt01"],
        "discount": {"percent": "10"}, "limits": {"per_user": 5}}"#,
    )
    .unwrap();
    let got = d::Promotion::try_from(&p).unwrap();
    assert_eq!(got.id, promotion_id("merch_sale"));
    assert_eq!(got.name["en"], "Merch");
    assert_eq!(got.window.start, Some(at("2026-01-01T00:00:00Z")));
    assert_eq!(got.window.end, Some(at("2027-01-01T00:00:00Z")));
    assert_eq!(got.skus.len(), 2);
    assert_eq!(
        got.kind,
        d::PromotionKind::Discount(d::Discount::Percent(dec("10")))
    );
    assert_eq!(got.per_user_limit, Some(5));

    let p: Promotion = decode(
        br#"{"id": "42", "name": "Off", "date_start": "2026-01-01T00:00:00Z",
        "skus": ["cup01"], "discount": {"value": "1.5"}}"#,
    )
    .unwrap();
    let got = d::Promotion::try_from(&p).unwrap();
    assert_eq!(got.id, 42);
    assert_eq!(got.window.end, None);
    assert_eq!(
        got.kind,
        d::PromotionKind::Discount(d::Discount::Value(dec("1.5")))
    );

    let p: Promotion = decode(
        br#"{"id": "starter_bonus", "name": "Sword", "date_start": "2026-01-01T00:00:00Z",
        "skus": ["starter_pack"], "bonus": [{"sku": "sword_common", "quantity": 2}]}"#,
    )
    .unwrap();
    let got = d::Promotion::try_from(&p).unwrap();
    assert_eq!(
        got.kind,
        d::PromotionKind::Bonus {
            items: vec![(d::Sku::parse("sword_common").unwrap(), 2)]
        }
    );
}

#[test]
fn promotion_ids_are_stable_and_json_safe() {
    assert_eq!(promotion_id("17"), 17);
    assert_eq!(promotion_id("merch_sale"), promotion_id("merch_sale"));
    assert_ne!(promotion_id("merch_sale"), promotion_id("starter_bonus"));
    assert!(promotion_id("merch_sale") < 1 << 53);
}

#[test]
fn promo_codes_convert_every_knob() {
    let c: PromoCode = decode(
        br#"{"code": "BOOSTER50", "name": "Half price",
        "date_start": "2026-12-01T00:00:00Z", "date_end": "2027-03-01T00:00:00Z",
        "redeem_total_limit": 10000, "redeem_user_limit": 1, "redeem_code_limit": 2,
        "discount": {"percent": "10"},
        "bonus": [{"sku": "com.xsolla.swords_1", "quantity": 1}],
        "unit_items": [{"sku": "game_1", "items": ["game_1_steam", "game_1_origin"]}],
        "price_conditions": [{"operator": "ge", "value": "10"}],
        "item_price_conditions": [{"operator": "lt", "value": "100"}],
        "excluded_promotions": ["merch_sale"], "regions": ["US", "DE"]}"#,
    )
    .unwrap();
    let got = d::PromoCode::try_from(&c).unwrap();
    assert_eq!(got.code, "BOOSTER50");
    assert_eq!(got.name["en"], "Half price");
    assert_eq!(got.window.start, Some(at("2026-12-01T00:00:00Z")));
    assert_eq!(got.window.end, Some(at("2027-03-01T00:00:00Z")));
    assert_eq!(
        (
            got.redeem_total_limit,
            got.redeem_user_limit,
            got.redeem_code_limit
        ),
        (Some(10000), Some(1), Some(2))
    );
    assert_eq!(got.discount_percent, Some(dec("10")));
    assert_eq!(got.bonus[0].1, 1);
    let unit = d::Sku::parse("game_1").unwrap();
    assert_eq!(got.selectable[&unit].len(), 2);
    assert_eq!(got.price_conditions[0].op, d::CompareOp::Ge);
    assert_eq!(got.price_conditions[0].value, dec("10"));
    assert_eq!(got.item_price_conditions[0].op, d::CompareOp::Lt);
    assert!(got
        .excluded_promotions
        .contains(&promotion_id("merch_sale")));
    assert!(got.countries.contains("DE"));

    let c: PromoCode = decode(
        br#"{"code": "B", "discounted_items": [{"sku": "x", "discount": {"percent": "50"}}]}"#,
    )
    .unwrap();
    let got = d::PromoCode::try_from(&c).unwrap();
    assert_eq!(got.window, d::DateWindow::default());
    assert_eq!(got.discounted_items[0].1, dec("50"));
    assert_eq!(got.name(&d::Locale::parse("en").unwrap()), "B");
}

#[test]
fn the_demo_catalog_converts_with_named_virtual_prices() {
    let doc: CatalogDocument =
        decode(include_bytes!("../../../../../deploy/catalog.json")).unwrap();
    let catalog = d::Catalog::try_from(&doc).unwrap();
    let project = d::ProjectId::parse(44056).unwrap();
    let booster = catalog
        .item(
            project,
            &d::Sku::parse("com.xsolla.booster_mega_1").unwrap(),
        )
        .unwrap();
    assert_eq!(booster.virtual_prices[0].name, "Gold");
    assert!(booster.virtual_prices[0].image_url.is_some());
    assert!(catalog.is_listed(project, &d::Sku::parse("cup01").unwrap()));
}
