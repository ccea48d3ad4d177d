//! Given a history, when a command is decided, then these events (or this refusal).

use super::*;

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}
fn qty(n: i64) -> Quantity {
    Quantity::parse(n).unwrap()
}
fn set(s: &str, n: u32) -> CartEvent {
    CartEvent::ItemQuantitySet {
        sku: sku(s),
        quantity: n,
    }
}
fn listed(s: &str, n: i64) -> FillItem {
    FillItem {
        sku: sku(s),
        quantity: qty(n),
        listed: true,
        unavailable: None,
    }
}
fn put(s: &str, n: i64) -> CartCommand {
    CartCommand::PutItem {
        sku: sku(s),
        quantity: qty(n),
        listed: true,
    }
}

/// Replays `history`, decides `command`, and checks the result; on success also checks
/// that applying the new events gives a cart with `lines`.
fn check(history: &[CartEvent], command: CartCommand, expected: Result<Vec<CartEvent>, CartError>) {
    let cart = Cart::replay(history);
    let res = decide(&cart, &command);
    assert_eq!(res, expected, "deciding {command:?} after {history:?}");
}

fn lines_after(history: &[CartEvent]) -> Vec<(String, u32)> {
    Cart::replay(history)
        .lines()
        .iter()
        .map(|l| (l.sku.to_string(), l.quantity))
        .collect()
}

#[test]
fn first_command_opens_the_cart() {
    check(
        &[],
        put("a", 2),
        Ok(vec![CartEvent::CartOpened, set("a", 2)]),
    );
    check(&[], CartCommand::Clear, Ok(vec![CartEvent::CartOpened]));
}

#[test]
fn put_sets_rather_than_adds() {
    let history = [CartEvent::CartOpened, set("a", 2)];
    check(&history, put("a", 5), Ok(vec![set("a", 5)]));
    assert_eq!(
        lines_after(&[CartEvent::CartOpened, set("a", 2), set("a", 5)]),
        [("a".into(), 5)]
    );
}

#[test]
fn putting_the_same_quantity_again_records_nothing() {
    check(
        &[CartEvent::CartOpened, set("a", 2)],
        put("a", 2),
        Ok(vec![]),
    );
}

#[test]
fn put_zero_removes_the_line_and_is_a_no_op_when_absent() {
    let history = [CartEvent::CartOpened, set("a", 2), set("b", 1)];
    check(
        &history,
        put("a", 0),
        Ok(vec![CartEvent::ItemRemoved { sku: sku("a") }]),
    );
    check(&history, put("c", 0), Ok(vec![]));
}

#[test]
fn removing_the_last_line_is_a_clear() {
    check(
        &[CartEvent::CartOpened, set("a", 2)],
        put("a", 0),
        Ok(vec![CartEvent::CartCleared {
            reason: ClearReason::Shopper,
        }]),
    );
}

#[test]
fn unlisted_sku_is_refused_by_put_and_delete() {
    let cmd = CartCommand::PutItem {
        sku: sku("nope"),
        quantity: qty(1),
        listed: false,
    };
    check(&[], cmd, Err(CartError::UnknownItem { sku: sku("nope") }));
    let cmd = CartCommand::DeleteItem {
        sku: sku("nope"),
        listed: false,
    };
    check(&[], cmd, Err(CartError::UnknownItem { sku: sku("nope") }));
}

#[test]
fn delete_of_an_absent_line_records_nothing() {
    let cmd = CartCommand::DeleteItem {
        sku: sku("b"),
        listed: true,
    };
    check(&[CartEvent::CartOpened, set("a", 1)], cmd, Ok(vec![]));
}

#[test]
fn fill_upserts_named_lines_keeps_others_and_skips_unlisted() {
    let history = [CartEvent::CartOpened, set("a", 1), set("b", 1)];
    let items = vec![
        listed("b", 3),
        FillItem {
            sku: sku("ghost"),
            quantity: qty(1),
            listed: false,
            unavailable: None,
        },
        listed("c", 2),
    ];
    let warnings = fill_warnings(&items);
    check(
        &history,
        CartCommand::Fill {
            items,
            replace: false,
        },
        Ok(vec![set("b", 3), set("c", 2)]),
    );
    assert_eq!(
        warnings,
        [Skipped {
            sku: sku("ghost"),
            quantity: qty(1),
            reason: SkipReason::UnknownItem
        }]
    );
}

#[test]
fn fill_skips_and_reports_every_sku_that_cannot_be_bought() {
    use crate::availability::Unavailable;
    let blocked = |s: &str, n: i64, why: Unavailable| FillItem {
        unavailable: Some(why),
        ..listed(s, n)
    };
    let history = [CartEvent::CartOpened, set("off", 1)];
    let items = vec![
        FillItem {
            listed: false,
            ..listed("ghost", 1)
        },
        blocked("off", 2, Unavailable::Disabled),
        blocked("later", 1, Unavailable::NotOnSale),
        blocked("capped", 3, Unavailable::PerUserLimit { available: 2 }),
        blocked("stock", 1, Unavailable::PerItemLimit { available: 0 }),
        listed("ok", 1),
    ];
    let reasons: Vec<_> = fill_warnings(&items)
        .into_iter()
        .map(|w| (w.sku.to_string(), w.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("ghost".to_owned(), SkipReason::UnknownItem),
            (
                "off".to_owned(),
                SkipReason::Unavailable(Unavailable::Disabled)
            ),
            (
                "later".to_owned(),
                SkipReason::Unavailable(Unavailable::NotOnSale)
            ),
            (
                "capped".to_owned(),
                SkipReason::Unavailable(Unavailable::PerUserLimit { available: 2 })
            ),
            (
                "stock".to_owned(),
                SkipReason::Unavailable(Unavailable::PerItemLimit { available: 0 })
            ),
        ]
    );
    check(
        &history,
        CartCommand::Fill {
            items,
            replace: false,
        },
        Ok(vec![set("ok", 1)]),
    );
    // Removing an unavailable line (quantity 0) is not refused.
    let remove = vec![blocked("off", 0, Unavailable::Disabled)];
    assert!(fill_warnings(&remove).is_empty());
    check(
        &history,
        CartCommand::Fill {
            items: remove,
            replace: false,
        },
        Ok(vec![CartEvent::CartCleared {
            reason: ClearReason::Shopper,
        }]),
    );
}

#[test]
fn fill_with_duplicate_skus_keeps_the_last() {
    let items = vec![listed("a", 1), listed("a", 4)];
    check(
        &[CartEvent::CartOpened],
        CartCommand::Fill {
            items,
            replace: false,
        },
        Ok(vec![set("a", 4)]),
    );
}

#[test]
fn fill_replace_removes_unnamed_lines_in_the_same_change() {
    let history = [CartEvent::CartOpened, set("a", 1), set("b", 1)];
    let cmd = CartCommand::Fill {
        items: vec![listed("b", 1), listed("c", 1)],
        replace: true,
    };
    check(
        &history,
        cmd,
        Ok(vec![CartEvent::ItemRemoved { sku: sku("a") }, set("c", 1)]),
    );
    let cmd = CartCommand::Fill {
        items: vec![],
        replace: true,
    };
    check(
        &history,
        cmd,
        Ok(vec![CartEvent::CartCleared {
            reason: ClearReason::Shopper,
        }]),
    );
}

#[test]
fn fill_replace_leaves_the_lines_in_the_order_the_request_names_them() {
    // Emptied first, then filled: `c` moves to the front, `a` (named last) goes after
    // the new `d`, `b` (not named) goes.
    let history = [CartEvent::CartOpened, set("a", 1), set("b", 1), set("c", 2)];
    let cmd = CartCommand::Fill {
        items: vec![listed("c", 2), listed("d", 1), listed("a", 3)],
        replace: true,
    };
    let events = decide(&Cart::replay(&history), &cmd).unwrap();
    assert_eq!(
        events,
        vec![
            CartEvent::ItemRemoved { sku: sku("a") },
            CartEvent::ItemRemoved { sku: sku("b") },
            set("d", 1),
            set("a", 3),
        ]
    );
    let after: Vec<_> = history.iter().cloned().chain(events).collect();
    assert_eq!(
        lines_after(&after),
        [
            ("c".to_owned(), 2),
            ("d".to_owned(), 1),
            ("a".to_owned(), 3)
        ]
    );
    // Lines already in the asked order stay where they are: only changes are recorded.
    let cmd = CartCommand::Fill {
        items: vec![listed("a", 1), listed("c", 5)],
        replace: true,
    };
    check(
        &history,
        cmd,
        Ok(vec![CartEvent::ItemRemoved { sku: sku("b") }, set("c", 5)]),
    );
}

#[test]
fn every_replacing_fill_of_every_small_cart_ends_in_the_request_order() {
    // Every cart of up to three of `a`..`d` in every order, replaced by every request of
    // up to three of them in every order (quantities differing or not): the folded cart
    // is exactly the request, and a plain fill keeps the surviving lines in place.
    let skus = ["a", "b", "c", "d"];
    let orders = arrangements(&skus, 3);
    for before in &orders {
        let mut history = vec![CartEvent::CartOpened];
        history.extend(before.iter().map(|s| set(s, 1)));
        for request in &orders {
            for quantity in [1, 2] {
                let items = request.iter().map(|s| listed(s, quantity)).collect();
                let cmd = CartCommand::Fill {
                    items,
                    replace: true,
                };
                let mut after = history.clone();
                after.extend(decide(&Cart::replay(&history), &cmd).unwrap());
                let want: Vec<_> = request
                    .iter()
                    .map(|s| ((*s).to_owned(), u32::try_from(quantity).unwrap()))
                    .collect();
                assert_eq!(
                    lines_after(&after),
                    want,
                    "{before:?} replaced by {request:?}"
                );

                let items = request.iter().map(|s| listed(s, quantity)).collect();
                let cmd = CartCommand::Fill {
                    items,
                    replace: false,
                };
                let mut after = history.clone();
                after.extend(decide(&Cart::replay(&history), &cmd).unwrap());
                let mut want: Vec<String> = before.iter().map(|s| (*s).to_owned()).collect();
                want.extend(
                    request
                        .iter()
                        .filter(|s| !before.contains(*s))
                        .map(|s| (*s).to_owned()),
                );
                let got: Vec<String> = lines_after(&after).into_iter().map(|l| l.0).collect();
                assert_eq!(got, want, "{before:?} filled with {request:?}");
            }
        }
    }
}

/// Every ordered selection of at most `max` distinct entries of `items`.
fn arrangements<'a>(items: &[&'a str], max: usize) -> Vec<Vec<&'a str>> {
    let mut all = vec![vec![]];
    let mut frontier = vec![vec![]];
    for _ in 0..max {
        let mut next = Vec::new();
        for chosen in &frontier {
            for item in items.iter().filter(|i| !chosen.contains(*i)) {
                let mut longer: Vec<&str> = chosen.clone();
                longer.push(*item);
                next.push(longer);
            }
        }
        all.extend(next.iter().cloned());
        frontier = next;
    }
    all
}

#[test]
fn a_cart_never_grows_past_the_line_limit() {
    let mut history = vec![CartEvent::CartOpened];
    history.extend((0..MAX_LINES).map(|i| set(&format!("s{i}"), 1)));
    check(
        &history,
        put("one-more", 1),
        Err(CartError::TooManyLines { max: MAX_LINES }),
    );
    // Changing an existing line is still fine at the limit.
    check(&history, put("s0", 7), Ok(vec![set("s0", 7)]));
}

#[test]
fn clear_of_an_empty_opened_cart_records_nothing() {
    check(&[CartEvent::CartOpened], CartCommand::Clear, Ok(vec![]));
}

#[test]
fn replay_of_decided_events_matches_the_intended_lines() {
    // A small exhaustive walk: every decision, applied, yields exactly the lines the
    // command asked for.
    let mut history = Vec::new();
    let commands = [
        put("a", 1),
        put("b", 2),
        CartCommand::Fill {
            items: vec![listed("a", 0), listed("c", 3)],
            replace: false,
        },
        put("b", 0),
        CartCommand::Fill {
            items: vec![listed("d", 1)],
            replace: true,
        },
        CartCommand::Clear,
        put("e", 9),
    ];
    let expected: [&[(&str, u32)]; 7] = [
        &[("a", 1)],
        &[("a", 1), ("b", 2)],
        &[("b", 2), ("c", 3)],
        &[("c", 3)],
        &[("d", 1)],
        &[],
        &[("e", 9)],
    ];
    for (command, want) in commands.iter().zip(expected) {
        let events = decide(&Cart::replay(&history), command).unwrap();
        history.extend(events);
        let want: Vec<(String, u32)> = want.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect();
        assert_eq!(lines_after(&history), want, "after {command:?}");
    }
}

// ---- promo codes ----------------------------------------------------------------

fn redeem(code: &str) -> CartCommand {
    CartCommand::RedeemPromoCode {
        code: code.to_owned(),
        selected_unit_items: BTreeMap::new(),
        check: Ok(()),
        existence: Existence::Always,
    }
}
fn redeemed(code: &str) -> CartEvent {
    CartEvent::PromoCodeRedeemed {
        code: code.to_owned(),
        selected_unit_items: BTreeMap::new(),
    }
}

#[test]
fn redeeming_a_code_on_a_new_cart_opens_it_and_attaches_the_code() {
    check(
        &[],
        redeem("WINTER"),
        Ok(vec![CartEvent::CartOpened, redeemed("WINTER")]),
    );
    let cart = Cart::replay(&[CartEvent::CartOpened, redeemed("WINTER")]);
    assert_eq!(cart.promo_code().unwrap().code, "WINTER");
}

#[test]
fn a_second_code_replaces_the_first_and_the_same_code_changes_nothing() {
    let history = [CartEvent::CartOpened, set("a", 1), redeemed("ONE")];
    check(&history, redeem("TWO"), Ok(vec![redeemed("TWO")]));
    check(&history, redeem("ONE"), Ok(vec![]));
    let mut picks = BTreeMap::new();
    picks.insert(sku("game"), sku("game_steam"));
    let with_picks = CartCommand::RedeemPromoCode {
        code: "ONE".into(),
        selected_unit_items: picks.clone(),
        check: Ok(()),
        existence: Existence::OnceOpened,
    };
    check(
        &history,
        with_picks,
        Ok(vec![CartEvent::PromoCodeRedeemed {
            code: "ONE".into(),
            selected_unit_items: picks.clone(),
        }]),
    );
    let mut replaced = history.to_vec();
    replaced.push(redeemed("TWO"));
    let cart = Cart::replay(&replaced);
    assert_eq!(cart.promo_code().unwrap().code, "TWO");
    assert_eq!(cart.lines().len(), 1);
}

#[test]
fn a_refused_code_changes_nothing() {
    let history = [CartEvent::CartOpened, redeemed("ONE")];
    for rejection in [
        PromoCodeRejection::NotFound,
        PromoCodeRejection::Expired,
        PromoCodeRejection::Region,
        PromoCodeRejection::UserLimitReached,
    ] {
        let command = CartCommand::RedeemPromoCode {
            code: "BAD".into(),
            selected_unit_items: BTreeMap::new(),
            check: Err(rejection.clone()),
            existence: Existence::Always,
        };
        check(
            &history,
            command.clone(),
            Err(CartError::PromoCode(rejection)),
        );
        // Not even CartOpened on a new cart.
        assert!(decide(&Cart::default(), &command).is_err());
    }
}

#[test]
fn removing_detaches_the_code_and_is_a_no_op_without_one() {
    let history = [CartEvent::CartOpened, set("a", 1), redeemed("ONE")];
    check(
        &history,
        CartCommand::RemovePromoCode {
            existence: Existence::Always,
        },
        Ok(vec![CartEvent::PromoCodeRemoved]),
    );
    check(
        &[CartEvent::CartOpened, set("a", 1)],
        CartCommand::RemovePromoCode {
            existence: Existence::Always,
        },
        Ok(vec![]),
    );
    let mut removed = history.to_vec();
    removed.push(CartEvent::PromoCodeRemoved);
    let cart = Cart::replay(&removed);
    assert_eq!(cart.promo_code(), None);
    assert_eq!(cart.quantity_of(&sku("a")), 1);
}

#[test]
fn clearing_the_cart_keeps_the_code_and_item_changes_keep_it_too() {
    let history = [CartEvent::CartOpened, set("a", 1), redeemed("ONE")];
    check(
        &history,
        CartCommand::Clear,
        Ok(vec![CartEvent::CartCleared {
            reason: ClearReason::Shopper,
        }]),
    );
    let mut after = history.to_vec();
    after.push(CartEvent::CartCleared {
        reason: ClearReason::Shopper,
    });
    after.push(set("b", 2));
    after.push(CartEvent::ItemRemoved { sku: sku("b") });
    let cart = Cart::replay(&after);
    assert_eq!(cart.promo_code().unwrap().code, "ONE");
    assert!(cart.lines().is_empty());
}

#[test]
fn a_purchase_empties_the_cart_and_detaches_the_code_and_a_second_one_does_nothing() {
    let history = [CartEvent::CartOpened, set("a", 1), redeemed("ONE")];
    check(
        &history,
        CartCommand::Purchased,
        Ok(vec![
            CartEvent::CartCleared {
                reason: ClearReason::Purchased,
            },
            CartEvent::PromoCodeRemoved,
        ]),
    );
    let mut after = history.to_vec();
    after.push(CartEvent::CartCleared {
        reason: ClearReason::Purchased,
    });
    after.push(CartEvent::PromoCodeRemoved);
    check(&after, CartCommand::Purchased, Ok(vec![]));
    // A cart that never existed is not opened by a purchase.
    check(&[], CartCommand::Purchased, Ok(vec![]));
}

#[test]
fn an_expiry_detaches_the_code_clears_and_leaves_a_cart_never_opened() {
    let history = [CartEvent::CartOpened, set("a", 1), redeemed("ONE")];
    let expired = vec![
        CartEvent::PromoCodeRemoved,
        CartEvent::CartCleared {
            reason: ClearReason::Expired,
        },
    ];
    check(&history, CartCommand::Expire, Ok(expired.clone()));
    let mut after = history.to_vec();
    after.extend(expired);
    assert_eq!(Cart::replay(&after), Cart::default());
    // Expired already, or never opened: nothing to expire.
    check(&after, CartCommand::Expire, Ok(vec![]));
    check(&[], CartCommand::Expire, Ok(vec![]));
    // An empty cart that exists still gets the marker, and a command after it opens
    // the cart anew.
    let empty = [CartEvent::CartOpened];
    let marker = CartEvent::CartCleared {
        reason: ClearReason::Expired,
    };
    check(&empty, CartCommand::Expire, Ok(vec![marker.clone()]));
    check(
        &[CartEvent::CartOpened, marker],
        put("a", 1),
        Ok(vec![CartEvent::CartOpened, set("a", 1)]),
    );
}

#[test]
fn promo_codes_go_only_on_a_cart_that_exists() {
    // A cart named by id that was never opened (or is another user's) is not found,
    // whatever the code's verdict; the current cart always exists.
    for command in [
        CartCommand::RedeemPromoCode {
            code: "ONE".into(),
            selected_unit_items: BTreeMap::new(),
            check: Err(PromoCodeRejection::NotFound),
            existence: Existence::OnceOpened,
        },
        CartCommand::RemovePromoCode {
            existence: Existence::OnceOpened,
        },
    ] {
        check(&[], command.clone(), Err(CartError::CartNotFound));
        assert!(decide(&Cart::replay(&[CartEvent::CartOpened]), &command)
            .map_or_else(|e| e != CartError::CartNotFound, |_| true));
    }
    check(
        &[],
        CartCommand::RemovePromoCode {
            existence: Existence::Always,
        },
        Ok(vec![CartEvent::CartOpened]),
    );
}

#[test]
fn a_single_item_cart_is_decided_like_a_stored_one() {
    let quantity = Quantity::parse(2).unwrap();
    let cart = single_item_cart(sku("a"), quantity, true, Some(("ONE".into(), Ok(())))).unwrap();
    assert_eq!(cart.lines().len(), 1);
    assert_eq!(cart.quantity_of(&sku("a")), 2);
    assert_eq!(cart.promo_code().unwrap().code, "ONE");
    assert_eq!(
        single_item_cart(sku("a"), quantity, false, None),
        Err(CartError::UnknownItem { sku: sku("a") })
    );
    assert_eq!(
        single_item_cart(
            sku("a"),
            quantity,
            true,
            Some(("BAD".into(), Err(PromoCodeRejection::Expired)))
        ),
        Err(CartError::PromoCode(PromoCodeRejection::Expired))
    );
    assert!(single_item_cart(sku("a"), quantity, true, None)
        .unwrap()
        .promo_code()
        .is_none());
}
