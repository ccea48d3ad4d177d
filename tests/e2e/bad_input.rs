//! Every kind of bad input gets a clear error reply, appends nothing and never panics.

use async_nats::HeaderMap;
use cart_tests::{lines, World};
use serde_json::json;

use crate::req;

#[tokio::test]
async fn bad_requests_are_refused_with_clear_errors_and_change_nothing() {
    let w = World::start().await;
    let long = "a".repeat(256);
    let cases: Vec<(&str, Vec<u8>, u16, u32, &str)> = vec![
        (
            "fill",
            b"{not json".to_vec(),
            400,
            1102,
            "could not be decoded",
        ),
        ("fill", b"".to_vec(), 400, 1102, "could not be decoded"),
        (
            "fill",
            json!([1, 2]).to_string().into_bytes(),
            400,
            1102,
            "could not be decoded",
        ),
        (
            "get",
            json!({"user_id": "u"}).to_string().into_bytes(),
            422,
            1102,
            "`project_id` is required",
        ),
        (
            "get",
            json!({"project_id": 0, "user_id": "u"})
                .to_string()
                .into_bytes(),
            422,
            1102,
            "`project_id` is required",
        ),
        (
            "get",
            json!({"project_id": -5, "user_id": "u"})
                .to_string()
                .into_bytes(),
            400,
            1102,
            "could not be decoded",
        ),
        (
            "get",
            json!({"project_id": 44056}).to_string().into_bytes(),
            422,
            1102,
            "`user_id` is required",
        ),
        (
            "get",
            req("u", None, json!({"colour": "red"}))
                .to_string()
                .into_bytes(),
            400,
            1102,
            "unknown field `colour`",
        ),
        (
            "item.put",
            req("u", None, json!({"quantity": 1}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "`sku` is required",
        ),
        (
            "item.put",
            req("u", None, json!({"sku": "", "quantity": 1}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "`sku` is required",
        ),
        (
            "item.put",
            req("u", None, json!({"sku": long, "quantity": 1}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "longer than 255",
        ),
        (
            "item.put",
            req("u", None, json!({"sku": "cup01.>", "quantity": 1}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "may contain only",
        ),
        (
            "item.put",
            req("u", None, json!({"sku": "cup 01", "quantity": 1}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "may contain only",
        ),
        (
            "item.put",
            req("u", None, json!({"sku": "cup01"}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "`quantity` is required",
        ),
        (
            "item.put",
            req("u", None, json!({"sku": "cup01", "quantity": -1}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "Item quantity must be non-negative integer",
        ),
        (
            "item.put",
            req("u", None, json!({"sku": "cup01", "quantity": 1.5}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "Item quantity must be non-negative integer",
        ),
        (
            "item.put",
            req("u", None, json!({"sku": "cup01", "quantity": "2"}))
                .to_string()
                .into_bytes(),
            400,
            1102,
            "invalid type",
        ),
        (
            "item.put",
            req("u", None, json!({"sku": "cup01", "quantity": 10001}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "at most 10000",
        ),
        (
            "item.put",
            req("u", None, json!({"sku": "cup01", "quantity": 1e20}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "non-negative integer",
        ),
        (
            "item.put",
            req("u", None, json!({"sku": "cup01", "quantity": u64::MAX}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "at most 10000",
        ),
        (
            "item.put",
            req("u", None, json!({"sku": "nope", "quantity": 1}))
                .to_string()
                .into_bytes(),
            404,
            4001,
            "Item with Project Id = 44056 and Sku = nope not found",
        ),
        (
            "item.delete",
            req("u", None, json!({"sku": "nope"}))
                .to_string()
                .into_bytes(),
            404,
            4001,
            "Sku = nope not found",
        ),
        (
            "fill",
            req("u", Some("a.b"), json!({"items": []}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "`cart_id` may contain only",
        ),
        (
            "fill",
            req("u", Some("*"), json!({"items": []}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "`cart_id` may contain only",
        ),
        (
            "fill",
            req("u", Some(&"c".repeat(129)), json!({"items": []}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "`cart_id` is longer",
        ),
        (
            "fill",
            req("u u", None, json!({"items": []}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "`user_id` may contain only",
        ),
        (
            "fill",
            req(
                "u",
                None,
                json!({"items": [{"sku": "cup01", "quantity": -3}]}),
            )
            .to_string()
            .into_bytes(),
            422,
            1102,
            "non-negative integer",
        ),
        (
            "fill",
            req("u", None, json!({"items": [{"quantity": 1}]}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "`sku` is required",
        ),
        (
            "fill",
            req("u", None, json!({"items": [{"sku": "cup01"}]}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "`quantity` is required",
        ),
        (
            "fill",
            req("u", None, json!({"sku": "cup01"}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "not accepted by fill",
        ),
        (
            "clear",
            req("u", None, json!({"items": []}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "not accepted by clear",
        ),
        (
            "get",
            req("u", None, json!({"currency": "DOLLAR"}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "ISO 4217",
        ),
        (
            "get",
            req("u", None, json!({"locale": "english"}))
                .to_string()
                .into_bytes(),
            422,
            1102,
            "ISO 639-1",
        ),
        (
            "item.put",
            vec![0xff, 0xfe, 0x00],
            400,
            1102,
            "could not be decoded",
        ),
    ];
    for (endpoint, body, status, code, text) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(80)
            .collect::<String>();
        let refusal = w
            .client
            .send(endpoint, HeaderMap::new(), body)
            .await
            .expect_err(&shown);
        assert_eq!(
            (refusal.error.status, refusal.error.code),
            (status, code),
            "{endpoint} {shown}: {}",
            refusal.error
        );
        assert!(
            refusal.error.message().contains(text),
            "{endpoint} {shown}: {} lacks {text:?}",
            refusal.error.message()
        );
        assert!(refusal
            .error
            .message()
            .starts_with(&format!("[0401-{code}]: ")));
        assert_eq!(refusal.header_status, status.to_string());
        assert_eq!(refusal.header_message, refusal.error.message());
    }

    // Too many items in one fill, and a cart that would grow past its line limit.
    let items: Vec<_> = (0..101)
        .map(|i| json!({"sku": format!("s{i}"), "quantity": 1}))
        .collect();
    let refusal = w
        .client
        .json("fill", None, req("u", None, json!({"items": items})))
        .await
        .unwrap_err();
    assert_eq!((refusal.error.status, refusal.error.code), (422, 1102));

    // An oversized body and a bad command id header.
    let huge = req(
        "u",
        None,
        json!({"items": [{"sku": "x".repeat(70_000), "quantity": 1}]}),
    );
    let refusal = w.client.json("fill", None, huge).await.unwrap_err();
    assert_eq!((refusal.error.status, refusal.error.code), (413, 1102));
    let refusal = w
        .client
        .json(
            "item.put",
            Some("has space"),
            req("u", None, json!({"sku": "cup01", "quantity": 1})),
        )
        .await
        .unwrap_err();
    assert_eq!((refusal.error.status, refusal.error.code), (422, 1102));
    assert!(refusal.error.message().contains("Cart-Command-Id"));

    assert_eq!(
        w.db.count_events().await,
        0,
        "refused requests appended nothing"
    );
    // The service still works after all that.
    w.client
        .json(
            "item.put",
            None,
            req("u", None, json!({"sku": "cup01", "quantity": 1})),
        )
        .await
        .unwrap();
    assert_eq!(w.db.count_events().await, 2);
    w.finish().await;
}

#[tokio::test]
async fn a_cart_never_holds_more_lines_than_the_limit() {
    let w = World::start().await;
    // The demo catalog has 8 SKUs; the limit is enforced on known SKUs, so it is reached
    // with a catalog of our own.
    let dir = std::env::temp_dir().join(format!(
        "cart-e2e-catalog-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let items: Vec<_> = (0..=cart_domain_max_lines())
        .map(|i| {
            json!({"sku": format!("s{i}"), "type": "virtual_good", "name": {"en": format!("S{i}")},
                        "prices": [{"currency": "USD", "amount": "1", "is_default": true}]})
        })
        .collect();
    let document = json!({"projects": [{"project_id": 44056, "items": items}]});
    let catalog = dir.join("catalog.json");
    std::fs::write(&catalog, document.to_string()).unwrap();
    // The database already holds the demo catalog, which a file only seeds into projects
    // without one: replace it through the admin endpoint.
    w.client
        .json(
            "admin.catalog.import",
            None,
            json!({"catalog": document, "mode": "replace"}),
        )
        .await
        .unwrap();
    let prefix = cart_tests::unique_prefix();
    let mut config = cart_tests::config(&w.db.url, &cart_tests::nats_url(), &prefix);
    config.catalog = catalog;
    let server = cartd::start(&config).await.unwrap();
    let client = cart_tests::Client::connect(&cart_tests::nats_url(), &prefix).await;

    let full: Vec<_> = (0..cart_domain_max_lines())
        .map(|i| json!({"sku": format!("s{i}"), "quantity": 1}))
        .collect();
    let cart = client
        .json("fill", None, req("u", None, json!({"items": full})))
        .await
        .unwrap();
    assert_eq!(
        cart["items"].as_array().unwrap().len(),
        cart_domain_max_lines()
    );
    let events_before = w.db.count_events().await;
    let one_more = json!({"sku": format!("s{}", cart_domain_max_lines()), "quantity": 1});
    let refusal = client
        .json("item.put", None, req("u", None, one_more))
        .await
        .unwrap_err();
    assert_eq!((refusal.error.status, refusal.error.code), (422, 1403));
    assert_eq!(w.db.count_events().await, events_before);

    // A command accepted at the limit, retried after the cart moved on so that it would
    // now be refused, still gets its first answer and changes nothing.
    let max = cart_domain_max_lines();
    let put =
        |sku: String, quantity: u64| req("u", None, json!({"sku": sku, "quantity": quantity}));
    client
        .json("item.delete", None, req("u", None, json!({"sku": "s0"})))
        .await
        .unwrap();
    let accepted = client
        .json("item.put", Some("at-the-limit"), put(format!("s{max}"), 1))
        .await
        .unwrap();
    client
        .json(
            "item.delete",
            None,
            req("u", None, json!({"sku": format!("s{max}")})),
        )
        .await
        .unwrap();
    let full_again = client
        .json("item.put", None, put("s0".into(), 1))
        .await
        .unwrap();
    let events_before = w.db.count_events().await;
    let retried = client
        .json("item.put", Some("at-the-limit"), put(format!("s{max}"), 1))
        .await
        .unwrap();
    assert_eq!(retried, accepted);
    assert_eq!(w.db.count_events().await, events_before);
    let now = client
        .json("get", None, req("u", None, json!({})))
        .await
        .unwrap();
    assert_eq!(lines(&now), lines(&full_again));
    server.shutdown().await;
    std::fs::remove_dir_all(dir).ok();
    w.finish().await;
}

fn cart_domain_max_lines() -> usize {
    100
}
