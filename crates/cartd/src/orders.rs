//! Orders over NATS, JSON request/reply: checkout (a cart, a single item, a free cart),
//! get and search for the shopper; payment confirmation and refunds for the payment
//! side. docs/protocol.md lists the bodies; docs/orders.md the rules.
//!
//! The shell's part: take the body as `cart_proto::order::request` decoded and checked
//! it (one JSON object, no control characters, dates parsed), load the cart, take one catalog
//! snapshot and one clock reading, count the user's purchases, price the cart and freeze
//! it (`OrderSnapshot::from_priced`). The order store then decides under its locks.

use std::collections::BTreeMap;
use std::time::Duration;

use cart_domain::{
    AppliedCode, Cart, Catalog, CheckoutKind, Currency, InvalidInput, OrderError, OrderSnapshot,
    PricingContext, ProjectId, Purchases, Quantity, Sku, Timestamp, UserId,
};
use cart_proto::order::{self as wire, CheckoutReply, OrderSearchReply};
use cart_proto::view::AmountFormat;
use cart_proto::ErrorReply;
use cart_store::orders::{
    Checkout, CheckoutOutcome, Created, LoadedOrder, OrderStore, OrderStoreError, Payment, Search,
};
use cart_store::{EventStore, ProcessedCommand, StoreError, StreamKey};

use crate::app::now;
use crate::catalog::CatalogCache;
use crate::edge::errors::{self, reply};
use crate::edge::{record_scope, Incoming, OrderEndpoint, PaymentEndpoint, Reply};

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
                self.checkout(wire::request::decode_checkout(body)?, free, command)
                    .await
            }
            OrderEndpoint::CheckoutItem => {
                self.checkout_item(wire::request::decode_checkout_item(body)?, command)
                    .await
            }
            OrderEndpoint::Get => self.get(wire::request::decode_get(body)?).await,
            OrderEndpoint::Search => self.search(wire::request::decode_search(body)?).await,
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
            PaymentEndpoint::Confirm => self.confirm(wire::request::decode_confirm(body)?).await,
            PaymentEndpoint::Cancel => self.cancel(wire::request::decode_cancel(body)?).await,
        };
        reply.map(Reply::json)
    }

    async fn checkout(
        &self,
        r: wire::request::CheckoutBody,
        free: bool,
        command: Option<ProcessedCommand>,
    ) -> Result<Vec<u8>, ErrorReply> {
        let (project, user) = (r.project, r.user);
        record_scope(project, &user, None);
        if let Some(reply) = self.replayed(project, &user, command.as_ref()).await? {
            return Ok(reply);
        }
        let cart_id = r
            .cart
            .unwrap_or_else(|| crate::current_cart_id(project, &user));
        let (currency, country) = (r.currency, r.country);
        let country = country.as_ref().map(|c| c.as_str().to_owned());
        let custom_parameters = r.custom_parameters;
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
        r: wire::request::CheckoutItemBody,
        command: Option<ProcessedCommand>,
    ) -> Result<Vec<u8>, ErrorReply> {
        let (project, user) = (r.project, r.user);
        record_scope(project, &user, None);
        if let Some(reply) = self.replayed(project, &user, command.as_ref()).await? {
            return Ok(reply);
        }
        let sku = r.sku;
        // The decoder keeps `quantity` within 1 to MAX_QUANTITY.
        let quantity = Quantity::parse(i64::from(r.quantity)).map_err(reply)?;
        let (currency, country) = (r.currency, r.country);
        let country = country.as_ref().map(|c| c.as_str().to_owned());
        let custom_parameters = r.custom_parameters;
        let (catalog, versions) = self.catalog.versioned();
        let now = now();
        // The code's verdict is the domain's to act on, with the user's redemptions.
        let promo_code = match r.promo_code {
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
        let project = checkout.project.get();
        let render = |created: &Created| checkout_reply(created);
        let outcome = self
            .orders
            .checkout(catalog, checkout, render)
            .await
            .map_err(reply)?;
        if let CheckoutOutcome::Created(created) = &outcome {
            let metrics = crate::metrics::get();
            metrics.orders(project, "created", 1);
            metrics.orders(project, "expired", created.expired.len() as u64);
        }
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
                crate::metrics::get().ledger_replay("order");
                Ok(done.reply)
            }
            CheckoutOutcome::IdReused => {
                Err(errors::command_id_reused(command_id.unwrap_or_default()))
            }
            CheckoutOutcome::Refused(refusal) => Err(reply(refusal)),
        }
    }

    async fn get(&self, r: wire::request::GetOrderBody) -> Result<Vec<u8>, ErrorReply> {
        let (project, user) = (r.project, r.user);
        record_scope(project, &user, None);
        let loaded = match r.order {
            wire::request::OrderRef::Id(id) => self.orders.load(project, id).await,
            wire::request::OrderRef::Token(token) => {
                self.orders.load_by_token(project, &token).await
            }
        }
        .map_err(reply)?;
        // Another user's order reads exactly like a missing one.
        let owned = loaded.filter(|l| l.order.details().is_some_and(|d| d.user == user));
        let loaded = owned.ok_or_else(|| reply(OrderError::NotFound))?;
        self.view(&loaded)
    }

    async fn search(&self, r: wire::request::SearchOrdersBody) -> Result<Vec<u8>, ErrorReply> {
        let (project, user) = (r.project, r.user);
        record_scope(project, &user, None);
        let (limit, offset) = (r.limit, r.offset);
        let page = self
            .orders
            .search(
                project,
                &user,
                &Search {
                    limit,
                    offset,
                    // Checked dates, written in a form PostgreSQL reads exactly.
                    created_from: r.created_from.map(|d| d.to_string()),
                    created_until: r.created_until.map(|d| d.to_string()),
                },
            )
            .await
            .map_err(|e| match e {
                OrderStoreError::Store(StoreError::Invalid(_)) => {
                    ErrorReply::invalid(&InvalidInput::BadDate("created_date_from"))
                }
                e => reply(e),
            })?;
        let orders: Vec<wire::OrderSearchEntry> = page
            .orders
            .iter()
            .filter_map(|o| wire::search_entry(o, self.format))
            .collect();
        let shown = offset.saturating_add(orders.len() as u64);
        Ok(serde_json::to_vec(&OrderSearchReply {
            has_more: shown < page.total,
            total_items_count: page.total,
            orders,
        })
        .unwrap_or_default())
    }

    async fn confirm(&self, r: wire::request::ConfirmPaymentBody) -> Result<Vec<u8>, ErrorReply> {
        let project = r.project;
        let (amount, currency, mode) = (r.amount, r.currency, r.mode);
        let catalog = self.catalog.snapshot();
        let (decided, paid_now) = self
            .orders
            .confirm_payment_once(
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
        let paid = decided.map_err(reply)?;
        // Counted once per order: the same invoice again is answered again (idempotent)
        // and not counted.
        if paid_now {
            crate::metrics::get().orders(project.get(), "paid", 1);
        }
        self.view(&paid)
    }

    async fn cancel(&self, r: wire::request::CancelOrderBody) -> Result<Vec<u8>, ErrorReply> {
        let (project, reason) = (r.project, r.reason);
        let decided = self
            .orders
            .cancel(project, r.order_id, reason)
            .await
            .map_err(reply)?;
        let canceled = decided.map_err(reply)?;
        crate::metrics::get().orders(project.get(), "canceled", 1);
        self.view(&canceled)
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
