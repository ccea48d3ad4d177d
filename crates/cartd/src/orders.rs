//! Orders over NATS, JSON request/reply: checkout (a cart, a single item, a free cart),
//! get and search for the shopper; payment confirmation and refunds for the payment
//! side. docs/protocol.md lists the bodies; docs/orders.md the rules.
//!
//! The shell's part: parse and check the request, load the cart, take one catalog
//! snapshot and one clock reading, count the user's purchases, price the cart and freeze
//! it (`OrderSnapshot::from_priced`). The order store then decides under its locks.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::service;
use async_nats::HeaderMap;
use cart_domain::{
    AppliedCode, Cart, CartEvent, CartId, Catalog, Currency, InvalidInput, OrderError,
    OrderSnapshot, PaymentMode, PricingContext, ProjectId, Purchases, Sku, Timestamp, UserId,
    MAX_QUANTITY,
};
use cart_proto::order::{
    self as wire, CancelOrderRequest, CheckoutItemRequest, CheckoutReply, CheckoutRequest,
    ConfirmPaymentRequest, GetOrderRequest, OrderSearchReply, SearchOrdersRequest,
};
use cart_proto::view::AmountFormat;
use cart_proto::{Encoding, ErrorReply};
use cart_store::orders::{
    Checkout, CheckoutOutcome, Created, LoadedOrder, OrderStore, OrderStoreError, Payment, Search,
};
use cart_store::{EventStore, ProcessedCommand, StoreError, StreamKey};
use futures::StreamExt;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use crate::app::now;
use crate::catalog::CatalogCache;

/// The order endpoints, relative to the prefix.
pub const ENDPOINTS: [&str; 7] = [
    "order.checkout",
    "order.checkout_item",
    "order.checkout_free",
    "order.get",
    "order.search",
    "payment.confirm",
    "payment.cancel",
];

const MAX_BODY: usize = 64 * 1024;
const MAX_TEXT: usize = 128;

#[derive(Clone)]
pub(crate) struct Orders {
    carts: EventStore,
    orders: OrderStore,
    catalog: CatalogCache,
    format: AmountFormat,
    hold: Duration,
}

impl Orders {
    pub(crate) fn new(
        carts: EventStore,
        orders: OrderStore,
        catalog: CatalogCache,
        format: AmountFormat,
        hold: Duration,
    ) -> Self {
        Self {
            carts,
            orders,
            catalog,
            format,
            hold,
        }
    }

    /// Subscribes the order endpoints on `group` and serves them on `tasks`.
    pub(crate) async fn serve(
        &self,
        group: &service::Group,
        tasks: &mut JoinSet<()>,
    ) -> anyhow::Result<()> {
        for endpoint in ENDPOINTS {
            let mut requests = group
                .endpoint_builder()
                .name(endpoint.replace(['.', '_'], "-"))
                .add(endpoint)
                .await
                .map_err(|e| anyhow::anyhow!("add endpoint {endpoint}: {e}"))?;
            let orders = self.clone();
            tasks.spawn(async move {
                let mut in_flight = JoinSet::new();
                while let Some(request) = requests.next().await {
                    let orders = orders.clone();
                    in_flight.spawn(async move { orders.respond(endpoint, request).await });
                    while in_flight.try_join_next().is_some() {}
                }
                while in_flight.join_next().await.is_some() {}
            });
        }
        Ok(())
    }

    async fn respond(&self, endpoint: &'static str, request: service::Request) {
        let message = &request.message;
        let res = if message.payload.len() > MAX_BODY {
            Err(ErrorReply::new(
                413,
                1102,
                format!("Payload Too Large. A request body may hold at most {MAX_BODY} bytes"),
            ))
        } else {
            let command_id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(cart_proto::COMMAND_ID_HEADER))
                .map(|v| v.as_str().to_owned());
            self.handle(endpoint, &message.payload, command_id).await
        };
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", Encoding::JSON_CONTENT_TYPE);
        let body = match res {
            Ok(body) => body,
            Err(error) => {
                crate::service::error_headers(&mut headers, &error);
                if error.status >= 500 {
                    tracing::warn!(endpoint, status = error.status, error = %error.message(), "order request failed");
                } else {
                    tracing::info!(endpoint, status = error.status, error = %error.message(), "order request refused");
                }
                error.body()
            }
        };
        if let Err(e) = request.respond_with_headers(Ok(body.into()), headers).await {
            tracing::warn!(endpoint, error = %e, "could not send the order reply");
        }
    }

    async fn handle(
        &self,
        endpoint: &str,
        body: &[u8],
        command_id: Option<String>,
    ) -> Result<Vec<u8>, ErrorReply> {
        match endpoint {
            "order.checkout" | "order.checkout_free" => {
                let r: CheckoutRequest = decode(body)?;
                let command = ledger(endpoint, body, command_id)?;
                self.checkout(r, endpoint == "order.checkout_free", command)
                    .await
            }
            "order.checkout_item" => {
                let r: CheckoutItemRequest = decode(body)?;
                let command = ledger(endpoint, body, command_id)?;
                self.checkout_item(r, command).await
            }
            "order.get" => {
                let r: GetOrderRequest = decode(body)?;
                self.get(r).await
            }
            "order.search" => {
                let r: SearchOrdersRequest = decode(body)?;
                self.search(r).await
            }
            "payment.confirm" => {
                let r: ConfirmPaymentRequest = decode(body)?;
                self.confirm(r).await
            }
            "payment.cancel" => {
                let r: CancelOrderRequest = decode(body)?;
                self.cancel(r).await
            }
            _ => Err(ErrorReply::new(404, 1102, "Unknown endpoint")),
        }
    }

    async fn checkout(
        &self,
        r: CheckoutRequest,
        free: bool,
        command: Option<ProcessedCommand>,
    ) -> Result<Vec<u8>, ErrorReply> {
        let project = project(r.project_id)?;
        let user = UserId::parse(r.user_id).map_err(|e| ErrorReply::invalid(&e))?;
        if let Some(reply) = self.replayed(project, &user, command.as_ref()).await? {
            return Ok(reply);
        }
        let cart_id = match r.cart_id {
            Some(id) => CartId::parse(id).map_err(|e| ErrorReply::invalid(&e))?,
            None => crate::current_cart_id(project, &user),
        };
        let currency = currency(r.currency.as_deref())?;
        let country = country(r.country.as_deref())?;
        let custom_parameters = custom_parameters(r.custom_parameters)?;
        let key = StreamKey::new(project, user.clone(), cart_id.clone());
        let loaded = self.carts.load(&key).await.map_err(|e| store_error(&e))?;
        let ((catalog, versions), now) = (self.catalog.versioned(), now());
        let snapshot = self
            .freeze(
                (&catalog, &versions),
                now,
                (project, &user),
                &loaded.cart,
                &currency,
                country.as_deref(),
            )
            .await?;
        if snapshot.0.bought().next().is_some() && snapshot.0.is_free() != free {
            return Err(ErrorReply::new(
                422,
                1401,
                if free {
                    "Invalid cart. The cart holds paid items: use order.checkout"
                } else {
                    "Invalid cart. Every item in the cart is free: use order.checkout_free"
                },
            ));
        }
        self.create(
            &catalog,
            Checkout {
                project,
                user,
                cart_id: Some(cart_id),
                snapshot: snapshot.0,
                catalog_version: snapshot.1,
                now,
                custom_parameters,
                hold: self.hold,
                command,
            },
        )
        .await
    }

    async fn checkout_item(
        &self,
        r: CheckoutItemRequest,
        command: Option<ProcessedCommand>,
    ) -> Result<Vec<u8>, ErrorReply> {
        let project = project(r.project_id)?;
        let user = UserId::parse(r.user_id).map_err(|e| ErrorReply::invalid(&e))?;
        if let Some(reply) = self.replayed(project, &user, command.as_ref()).await? {
            return Ok(reply);
        }
        let sku = Sku::parse(r.sku).map_err(|e| ErrorReply::invalid(&e))?;
        let quantity = match r.quantity {
            None => 1,
            Some(q) if (1..=u64::from(MAX_QUANTITY)).contains(&q) => u32::try_from(q).unwrap_or(1),
            Some(_) => {
                return Err(ErrorReply::new(
                    422,
                    1102,
                    format!(
                    "Unprocessable Entity. `quantity` must be an integer from 1 to {MAX_QUANTITY}"
                ),
                ))
            }
        };
        let currency = currency(r.currency.as_deref())?;
        let country = country(r.country.as_deref())?;
        let custom_parameters = custom_parameters(r.custom_parameters)?;
        let (catalog, versions) = self.catalog.versioned();
        let now = now();
        if catalog.item(project, &sku).is_none() {
            return Err(ErrorReply::unknown_item(project, &sku));
        }
        // A cart of one line, never stored: priced exactly as a stored cart would be.
        let mut events = vec![
            CartEvent::CartOpened,
            CartEvent::ItemQuantitySet {
                sku: sku.clone(),
                quantity,
            },
        ];
        if let Some(code) = r.promo_code.filter(|c| !c.is_empty()) {
            let purchases = self
                .purchases(
                    project,
                    &user,
                    &catalog,
                    std::slice::from_ref(&sku),
                    Some(&code),
                    now,
                )
                .await?;
            cart_domain::check_promo_code(
                &catalog,
                project,
                &code,
                now,
                country.as_deref(),
                &purchases,
                &BTreeMap::new(),
            )
            .map_err(|rejection| ErrorReply::promo_code(&rejection))?;
            events.push(CartEvent::PromoCodeRedeemed {
                code,
                selected_unit_items: BTreeMap::new(),
            });
        }
        let cart = Cart::replay(&events);
        let (snapshot, version) = self
            .freeze(
                (&catalog, &versions),
                now,
                (project, &user),
                &cart,
                &currency,
                country.as_deref(),
            )
            .await?;
        self.create(
            &catalog,
            Checkout {
                project,
                user,
                cart_id: None,
                snapshot,
                catalog_version: version,
                now,
                custom_parameters,
                hold: self.hold,
                command,
            },
        )
        .await
    }

    /// Prices a cart with the user's purchases and freezes it; with the catalog version.
    async fn freeze(
        &self,
        (catalog, versions): (&Catalog, &BTreeMap<i64, i64>),
        now: Timestamp,
        (project, user): (ProjectId, &UserId),
        cart: &Cart,
        currency: &Currency,
        country: Option<&str>,
    ) -> Result<(OrderSnapshot, u64), ErrorReply> {
        let skus: Vec<Sku> = cart.lines().iter().map(|l| l.sku.clone()).collect();
        let code = cart.promo_code().map(|c| c.code.clone());
        let purchases = self
            .purchases(project, user, catalog, &skus, code.as_deref(), now)
            .await?;
        let applied: Option<&AppliedCode> = cart.promo_code();
        let priced = cart_domain::price(
            cart,
            &PricingContext {
                project,
                catalog,
                currency,
                country,
                now,
                purchases: &purchases,
                promo_code: applied,
            },
        );
        let version = versions
            .get(&i64::try_from(project.get()).unwrap_or(i64::MAX))
            .copied()
            .unwrap_or(0);
        Ok((
            OrderSnapshot::from_priced(&priced),
            u64::try_from(version).unwrap_or(0),
        ))
    }

    /// What the user bought of `skus` and redeemed of `code`, for pricing.
    async fn purchases(
        &self,
        project: ProjectId,
        user: &UserId,
        catalog: &Catalog,
        skus: &[Sku],
        code: Option<&str>,
        now: Timestamp,
    ) -> Result<Purchases, ErrorReply> {
        self.orders
            .purchases_for(catalog, project, user, skus, code, now)
            .await
            .map_err(|e| order_store_error(&e))
    }

    /// The first reply to a checkout's command id, looked up before anything is priced.
    async fn replayed(
        &self,
        project: ProjectId,
        user: &UserId,
        command: Option<&ProcessedCommand>,
    ) -> Result<Option<Vec<u8>>, ErrorReply> {
        let Some(command) = command else {
            return Ok(None);
        };
        match self.orders.replay(project, user, command).await {
            Ok(Some(outcome)) => self.outcome(outcome).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(order_store_error(&e)),
        }
    }

    async fn create(&self, catalog: &Catalog, checkout: Checkout) -> Result<Vec<u8>, ErrorReply> {
        let reply = |created: &Created| checkout_reply(created);
        let outcome = self
            .orders
            .checkout(catalog, checkout, reply)
            .await
            .map_err(|e| order_store_error(&e))?;
        self.outcome(outcome)
    }

    fn outcome(&self, outcome: CheckoutOutcome) -> Result<Vec<u8>, ErrorReply> {
        match outcome {
            CheckoutOutcome::Created(created) => {
                if !created.expired.is_empty() {
                    tracing::info!(order_id = created.order_id, expired = ?created.expired, "older unpaid orders expired");
                }
                Ok(checkout_reply(&created))
            }
            CheckoutOutcome::Replayed(done) => {
                tracing::info!("duplicate checkout: returning the original reply");
                Ok(done.reply)
            }
            CheckoutOutcome::IdReused => Err(ErrorReply::new(
                409,
                1102,
                "The command id was already used for a different request",
            )),
            CheckoutOutcome::Refused(refusal) => Err(refused(&refusal)),
        }
    }

    async fn get(&self, r: GetOrderRequest) -> Result<Vec<u8>, ErrorReply> {
        let project = project(r.project_id)?;
        let user = UserId::parse(r.user_id).map_err(|e| ErrorReply::invalid(&e))?;
        let loaded = match (r.order_id, r.token) {
            (Some(id), None) => self.orders.load(project, id).await,
            (None, Some(token)) if !token.is_empty() && token.len() <= MAX_TEXT => {
                self.orders.load_by_token(project, &token).await
            }
            _ => {
                return Err(ErrorReply::new(
                    422,
                    1102,
                    "Unprocessable Entity. Give exactly one of `order_id` and `token` (1 to 128 characters)",
                ))
            }
        }
        .map_err(|e| order_store_error(&e))?;
        // Another user's order reads exactly like a missing one.
        let owned = loaded.filter(|l| l.order.details().is_some_and(|d| d.user == user));
        let loaded = owned.ok_or_else(|| refused(&OrderError::NotFound))?;
        self.view(&loaded)
    }

    async fn search(&self, r: SearchOrdersRequest) -> Result<Vec<u8>, ErrorReply> {
        let project = project(r.project_id)?;
        let user = UserId::parse(r.user_id).map_err(|e| ErrorReply::invalid(&e))?;
        let limit = match r.limit {
            None => 10,
            Some(l @ 1..=10) => l,
            Some(_) => {
                return Err(ErrorReply::new(
                    422,
                    1102,
                    "Unprocessable Entity. `limit` must be from 1 to 10",
                ))
            }
        };
        for (property, date) in [
            ("created_date_from", &r.created_date_from),
            ("created_date_until", &r.created_date_until),
        ] {
            if date.as_ref().is_some_and(|d| d.is_empty() || d.len() > 64) {
                return Err(ErrorReply::invalid(&InvalidInput::BadDate(property)));
            }
        }
        let offset = r.offset.unwrap_or(0);
        let page = self
            .orders
            .search(
                project,
                &user,
                &Search {
                    limit,
                    offset,
                    created_from: r.created_date_from,
                    created_until: r.created_date_until,
                },
            )
            .await
            .map_err(|e| match e {
                OrderStoreError::Store(StoreError::Invalid(_)) => {
                    ErrorReply::invalid(&InvalidInput::BadDate("created_date_from"))
                }
                e => order_store_error(&e),
            })?;
        let orders: Vec<wire::OrderView> = page
            .orders
            .iter()
            .filter_map(|o| wire::view(o, self.format))
            .collect();
        let shown = offset.saturating_add(orders.len() as u64);
        Ok(serde_json::to_vec(&OrderSearchReply {
            has_more: shown < page.total,
            total_items_count: page.total,
            orders,
        })
        .unwrap_or_default())
    }

    async fn confirm(&self, r: ConfirmPaymentRequest) -> Result<Vec<u8>, ErrorReply> {
        let project = project(r.project_id)?;
        let amount = amount(&r.amount)?;
        let currency = Currency::parse(&r.currency).map_err(|e| ErrorReply::invalid(&e))?;
        let mode = match r.mode.as_deref() {
            None | Some("default") => PaymentMode::Default,
            Some("sandbox") => PaymentMode::Sandbox,
            Some(_) => {
                return Err(ErrorReply::new(
                    422,
                    1102,
                    "Unprocessable Entity. `mode` is default or sandbox",
                ))
            }
        };
        text("invoice_id", &r.invoice_id)?;
        let catalog = self.catalog.snapshot();
        let decided = self
            .orders
            .confirm_payment(
                &catalog,
                Payment {
                    project,
                    order_id: r.order_id,
                    invoice_id: r.invoice_id,
                    amount,
                    currency,
                    mode,
                    now: now(),
                },
            )
            .await
            .map_err(|e| order_store_error(&e))?;
        self.view(&decided.map_err(|e| refused(&e))?)
    }

    async fn cancel(&self, r: CancelOrderRequest) -> Result<Vec<u8>, ErrorReply> {
        let project = project(r.project_id)?;
        let reason = r.reason.unwrap_or_else(|| "refund".to_owned());
        if reason.len() > 1000 {
            return Err(ErrorReply::new(
                422,
                1102,
                "Unprocessable Entity. `reason` may hold at most 1000 bytes",
            ));
        }
        let decided = self
            .orders
            .cancel(project, r.order_id, reason)
            .await
            .map_err(|e| order_store_error(&e))?;
        self.view(&decided.map_err(|e| refused(&e))?)
    }

    fn view(&self, loaded: &LoadedOrder) -> Result<Vec<u8>, ErrorReply> {
        let view =
            wire::view(&loaded.order, self.format).ok_or_else(|| refused(&OrderError::NotFound))?;
        Ok(serde_json::to_vec(&view).unwrap_or_default())
    }
}

fn checkout_reply(created: &Created) -> Vec<u8> {
    serde_json::to_vec(&CheckoutReply {
        order_id: created.order_id,
        token: created.token.clone(),
        status: created.status.name().to_owned(),
    })
    .unwrap_or_default()
}

fn ledger(
    endpoint: &str,
    body: &[u8],
    command_id: Option<String>,
) -> Result<Option<ProcessedCommand>, ErrorReply> {
    let Some(command_id) = command_id else {
        return Ok(None);
    };
    if command_id.is_empty()
        || command_id.len() > MAX_TEXT
        || !command_id.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ErrorReply::new(
            422,
            1102,
            format!(
                "Unprocessable Entity. The header {} must be 1 to {MAX_TEXT} printable ASCII characters",
                cart_proto::COMMAND_ID_HEADER
            ),
        ));
    }
    let mut hasher = Sha256::new();
    hasher.update(endpoint.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    Ok(Some(ProcessedCommand {
        command_id,
        fingerprint: hasher.finalize().to_vec(),
        content_type: Encoding::JSON_CONTENT_TYPE.to_owned(),
        reply: Vec::new(),
    }))
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ErrorReply> {
    serde_json::from_slice(body).map_err(ErrorReply::malformed)
}

fn project(id: u64) -> Result<ProjectId, ErrorReply> {
    ProjectId::parse(id).map_err(|e| ErrorReply::invalid(&e))
}

fn currency(value: Option<&str>) -> Result<Currency, ErrorReply> {
    match value {
        None | Some("") => Ok(Currency::usd()),
        Some(c) => Currency::parse(c).map_err(|e| ErrorReply::invalid(&e)),
    }
}

fn country(value: Option<&str>) -> Result<Option<String>, ErrorReply> {
    match value {
        None | Some("") => Ok(None),
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(c.to_ascii_uppercase()))
        }
        Some(_) => Err(ErrorReply::new(
            422,
            1102,
            "Unprocessable Entity. `country` is an ISO 3166-1 alpha-2 code",
        )),
    }
}

fn custom_parameters(value: Option<serde_json::Value>) -> Result<Option<String>, ErrorReply> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v @ serde_json::Value::Object(_)) if v.to_string().len() <= 8 * 1024 => {
            Ok(Some(v.to_string()))
        }
        Some(_) => Err(ErrorReply::new(
            422,
            1102,
            "Unprocessable Entity. `custom_parameters` is an object of at most 8 KiB",
        )),
    }
}

fn text(property: &'static str, value: &str) -> Result<(), ErrorReply> {
    if value.is_empty() {
        return Err(ErrorReply::invalid(&InvalidInput::Missing(property)));
    }
    if value.len() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(ErrorReply::new(
            422,
            1102,
            format!("Unprocessable Entity. `{property}` is 1 to {MAX_TEXT} printable characters"),
        ));
    }
    Ok(())
}

/// A money amount from the wire: a decimal string, never a number, never negative.
fn amount(text: &str) -> Result<Decimal, ErrorReply> {
    let bad = || {
        ErrorReply::new(
            422,
            1102,
            format!("Unprocessable Entity. `amount` must be a non-negative decimal string such as \"6.84\", not {text:?}"),
        )
    };
    if text.is_empty() || text.len() > 40 || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(bad());
    }
    text.parse::<Decimal>().map_err(|_| bad())
}

fn refused(error: &OrderError) -> ErrorReply {
    let status = match error {
        OrderError::NotFound => 404,
        OrderError::AlreadyPaid { .. } => 409,
        _ => 422,
    };
    let text = match error {
        OrderError::NotFound => "Order not found".to_owned(),
        OrderError::LimitExceeded {
            reset_next_date: Some(next),
            ..
        } => format!(
            "{}; the limit resets at {}",
            capitalized(&error.to_string()),
            next.civil()
        ),
        e if e.code() == 1401 => format!("Invalid cart. {}", capitalized(&e.to_string())),
        e => capitalized(&e.to_string()),
    };
    ErrorReply::new(status, error.code(), text)
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn store_error(error: &StoreError) -> ErrorReply {
    failure(error.is_unavailable(), error)
}

fn order_store_error(error: &OrderStoreError) -> ErrorReply {
    failure(error.is_unavailable(), error)
}

/// 503 while the store cannot be reached (retry later), else 500; logged with causes.
fn failure(unavailable: bool, error: &dyn std::error::Error) -> ErrorReply {
    if unavailable {
        tracing::warn!(error = %cart_store::error_chain(error), "order store unavailable");
        ErrorReply::new(
            503,
            1000,
            "Service temporarily unavailable: the store cannot be reached. Retry later",
        )
    } else {
        tracing::error!(error = %cart_store::error_chain(error), "order store error");
        ErrorReply::new(500, 1000, "Internal error")
    }
}
