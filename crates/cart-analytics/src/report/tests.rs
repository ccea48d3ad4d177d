use super::*;
use cart_proto::v1::{CartCleared, CartOpened, ItemQuantitySet, ItemRemoved};
use proptest::prelude::*;

const HOUR: Duration = Duration::from_secs(3600);

fn envelope(cart: &str, version: i64, at: &str, event: Option<Event>) -> EventEnvelope {
    let event_type = match &event {
        Some(Event::CartOpened(_)) => "CartOpened",
        Some(Event::ItemQuantitySet(_)) => "ItemQuantitySet",
        Some(Event::ItemRemoved(_)) => "ItemRemoved",
        Some(Event::CartCleared(_)) => "CartCleared",
        Some(Event::PromoCodeRedeemed(_)) => "PromoCodeRedeemed",
        Some(Event::PromoCodeRemoved(_)) => "PromoCodeRemoved",
        None => "OrderPlaced",
    };
    EventEnvelope {
        event_id: format!("{cart}-{version}"),
        position: format!("1:{version}"),
        stream_id: cart.to_owned(),
        version,
        project_id: 7,
        user_id: "u".to_owned(),
        cart_id: cart.to_owned(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        recorded_at: at.to_owned(),
        event,
    }
}

fn opened() -> Option<Event> {
    Some(Event::CartOpened(CartOpened {}))
}

fn set(sku: &str, quantity: u32) -> Option<Event> {
    Some(Event::ItemQuantitySet(ItemQuantitySet {
        sku: sku.to_owned(),
        quantity,
    }))
}

fn removed(sku: &str) -> Option<Event> {
    Some(Event::ItemRemoved(ItemRemoved {
        sku: sku.to_owned(),
    }))
}

fn cleared(reason: &str) -> Option<Event> {
    Some(Event::CartCleared(CartCleared {
        reason: reason.to_owned(),
    }))
}

fn at(hour: u32) -> String {
    format!("2026-11-22T{hour:02}:00:00.000000Z")
}

fn fold(events: &[EventEnvelope]) -> Report {
    let mut report = Report::default();
    for e in events {
        report.apply(e);
    }
    report
}

fn sku<'a>(summary: &'a Summary, sku: &str) -> &'a SkuSummary {
    summary.skus.iter().find(|s| s.sku == sku).unwrap()
}

#[test]
fn duplicates_and_late_versions_are_ignored() {
    let mut report = Report::default();
    assert_eq!(
        report.apply(&envelope("a", 1, &at(1), opened())),
        Outcome::Applied
    );
    assert_eq!(
        report.apply(&envelope("a", 2, &at(1), set("cup", 2))),
        Outcome::Applied
    );
    assert_eq!(
        report.apply(&envelope("a", 3, &at(2), set("cup", 5))),
        Outcome::Applied
    );
    // A post-window duplicate of version 2 would set the quantity back to 2.
    assert_eq!(
        report.apply(&envelope("a", 2, &at(1), set("cup", 2))),
        Outcome::Duplicate
    );
    assert_eq!(
        report.apply(&envelope("a", 3, &at(2), set("cup", 5))),
        Outcome::Duplicate
    );
    // Another cart's versions are its own.
    assert_eq!(
        report.apply(&envelope("b", 1, &at(1), opened())),
        Outcome::Applied
    );

    let summary = report.summary(None, HOUR);
    assert_eq!(summary.events_applied, 4);
    assert_eq!(summary.duplicates_ignored, 2);
    assert_eq!(summary.version_gaps, 0);
    assert_eq!(summary.carts_seen, 2);
    assert_eq!(sku(&summary, "cup").units_held, 5);
}

#[test]
fn a_version_that_skips_ahead_is_applied_and_counted_as_a_gap() {
    let report = fold(&[
        envelope("a", 3, &at(1), set("cup", 1)),
        envelope("a", 5, &at(2), set("cup", 4)),
        envelope("a", 4, &at(1), removed("cup")),
    ]);
    let summary = report.summary(None, HOUR);
    assert_eq!(summary.version_gaps, 2);
    assert_eq!(summary.duplicates_ignored, 1);
    assert_eq!(sku(&summary, "cup").units_held, 4);
}

#[test]
fn removal_and_clear_empty_a_cart() {
    let report = fold(&[
        envelope("removes", 1, &at(1), opened()),
        envelope("removes", 2, &at(1), set("cup", 1)),
        envelope("removes", 3, &at(1), set("mug", 2)),
        envelope("removes", 4, &at(1), removed("cup")),
        envelope("removes", 5, &at(1), removed("absent")),
        envelope("clears", 1, &at(1), set("cup", 3)),
        envelope("clears", 2, &at(1), cleared("shopper")),
        envelope("emptied", 1, &at(1), set("mug", 3)),
        envelope("emptied", 2, &at(1), removed("mug")),
        envelope("ordered", 1, &at(1), set("cup", 1)),
        envelope("ordered", 2, &at(1), cleared("order_paid")),
        // Clearing what is already empty does not change how it got empty.
        envelope("ordered", 3, &at(1), cleared("shopper")),
        envelope("never", 1, &at(1), opened()),
    ]);
    let summary = report.summary(None, HOUR);
    assert_eq!(summary.carts_seen, 5);
    assert_eq!(summary.events_applied, 13);
    assert_eq!(summary.open_carts, 1);
    assert_eq!(summary.empty_carts, 4);
    assert_eq!(summary.emptied_by_shopper, 2);
    assert_eq!(
        summary.emptied_other,
        BTreeMap::from([("order_paid".to_owned(), 1)])
    );

    let cup = sku(&summary, "cup");
    assert_eq!(
        (cup.carts_added, cup.carts_holding, cup.units_held),
        (3, 0, 0)
    );
    assert_eq!(cup.kept_rate, 0.0);
    let mug = sku(&summary, "mug");
    assert_eq!(
        (mug.carts_added, mug.carts_holding, mug.units_held),
        (2, 1, 2)
    );
    assert_eq!(mug.kept_rate, 0.5);
    assert!(summary.skus.iter().all(|s| s.sku != "absent"));
}

#[test]
fn adding_again_after_a_clear_reopens_the_cart() {
    let report = fold(&[
        envelope("a", 1, &at(1), set("cup", 1)),
        envelope("a", 2, &at(1), cleared("shopper")),
        envelope("a", 3, &at(1), set("cup", 2)),
    ]);
    let summary = report.summary(None, HOUR);
    assert_eq!((summary.open_carts, summary.emptied_by_shopper), (1, 0));
    assert_eq!(sku(&summary, "cup").carts_added, 1);
    assert_eq!(sku(&summary, "cup").units_held, 2);
}

#[test]
fn unknown_events_are_counted_and_kept_not_skipped() {
    let mut report = Report::default();
    report.apply(&envelope("a", 1, &at(1), set("cup", 1)));
    assert_eq!(
        report.apply(&envelope("a", 2, &at(2), None)),
        Outcome::Unknown
    );
    // Its duplicate is a duplicate, not a second unknown event.
    assert_eq!(
        report.apply(&envelope("a", 2, &at(2), None)),
        Outcome::Duplicate
    );
    assert_eq!(
        report.apply(&envelope("a", 3, &at(2), set("cup", 0))),
        Outcome::Unknown
    );
    let mut headers = envelope("a", 4, &at(3), None);
    headers.event_type = "Mystery".to_owned();
    assert_eq!(report.apply_unreadable(&headers, "eof"), Outcome::Unknown);
    assert_eq!(report.apply_unreadable(&headers, "eof"), Outcome::Duplicate);
    assert_eq!(
        report.apply_unreadable(&EventEnvelope::default(), "eof"),
        Outcome::Unknown
    );

    let summary = report.summary(None, HOUR);
    assert_eq!(summary.events_applied, 1);
    assert_eq!(summary.unknown_events, 4);
    assert_eq!(summary.duplicates_ignored, 2);
    assert_eq!(sku(&summary, "cup").units_held, 1);
    let unknown = &report.unknown()[0];
    assert_eq!(
        (
            unknown.stream_id.as_str(),
            unknown.version,
            unknown.event_type.as_str()
        ),
        ("a", 2, "OrderPlaced")
    );
    assert_eq!(report.unknown()[2].event_type, "Mystery");
    assert!(report.unknown()[2].reason.contains("eof"));
    // An unknown event is still activity on the cart.
    assert_eq!(report.newest().map(Timestamp::as_str), Some(at(3).as_str()));
}

#[test]
fn abandoned_means_open_and_idle_longer_than_the_limit() {
    let report = fold(&[
        envelope("old", 1, &at(1), set("cup", 1)),
        envelope("edge", 1, &at(2), set("cup", 1)),
        envelope("fresh", 1, &at(1), set("cup", 1)),
        envelope("fresh", 2, &at(3), set("cup", 2)),
        envelope("old-empty", 1, &at(1), set("cup", 1)),
        envelope("old-empty", 2, &at(1), removed("cup")),
    ]);
    // Reference: the newest event, 03:00. "edge" is idle exactly one hour: not longer.
    let summary = report.summary(None, HOUR);
    assert_eq!(summary.reference_time.as_deref(), Some(at(3).as_str()));
    assert_eq!((summary.open_carts, summary.abandoned_carts), (3, 1));

    let now = Timestamp::parse("2026-11-22T04:30:00+01:00").unwrap();
    let summary = report.summary(Some(&now), HOUR);
    assert_eq!(summary.abandoned_carts, 2);
    let summary = report.summary(Some(&now), Duration::ZERO);
    assert_eq!(summary.abandoned_carts, 3);

    assert_eq!(Report::default().summary(None, HOUR).reference_time, None);
}

#[test]
fn the_table_groups_skus_by_project() {
    let mut other = envelope("b", 1, &at(1), set("cup", 4));
    other.project_id = 8;
    let report = fold(&[
        envelope("a", 1, &at(1), set("cup", 1)),
        envelope("a", 2, &at(1), set("mug", 1)),
        other,
    ]);
    let table = report.summary(None, HOUR).to_string();
    let lines: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("project"))
        .collect();
    assert_eq!(
        lines,
        [
            "project  sku  carts added  holding  units    kept",
            "7        cup            1        1      1  100.0%",
            "         mug            1        1      1  100.0%",
            "8        cup            1        1      4  100.0%",
        ]
    );
    assert!(table.contains("abandoned carts        0 (open, idle > 3600 s before"));
}

/// One cart's history as the service could write it.
fn cart_history() -> impl Strategy<Value = Vec<Option<Event>>> {
    let op = prop_oneof![
        4 => (0..4u8, 1..5u32).prop_map(|(s, q)| set(&format!("sku{s}"), q)),
        2 => (0..4u8).prop_map(|s| removed(&format!("sku{s}"))),
        1 => prop_oneof![Just(cleared("shopper")), Just(cleared("order_paid"))],
        1 => Just(None),
    ];
    proptest::collection::vec(op, 0..12).prop_map(|ops| {
        let mut history = vec![opened()];
        history.extend(ops);
        history
    })
}

/// Several carts' histories, interleaved by `order` (per cart order kept), with hours
/// that grow per cart.
fn interleaved() -> impl Strategy<Value = Vec<EventEnvelope>> {
    (
        proptest::collection::vec(cart_history(), 1..5),
        proptest::collection::vec(any::<prop::sample::Index>(), 64),
    )
        .prop_map(|(carts, order)| {
            let mut queues: Vec<std::collections::VecDeque<EventEnvelope>> = carts
                .into_iter()
                .enumerate()
                .map(|(c, history)| {
                    history
                        .into_iter()
                        .enumerate()
                        .map(|(i, event)| {
                            let version = i64::try_from(i).unwrap() + 1;
                            let hour = u32::try_from(i + c).unwrap() % 24;
                            envelope(&format!("cart{c}"), version, &at(hour), event)
                        })
                        .collect()
                })
                .collect();
            let mut out = Vec::new();
            let mut picks = order.into_iter().cycle();
            while queues.iter().any(|q| !q.is_empty()) {
                let open: Vec<usize> = (0..queues.len())
                    .filter(|&q| !queues[q].is_empty())
                    .collect();
                let q = open[picks.next().unwrap().index(open.len())];
                out.extend(queues[q].pop_front());
            }
            out
        })
}

proptest! {
    #[test]
    fn replaying_with_duplicates_gives_the_same_report(
        events in interleaved(),
        copies in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..10),
    ) {
        // Each copy repeats an earlier event anywhere after it, like JetStream can.
        let mut with_duplicates = events.clone();
        for (original, offset) in &copies {
            let from = original.index(with_duplicates.len());
            let copy = with_duplicates[from].clone();
            let to = from + 1 + offset.index(with_duplicates.len() - from);
            with_duplicates.insert(to, copy);
        }

        let clean = fold(&events);
        let noisy = fold(&with_duplicates);
        let mut expected = clean.summary(None, HOUR);
        let actual = noisy.summary(None, HOUR);
        prop_assert_eq!(expected.duplicates_ignored, 0);
        prop_assert_eq!(actual.duplicates_ignored, u64::try_from(copies.len()).unwrap());
        expected.duplicates_ignored = actual.duplicates_ignored;
        prop_assert_eq!(expected, actual);
    }
}
