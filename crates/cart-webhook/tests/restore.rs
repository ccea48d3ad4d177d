//! After a logical restore (`cartctl events import`, docs/operations.md, "Logical
//! backup") the worker does not notify again what the source notified: its reconciler,
//! reading the whole restored order log, and its intake, taking a republished message,
//! record nothing for a granted order, and record the grant the log shows still owed.

mod common;

use std::time::Duration;

use cart_domain::{
    price, Cart, CartEvent, Catalog, Currency, OrderId, OrderSnapshot, PaymentMode, PricingContext,
    ProjectId, Purchases, Sku, Timestamp, UserId,
};
use cart_store::export::{export_logs, Format, Logs, Start, Stored};
use cart_store::import::{parse_line, Import, ImportedLine};
use cart_store::orders::{Checkout, CheckoutOutcome, OrderStore, Payment};
use cart_store::{DbConfig, Filter, Position};
use cart_webhook::store::{insert_delivery, NewDelivery};
use cart_webhook::Config;
use common::TestDb;
use sqlx::PgPool;

const PROJECT: u64 = 7;

fn catalog() -> Catalog {
    let doc = serde_json::json!({ "projects": [{
        "project_id": PROJECT,
        "items": [{ "sku": "sword", "type": "virtual_good", "name": { "en": "Sword" },
                    "prices": [{ "currency": "USD", "amount": "5", "is_default": true }] }]
    }]});
    cart_proto::catalog::parse(doc.to_string().as_bytes()).unwrap()
}

async fn pool(db: &TestDb) -> PgPool {
    cart_store::connect(&DbConfig {
        url: db.url.clone(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
    })
    .await
    .unwrap()
}

/// A paid order of one sword, with personal data.
async fn paid_order(store: &OrderStore, catalog: &Catalog, who: &str) -> OrderId {
    let project = ProjectId::parse(PROJECT).unwrap();
    let cart = Cart::replay(&[
        CartEvent::CartOpened,
        CartEvent::ItemQuantitySet {
            sku: Sku::parse("sword").unwrap(),
            quantity: 1,
        },
    ]);
    let now = Timestamp::from_unix(1_796_000_000);
    let (usd, purchases) = (Currency::usd(), Purchases::default());
    let priced = price(
        &cart,
        &PricingContext {
            project,
            catalog,
            currency: &usd,
            country: None,
            now,
            purchases: &purchases,
            promo_code: None,
        },
    );
    let snapshot = OrderSnapshot::from_priced(&priced);
    let amount = snapshot.total.as_ref().unwrap().amount;
    let checkout = Checkout {
        project,
        user: UserId::parse(who).unwrap(),
        cart_id: None,
        snapshot,
        catalog_version: 1,
        now,
        custom_parameters: Some(format!(r#"{{"email":"{who}@example.org"}}"#)),
        hold: Duration::from_secs(900),
        command: None,
    };
    let CheckoutOutcome::Created(created) = store
        .checkout(catalog, checkout, |_| Vec::new())
        .await
        .unwrap()
    else {
        panic!("no order for {who}");
    };
    let payment = Payment {
        project,
        order_id: created.order_id,
        invoice_id: format!("inv-{who}"),
        amount,
        currency: Currency::usd(),
        mode: PaymentMode::Sandbox,
        now,
    };
    store
        .confirm_payment(catalog, payment)
        .await
        .unwrap()
        .unwrap();
    created.order_id
}

#[tokio::test]
async fn after_a_restore_only_the_grant_still_owed_is_notified() {
    let (source_db, target_db) = (TestDb::new().await, TestDb::new().await);
    let (source, target) = (pool(&source_db).await, pool(&target_db).await);
    let store = OrderStore::new(source.clone());
    let catalog = catalog();
    let project = ProjectId::parse(PROJECT).unwrap();
    let granted = paid_order(&store, &catalog, "ann").await;
    store.mark_delivered(PROJECT, granted).await.unwrap();
    let owed = paid_order(&store, &catalog, "bob").await;
    let refunded = paid_order(&store, &catalog, "cy").await;
    store
        .cancel(project, refunded, "changed my mind".into())
        .await
        .unwrap()
        .unwrap();

    // Export the order log once it is all visible, and import it.
    let want: i64 = sqlx::query_scalar("select count(*) from order_events")
        .fetch_one(&source)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let export = loop {
        let mut out = Vec::new();
        let exported = export_logs(
            &source,
            Logs::Orders,
            &Start::After(Position::default()),
            &Filter::default(),
            (
                Format::JsonLines,
                cart_proto::view::AmountFormat::default(),
                Stored::Include,
            ),
            &mut out,
            |_| {},
        )
        .await
        .unwrap();
        if i64::try_from(exported.events).unwrap() == want {
            break String::from_utf8(out).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{exported:?} of {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut import = Import::begin(&target).await.unwrap();
    let mut events = Vec::new();
    for line in export.lines() {
        let ImportedLine::Order(event) = parse_line(line).unwrap() else {
            panic!("a cart line in an export of the order log");
        };
        events.push(event);
    }
    import.add_orders(&events).await.unwrap();
    import.commit().await.unwrap();

    // The reconciler reads the whole restored log: it records the owed grant only.
    let mut config = Config::from_env();
    config.database_url = target_db.url.clone();
    let (_, mut head) = cart_webhook::reconcile::round(&target, &config, None)
        .await
        .unwrap();
    // A round reads below the read barrier, which another test's open transaction on
    // the same server holds back, and so does the head it returns: round again, each
    // time up to the head the round before saw (as the worker does), until the owed
    // grant is in, then once more. A head kept from the first round could stay short of
    // the import for ever.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut recorded = 0;
    while recorded == 0 && std::time::Instant::now() < deadline {
        let (n, next) = cart_webhook::reconcile::round(&target, &config, Some(head))
            .await
            .unwrap();
        (recorded, head) = (recorded + n, next);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    recorded += cart_webhook::reconcile::round(&target, &config, Some(head))
        .await
        .unwrap()
        .0;
    assert_eq!(recorded, 1);
    let deliveries: Vec<(i64, String, String)> = sqlx::query_as(
        "select order_id, notification_type, status from webhook_deliveries order by 1, 2",
    )
    .fetch_all(&target)
    .await
    .unwrap();
    let row = |order: OrderId, kind: &str, status: &str| {
        (
            i64::try_from(order).unwrap(),
            kind.to_owned(),
            status.to_owned(),
        )
    };
    assert_eq!(
        deliveries,
        [
            row(granted, "order_paid", "delivered"),
            row(owed, "order_paid", "pending"),
            row(refunded, "order_canceled", "delivered"),
            row(refunded, "order_paid", "delivered"),
        ]
    );

    // The intake, given the granted order's republished OrderPaid, records nothing.
    let line = export
        .lines()
        .find(|l| l.contains("\"OrderPaid\"") && l.contains("\"user_id\":\"ann\""))
        .unwrap();
    let mut envelope: serde_json::Value = serde_json::from_str(line).unwrap();
    envelope.as_object_mut().unwrap().remove("stored");
    let delivery = NewDelivery {
        event_id: envelope["event_id"].as_str().unwrap().parse().unwrap(),
        project_id: PROJECT,
        order_id: granted,
        version: 2,
        kind: cart_webhook::payload::NotificationType::OrderPaid,
        envelope,
    };
    assert!(!insert_delivery(&target, &delivery, config.cancel_grace)
        .await
        .unwrap());
}
