//! Given an order's history, when a command is decided, then these events (or this
//! refusal).

use std::collections::BTreeMap;
use std::str::FromStr;

use super::*;
use crate::availability::SkuPurchases;
use crate::cart::{self, Cart, CartEvent};
use crate::catalog::{Catalog, Item, ItemPrice, PerUserLimit, PromoCode};
use crate::pricing::{price, AppliedCode, PricingContext};
use crate::time::{Interval, RecurrentSchedule};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}
fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}
fn usd() -> Currency {
    Currency::usd()
}
fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}
fn project() -> ProjectId {
    ProjectId::parse(44056).unwrap()
}
fn now() -> Timestamp {
    Timestamp::from_civil(2024, 3, 5, 10, 0, 0)
}

fn paid_line(s: &str, quantity: u32, unit: &str, currency: Currency) -> OrderLine {
    OrderLine {
        sku: sku(s),
        quantity,
        item_type: Some("virtual_good".into()),
        price: Some(LinePrice {
            amount: dec(unit),
            amount_without_discount: dec(unit),
            currency,
        }),
        is_free: false,
        is_bonus: false,
        promotions: vec![],
        problem: None,
    }
}
fn free_line(s: &str, is_bonus: bool) -> OrderLine {
    OrderLine {
        price: None,
        is_free: true,
        is_bonus,
        ..paid_line(s, 1, "0", usd())
    }
}

fn snapshot(lines: Vec<OrderLine>, total: Option<&str>) -> OrderSnapshot {
    OrderSnapshot {
        lines,
        promo_code: None,
        promotions: vec![],
        total: total.map(|t| OrderTotal {
            amount: dec(t),
            amount_without_discount: dec(t),
            currency: usd(),
        }),
        currency: Some(usd()),
    }
}

fn new_order(snapshot: OrderSnapshot) -> NewOrder {
    NewOrder {
        order_id: 641,
        payment_token: "f4puMEFFDZcx9nv5HoNHIkPe9qghvBQo".into(),
        project: project(),
        user: UserId::parse("u1").unwrap(),
        snapshot,
        catalog_version: 7,
        now: now(),
        custom_parameters: None,
        limits: Ok(()),
    }
}

fn checkout(snapshot: OrderSnapshot) -> OrderCommand {
    OrderCommand::Checkout {
        cart_id: CartId::parse("c1").unwrap(),
        order: new_order(snapshot),
    }
}

/// Two cups at 5.99: 11.98 USD.
fn cups() -> OrderSnapshot {
    snapshot(vec![paid_line("cup", 2, "5.99", usd())], Some("11.98"))
}

fn pay(invoice: &str, amount: &str, currency: Currency) -> OrderCommand {
    OrderCommand::ConfirmPayment {
        invoice_id: invoice.into(),
        amount: dec(amount),
        currency,
        mode: PaymentMode::Sandbox,
        limits: Ok(()),
    }
}

fn cancel() -> OrderCommand {
    OrderCommand::Cancel {
        reason: "refund".into(),
    }
}

fn expire() -> OrderCommand {
    OrderCommand::Expire {
        by_order: Some(642),
    }
}

/// Decides each command in turn on the folded history; panics on a refusal.
fn history(commands: Vec<OrderCommand>) -> Vec<OrderEvent> {
    let mut events = Vec::new();
    for command in commands {
        let order = Order::replay(&events);
        events.extend(decide(&order, command).unwrap());
    }
    events
}

fn order_after(commands: Vec<OrderCommand>) -> Order {
    Order::replay(&history(commands))
}

fn new() -> Order {
    order_after(vec![checkout(cups())])
}
fn paid() -> Order {
    order_after(vec![checkout(cups()), pay("inv1", "11.98", usd())])
}
fn done() -> Order {
    order_after(vec![
        checkout(cups()),
        pay("inv1", "11.98", usd()),
        OrderCommand::MarkDelivered,
    ])
}
fn canceled() -> Order {
    order_after(vec![
        checkout(cups()),
        pay("inv1", "11.98", usd()),
        cancel(),
    ])
}
fn expired() -> Order {
    order_after(vec![checkout(cups()), expire()])
}

fn invalid(from: OrderStatus, to: OrderStatus) -> Result<Vec<OrderEvent>, OrderError> {
    Err(OrderError::InvalidTransition { from, to })
}

#[test]
fn checkout_creates_a_new_order_with_the_snapshot() {
    let events = decide(&Order::default(), checkout(cups())).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type(), "OrderCreated");
    let order = Order::replay(&events);
    assert_eq!(order.status(), Some(OrderStatus::New));
    let details = order.details().unwrap();
    assert_eq!(details.order_id, 641);
    assert_eq!(details.cart_id, Some(CartId::parse("c1").unwrap()));
    assert_eq!(details.snapshot, cups());
    assert_eq!(details.catalog_version, 7);
    assert_eq!(details.created_at, now());
    // A second checkout on the same stream is refused.
    assert_eq!(
        decide(&order, checkout(cups())),
        Err(OrderError::AlreadyCreated { order_id: 641 })
    );
}

#[test]
fn the_allowed_transitions() {
    assert_eq!(paid().status(), Some(OrderStatus::Paid));
    assert_eq!(
        paid().payment(),
        Some(&Payment {
            invoice_id: "inv1".into(),
            amount: dec("11.98"),
            currency: usd(),
            mode: PaymentMode::Sandbox,
        })
    );
    assert_eq!(done().status(), Some(OrderStatus::Done));
    assert_eq!(canceled().status(), Some(OrderStatus::Canceled));
    assert_eq!(canceled().cancel_reason(), Some("refund"));
    assert_eq!(expired().status(), Some(OrderStatus::Expired));
    assert_eq!(expired().expired_by(), Some(642));
    // done -> canceled (a refund after the items were granted).
    assert_eq!(
        decide(&done(), cancel()),
        Ok(vec![OrderEvent::OrderCanceled {
            reason: "refund".into()
        }])
    );
}

#[test]
fn every_other_transition_is_refused() {
    use OrderStatus::*;
    // new: cannot be delivered or canceled.
    assert_eq!(
        decide(&new(), OrderCommand::MarkDelivered),
        invalid(New, Done)
    );
    assert_eq!(decide(&new(), cancel()), invalid(New, Canceled));
    // paid: cannot expire.
    assert_eq!(decide(&paid(), expire()), invalid(Paid, Expired));
    // done: cannot expire, another invoice cannot pay it.
    assert_eq!(decide(&done(), expire()), invalid(Done, Expired));
    assert_eq!(
        decide(&done(), pay("inv2", "11.98", usd())),
        Err(OrderError::AlreadyPaid {
            invoice_id: "inv1".into()
        })
    );
    // canceled: final.
    assert_eq!(
        decide(&canceled(), OrderCommand::MarkDelivered),
        invalid(Canceled, Done)
    );
    assert_eq!(decide(&canceled(), expire()), invalid(Canceled, Expired));
    // expired: final; paying it is refused (Pay Station's 2002).
    assert_eq!(
        decide(&expired(), pay("inv1", "11.98", usd())),
        invalid(Expired, Paid)
    );
    assert_eq!(
        decide(&expired(), OrderCommand::MarkDelivered),
        invalid(Expired, Done)
    );
    assert_eq!(decide(&expired(), cancel()), invalid(Expired, Canceled));
    // Nothing happens to an order that does not exist.
    for command in [pay("inv1", "1", usd()), cancel(), expire()] {
        assert_eq!(
            decide(&Order::default(), command),
            Err(OrderError::NotFound)
        );
    }
    assert_eq!(OrderError::NotFound.code(), 9001);
}

#[test]
fn repeats_are_idempotent() {
    assert_eq!(decide(&paid(), pay("inv1", "11.98", usd())), Ok(vec![]));
    assert_eq!(decide(&done(), OrderCommand::MarkDelivered), Ok(vec![]));
    assert_eq!(decide(&canceled(), cancel()), Ok(vec![]));
    assert_eq!(decide(&expired(), expire()), Ok(vec![]));
}

#[test]
fn a_payment_must_match_the_total_and_currency_exactly() {
    assert_eq!(
        decide(&new(), pay("inv1", "11.97", usd())),
        Err(OrderError::AmountMismatch {
            expected: dec("11.98"),
            paid: dec("11.97"),
        })
    );
    assert_eq!(
        decide(&new(), pay("inv1", "11.98", eur())),
        Err(OrderError::CurrencyMismatch {
            expected: usd(),
            paid: eur(),
        })
    );
    // The same value with more decimals is the same amount.
    assert_eq!(
        decide(&new(), pay("inv1", "11.9800", usd())).unwrap().len(),
        1
    );
    assert_eq!(
        OrderError::AmountMismatch {
            expected: dec("1"),
            paid: dec("2")
        }
        .code(),
        1102
    );
}

#[test]
fn duplicate_and_out_of_order_confirmations() {
    // Another invoice on a paid order.
    assert_eq!(
        decide(&paid(), pay("inv2", "11.98", usd())),
        Err(OrderError::AlreadyPaid {
            invoice_id: "inv1".into()
        })
    );
    // The confirmation arriving again after delivery or after a refund changes nothing.
    assert_eq!(decide(&done(), pay("inv1", "11.98", usd())), Ok(vec![]));
    assert_eq!(decide(&canceled(), pay("inv1", "11.98", usd())), Ok(vec![]));
    // A refund that arrives before its payment is refused; after the payment it works.
    assert_eq!(
        decide(&new(), cancel()),
        invalid(OrderStatus::New, OrderStatus::Canceled)
    );
    assert_eq!(decide(&paid(), cancel()).unwrap().len(), 1);
    // A delivery before the payment is refused.
    assert_eq!(
        decide(&new(), OrderCommand::MarkDelivered),
        invalid(OrderStatus::New, OrderStatus::Done)
    );
}

#[test]
fn a_payment_over_a_limit_is_refused() {
    let over = OrderError::LimitExceeded {
        sku: sku("cup"),
        available: 0,
        reset_next_date: None,
    };
    let command = OrderCommand::ConfirmPayment {
        invoice_id: "inv1".into(),
        amount: dec("11.98"),
        currency: usd(),
        mode: PaymentMode::Default,
        limits: Err(over.clone()),
    };
    assert_eq!(decide(&new(), command), Err(over));
}

#[test]
fn an_all_free_cart_is_a_free_order_straight_to_done() {
    let free = snapshot(
        vec![free_line("gift", false), free_line("bonus", true)],
        None,
    );
    let events = decide(&Order::default(), checkout(free)).unwrap();
    assert_eq!(
        events
            .iter()
            .map(OrderEvent::event_type)
            .collect::<Vec<_>>(),
        ["OrderCreated", "OrderDone"]
    );
    let order = Order::replay(&events);
    assert_eq!(order.status(), Some(OrderStatus::Done));
    // Nothing to pay.
    assert_eq!(
        decide(&order, pay("inv1", "0", usd())),
        invalid(OrderStatus::Done, OrderStatus::Paid)
    );
}

#[test]
fn checkout_refusals() {
    let refuse = |s: OrderSnapshot| decide(&Order::default(), checkout(s)).unwrap_err();
    // Empty, or bonus lines only.
    assert_eq!(refuse(snapshot(vec![], None)), OrderError::EmptyCart);
    assert_eq!(
        refuse(snapshot(vec![free_line("bonus", true)], None)),
        OrderError::EmptyCart
    );
    assert_eq!(OrderError::EmptyCart.code(), 1401);
    // A free item among paid ones.
    let mixed = snapshot(
        vec![paid_line("cup", 2, "5.99", usd()), free_line("gift", false)],
        Some("11.98"),
    );
    let err = refuse(mixed);
    assert_eq!(err, OrderError::FreeItem { sku: sku("gift") });
    assert_eq!(err.code(), 1401);
    // A bonus line alongside paid ones is fine.
    let with_bonus = snapshot(
        vec![paid_line("cup", 2, "5.99", usd()), free_line("bonus", true)],
        Some("11.98"),
    );
    assert!(decide(&Order::default(), checkout(with_bonus)).is_ok());
    // A line that cannot be bought.
    let mut off = paid_line("cup", 1, "5.99", usd());
    off.problem = Some(LineProblem::Unavailable(Unavailable::NotOnSale));
    let err = refuse(snapshot(vec![off], Some("5.99")));
    assert_eq!(
        err,
        OrderError::CannotBeBought {
            sku: sku("cup"),
            problem: LineProblem::Unavailable(Unavailable::NotOnSale),
        }
    );
    assert_eq!(err.code(), 1455);
    let mut over = paid_line("cup", 3, "5.99", usd());
    over.problem = Some(LineProblem::Unavailable(Unavailable::PerUserLimit {
        available: 2,
    }));
    let err = refuse(snapshot(vec![over], Some("17.97")));
    assert_eq!(
        err,
        OrderError::LimitExceeded {
            sku: sku("cup"),
            available: 2,
            reset_next_date: None,
        }
    );
    assert_eq!(err.code(), 1459);
    // Mixed currencies, and no total.
    let mixed = snapshot(
        vec![
            paid_line("cup", 1, "5.99", usd()),
            paid_line("shirt", 1, "3.49", eur()),
        ],
        None,
    );
    assert_eq!(refuse(mixed), OrderError::MixedCurrencies);
    assert_eq!(
        refuse(snapshot(vec![paid_line("cup", 1, "5.99", usd())], None)),
        OrderError::NoTotal
    );
    // The shell's limit verdict.
    let mut order = new_order(cups());
    order.limits = Err(OrderError::LimitExceeded {
        sku: sku("cup"),
        available: 0,
        reset_next_date: None,
    });
    let err = decide(
        &Order::default(),
        OrderCommand::Checkout {
            cart_id: CartId::parse("c1").unwrap(),
            order,
        },
    )
    .unwrap_err();
    assert_eq!(err.code(), 1460);
}

#[test]
fn a_single_item_order_has_one_chosen_line() {
    let one = snapshot(
        vec![paid_line("cup", 3, "5.99", usd()), free_line("bonus", true)],
        Some("17.97"),
    );
    let events = decide(
        &Order::default(),
        OrderCommand::CheckoutItem {
            order: new_order(one),
        },
    )
    .unwrap();
    let order = Order::replay(&events);
    assert_eq!(order.details().unwrap().cart_id, None);
    assert_eq!(order.status(), Some(OrderStatus::New));
    let two = snapshot(
        vec![
            paid_line("cup", 1, "5.99", usd()),
            paid_line("shirt", 1, "3.99", usd()),
        ],
        Some("9.98"),
    );
    assert_eq!(
        decide(
            &Order::default(),
            OrderCommand::CheckoutItem {
                order: new_order(two)
            }
        ),
        Err(OrderError::NotSingleItem)
    );
}

fn limited(per_user: Option<(u32, bool)>, per_item: Option<u32>) -> ItemLimits {
    ItemLimits {
        per_user: per_user.map(|(total, recurrent)| PerUserLimit {
            total,
            recurrent_schedule: recurrent.then_some(RecurrentSchedule {
                interval: Interval::Daily,
                hour: 0,
                utc_offset_minutes: 0,
            }),
        }),
        per_item,
    }
}

fn bought(in_window: u32, total: u32) -> Purchases {
    let mut p = Purchases::default();
    p.by_user
        .insert(sku("cup"), SkuPurchases { in_window, total });
    p
}

fn fits(lines: &[OrderLine], limits: &ItemLimits, p: &Purchases) -> Result<(), OrderError> {
    check_limits(lines, |s| (s == &sku("cup")).then_some(limits), p, now())
}

#[test]
fn per_user_limits() {
    let limits = limited(Some((5, false)), None);
    let lines = [paid_line("cup", 2, "5.99", usd())];
    assert_eq!(fits(&lines, &limits, &bought(0, 3)), Ok(()));
    assert_eq!(
        fits(&lines, &limits, &bought(0, 4)),
        Err(OrderError::LimitExceeded {
            sku: sku("cup"),
            available: 1,
            reset_next_date: None,
        })
    );
    // Two lines of one SKU add up; bonus lines count toward nothing.
    let split = [
        paid_line("cup", 1, "5.99", usd()),
        paid_line("cup", 1, "5.99", usd()),
        free_line("cup", true),
    ];
    assert_eq!(fits(&split, &limits, &bought(0, 3)), Ok(()));
    assert!(fits(&split, &limits, &bought(0, 4)).is_err());
    // Items without limits, or unknown to the catalog, always fit.
    let other = [paid_line("shirt", 1000, "1", usd())];
    assert_eq!(fits(&other, &limits, &bought(0, 5)), Ok(()));
}

#[test]
fn a_recurrent_limit_counts_the_current_window_only() {
    let limits = limited(Some((2, true)), None);
    let lines = [paid_line("cup", 1, "5.99", usd())];
    // 40 ever, 1 in today's window: one more fits.
    assert_eq!(fits(&lines, &limits, &bought(1, 40)), Ok(()));
    assert_eq!(
        fits(&lines, &limits, &bought(2, 40)),
        Err(OrderError::LimitExceeded {
            sku: sku("cup"),
            available: 0,
            reset_next_date: Some(Timestamp::from_civil(2024, 3, 6, 0, 0, 0)),
        })
    );
}

#[test]
fn per_item_global_limits() {
    let limits = limited(Some((10, false)), Some(100));
    let lines = [paid_line("cup", 2, "5.99", usd())];
    let mut p = bought(0, 0);
    p.sold.insert(sku("cup"), 98);
    assert_eq!(fits(&lines, &limits, &p), Ok(()));
    p.sold.insert(sku("cup"), 99);
    let err = fits(&lines, &limits, &p).unwrap_err();
    assert_eq!(
        err,
        OrderError::LimitExceeded {
            sku: sku("cup"),
            available: 1,
            reset_next_date: None,
        }
    );
    assert_eq!(err.code(), 1459);
    p.sold.insert(sku("cup"), 100);
    assert_eq!(fits(&lines, &limits, &p).unwrap_err().code(), 1460);
}

fn item(s: &str, unit: &str) -> Item {
    let mut item = Item::new(sku(s), "virtual_good");
    item.prices = vec![ItemPrice {
        currency: usd(),
        amount: dec(unit),
        is_default: true,
        country: None,
    }];
    item
}

#[test]
fn a_snapshot_keeps_discounts_and_the_promo_code_and_excludes_bonus_lines() {
    let mut catalog = Catalog::default();
    catalog.insert(project(), item("booster", "100"));
    catalog.insert(project(), item("swords", "3"));
    let mut code = PromoCode::new("WINTER2021");
    code.discounted_items = vec![(sku("booster"), dec("50"))];
    code.bonus = vec![(sku("swords"), 1)];
    catalog.insert_promo_code(project(), code);
    let cart = cart::apply(
        Cart::default(),
        &CartEvent::ItemQuantitySet {
            sku: sku("booster"),
            quantity: 3,
        },
    );
    let applied = AppliedCode {
        code: "WINTER2021".into(),
        selected_unit_items: BTreeMap::new(),
    };
    let purchases = Purchases::default();
    let currency = usd();
    let priced = price(
        &cart,
        &PricingContext {
            project: project(),
            catalog: &catalog,
            currency: &currency,
            country: None,
            now: now(),
            purchases: &purchases,
            promo_code: Some(&applied),
        },
    );
    let snapshot = OrderSnapshot::from_priced(&priced);
    assert_eq!(snapshot.promo_code.as_deref(), Some("WINTER2021"));
    assert_eq!(
        snapshot.total,
        Some(OrderTotal {
            amount: dec("150"),
            amount_without_discount: dec("300"),
            currency: usd(),
        })
    );
    assert_eq!(snapshot.lines.len(), 2);
    let booster = &snapshot.lines[0];
    assert_eq!(
        booster.price,
        Some(LinePrice {
            amount: dec("50"),
            amount_without_discount: dec("100"),
            currency: usd(),
        })
    );
    assert_eq!(booster.line_total(), Some((dec("150"), dec("300"))));
    assert_eq!(booster.promotions.len(), 1);
    assert_eq!(
        booster.promotions[0].source,
        PromotionRef::PromoCode("WINTER2021".into())
    );
    assert_eq!(booster.promotions[0].step, Some((dec("100"), dec("50"))));
    let swords = &snapshot.lines[1];
    assert!(swords.is_bonus && swords.is_free && swords.price.is_none());
    assert_eq!(snapshot.promotions[0].bonus, vec![(sku("swords"), 1)]);
    assert!(snapshot.lines.iter().all(|l| l.problem.is_none()));
    // It checks out, and the payment must be the discounted total.
    let order = order_after(vec![checkout(snapshot)]);
    assert_eq!(
        decide(&order, pay("inv1", "300", usd())),
        Err(OrderError::AmountMismatch {
            expected: dec("150"),
            paid: dec("300"),
        })
    );
    assert_eq!(decide(&order, pay("inv1", "150", usd())).unwrap().len(), 1);

    // A code that does not apply is not part of the order; an unknown item is a problem.
    let unknown = AppliedCode {
        code: "NOPE".into(),
        selected_unit_items: BTreeMap::new(),
    };
    let cart = cart::apply(
        cart,
        &CartEvent::ItemQuantitySet {
            sku: sku("gone"),
            quantity: 1,
        },
    );
    let priced = price(
        &cart,
        &PricingContext {
            project: project(),
            catalog: &catalog,
            currency: &currency,
            country: None,
            now: now(),
            purchases: &purchases,
            promo_code: Some(&unknown),
        },
    );
    let snapshot = OrderSnapshot::from_priced(&priced);
    assert_eq!(snapshot.promo_code, None);
    assert_eq!(snapshot.lines[1].problem, Some(LineProblem::UnknownItem));
    assert_eq!(
        decide(&Order::default(), checkout(snapshot))
            .unwrap_err()
            .code(),
        1411
    );
}

#[test]
fn a_free_cart_is_checked_out_free_and_a_paid_one_paid() {
    let paid = cups();
    let free = snapshot(vec![free_line("gift", false)], None);
    let mixed = snapshot(
        vec![paid_line("cup", 1, "5.49", usd()), free_line("gift", false)],
        Some("5.49"),
    );
    let empty = snapshot(vec![], None);
    assert_eq!(paid.check_kind(CheckoutKind::Paid), Ok(()));
    assert_eq!(
        paid.check_kind(CheckoutKind::Free),
        Err(OrderError::PaidItemsInFreeCheckout)
    );
    assert_eq!(free.check_kind(CheckoutKind::Free), Ok(()));
    assert_eq!(
        free.check_kind(CheckoutKind::Paid),
        Err(OrderError::FreeCartInPaidCheckout)
    );
    // A free item among paid ones is the paid path's to refuse (FreeItem).
    assert_eq!(mixed.check_kind(CheckoutKind::Paid), Ok(()));
    assert_eq!(
        mixed.check_kind(CheckoutKind::Free),
        Err(OrderError::PaidItemsInFreeCheckout)
    );
    // An empty cart is refused by the order itself, whichever the path.
    assert_eq!(empty.check_kind(CheckoutKind::Free), Ok(()));
    assert_eq!(empty.check_kind(CheckoutKind::Paid), Ok(()));
    for e in [
        OrderError::PaidItemsInFreeCheckout,
        OrderError::FreeCartInPaidCheckout,
    ] {
        assert_eq!(e.code(), 1401);
    }
}
