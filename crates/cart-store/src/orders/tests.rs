//! The order store against a real PostgreSQL, one fresh database per test.

use std::collections::BTreeMap;
use std::sync::Arc;

use cart_domain::{
    price, Cart, CartCommand, CartEvent, Catalog, OrderSnapshot, PricingContext, Purchases,
    Quantity, Sku,
};

use super::*;
use crate::testing;
use crate::{Append, EventStore, InvalidTextKind, StreamKey};

const P: u64 = 7;

fn catalog() -> Arc<Catalog> {
    let doc = serde_json::json!({
        "projects": [{
            "project_id": P,
            "items": [
                { "sku": "sword", "type": "virtual_good", "name": {"en": "Sword"},
                  "prices": [{ "currency": "USD", "amount": "5.00", "is_default": true }] },
                { "sku": "relic", "type": "virtual_good", "name": {"en": "Relic"},
                  "prices": [{ "currency": "USD", "amount": "10", "is_default": true }],
                  "limits": { "per_item": 1 } },
                { "sku": "potion", "type": "virtual_good", "name": {"en": "Potion"},
                  "prices": [{ "currency": "USD", "amount": "1.50", "is_default": true }],
                  "limits": { "per_user": 2 } },
                { "sku": "daily", "type": "virtual_good", "name": {"en": "Daily chest"},
                  "prices": [{ "currency": "USD", "amount": "2", "is_default": true }],
                  "limits": { "per_user": 1, "recurrent_schedule":
                      { "interval_type": "daily", "time": "03:00:00+03:00" } } },
                { "sku": "gift", "type": "virtual_good", "name": {"en": "Gift"},
                  "is_free": true, "prices": [] }
            ],
            "promo_codes": [
                { "code": "HALF", "name": "Half", "discount": { "percent": "50" },
                  "redeem_user_limit": 1 },
                { "code": "ONCE", "name": "Once", "discount": { "percent": "10" },
                  "redeem_total_limit": 1 }
            ]
        }]
    });
    Arc::new(cart_proto::catalog::parse(doc.to_string().as_bytes()).unwrap())
}

fn project() -> ProjectId {
    ProjectId::parse(P).unwrap()
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn cart_of(lines: &[(&str, i64)], code: Option<&str>) -> Cart {
    let mut events = vec![CartEvent::CartOpened];
    for (sku, n) in lines {
        events.push(CartEvent::ItemQuantitySet {
            sku: Sku::parse(*sku).unwrap(),
            quantity: u32::try_from(*n).unwrap(),
        });
    }
    if let Some(code) = code {
        events.push(CartEvent::PromoCodeRedeemed {
            code: code.to_owned(),
            selected_unit_items: BTreeMap::new(),
        });
    }
    Cart::replay(&events)
}

fn snapshot(catalog: &Catalog, cart: &Cart) -> OrderSnapshot {
    let purchases = Purchases::default();
    let usd = Currency::usd();
    let priced = price(
        cart,
        &PricingContext {
            project: project(),
            catalog,
            currency: &usd,
            country: None,
            now: Timestamp::from_unix(1_790_000_000),
            purchases: &purchases,
            promo_code: cart.promo_code(),
        },
    );
    OrderSnapshot::from_priced(&priced)
}

fn request(who: &str, cart: Option<&str>, snapshot: OrderSnapshot) -> Checkout {
    Checkout {
        project: project(),
        user: user(who),
        cart_id: cart.map(|c| CartId::parse(c).unwrap()),
        snapshot,
        catalog_version: 1,
        now: Timestamp::from_unix(1_790_000_000),
        custom_parameters: None,
        hold: Duration::from_secs(900),
        command: None,
    }
}

async fn checkout(store: &OrderStore, catalog: &Catalog, request: Checkout) -> CheckoutOutcome {
    store
        .checkout(catalog, request, |_| Vec::new())
        .await
        .unwrap()
}

fn created(outcome: CheckoutOutcome) -> Created {
    match outcome {
        CheckoutOutcome::Created(c) => c,
        other => panic!("expected an order, got {other:?}"),
    }
}

fn payment(order_id: OrderId, amount: &str, invoice: &str) -> Payment {
    Payment {
        project: project(),
        order_id,
        invoice_id: invoice.to_owned(),
        amount: amount.parse().unwrap(),
        currency: Currency::usd(),
        mode: PaymentMode::Sandbox,
        now: Timestamp::from_unix(1_790_000_100),
    }
}

/// The refusal of a payment of an expired order.
fn expired_to_paid() -> OrderError {
    OrderError::InvalidTransition {
        from: OrderStatus::Expired,
        to: OrderStatus::Paid,
    }
}

/// Puts lines (and a code) into a stored cart, as the service would.
async fn stored_cart(
    carts: &EventStore,
    who: &str,
    cart: &str,
    lines: &[(&str, i64)],
    code: Option<&str>,
) {
    let key = StreamKey::new(project(), user(who), CartId::parse(cart).unwrap());
    let mut commands: Vec<CartCommand> = lines
        .iter()
        .map(|(sku, n)| CartCommand::PutItem {
            sku: Sku::parse(*sku).unwrap(),
            quantity: Quantity::parse(*n).unwrap(),
            listed: true,
        })
        .collect();
    if let Some(code) = code {
        commands.push(CartCommand::RedeemPromoCode {
            code: code.to_owned(),
            selected_unit_items: BTreeMap::new(),
            check: Ok(()),
            existence: cart_domain::Existence::Always,
        });
    }
    for command in commands {
        let loaded = carts.load(&key).await.unwrap();
        let events = cart_domain::decide(&loaded.cart, &command).unwrap();
        let after = events.iter().fold(loaded.cart.clone(), cart_domain::apply);
        carts
            .append(Append {
                key: &key,
                expected: loaded.version,
                events: &events,
                cart: &after,
                command: None,
                metadata: serde_json::json!({}),
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn order_ids_increase_per_project_and_tokens_are_long_and_distinct() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let catalog = catalog();
    let mut tokens = BTreeSet::new();
    for expected in 1..=3 {
        let snap = snapshot(&catalog, &cart_of(&[("sword", 1)], None));
        let c = created(checkout(&store, &catalog, request("ann", Some("c"), snap)).await);
        assert_eq!(c.order_id, expected);
        assert_eq!(c.status, OrderStatus::New);
        assert!(c.token.len() >= 32, "{}", c.token);
        tokens.insert(c.token);
    }
    assert_eq!(tokens.len(), 3);
    // A refused checkout may leave a gap (numbers come from a sequence, as Xsolla's have
    // gaps); they still increase.
    let empty = snapshot(&catalog, &cart_of(&[], None));
    assert_eq!(
        checkout(&store, &catalog, request("ann", Some("c"), empty)).await,
        CheckoutOutcome::Refused(OrderError::EmptyCart)
    );
    let snap = snapshot(&catalog, &cart_of(&[("sword", 1)], None));
    let c = created(checkout(&store, &catalog, request("ann", Some("c"), snap)).await);
    assert_eq!(c.order_id, 5);
    assert!(store.load(project(), 4).await.unwrap().is_none());
    let loaded = store
        .load_by_token(project(), &c.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.order.details().unwrap().order_id, 5);
}

#[tokio::test]
async fn two_users_racing_for_the_last_unit_at_checkout_one_wins() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let catalog = catalog();
    let snap = snapshot(&catalog, &cart_of(&[("relic", 1)], None));
    let (a, b) = tokio::join!(
        checkout(&store, &catalog, request("ann", Some("c"), snap.clone())),
        checkout(&store, &catalog, request("bob", Some("c"), snap.clone())),
    );
    let outcomes = [a, b];
    let won = outcomes
        .iter()
        .filter(|o| matches!(o, CheckoutOutcome::Created(_)))
        .count();
    assert_eq!(won, 1, "{outcomes:?}");
    assert!(outcomes.iter().any(|o| matches!(
        o,
        CheckoutOutcome::Refused(OrderError::LimitExceeded { available: 0, .. })
    )));
}

#[tokio::test]
async fn two_payments_racing_for_the_last_unit_one_wins() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let catalog = catalog();
    let snap = snapshot(&catalog, &cart_of(&[("relic", 1)], None));
    // No hold: both checkouts succeed, and the payments decide.
    let mut first = request("ann", Some("c"), snap.clone());
    first.hold = Duration::ZERO;
    let mut second = request("bob", Some("c"), snap);
    second.hold = Duration::ZERO;
    let a = created(checkout(&store, &catalog, first).await);
    let b = created(checkout(&store, &catalog, second).await);
    let (pa, pb) = tokio::join!(
        store.confirm_payment(&catalog, payment(a.order_id, "10", "inv-a")),
        store.confirm_payment(&catalog, payment(b.order_id, "10", "inv-b")),
    );
    let results = [pa.unwrap(), pb.unwrap()];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(OrderError::LimitExceeded { available: 0, .. }))));
}

#[tokio::test]
async fn payment_counts_the_purchase_clears_the_cart_and_repeats_change_nothing() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool.clone());
    let carts = EventStore::new(pool.clone());
    let catalog = catalog();
    stored_cart(
        &carts,
        "ann",
        "c",
        &[("potion", 2), ("sword", 1)],
        Some("HALF"),
    )
    .await;
    let key = StreamKey::new(project(), user("ann"), CartId::parse("c").unwrap());
    let cart = carts.load(&key).await.unwrap().cart;
    let snap = snapshot(&catalog, &cart);
    assert_eq!(snap.promo_code.as_deref(), Some("HALF"));
    let total = snap.total.as_ref().unwrap().amount;
    assert_eq!(total, "4.00".parse().unwrap());
    let c = created(checkout(&store, &catalog, request("ann", Some("c"), snap)).await);

    // Wrong amount or currency: refused, nothing changes.
    let wrong = store
        .confirm_payment(&catalog, payment(c.order_id, "4.01", "inv-1"))
        .await
        .unwrap();
    assert!(matches!(wrong, Err(OrderError::AmountMismatch { .. })));
    let mut eur = payment(c.order_id, "4", "inv-1");
    eur.currency = Currency::parse("EUR").unwrap();
    let wrong = store.confirm_payment(&catalog, eur).await.unwrap();
    assert!(matches!(wrong, Err(OrderError::CurrencyMismatch { .. })));
    assert_eq!(carts.load(&key).await.unwrap().cart.lines().len(), 2);

    let paid = store
        .confirm_payment(&catalog, payment(c.order_id, "4", "inv-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paid.order.status(), Some(OrderStatus::Paid));
    let after = carts.load(&key).await.unwrap();
    assert!(after.cart.lines().is_empty());
    assert!(after.cart.promo_code().is_none());

    // The same invoice again: the same order, no new event; another invoice: refused.
    let again = store
        .confirm_payment(&catalog, payment(c.order_id, "4", "inv-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.version, paid.version);
    let other = store
        .confirm_payment(&catalog, payment(c.order_id, "4", "inv-2"))
        .await
        .unwrap();
    assert!(matches!(other, Err(OrderError::AlreadyPaid { .. })));
    assert_eq!(carts.load(&key).await.unwrap().version, after.version);

    // Counted: the per-user limit of 2 potions is used up, the code is redeemed once.
    let windows = BTreeMap::from([(Sku::parse("potion").unwrap(), Timestamp::from_unix(0))]);
    let bought = store
        .purchases(
            project(),
            &user("ann"),
            &windows,
            &[("HALF".into(), vec!["HALF".into()])],
        )
        .await
        .unwrap();
    assert_eq!(bought.of(&Sku::parse("potion").unwrap()).total, 2);
    assert_eq!(bought.promo_codes["HALF"].by_user, 1);
    let more = snapshot(&catalog, &cart_of(&[("potion", 1)], None));
    assert!(matches!(
        checkout(&store, &catalog, request("ann", Some("c"), more)).await,
        CheckoutOutcome::Refused(OrderError::LimitExceeded { available: 0, .. })
    ));

    // A refund gives no limit back.
    let canceled = store
        .cancel(project(), c.order_id, "refund".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(canceled.order.status(), Some(OrderStatus::Canceled));
    let bought = store
        .purchases(project(), &user("ann"), &windows, &[])
        .await
        .unwrap();
    assert_eq!(bought.of(&Sku::parse("potion").unwrap()).total, 2);
}

#[tokio::test]
async fn a_newer_order_with_the_limited_item_expires_the_older_and_it_cannot_be_paid() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let catalog = catalog();
    let snap = snapshot(&catalog, &cart_of(&[("potion", 1)], None));
    let old = created(checkout(&store, &catalog, request("ann", Some("c"), snap.clone())).await);
    // Another user's order, and one without the item, are left alone.
    let bob = created(checkout(&store, &catalog, request("bob", Some("c"), snap.clone())).await);
    let plain = snapshot(&catalog, &cart_of(&[("sword", 1)], None));
    let sword = created(checkout(&store, &catalog, request("ann", Some("d"), plain)).await);
    let new = created(checkout(&store, &catalog, request("ann", Some("c"), snap)).await);
    assert_eq!(new.expired, vec![old.order_id]);
    let old_order = store.load(project(), old.order_id).await.unwrap().unwrap();
    assert_eq!(old_order.order.status(), Some(OrderStatus::Expired));
    assert_eq!(old_order.order.expired_by(), Some(new.order_id));
    for untouched in [bob.order_id, sword.order_id] {
        let o = store.load(project(), untouched).await.unwrap().unwrap();
        assert_eq!(o.order.status(), Some(OrderStatus::New));
    }
    let refused = store
        .confirm_payment(&catalog, payment(old.order_id, "1.50", "inv"))
        .await
        .unwrap();
    assert_eq!(refused, Err(expired_to_paid()));
}

#[tokio::test]
async fn a_free_order_is_done_at_once_and_delivery_marks_a_paid_order_done() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool.clone());
    let catalog = catalog();
    let free = snapshot(&catalog, &cart_of(&[("gift", 1)], None));
    let f = created(checkout(&store, &catalog, request("ann", Some("c"), free)).await);
    assert_eq!(f.status, OrderStatus::Done);
    let snap = snapshot(&catalog, &cart_of(&[("sword", 2)], None));
    let c = created(checkout(&store, &catalog, request("ann", Some("c"), snap)).await);
    // Not paid yet: delivery is refused, with the domain's reason.
    let refused = store.mark_delivered(P, c.order_id).await.unwrap_err();
    assert!(refused.is_refusal(), "{refused:?}");
    assert!(
        matches!(
            &refused,
            OrderStoreError::Refused { order_id, refusal: OrderError::InvalidTransition { from: OrderStatus::New, .. } }
                if *order_id == c.order_id
        ),
        "{refused:?}"
    );
    store
        .confirm_payment(&catalog, payment(c.order_id, "10.00", "inv"))
        .await
        .unwrap()
        .unwrap();
    store.mark_delivered(P, c.order_id).await.unwrap();
    store.mark_delivered(P, c.order_id).await.unwrap();
    let done = store.load(project(), c.order_id).await.unwrap().unwrap();
    assert_eq!(done.order.status(), Some(OrderStatus::Done));
    assert_eq!(
        done.version, 3,
        "created, paid, done: the repeat wrote nothing"
    );

    // The relay's reader: every event once, in order, each with the order after it.
    let mut conn = pool.acquire().await.unwrap();
    // The reader stops below the cluster's oldest open transaction (another test's, in
    // another database, may hold it back for a moment): read until all five show.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = read_page(&mut conn, crate::Position::default(), 100)
            .await
            .unwrap();
        if page.len() >= 5 || std::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let types: Vec<(u64, &str, OrderStatus)> = page
        .iter()
        .map(|e| (e.order_id, e.event.event_type(), e.order.status().unwrap()))
        .collect();
    assert_eq!(
        types,
        vec![
            (f.order_id, "OrderCreated", OrderStatus::New),
            (f.order_id, "OrderDone", OrderStatus::Done),
            (c.order_id, "OrderCreated", OrderStatus::New),
            (c.order_id, "OrderPaid", OrderStatus::Paid),
            (c.order_id, "OrderDone", OrderStatus::Done),
        ]
    );
    let rest = read_page(&mut conn, page[1].position, 1).await.unwrap();
    assert_eq!(rest.len(), 1, "a page ends at a transaction boundary");
    assert_eq!(rest[0].event.event_type(), "OrderCreated");
}

#[tokio::test]
async fn a_retried_checkout_with_the_same_command_id_creates_one_order() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let catalog = catalog();
    let snap = snapshot(&catalog, &cart_of(&[("sword", 1)], None));
    let mut first = request("ann", Some("c"), snap.clone());
    first.command = Some(ProcessedCommand {
        command_id: "k1".into(),
        fingerprint: vec![1],
        content_type: "application/json".into(),
        reply: vec![],
    });
    let reply = |c: &Created| c.order_id.to_string().into_bytes();
    let a = store
        .checkout(&catalog, first.clone(), reply)
        .await
        .unwrap();
    let b = store
        .checkout(&catalog, first.clone(), reply)
        .await
        .unwrap();
    assert!(matches!(a, CheckoutOutcome::Created(ref c) if c.order_id == 1));
    assert!(matches!(b, CheckoutOutcome::Replayed(ref p) if p.reply == b"1"));
    let mut reused = first;
    reused.command.as_mut().unwrap().fingerprint = vec![2];
    assert_eq!(
        store.checkout(&catalog, reused, reply).await.unwrap(),
        CheckoutOutcome::IdReused
    );
    assert!(store.load(project(), 2).await.unwrap().is_none());
}

#[tokio::test]
async fn a_recurrent_per_user_limit_resets_at_its_hour_in_its_time_zone() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let catalog = catalog();
    // 2026-09-21T23:30:00Z: the daily reset is 03:00 at +03:00, i.e. 00:00 UTC.
    let before_reset = Timestamp::from_unix(1_790_033_400);
    let at = |now: Timestamp| {
        let mut r = request(
            "ann",
            Some("c"),
            snapshot(&catalog, &cart_of(&[("daily", 1)], None)),
        );
        r.now = now;
        r
    };
    let first = created(checkout(&store, &catalog, at(before_reset)).await);
    let mut paid = payment(first.order_id, "2", "inv-1");
    paid.now = before_reset;
    store
        .confirm_payment(&catalog, paid)
        .await
        .unwrap()
        .unwrap();
    // Later the same day: used up, with the next reset in the refusal.
    let same_day = Timestamp::from_unix(before_reset.unix() + 600);
    match checkout(&store, &catalog, at(same_day)).await {
        CheckoutOutcome::Refused(OrderError::LimitExceeded {
            available: 0,
            reset_next_date: Some(next),
            ..
        }) => assert_eq!(next.unix(), 1_790_035_200),
        other => panic!("expected the daily limit, got {other:?}"),
    }
    // Right after the reset: available again.
    let next_day = Timestamp::from_unix(1_790_035_200 + 60);
    created(checkout(&store, &catalog, at(next_day)).await);
}

#[tokio::test]
async fn two_buyers_racing_for_a_codes_last_redemption_one_pays() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let catalog = catalog();
    let snap = snapshot(&catalog, &cart_of(&[("sword", 1)], Some("ONCE")));
    assert_eq!(snap.promo_code.as_deref(), Some("ONCE"));
    let a = created(checkout(&store, &catalog, request("ann", Some("c"), snap.clone())).await);
    let b = created(checkout(&store, &catalog, request("bob", Some("c"), snap)).await);
    let (pa, pb) = tokio::join!(
        store.confirm_payment(&catalog, payment(a.order_id, "4.50", "inv-a")),
        store.confirm_payment(&catalog, payment(b.order_id, "4.50", "inv-b")),
    );
    let results = [pa.unwrap(), pb.unwrap()];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().any(|r| matches!(
        r,
        Err(OrderError::PromoCodeLimitReached { code }) if code == "ONCE"
    )));
}

#[tokio::test]
async fn a_free_order_redeems_a_limited_code_under_its_lock() {
    let (_db, pool) = testing::database().await;
    let store = OrderStore::new(pool);
    let catalog = catalog();
    // Pricing never attaches a code to an all-free cart today; the store must not rely
    // on that, since a free order redeems its code at checkout.
    let mut free = snapshot(&catalog, &cart_of(&[("gift", 1)], None));
    free.promo_code = Some("ONCE".into());
    let (a, b) = tokio::join!(
        checkout(&store, &catalog, request("ann", Some("c"), free.clone())),
        checkout(&store, &catalog, request("bob", Some("c"), free)),
    );
    let outcomes = [a, b];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, CheckoutOutcome::Created(_)))
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.iter().any(|o| matches!(
        o,
        CheckoutOutcome::Refused(OrderError::PromoCodeLimitReached { .. })
    )));
}

mod erasure;
mod erasure_race;
mod expiry;
mod export;
mod grouped;
mod import;
mod promotions;
mod refusals;
