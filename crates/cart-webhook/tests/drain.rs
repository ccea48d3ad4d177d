//! The worker's drain: a shutdown while deliveries are in flight finishes them and
//! records their outcomes, so no delivery is left leased (waiting a whole lease before
//! another worker may send it).

mod common;

use std::time::Duration;

use common::{Answer, Receiver, World};

#[tokio::test]
async fn a_shutdown_mid_deliveries_finishes_them_and_leaves_no_delivery_leased() {
    let w = World::new().await;
    // Every call is answered only after a while: the shutdown comes while all are open.
    let receiver = Receiver::start(vec![Answer::After(Duration::from_millis(800), 204); 4]).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (config, mark) = (w.config.clone(), w.marker());
    let worker = tokio::spawn(async move {
        let pool = cart_webhook::connect(&config).await.unwrap();
        cart_webhook::run_with(config, pool, mark, async {
            let _ = stopped.await;
        })
        .await
    });
    // The webhook is set through the worker's admin endpoint.
    w.set_webhook(1, &receiver.url, "secret", 2).await;
    for order in 1..=4 {
        w.insert_paid(order).await;
    }
    receiver.wait_calls(4).await;
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();

    // As the worker returned: every delivery it held has its outcome, none a lease.
    let rows: Vec<(i64, String, bool)> = sqlx::query_as(
        "select order_id, status, coalesce(leased_until > clock_timestamp(), false) \
         from webhook_deliveries order by order_id",
    )
    .fetch_all(&w.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        (1..=4)
            .map(|o| (o, "delivered".to_owned(), false))
            .collect::<Vec<_>>()
    );
    assert_eq!(receiver.calls().len(), 4, "each delivery sent once");
}
