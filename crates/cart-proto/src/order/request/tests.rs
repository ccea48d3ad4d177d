//! Order and payment bodies: what is accepted, and how each refusal reads.

use super::*;

fn status_code_text(e: ErrorReply) -> (u16, u32, String) {
    (e.status, e.code, e.message())
}

const CHECKOUT: &str = r#"{"project_id":44056,"user_id":"some-user"}"#;

/// Every order and payment endpoint's decoder, as (name, decode -> error if any).
type Decoder = fn(&[u8]) -> Option<ErrorReply>;

fn decoders() -> [(&'static str, Decoder); 6] {
    [
        ("checkout", |b| decode_checkout(b).err()),
        ("checkout_item", |b| decode_checkout_item(b).err()),
        ("get", |b| decode_get(b).err()),
        ("search", |b| decode_search(b).err()),
        ("confirm", |b| decode_confirm(b).err()),
        ("cancel", |b| decode_cancel(b).err()),
    ]
}

#[test]
fn a_checkout_decodes_into_checked_values() {
    let body = decode_checkout(
        br#"{"project_id":44056,"user_id":"u1","cart_id":"c-1","currency":"eur","country":"de","custom_parameters":{"a":1,"b":"x"}}"#,
    )
    .unwrap();
    assert_eq!(body.project.get(), 44056);
    assert_eq!(body.user.as_str(), "u1");
    assert_eq!(body.cart.unwrap().as_str(), "c-1");
    assert_eq!(body.currency.as_str(), "EUR");
    assert_eq!(body.country.unwrap().as_str(), "DE");
    assert_eq!(
        body.custom_parameters.as_deref(),
        Some(r#"{"a":1,"b":"x"}"#)
    );
    let body = decode_checkout(CHECKOUT.as_bytes()).unwrap();
    assert_eq!((body.cart, body.country), (None, None));
    assert_eq!(body.currency.as_str(), "USD");
}

#[test]
fn arrays_and_other_non_objects_are_refused_by_every_body() {
    for (name, decode) in decoders() {
        for body in [
            r#"[44056,"some-user"]"#,
            r#"[44056,"some-user",null,null,null,null]"#,
            r#"[44056,1,"inv","1.00","USD"]"#,
            "[]",
            "44056",
            r#""x""#,
            "null",
        ] {
            let e = decode(body.as_bytes()).unwrap_or_else(|| panic!("{name} took {body}"));
            assert_eq!((e.status, e.code), (400, 1102), "{name} {body}");
        }
        let e = decode(br#"[44056,"some-user"]"#).unwrap();
        assert!(
            e.message().contains("one JSON object, not an array"),
            "{name}: {e}"
        );
    }
}

#[test]
fn nul_and_control_characters_are_refused_naming_the_field() {
    let cases = [
        (
            "checkout",
            r#"{"project_id":1,"user_id":"u","custom_parameters":{"k":"v\u0000"}}"#,
            "custom_parameters.k",
        ),
        (
            "checkout",
            r#"{"project_id":1,"user_id":"u","custom_parameters":{"k\u0000":"v"}}"#,
            r#"custom_parameters["k\0"]"#,
        ),
        (
            "checkout_item",
            r#"{"project_id":1,"user_id":"u","sku":"a","custom_parameters":{"n":{"deep":["\u001b"]}}}"#,
            "custom_parameters.n.deep[0]",
        ),
        (
            "checkout_item",
            r#"{"project_id":1,"user_id":"u","sku":"a","promo_code":"A\nB"}"#,
            "promo_code",
        ),
        (
            "get",
            r#"{"project_id":1,"user_id":"u","token":"t\u0000"}"#,
            "token",
        ),
        (
            "search",
            r#"{"project_id":1,"user_id":"u","created_date_from":"2026-01-01\u0000"}"#,
            "created_date_from",
        ),
        (
            "confirm",
            r#"{"project_id":1,"order_id":1,"invoice_id":"i\r\n","amount":"1","currency":"USD"}"#,
            "invoice_id",
        ),
        (
            "cancel",
            r#"{"project_id":1,"order_id":1,"reason":"fraud\u0000"}"#,
            "reason",
        ),
        (
            "cancel",
            "{\"project_id\":1,\"order_id\":1,\"bad\\r\\nX: y\":1}",
            r#"["bad\r\nX: y"]"#,
        ),
    ];
    for (name, body, field) in cases {
        let decode = decoders().iter().find(|(n, _)| *n == name).unwrap().1;
        let (status, code, text) = status_code_text(decode(body.as_bytes()).unwrap());
        assert_eq!((status, code), (422, 1102), "{name} {body}");
        assert!(
            text.contains(&format!("`{field}` must not contain control characters")),
            "{name} {body}: {text}"
        );
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
}

#[test]
fn unknown_properties_are_refused() {
    let e = decode_checkout(br#"{"project_id":1,"user_id":"u","colour":"red"}"#).unwrap_err();
    assert_eq!(e.status, 400);
    assert!(e.message().contains("colour"), "{e}");
}

#[test]
fn search_dates_are_read_before_any_sql_and_named() {
    let body = decode_search(
        br#"{"project_id":1,"user_id":"u","created_date_from":"2026-01-01","created_date_until":"2026-01-31T23:59:59+01:00"}"#,
    )
    .unwrap();
    assert_eq!(
        body.created_from.unwrap().to_string(),
        "2026-01-01T00:00:00Z"
    );
    assert_eq!(
        body.created_until.unwrap().to_string(),
        "2026-01-31T22:59:59Z"
    );
    assert_eq!((body.limit, body.offset), (10, 0));
    for property in ["created_date_from", "created_date_until"] {
        for bad in [
            "not a date",
            "now",
            "today",
            "yesterday",
            "epoch",
            "infinity",
            "-infinity",
            "",
            "2026-02-30",
            "2026-01-01T10:00:00",
        ] {
            let body = format!(r#"{{"project_id":1,"user_id":"u","{property}":"{bad}"}}"#);
            let (status, code, text) =
                status_code_text(decode_search(body.as_bytes()).unwrap_err());
            assert_eq!((status, code), (422, 1102), "{property} {bad}");
            assert!(text.contains(&format!("`{property}`")), "{text}");
            assert!(!text.contains("at_time"), "{text}");
        }
    }
    for limit in ["0", "11"] {
        let body = format!(r#"{{"project_id":1,"user_id":"u","limit":{limit}}}"#);
        let e = decode_search(body.as_bytes()).unwrap_err();
        assert!(e.message().contains("`limit`"), "{e}");
    }
}

#[test]
fn payments_take_amounts_as_decimal_strings() {
    let body = decode_confirm(
        br#"{"project_id":1,"order_id":7,"invoice_id":"inv-1","amount":"6.84","currency":"usd","mode":"sandbox"}"#,
    )
    .unwrap();
    assert_eq!(body.amount, Decimal::new(684, 2));
    assert_eq!(body.currency.as_str(), "USD");
    assert_eq!(body.mode, PaymentMode::Sandbox);
    for amount in [
        r#""-1""#, r#""1e3""#, r#""""#, r#"" 1""#, r#""NaN""#, "6.84", "7",
    ] {
        let body = format!(
            r#"{{"project_id":1,"order_id":7,"invoice_id":"i","amount":{amount},"currency":"USD"}}"#
        );
        let e = decode_confirm(body.as_bytes()).unwrap_err();
        assert_eq!(e.code, 1102, "{amount}");
    }
    let e = decode_confirm(
        br#"{"project_id":1,"order_id":7,"invoice_id":"i","amount":"1","currency":"USD","mode":"live"}"#,
    )
    .unwrap_err();
    assert!(e.message().contains("`mode`"), "{e}");
}

#[test]
fn get_takes_exactly_one_of_id_and_token() {
    let id = decode_get(br#"{"project_id":1,"user_id":"u","order_id":5}"#).unwrap();
    assert_eq!(id.order, OrderRef::Id(5));
    let token = decode_get(br#"{"project_id":1,"user_id":"u","token":"tok"}"#).unwrap();
    assert_eq!(token.order, OrderRef::Token("tok".into()));
    for body in [
        r#"{"project_id":1,"user_id":"u"}"#,
        r#"{"project_id":1,"user_id":"u","order_id":5,"token":"t"}"#,
        r#"{"project_id":1,"user_id":"u","token":""}"#,
    ] {
        assert_eq!(
            decode_get(body.as_bytes()).unwrap_err().status,
            422,
            "{body}"
        );
    }
    let long = format!(
        r#"{{"project_id":1,"user_id":"u","token":"{}"}}"#,
        "t".repeat(129)
    );
    assert_eq!(decode_get(long.as_bytes()).unwrap_err().status, 422);
}

#[test]
fn checkout_item_and_cancel_values_are_bounded() {
    let item = decode_checkout_item(br#"{"project_id":1,"user_id":"u","sku":"a","promo_code":""}"#)
        .unwrap();
    assert_eq!((item.quantity, item.promo_code), (1, None));
    for q in ["0", "10001", "4294967297"] {
        let body = format!(r#"{{"project_id":1,"user_id":"u","sku":"a","quantity":{q}}}"#);
        let e = decode_checkout_item(body.as_bytes()).unwrap_err();
        assert!(e.message().contains("`quantity`"), "{q}: {e}");
    }
    let cancel = decode_cancel(br#"{"project_id":1,"order_id":1}"#).unwrap();
    assert_eq!(cancel.reason, "refund");
    let long = format!(
        r#"{{"project_id":1,"order_id":1,"reason":"{}"}}"#,
        "r".repeat(1001)
    );
    assert!(decode_cancel(long.as_bytes())
        .unwrap_err()
        .message()
        .contains("`reason`"));
    for country in ["DEU", "1A", "d"] {
        let body = format!(r#"{{"project_id":1,"user_id":"u","country":"{country}"}}"#);
        let e = decode_checkout(body.as_bytes()).unwrap_err();
        assert!(e.message().contains("`country`"), "{e}");
    }
}

mod no_panic {
    //! Whatever bytes arrive, every order and payment decoder answers a value or a 400
    //! or 422; it never panics.

    use proptest::prelude::*;

    use super::*;

    /// Bodies built from the real property names with values of any JSON type.
    fn json_body() -> impl Strategy<Value = Vec<u8>> {
        let value = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,80}".prop_map(serde_json::Value::from),
            "[0-9.\\-e]{0,12}".prop_map(serde_json::Value::from),
            "(19|20|00|99)[0-9]{2}-[0-1][0-9]-[0-3][0-9](T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](Z|[+-][0-2][0-9]:[0-5][0-9]))?"
                .prop_map(serde_json::Value::from),
        ];
        let names = prop::sample::select(vec![
            "project_id",
            "user_id",
            "cart_id",
            "currency",
            "country",
            "custom_parameters",
            "sku",
            "quantity",
            "promo_code",
            "order_id",
            "token",
            "limit",
            "offset",
            "created_date_from",
            "created_date_until",
            "invoice_id",
            "amount",
            "mode",
            "reason",
        ]);
        prop::collection::vec((names, value, any::<bool>()), 0..10).prop_map(|fields| {
            let mut body = serde_json::Map::new();
            for (name, value, nest) in fields {
                let value = if nest {
                    serde_json::json!({ "k": value })
                } else {
                    value
                };
                body.insert(name.to_owned(), value);
            }
            serde_json::to_vec(&body).unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            for (_, decode) in decoders() {
                if let Some(e) = decode(&bytes) {
                    prop_assert!(e.status == 400 || e.status == 422);
                }
            }
        }

        #[test]
        fn structured_json_never_panics(body in json_body()) {
            for (_, decode) in decoders() {
                if let Some(e) = decode(&body) {
                    prop_assert!(e.status == 400 || e.status == 422, "status {}", e.status);
                    prop_assert_eq!(e.code, 1102);
                    prop_assert!(!e.message().chars().any(char::is_control));
                }
            }
        }
    }
}
