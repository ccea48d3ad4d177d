//! `cartctl checkout`, `cartctl pay`, `cartctl cancel` and `cartctl order ...`: orders
//! over NATS (JSON). `pay` and `cancel` stand in for a payment provider.

use anyhow::Context;
use async_nats::HeaderMap;
use cart_proto::order::{
    CancelOrderRequest, CheckoutItemRequest, CheckoutRequest, ConfirmPaymentRequest,
    GetOrderRequest, SearchOrdersRequest,
};
use clap::{Args, Subcommand};

use crate::Global;

#[derive(Debug, Args)]
pub(crate) struct CheckoutArgs {
    /// Order a single item instead of the cart: the SKU (with --quantity, --promo-code).
    #[arg(long)]
    item: Option<String>,
    #[arg(long, requires = "item")]
    quantity: Option<u64>,
    #[arg(long, requires = "item")]
    promo_code: Option<String>,
    /// The cart holds only free items: a free order, done at once.
    #[arg(long, conflicts_with = "item")]
    free: bool,
    /// The buyer's country (ISO 3166-1 alpha-2).
    #[arg(long)]
    country: Option<String>,
    /// A JSON object that comes back in the webhooks, e.g. '{"character_id":"hero"}'.
    #[arg(long)]
    custom_parameters: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PayArgs {
    order_id: u64,
    /// The amount paid, exactly the order's total (e.g. 6.84).
    /// (The currency is the global --currency, USD by default.)
    #[arg(long)]
    amount: String,
    /// The payment's invoice id; a fresh one when absent. Sending the same one again is
    /// harmless.
    #[arg(long)]
    invoice: Option<String>,
    /// Mark the payment as a sandbox (test) payment.
    #[arg(long)]
    sandbox: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CancelArgs {
    order_id: u64,
    #[arg(long, default_value = "refund")]
    reason: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OrderCommand {
    /// One of the user's orders, by number or by payment token.
    Get {
        order_id: Option<u64>,
        #[arg(long, conflicts_with = "order_id")]
        token: Option<String>,
    },
    /// The user's orders, earliest first.
    Search {
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        offset: Option<u64>,
        /// ISO 8601 date or date-time.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        until: Option<String>,
    },
}

/// What one of these commands sends.
pub(crate) enum OrderRequest<'a> {
    Checkout(&'a CheckoutArgs),
    Pay(&'a PayArgs),
    Cancel(&'a CancelArgs),
    Order(&'a OrderCommand),
}

fn body(g: &Global, request: &OrderRequest<'_>) -> anyhow::Result<(&'static str, Vec<u8>)> {
    let json = |v: serde_json::Result<Vec<u8>>| v.context("encode the request");
    let project_id = g.project;
    let user_id = g.user.clone();
    Ok(match request {
        OrderRequest::Checkout(a) => {
            let custom_parameters = a
                .custom_parameters
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .context("--custom-parameters is not JSON")?;
            match &a.item {
                Some(sku) => (
                    "order.checkout_item",
                    json(serde_json::to_vec(&CheckoutItemRequest {
                        project_id,
                        user_id,
                        sku: sku.clone(),
                        quantity: a.quantity,
                        promo_code: a.promo_code.clone(),
                        currency: g.currency.clone(),
                        country: a.country.clone(),
                        custom_parameters,
                    }))?,
                ),
                None => (
                    if a.free {
                        "order.checkout_free"
                    } else {
                        "order.checkout"
                    },
                    json(serde_json::to_vec(&CheckoutRequest {
                        project_id,
                        user_id,
                        cart_id: g.cart.clone(),
                        currency: g.currency.clone(),
                        country: a.country.clone(),
                        custom_parameters,
                    }))?,
                ),
            }
        }
        OrderRequest::Pay(a) => (
            "payment.confirm",
            json(serde_json::to_vec(&ConfirmPaymentRequest {
                project_id,
                order_id: a.order_id,
                invoice_id: a
                    .invoice
                    .clone()
                    .unwrap_or_else(|| format!("inv-{}", uuid::Uuid::new_v4().simple())),
                amount: a.amount.clone(),
                currency: g.currency.clone().unwrap_or_else(|| "USD".to_owned()),
                mode: Some(if a.sandbox { "sandbox" } else { "default" }.to_owned()),
            }))?,
        ),
        OrderRequest::Cancel(a) => (
            "payment.cancel",
            json(serde_json::to_vec(&CancelOrderRequest {
                project_id,
                order_id: a.order_id,
                reason: Some(a.reason.clone()),
            }))?,
        ),
        OrderRequest::Order(OrderCommand::Get { order_id, token }) => (
            "order.get",
            json(serde_json::to_vec(&GetOrderRequest {
                project_id,
                user_id,
                order_id: *order_id,
                token: token.clone(),
            }))?,
        ),
        OrderRequest::Order(OrderCommand::Search {
            limit,
            offset,
            from,
            until,
        }) => (
            "order.search",
            json(serde_json::to_vec(&SearchOrdersRequest {
                project_id,
                user_id,
                limit: *limit,
                offset: *offset,
                created_date_from: from.clone(),
                created_date_until: until.clone(),
            }))?,
        ),
    })
}

/// Sends the request and prints the reply as pretty JSON; 1 when refused.
pub(crate) async fn run(g: &Global, request: OrderRequest<'_>) -> anyhow::Result<i32> {
    let (subject, payload) = body(g, &request)?;
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", cart_proto::Encoding::JSON_CONTENT_TYPE);
    if matches!(request, OrderRequest::Checkout(_)) {
        let id = g
            .command_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        headers.insert(cart_proto::COMMAND_ID_HEADER, id.as_str());
    }
    crate::json_request(g, subject, headers, payload, "cartd (`make run`)").await
}
