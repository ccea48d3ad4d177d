//! Which part of the service answers which endpoint: the edge's [`Handler`].

use cart_proto::ErrorReply;

use crate::admin::Admin;
use crate::app::App;
use crate::edge::{Endpoint, Handler, Incoming, Reply};
use crate::feed::FeedStatus;
use crate::orders::Orders;

/// Everything behind the edge; cheap to clone.
#[derive(Clone)]
pub(crate) struct Services {
    pub(crate) carts: App,
    pub(crate) orders: Orders,
    pub(crate) admin: Admin,
    pub(crate) feed: FeedStatus,
}

impl Handler for Services {
    async fn handle(&self, endpoint: Endpoint, request: Incoming) -> Result<Reply, ErrorReply> {
        match endpoint {
            Endpoint::Cart(e) => self.carts.serve(e, request).await,
            Endpoint::Order(e) => self.orders.order(e, request).await,
            Endpoint::Payment(e) => self.orders.payment(e, request).await,
            Endpoint::Admin(e) => self.admin.handle(e, &request.body).await,
            Endpoint::FeedStatus => self.feed.answer().await,
        }
    }
}
