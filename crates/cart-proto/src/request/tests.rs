//! Decoding of cart requests: what is accepted, and how each refusal reads.

use prost::Message;

use super::*;
use crate::v1;

fn json(endpoint: Endpoint, body: &str) -> Result<Request, ErrorReply> {
    decode(endpoint, Encoding::Json, body.as_bytes())
}

fn code_and_text(res: Result<Request, ErrorReply>) -> (u16, u32, String) {
    let e = res.unwrap_err();
    (e.status, e.code, e.message())
}

#[test]
fn a_full_fill_decodes_with_defaults() {
    let req = json(
        Endpoint::Fill,
        r#"{"project_id":44056,"user_id":"u1","items":[{"sku":"a","quantity":2},{"sku":"b","quantity":0}]}"#,
    )
    .unwrap();
    assert_eq!(req.scope.project.get(), 44056);
    assert_eq!(req.scope.cart, None);
    assert_eq!(req.view.currency.as_str(), "USD");
    assert_eq!(req.view.locale.as_str(), "en");
    let Action::Fill { items, replace } = req.action else {
        panic!("not a fill")
    };
    assert!(!replace);
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].1.get(), 0);
}

#[test]
fn negative_and_fractional_quantities_are_1102() {
    for q in ["-1", "1.5", "2.0", "1e3"] {
        let body = format!(r#"{{"project_id":1,"user_id":"u","sku":"a","quantity":{q}}}"#);
        let (status, code, text) = code_and_text(json(Endpoint::PutItem, &body));
        assert_eq!((status, code), (422, 1102), "quantity {q}");
        assert_eq!(
            text,
            "[0401-1102]: Item quantity must be non-negative integer"
        );
    }
    let body = r#"{"project_id":1,"user_id":"u","sku":"a","quantity":10001}"#;
    assert_eq!(code_and_text(json(Endpoint::PutItem, body)).1, 1102);
}

#[test]
fn missing_and_malformed_input_is_named() {
    let (status, code, text) = code_and_text(json(
        Endpoint::PutItem,
        r#"{"project_id":1,"user_id":"u","quantity":1}"#,
    ));
    assert_eq!((status, code), (422, 1102));
    assert!(text.contains("The property `sku` is required"), "{text}");
    let (_, _, text) = code_and_text(json(Endpoint::Get, r#"{"user_id":"u"}"#));
    assert!(text.contains("`project_id`"), "{text}");
    let (status, ..) = code_and_text(json(Endpoint::Get, "{not json"));
    assert_eq!(status, 400);
    let (status, _, text) = code_and_text(json(
        Endpoint::Get,
        r#"{"project_id":1,"user_id":"u","colour":"red"}"#,
    ));
    assert_eq!(status, 400);
    assert!(text.contains("colour"), "{text}");
    let (_, _, text) = code_and_text(json(
        Endpoint::Clear,
        r#"{"project_id":1,"user_id":"u","sku":"a"}"#,
    ));
    assert!(text.contains("not accepted by clear"), "{text}");
    let (_, _, text) = code_and_text(json(
        Endpoint::Fill,
        r#"{"project_id":1,"user_id":"u","items":[{"sku":"a"}]}"#,
    ));
    assert!(text.contains("`quantity` is required"), "{text}");
}

#[test]
fn subject_unsafe_ids_are_refused() {
    for cart in ["a.b", "a b", "*", ">", ""] {
        let body = format!(r#"{{"project_id":1,"user_id":"u","cart_id":"{cart}"}}"#);
        let res = json(Endpoint::Get, &body);
        if cart.is_empty() {
            assert_eq!(res.unwrap().scope.cart, None);
        } else {
            assert_eq!(res.unwrap_err().code, 1102, "cart id {cart:?}");
        }
    }
}

#[test]
fn too_many_fill_items_are_refused() {
    let items: Vec<String> = (0..=MAX_LINES)
        .map(|i| format!(r#"{{"sku":"s{i}","quantity":1}}"#))
        .collect();
    let body = format!(
        r#"{{"project_id":1,"user_id":"u","items":[{}]}}"#,
        items.join(",")
    );
    let e = json(Endpoint::Fill, &body).unwrap_err();
    assert_eq!((e.status, e.code), (422, 1102));
}

#[test]
fn promo_code_requests_decode_with_xsollas_cart_object() {
    let req = json(
        Endpoint::RedeemPromoCode,
        r#"{"project_id":1,"user_id":"u","coupon_code":"WINTER2026","cart":{"id":"current"},"selected_unit_items":{"game_1":"game_1_steam"},"country":"de"}"#,
    )
    .unwrap();
    assert_eq!(req.scope.cart, None);
    assert_eq!(req.view.country.as_ref().map(Country::as_str), Some("DE"));
    let Action::RedeemPromoCode {
        code,
        selected_unit_items,
    } = req.action
    else {
        panic!("not a redeem")
    };
    assert_eq!(code, "WINTER2026");
    assert_eq!(selected_unit_items.len(), 1);
    let req = json(
        Endpoint::RemovePromoCode,
        r#"{"project_id":1,"user_id":"u","cart":{"id":"c-1"}}"#,
    )
    .unwrap();
    assert_eq!(req.scope.cart.unwrap().as_str(), "c-1");
    let (status, code, text) = code_and_text(json(
        Endpoint::RedeemPromoCode,
        r#"{"project_id":1,"user_id":"u"}"#,
    ));
    assert_eq!((status, code), (422, 1102));
    assert!(
        text.contains("The property `coupon_code` is required"),
        "{text}"
    );
    let (_, code, text) = code_and_text(json(
        Endpoint::RedeemPromoCode,
        r#"{"project_id":1,"user_id":"u","coupon_code":"A","cart_id":"a","cart":{"id":"b"}}"#,
    ));
    assert_eq!(code, 1102);
    assert!(text.contains("at most one"), "{text}");
    let (_, _, text) = code_and_text(json(
        Endpoint::Get,
        r#"{"project_id":1,"user_id":"u","coupon_code":"A"}"#,
    ));
    assert!(text.contains("not accepted by get"), "{text}");
    let req = json(
        Endpoint::VerifyPromoCode,
        r#"{"project_id":1,"user_id":"u","code":"X"}"#,
    )
    .unwrap();
    assert_eq!(req.action, Action::VerifyPromoCode { code: "X".into() });
    assert!(Endpoint::VerifyPromoCode.is_query());
    assert!(!Endpoint::RedeemPromoCode.is_query());
    let m = v1::RedeemPromoCodeRequest {
        project_id: 1,
        user_id: "u".into(),
        coupon_code: "C".into(),
        cart: Some(v1::CartRef { id: "c-2".into() }),
        ..Default::default()
    };
    let req = decode(
        Endpoint::RedeemPromoCode,
        Encoding::Protobuf,
        &m.encode_to_vec(),
    )
    .unwrap();
    assert_eq!(req.scope.cart.unwrap().as_str(), "c-2");
}

#[test]
fn protobuf_requests_decode_to_the_same_values() {
    let m = v1::PutItemRequest {
        project_id: 7,
        user_id: "u".into(),
        cart_id: "c-1".into(),
        currency: "eur".into(),
        locale: "de".into(),
        sku: "a".into(),
        quantity: 3,
        country: "de".into(),
    };
    let req = decode(Endpoint::PutItem, Encoding::Protobuf, &m.encode_to_vec()).unwrap();
    assert_eq!(req.scope.cart.unwrap().as_str(), "c-1");
    assert_eq!(req.view.currency.as_str(), "EUR");
    assert_eq!(req.view.country.as_ref().map(Country::as_str), Some("DE"));
    assert!(matches!(req.action, Action::PutItem { quantity, .. } if quantity.get() == 3));
    let m = v1::PutItemRequest { quantity: -2, ..m };
    let e = decode(Endpoint::PutItem, Encoding::Protobuf, &m.encode_to_vec()).unwrap_err();
    assert_eq!(e.code, 1102);
    let e = decode(Endpoint::Fill, Encoding::Protobuf, &[0xff, 0xff, 0xff]).unwrap_err();
    assert_eq!(e.status, 400);
}

#[test]
fn cart_bodies_are_objects_only() {
    for endpoint in Endpoint::ALL {
        let e = json(endpoint, r#"[44056,"some-user"]"#).unwrap_err();
        assert_eq!((e.status, e.code), (400, 1102), "{endpoint:?}");
        assert!(e.message().contains("not an array"), "{e}");
    }
}

#[test]
fn verify_and_rewards_take_no_currency_or_locale_in_json_as_in_protobuf() {
    for endpoint in [Endpoint::VerifyPromoCode, Endpoint::PromoCodeRewards] {
        for property in [r#""currency":"EUR""#, r#""locale":"de""#] {
            let body = format!(r#"{{"project_id":1,"user_id":"u","code":"X",{property}}}"#);
            let (status, code, text) = code_and_text(json(endpoint, &body));
            assert_eq!((status, code), (422, 1102), "{endpoint:?} {property}");
            assert!(text.contains("is not accepted by promocode."), "{text}");
        }
        let body = r#"{"project_id":1,"user_id":"u","code":"X","country":"de"}"#;
        let req = json(endpoint, body).unwrap();
        assert_eq!(req.view.country.unwrap().as_str(), "DE");
    }
}

#[test]
fn at_time_is_read_by_the_date_parser() {
    let req = json(
        Endpoint::Get,
        r#"{"project_id":1,"user_id":"u","at_time":"2026-11-22T11:00:00+01:00"}"#,
    )
    .unwrap();
    let Action::Get {
        as_of: Some(AsOf::Time(t)),
    } = req.action
    else {
        panic!("not a time travel")
    };
    assert_eq!(t.to_string(), "2026-11-22T10:00:00Z");
    for bad in [
        "now",
        "epoch",
        "infinity",
        "yesterday",
        "not a date",
        "2026-11-22",
    ] {
        let body = format!(r#"{{"project_id":1,"user_id":"u","at_time":"{bad}"}}"#);
        let (status, _, text) = code_and_text(json(Endpoint::Get, &body));
        assert_eq!(status, 422, "{bad}");
        assert!(
            text.contains("`at_time` must be an RFC 3339 date-time"),
            "{text}"
        );
    }
}

#[test]
fn control_characters_in_codes_are_refused_in_both_encodings() {
    let (status, _, text) = code_and_text(json(
        Endpoint::RedeemPromoCode,
        r#"{"project_id":1,"user_id":"u","coupon_code":"A\u0000"}"#,
    ));
    assert_eq!(status, 422);
    assert!(
        text.contains("`coupon_code` must not contain control"),
        "{text}"
    );
    let m = v1::VerifyPromoCodeRequest {
        project_id: 1,
        user_id: "u".into(),
        code: "A\u{0}".into(),
        country: String::new(),
    };
    let e = decode(
        Endpoint::VerifyPromoCode,
        Encoding::Protobuf,
        &m.encode_to_vec(),
    )
    .unwrap_err();
    assert_eq!(e.status, 422);
    assert!(
        e.message().contains("`code` must not contain control"),
        "{e}"
    );
}

#[cfg(test)]
mod no_panic {
    //! Whatever bytes arrive, decoding answers Ok or an error reply; it never panics.

    use proptest::prelude::*;

    use super::*;

    fn endpoint() -> impl Strategy<Value = Endpoint> {
        prop::sample::select(Endpoint::ALL.to_vec())
    }

    /// JSON bodies built from the real property names with values of any type, which
    /// reach much deeper into the checks than random bytes do.
    fn json_body() -> impl Strategy<Value = Vec<u8>> {
        let value = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,300}".prop_map(serde_json::Value::from),
        ];
        let names = prop::sample::select(vec![
            "project_id",
            "user_id",
            "cart_id",
            "currency",
            "locale",
            "items",
            "replace",
            "sku",
            "quantity",
            "other",
        ]);
        prop::collection::vec((names, value, any::<bool>()), 0..10).prop_map(|fields| {
            let mut body = serde_json::Map::new();
            for (name, value, as_items) in fields {
                let value = if as_items && name == "items" {
                    serde_json::json!([{"sku": value.clone(), "quantity": value}])
                } else {
                    value
                };
                body.insert(name.to_owned(), value);
            }
            serde_json::to_vec(&body).unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes_never_panic(endpoint in endpoint(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(endpoint, Encoding::Json, &bytes);
            let _ = decode(endpoint, Encoding::Protobuf, &bytes);
        }

        #[test]
        fn structured_json_never_panics(endpoint in endpoint(), body in json_body()) {
            if let Err(e) = decode(endpoint, Encoding::Json, &body) {
                prop_assert!(e.status == 400 || e.status == 422, "unexpected status {}", e.status);
                prop_assert_eq!(e.code, 1102);
            }
        }
    }
}
