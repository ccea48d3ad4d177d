use super::*;

fn arrival(key: &str, notification_type: &str, at: f64) -> Arrival {
    Arrival {
        key: key.to_owned(),
        notification_type: notification_type.to_owned(),
        order_id: None,
        at,
    }
}

#[test]
fn nearest_rank_percentiles_of_a_hundred_values() {
    let q = Quantiles::of((1..=100).rev().map(f64::from).collect()).unwrap();
    assert_eq!(
        (q.count, q.p50, q.p90, q.p99, q.max),
        (100, 50.0, 90.0, 99.0, 100.0)
    );
}

#[test]
fn percentiles_of_one_value_and_of_none() {
    let q = Quantiles::of(vec![0.25]).unwrap();
    assert_eq!((q.p50, q.p90, q.p99, q.max), (0.25, 0.25, 0.25, 0.25));
    assert_eq!(Quantiles::of(vec![]), None);
}

#[test]
fn payments_are_matched_to_their_first_webhook_and_their_done() {
    let paid = [
        Paid {
            order_id: 1,
            replied_at: 100.0,
        },
        Paid {
            order_id: 2,
            replied_at: 200.0,
        },
        Paid {
            order_id: 3,
            replied_at: 300.0,
        },
    ];
    let arrivals = [
        arrival("7:1:order_paid", "order_paid", 101.0),
        // The same key again (a retry the receiver already answered): a duplicate, and the
        // latency is the first arrival's.
        arrival("7:1:order_paid", "order_paid", 104.0),
        arrival("7:2:order_paid", "order_paid", 203.0),
        // Another project's order 3 and an order of another phase do not count.
        arrival("8:3:order_paid", "order_paid", 301.0),
        arrival("7:99:order_paid", "order_paid", 301.0),
        arrival("7:99:order_paid", "order_paid", 302.0),
    ];
    let done = HashMap::from([(1, 102.0), (3, 305.0)]);
    let d = delivery(7, &paid, &arrivals, &done);
    assert_eq!(d.paid, 3);
    assert_eq!(
        d.webhooks_missing, 1,
        "order 3 got no order_paid of project 7"
    );
    assert_eq!(d.not_done, 1, "order 2 is not done");
    assert_eq!((d.duplicate_keys, d.duplicate_arrivals), (1, 1));
    let w = d.to_webhook.unwrap();
    assert_eq!((w.count, w.p50, w.max), (2, 1.0, 3.0));
    let done = d.to_done.unwrap();
    assert_eq!((done.count, done.p50, done.max), (2, 2.0, 5.0));
}

#[test]
fn a_key_sent_three_times_is_one_duplicate_key_and_two_extra_arrivals() {
    let paid = [Paid {
        order_id: 5,
        replied_at: 0.0,
    }];
    let arrivals = vec![arrival("1:5:order_paid", "order_paid", 1.0); 3];
    let d = delivery(1, &paid, &arrivals, &HashMap::new());
    assert_eq!((d.duplicate_keys, d.duplicate_arrivals), (1, 2));
    assert_eq!(d.webhooks_missing, 0);
}

#[test]
fn the_webhooks_have_all_arrived_only_when_each_payment_has_its_order_paid() {
    let paid = [
        Paid {
            order_id: 1,
            replied_at: 0.0,
        },
        Paid {
            order_id: 2,
            replied_at: 0.0,
        },
    ];
    let mut keys: HashSet<String> = ["4:1:order_paid", "4:2:order_canceled"]
        .map(String::from)
        .into();
    assert!(!all_webhooks_arrived(4, &paid, &keys));
    keys.insert("5:2:order_paid".to_owned());
    assert!(
        !all_webhooks_arrived(4, &paid, &keys),
        "another project's order 2"
    );
    keys.insert("4:2:order_paid".to_owned());
    assert!(all_webhooks_arrived(4, &paid, &keys));
}

#[test]
fn phases_parse_users_cart_clients_and_seconds() {
    let phases: Phases = "4:60, 16+64:300".parse().unwrap();
    assert_eq!(
        phases.0,
        [
            PhaseSpec {
                users: 4,
                cart_clients: 0,
                secs: 60
            },
            PhaseSpec {
                users: 16,
                cart_clients: 64,
                secs: 300
            },
        ]
    );
    for bad in ["", "4", "0:60", "4:0", "x:60", "4+y:60", "4:-1", "99999:1"] {
        assert!(bad.parse::<Phases>().is_err(), "{bad:?} was accepted");
    }
}
