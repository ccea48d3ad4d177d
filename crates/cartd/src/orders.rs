//! Orders over NATS, JSON request/reply: checkout (a cart, a single item, a free cart),
//! get and search for the shopper; payment confirmation and refunds for the payment
//! side. docs/protocol.md lists the bodies; docs/orders.md the rules.
//!
//! The shell's part: parse and check the request, load the cart, take one catalog
//! snapshot and one clock reading, count the user's purchases, price the cart and freeze
//! it (`OrderSnapshot::from_priced`). The order store then decides under its locks.

use std::collections::BTreeMap;
use std::time::Duration;

use cart_domain::{
    AppliedCode, Cart, CartId, Catalog, CheckoutKind, Currency, InvalidInput, OrderError,
    OrderSnapshot, PaymentMode, PricingContext, ProjectId, Purchases, Quantity, Sku, Timestamp,
    UserId, MAX_QUANTITY,
};
use cart_proto::order::{
    self as wire, CancelOrderRequest, CheckoutItemRequest, CheckoutReply, CheckoutRequest,
    ConfirmPaymentRequest, GetOrderRequest, OrderSearchReply, SearchOrdersRequest,
};
use cart_proto::view::AmountFormat;
use cart_proto::ErrorReply;
use cart_store::orders::{
    Checkout, CheckoutOutcome, Created, LoadedOrder, OrderStore, OrderStoreError, Payment, Search,
};
use cart_store::{EventStore, ProcessedCommand, StoreError, StreamKey};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;

use crate::app::now;
use crate::catalog::CatalogCache;
use crate::edge::errors::{self, reply};
use crate::edge::{record_scope, Incoming, OrderEndpoint, PaymentEndpoint, Reply};

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

    /// Answers a request to an `order.*` endpoint.
    pub(crate) async fn order(
        &self,
        endpoint: OrderEndpoint,
        incoming: Incoming,
    ) -> Result<Reply, ErrorReply> {
        let body = &incoming.body;
        let command = incoming.command.map(|c| c.record(Vec::new()));
        let reply = match endpoint {
            OrderEndpoint::Checkout | OrderEndpoint::CheckoutFree => {
                let free = endpoint == OrderEndpoint::CheckoutFree;
                self.checkout(decode(body)?, free, command).await
            }
            OrderEndpoint::CheckoutItem => self.checkout_item(decode(body)?, command).await,
            OrderEndpoint::Get => self.get(decode(body)?).await,
            OrderEndpoint::Search => self.search(decode(body)?).await,
        };
        reply.map(Reply::json)
    }

    /// Answers a request to a `payment.*` endpoint.
    pub(crate) async fn payment(
        &self,
        endpoint: PaymentEndpoint,
        incoming: Incoming,
    ) -> Result<Reply, ErrorReply> {
        let body = &incoming.body;
        let reply = match endpoint {
            PaymentEndpoint::Confirm => self.confirm(decode(body)?).await,
            PaymentEndpoint::Cancel => self.cancel(decode(body)?).await,
        };
        reply.map(Reply::json)
    }

    async fn checkout(
        &self,
        r: CheckoutRequest,
        free: bool,
        command: Option<ProcessedCommand>,
    ) -> Result<Vec<u8>, ErrorReply> {
        let project = project(r.project_id)?;
        let user = UserId::parse(r.user_id).map_err(reply)?;
        record_scope(project, &user, None);
        if let Some(reply) = self.replayed(project, &user, command.as_ref()).await? {
            return Ok(reply);
        }
        let cart_id = match r.cart_id {
            Some(id) => CartId::parse(id).map_err(reply)?,
            None => crate::current_cart_id(project, &user),
        };
        let currency = currency(r.currency.as_deref())?;
        let country = country(r.country.as_deref())?;
        let custom_parameters = custom_parameters(r.custom_parameters)?;
        let key = StreamKey::new(project, user.clone(), cart_id.clone());
        let loaded = self.carts.load(&key).await.map_err(reply)?;
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
        let kind = if free {
            CheckoutKind::Free
        } else {
            CheckoutKind::Paid
        };
        snapshot.0.check_kind(kind).map_err(reply)?;
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
        let user = UserId::parse(r.user_id).map_err(reply)?;
        record_scope(project, &user, None);
        if let Some(reply) = self.replayed(project, &user, command.as_ref()).await? {
            return Ok(reply);
        }
        let sku = Sku::parse(r.sku).map_err(reply)?;
        let quantity = i64::try_from(r.quantity.unwrap_or(1))
            .ok()
            .filter(|q| *q >= 1)
            .and_then(|q| Quantity::parse(q).ok())
            .ok_or_else(|| {
                errors::out_of_range(format!(
                    "`quantity` must be an integer from 1 to {MAX_QUANTITY}"
                ))
            })?;
        let currency = currency(r.currency.as_deref())?;
        let country = country(r.country.as_deref())?;
        let custom_parameters = custom_parameters(r.custom_parameters)?;
        let (catalog, versions) = self.catalog.versioned();
        let now = now();
        // The code's verdict is the domain's to act on, with the user's redemptions.
        let promo_code = match r.promo_code.filter(|c| !c.is_empty()) {
            None => None,
            Some(code) => {
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
                let check = cart_domain::check_promo_code(
                    &catalog,
                    project,
                    &code,
                    now,
                    country.as_deref(),
                    &purchases,
                    &BTreeMap::new(),
                )
                .map(|_| ());
                Some((code, check))
            }
        };
        let listed = catalog.is_listed(project, &sku);
        let cart = cart_domain::single_item_cart(sku, quantity, listed, promo_code)
            .map_err(|e| errors::cart_refusal(project, &user, &e))?;
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
            .map_err(reply)
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
            Ok(Some(outcome)) => self
                .outcome(outcome, Some(command.command_id.as_str()))
                .map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(reply(e)),
        }
    }

    async fn create(&self, catalog: &Catalog, checkout: Checkout) -> Result<Vec<u8>, ErrorReply> {
        let command_id = checkout.command.as_ref().map(|c| c.command_id.clone());
        let render = |created: &Created| checkout_reply(created);
        let outcome = self
            .orders
            .checkout(catalog, checkout, render)
            .await
            .map_err(reply)?;
        self.outcome(outcome, command_id.as_deref())
    }

    /// The reply to a checkout's outcome (`command_id`: the checkout's, if any).
    fn outcome(
        &self,
        outcome: CheckoutOutcome,
        command_id: Option<&str>,
    ) -> Result<Vec<u8>, ErrorReply> {
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
            CheckoutOutcome::IdReused => {
                Err(errors::command_id_reused(command_id.unwrap_or_default()))
            }
            CheckoutOutcome::Refused(refusal) => Err(reply(refusal)),
        }
    }

    async fn get(&self, r: GetOrderRequest) -> Result<Vec<u8>, ErrorReply> {
        let project = project(r.project_id)?;
        let user = UserId::parse(r.user_id).map_err(reply)?;
        record_scope(project, &user, None);
        let loaded = match (r.order_id, r.token) {
            (Some(id), None) => self.orders.load(project, id).await,
            (None, Some(token)) if !token.is_empty() && token.len() <= MAX_TEXT => {
                self.orders.load_by_token(project, &token).await
            }
            _ => {
                return Err(errors::out_of_range(
                    "Give exactly one of `order_id` and `token` (1 to 128 characters)",
                ))
            }
        }
        .map_err(reply)?;
        // Another user's order reads exactly like a missing one.
        let owned = loaded.filter(|l| l.order.details().is_some_and(|d| d.user == user));
        let loaded = owned.ok_or_else(|| reply(OrderError::NotFound))?;
        self.view(&loaded)
    }

    async fn search(&self, r: SearchOrdersRequest) -> Result<Vec<u8>, ErrorReply> {
        let project = project(r.project_id)?;
        let user = UserId::parse(r.user_id).map_err(reply)?;
        record_scope(project, &user, None);
        let limit = match r.limit {
            None => 10,
            Some(l @ 1..=10) => l,
            Some(_) => return Err(errors::out_of_range("`limit` must be from 1 to 10")),
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
                e => reply(e),
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
        let currency = Currency::parse(&r.currency).map_err(reply)?;
        let mode = match r.mode.as_deref() {
            None | Some("default") => PaymentMode::Default,
            Some("sandbox") => PaymentMode::Sandbox,
            Some(_) => return Err(errors::out_of_range("`mode` is default or sandbox")),
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
            .map_err(reply)?;
        self.view(&decided.map_err(reply)?)
    }

    async fn cancel(&self, r: CancelOrderRequest) -> Result<Vec<u8>, ErrorReply> {
        let project = project(r.project_id)?;
        let reason = r.reason.unwrap_or_else(|| "refund".to_owned());
        if reason.len() > 1000 {
            return Err(errors::out_of_range("`reason` may hold at most 1000 bytes"));
        }
        let decided = self
            .orders
            .cancel(project, r.order_id, reason)
            .await
            .map_err(reply)?;
        self.view(&decided.map_err(reply)?)
    }

    fn view(&self, loaded: &LoadedOrder) -> Result<Vec<u8>, ErrorReply> {
        let view =
            wire::view(&loaded.order, self.format).ok_or_else(|| reply(OrderError::NotFound))?;
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

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ErrorReply> {
    serde_json::from_slice(body).map_err(reply)
}

fn project(id: u64) -> Result<ProjectId, ErrorReply> {
    ProjectId::parse(id).map_err(reply)
}

fn currency(value: Option<&str>) -> Result<Currency, ErrorReply> {
    match value {
        None | Some("") => Ok(Currency::usd()),
        Some(c) => Currency::parse(c).map_err(reply),
    }
}

fn country(value: Option<&str>) -> Result<Option<String>, ErrorReply> {
    match value {
        None | Some("") => Ok(None),
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(c.to_ascii_uppercase()))
        }
        Some(_) => Err(errors::out_of_range(
            "`country` is an ISO 3166-1 alpha-2 code",
        )),
    }
}

fn custom_parameters(value: Option<serde_json::Value>) -> Result<Option<String>, ErrorReply> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v @ serde_json::Value::Object(_)) if v.to_string().len() <= 8 * 1024 => {
            Ok(Some(v.to_string()))
        }
        Some(_) => Err(errors::out_of_range(
            "`custom_parameters` is an object of at most 8 KiB",
        )),
    }
}

fn text(property: &'static str, value: &str) -> Result<(), ErrorReply> {
    if value.is_empty() {
        return Err(ErrorReply::invalid(&InvalidInput::Missing(property)));
    }
    if value.len() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(errors::out_of_range(format!(
            "`{property}` is 1 to {MAX_TEXT} printable characters"
        )));
    }
    Ok(())
}

/// A money amount from the wire: a decimal string, never a number, never negative.
fn amount(text: &str) -> Result<Decimal, ErrorReply> {
    let bad = || {
        errors::out_of_range(format!(
            "`amount` must be a non-negative decimal string such as \"6.84\", not {text:?}"
        ))
    };
    if text.is_empty() || text.len() > 40 || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(bad());
    }
    text.parse::<Decimal>().map_err(|_| bad())
}
