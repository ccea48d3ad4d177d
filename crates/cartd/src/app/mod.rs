//! The command and query paths: from a decoded request to the bytes of its reply.

mod memory;
mod rendered;
mod reply;

use memory::{CartCache, CartLocks};
use rendered::{Rendered, ReplyCache, Variant};
use reply::After;

use std::sync::Arc;
use std::time::Duration;

use cart_domain::{
    decide, fill_warnings, CartCommand, CartId, Existence, FillItem, InvalidInput, ProjectId,
    UserId,
};
use cart_proto::request::{self, Action, Endpoint, Request};
use cart_proto::view::{self, AmountFormat};
use cart_proto::{encode, Encoding, ErrorReply, ReplyMode};

use crate::catalog::CatalogCache;
use crate::edge::errors::{self, reply};
use crate::edge::ledger::Command;
use crate::edge::{record_scope, Incoming, Reply};
use cart_store::orders::{GroupPurchases, Needs};
use cart_store::{
    AsOf, EventStore, GroupCommit, GroupConfig, GroupRead, Loaded, PendingAppend, Projected,
    StoreError, StreamKey,
};
use uuid::Uuid;

/// Tuning of the command path.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    pub max_attempts: u32,
    /// Carts whose state is kept in memory; 0 keeps none.
    pub cache_carts: usize,
    /// Bytes of rendered gets kept in memory; 0 keeps none.
    pub cache_reply_bytes: usize,
    pub group: GroupConfig,
}

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    store: EventStore,
    writer: GroupCommit,
    reader: GroupRead,
    cache: Option<CartCache>,
    /// Rendered gets, by cart (`rendered.rs`).
    replies: Option<ReplyCache>,
    /// The current catalog: take one `snapshot()` per request.
    catalog: CatalogCache,
    locks: CartLocks,
    format: AmountFormat,
    max_attempts: u32,
    /// Purchases and promo-code redemptions, for limits and `available`: the counts
    /// of concurrent requests are read together.
    purchases: GroupPurchases,
}

/// The id of a user's current cart. Derived, so that every instance agrees without a
/// lookup and the id stays the same for the user's lifetime.
pub fn current_cart_id(project: ProjectId, user: &UserId) -> CartId {
    let name = format!("{project}:{user}");
    let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes())
        .simple()
        .to_string();
    // Hex digits and a dash always satisfy the cart id charset.
    CartId::parse(format!("current-{id}")).unwrap_or_else(|_| unreachable!("hex cart id is valid"))
}

pub(crate) use cart_store::error_chain;

impl App {
    /// Starts the group-commit writer, so it must be called inside a tokio runtime.
    pub fn new(
        store: EventStore,
        orders: cart_store::orders::OrderStore,
        catalog: CatalogCache,
        format: AmountFormat,
        tuning: Tuning,
    ) -> Self {
        let inner = Inner {
            writer: GroupCommit::start(store.clone(), tuning.group),
            // Reads are cheap for PostgreSQL but many: twice as many batches may run, side
            // by side from the start (a read batch is short and has no commit to share).
            reader: GroupRead::start(
                store.clone(),
                GroupConfig {
                    max_in_flight: tuning.group.max_in_flight * 2,
                    overlap_after: Duration::ZERO,
                    ..tuning.group
                },
            ),
            store,
            cache: (tuning.cache_carts > 0).then(|| CartCache::new(tuning.cache_carts)),
            replies: (tuning.cache_reply_bytes > 0)
                .then(|| ReplyCache::new(tuning.cache_reply_bytes)),
            catalog,
            locks: CartLocks::new(4096),
            format,
            max_attempts: tuning.max_attempts.max(1),
            purchases: orders.group_purchases(GroupConfig {
                max_in_flight: tuning.group.max_in_flight * 2,
                overlap_after: Duration::ZERO,
                ..tuning.group
            }),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The probe sessions of the grouped reads, by the name of their pool gauges:
    /// connections beside the main pool (`cart_store::PROBE_SESSION`).
    pub fn probe_pools(&self) -> [(&'static str, &sqlx::PgPool); 2] {
        [
            ("cartd-gets", self.inner.reader.pool()),
            ("cartd-counts", self.inner.purchases.pool()),
        ]
    }

    fn key(request: &Request) -> StreamKey {
        let scope = &request.scope;
        let cart = scope
            .cart
            .clone()
            .unwrap_or_else(|| current_cart_id(scope.project, &scope.user));
        StreamKey::new(scope.project, scope.user.clone(), cart)
    }

    /// Answers one request to a cart endpoint: decodes it, names it in the request's
    /// span, and runs it.
    pub(crate) async fn serve(
        &self,
        endpoint: Endpoint,
        incoming: Incoming,
    ) -> Result<Reply, ErrorReply> {
        let encoding = incoming.encoding;
        let decoded = tracing::info_span!("decode", encoding = ?encoding)
            .in_scope(|| request::decode(endpoint, encoding, &incoming.body))?;
        let scope = &decoded.scope;
        let cart = scope.cart.as_ref().map_or("current", |c| c.as_str());
        record_scope(scope.project, &scope.user, Some(cart));
        let body = self
            .handle(decoded, encoding, incoming.reply, incoming.command)
            .await?;
        Ok(Reply { body, encoding })
    }

    /// Answers one decoded request (`mode` is for commands: queries answer in full).
    async fn handle(
        &self,
        request: Request,
        encoding: Encoding,
        mode: ReplyMode,
        command: Option<Command>,
    ) -> Result<Vec<u8>, ErrorReply> {
        let (catalog, versions) = self.inner.catalog.versioned();
        let project = i64::try_from(request.scope.project.get()).unwrap_or(i64::MAX);
        let mut at = Moment {
            catalog_version: versions.get(&project).copied(),
            catalog,
            now: now(),
            purchases: cart_domain::Purchases::default(),
            counted: Needs::default(),
        };
        match &request.action {
            Action::PromoCodeRewards { code } | Action::VerifyPromoCode { code } => {
                let needs = at.needs(request.scope.project, &[], Some(code.as_str()));
                self.count(&mut at, &request.scope, needs).await?;
                self.promo_code_query(&at, &request, code, encoding)
            }
            // A get's counts are those of the cart it reads: one read, after it.
            Action::Get { .. } => self.query(&at, &request, encoding).await,
            _ => self.command(at, &request, (encoding, mode), command).await,
        }
    }

    async fn query(
        &self,
        at: &Moment,
        request: &Request,
        encoding: Encoding,
    ) -> Result<Vec<u8>, ErrorReply> {
        let key = Self::key(request);
        let store = &self.inner.store;
        let loaded = match &request.action {
            Action::Get { as_of: Some(as_of) } => {
                let as_of = match as_of {
                    request::AsOf::Version(v) => AsOf::Version(*v),
                    request::AsOf::Time(t) => AsOf::Time(t.to_string()),
                };
                let loaded = store.load_as_of(&key, &as_of).await.map_err(|e| match e {
                    e if e.is_invalid_input() => {
                        ErrorReply::invalid(&InvalidInput::BadTime("at_time"))
                    }
                    e => reply(e),
                })?;
                if let (AsOf::Version(wanted), Some(found)) = (&as_of, &loaded) {
                    if found.version < *wanted {
                        return Err(errors::out_of_range(format!(
                            "The cart has no version {wanted}; its latest is {}",
                            found.version
                        )));
                    }
                }
                loaded
            }
            // Gets read the projection, not this instance's cache: another instance may
            // have changed the cart, and a get must show every acknowledged command.
            _ => return self.current(at, request, &key, encoding).await,
        };
        let cart = match loaded {
            Some(loaded) => loaded.cart,
            // As for a get of the cart now (`current`).
            None if key.cart == current_cart_id(key.project, &key.user) => Default::default(),
            None => return Err(ErrorReply::cart_not_found(&key.user)),
        };
        let purchases = self.cart_purchases(at, &request.scope, &cart).await?;
        Ok(self.render(at, &key, &cart, &purchases, request, &[], encoding))
    }

    /// A get of the cart as it is now: read from the projection (only its version when
    /// this instance has a rendered reply of it), counted, and answered from the reply
    /// cache when the cart, catalog, view, encoding and counts are those it was
    /// rendered with.
    async fn current(
        &self,
        at: &Moment,
        request: &Request,
        key: &StreamKey,
        encoding: Encoding,
    ) -> Result<Vec<u8>, ErrorReply> {
        let stream_id = key.stream_id();
        let replies = self.inner.replies.as_ref();
        let cached = replies.and_then(|c| c.get(stream_id));
        let known = cached.as_ref().map(|r| r.version);
        let projected = self
            .inner
            .reader
            .projection_since(key, known)
            .await
            .map_err(reply)?;
        let (cart, version) = match (projected, &cached) {
            (Some(Projected::Cart(loaded)), _) => (Arc::new(loaded.cart), Some(loaded.version)),
            (Some(Projected::Unchanged { version }), Some(cached)) if cached.version == version => {
                (cached.cart.clone(), Some(version))
            }
            // Only a caller that knew a version is told it is unchanged.
            (Some(Projected::Unchanged { .. }), _) => return Err(errors::internal()),
            // The current cart always exists, empty until first used. Any other cart
            // id this user never wrote to is not found, which is also the answer for
            // another user's cart: ids are scoped to their user.
            (None, _) if key.cart == current_cart_id(key.project, &key.user) => {
                (Arc::new(cart_domain::Cart::default()), None)
            }
            (None, _) => return Err(ErrorReply::cart_not_found(&key.user)),
        };
        let purchases = self.cart_purchases(at, &request.scope, &cart).await?;
        let variant = Variant {
            catalog_version: at.catalog_version,
            view: request.view.clone(),
            encoding,
            purchases,
        };
        if let (Some(version), Some(cached)) = (version, &cached) {
            if cached.serves(version, &variant, at.now) {
                tracing::debug!(version, "get answered from the reply cache");
                crate::metrics::get().reply_cache_hits.add(1, &[]);
                return Ok(cached.body.to_vec());
            }
        }
        if replies.is_some() && version.is_some() {
            crate::metrics::get().reply_cache_misses.add(1, &[]);
        }
        let body = self.render(at, key, &cart, &variant.purchases, request, &[], encoding);
        if let (Some(replies), Some(version)) = (replies, version) {
            keep(
                replies,
                at,
                key,
                (version, cart, variant),
                body.as_slice().into(),
            );
        }
        Ok(body)
    }

    /// Whether the cart is still at `version`: the projection row is written in the
    /// transaction of the events (`APPEND_ONE_TRIP`, or `APPEND_WRITES` step by step), so
    /// its version is the stream's. One probe grouped with the gets, where the log would
    /// be read and folded whole.
    async fn still_at(&self, key: &StreamKey, version: i64) -> Result<bool, ErrorReply> {
        let projected = self
            .inner
            .reader
            .projection_since(key, Some(version))
            .await
            .map_err(reply)?;
        Ok(matches!(projected, Some(Projected::Unchanged { version: v }) if v == version))
    }

    /// Keeps a command's full reply as the get of the cart at the version its append
    /// gave, when it is that get: no fill warnings and no rewards (a redeem's), which a
    /// get never has; the counts it was priced with are the cart's (`cart_purchases`).
    fn seed(&self, at: &Moment, request: &Request, key: &StreamKey, seed: Seed) {
        let Some(replies) = &self.inner.replies else {
            return;
        };
        if !seed.warnings_empty || matches!(request.action, Action::RedeemPromoCode { .. }) {
            return;
        }
        let variant = Variant {
            catalog_version: at.catalog_version,
            view: request.view.clone(),
            encoding: seed.encoding,
            purchases: seed.purchases,
        };
        let cart = Arc::new(seed.cart);
        keep(replies, at, key, (seed.version, cart, variant), seed.body);
    }

    /// The rewards and verify queries: they read the catalog, not the cart. The user's
    /// redemptions are taken as none: a redemption counts only when an order is paid,
    /// which this service does not know yet.
    fn promo_code_query(
        &self,
        at: &Moment,
        request: &Request,
        code: &str,
        encoding: Encoding,
    ) -> Result<Vec<u8>, ErrorReply> {
        let project = request.scope.project;
        let purchases = &at.purchases;
        let verify = matches!(request.action, Action::VerifyPromoCode { .. });
        let catalog = &at.catalog;
        let found = cart_domain::check_promo_code(
            catalog,
            project,
            code,
            at.now,
            request.view.country_code(),
            purchases,
            &Default::default(),
        )
        .map_err(|rejection| {
            if verify {
                ErrorReply::promo_code_verify(&rejection)
            } else {
                ErrorReply::promo_code(&rejection)
            }
        })?;
        let rewards = view::rewards(
            project,
            catalog,
            &cart_domain::rewards(found, &Default::default()),
            &Default::default(),
            &request.view.locale,
        );
        Ok(if verify {
            encode(
                &cart_proto::v1::PromoCodeVerification {
                    r#type: "promocode".to_owned(),
                    code: found.code.clone(),
                    rewards: Some(rewards),
                },
                encoding,
            )
        } else {
            encode(&rewards, encoding)
        })
    }

    /// Makes `at.purchases` hold the user's counts of `needs`: read (grouped with other
    /// requests' reads) unless what `at` holds already covers them. True when it read.
    async fn count(
        &self,
        at: &mut Moment,
        scope: &request::Scope,
        needs: Needs,
    ) -> Result<bool, ErrorReply> {
        if at.counted.covers(&needs) {
            return Ok(false);
        }
        at.purchases = self
            .inner
            .purchases
            .read(scope.project, &scope.user, needs.clone())
            .await
            .map_err(reply)?;
        at.counted = needs;
        Ok(true)
    }

    /// Purchases for pricing `cart` (its lines and its code): taken from what `at`
    /// holds when that covers them, so a command's reply reads nothing after its
    /// decision; the value is the one a read of exactly these counts gives.
    async fn cart_purchases(
        &self,
        at: &Moment,
        scope: &request::Scope,
        cart: &cart_domain::Cart,
    ) -> Result<cart_domain::Purchases, ErrorReply> {
        let needs = at.cart_needs(scope.project, cart);
        if at.counted.covers(&needs) {
            return Ok(needs.restrict(&at.purchases));
        }
        self.inner
            .purchases
            .read(scope.project, &scope.user, needs)
            .await
            .map_err(reply)
    }

    /// Turns a request into a domain command, with what the catalog says about its SKUs;
    /// None for a query.
    fn command_for(&self, at: &Moment, request: &Request) -> Option<CartCommand> {
        let project = request.scope.project;
        let existence = match &request.scope.cart {
            None => Existence::Always,
            Some(id) if *id == current_cart_id(project, &request.scope.user) => Existence::Always,
            Some(_) => Existence::OnceOpened,
        };
        let catalog = &at.catalog;
        let listed = |sku| catalog.is_listed(project, sku);
        let now = at.now;
        let purchases = &at.purchases;
        let unavailable = |sku, quantity: cart_domain::Quantity| {
            let item = catalog.item(project, sku)?;
            cart_domain::unavailable(item, quantity.get(), now, purchases)
        };
        Some(match &request.action {
            Action::Fill { items, replace } => CartCommand::Fill {
                items: items
                    .iter()
                    .map(|(sku, quantity)| FillItem {
                        sku: sku.clone(),
                        quantity: *quantity,
                        listed: listed(sku),
                        unavailable: unavailable(sku, *quantity),
                    })
                    .collect(),
                replace: *replace,
            },
            Action::PutItem { sku, quantity } => CartCommand::PutItem {
                sku: sku.clone(),
                quantity: *quantity,
                listed: listed(sku),
            },
            Action::DeleteItem { sku } => CartCommand::DeleteItem {
                sku: sku.clone(),
                listed: listed(sku),
            },
            Action::Clear => CartCommand::Clear,
            Action::RedeemPromoCode {
                code,
                selected_unit_items,
            } => CartCommand::RedeemPromoCode {
                code: code.clone(),
                selected_unit_items: selected_unit_items.clone(),
                // Whether the cart meets the code's conditions is not a refusal: the
                // code is attached and the priced cart says whether it applies.
                check: cart_domain::check_promo_code(
                    catalog,
                    project,
                    code,
                    now,
                    request.view.country_code(),
                    purchases,
                    selected_unit_items,
                )
                .map(|_| ()),
                existence,
            },
            Action::RemovePromoCode => CartCommand::RemovePromoCode { existence },
            Action::Get { .. }
            | Action::PromoCodeRewards { .. }
            | Action::VerifyPromoCode { .. } => return None,
        })
    }

    /// The first reply to `command`, if the ledger has it.
    async fn replay_ledger(
        &self,
        key: &StreamKey,
        command: &Command,
    ) -> Result<Option<Vec<u8>>, ErrorReply> {
        let id = command.id.as_str();
        let found = self
            .inner
            .store
            .processed(key.project, &key.user, id)
            .await
            .map_err(reply)?;
        match found {
            None => Ok(None),
            Some(done) if done.fingerprint == command.fingerprint => {
                tracing::info!("duplicate command: returning the original reply");
                crate::metrics::get().ledger_replay("cart");
                Ok(Some(done.reply))
            }
            Some(_) => Err(errors::command_id_reused(id)),
        }
    }

    async fn command(
        &self,
        mut at: Moment,
        request: &Request,
        (encoding, mode): (Encoding, ReplyMode),
        ledger_command: Option<Command>,
    ) -> Result<Vec<u8>, ErrorReply> {
        let at = &mut at;
        let key = Self::key(request);
        let stream_id = key.stream_id();
        let project = key.project;
        let _serialized = self.inner.locks.shard(stream_id).lock().await;
        // The domain command and the fill's warnings, made from the catalog facts and the
        // counts the decision needs; made again only when the counts are read again.
        let mut made: Option<(CartCommand, Vec<cart_domain::Skipped>)> = None;
        // A retried command is not looked up in the ledger first: deciding it again and
        // appending meets its ledger row, which turns the append into a duplicate, and
        // the original reply goes back (one round trip fewer for every fresh command).
        let mut cached = self.inner.cache.as_ref().and_then(|c| c.get(stream_id));
        for attempt in 1..=self.inner.max_attempts {
            let mut from_log = false;
            let (loaded, decided) = loop {
                let loaded = match cached.take() {
                    Some(loaded) if !from_log => loaded,
                    _ => {
                        from_log = true;
                        self.inner.store.load(&key).await.map_err(reply)?
                    }
                };
                // One read of counts serves the decision and the reply: those of the
                // request's SKUs and code and of the cart's, since the cart after the
                // command holds only those.
                let needs = at.decision_needs(request, &loaded.cart);
                if self.count(at, &request.scope, needs).await? || made.is_none() {
                    let command = self.command_for(at, request).ok_or_else(errors::internal)?;
                    let warnings = match &command {
                        CartCommand::Fill { items, .. } => fill_warnings(items),
                        _ => vec![],
                    };
                    made = Some((command, warnings));
                }
                let Some((command, _)) = &made else {
                    return Err(errors::internal());
                };
                let decided = tracing::info_span!("decide", from_log)
                    .in_scope(|| decide(&loaded.cart, command));
                // A cached state may be stale (another instance, or a paid order clearing
                // the cart, wrote since). A decision that appends is checked by the
                // version guard; a no-op or a refusal appends nothing, so it stands only
                // when the cart is still at the cached version, and is made again on the
                // log otherwise.
                if !from_log
                    && !matches!(&decided, Ok(events) if !events.is_empty())
                    && !self.still_at(&key, loaded.version).await?
                {
                    from_log = true;
                    continue;
                }
                break (loaded, decided);
            };
            let events = match decided {
                Ok(events) => events,
                Err(e) => {
                    // A retry of a command that was accepted before gets its first answer,
                    // even if the cart has changed so that it would now be refused.
                    if let Some(command) = &ledger_command {
                        if let Some(reply) = self.replay_ledger(&key, command).await? {
                            return Ok(reply);
                        }
                    }
                    return Err(errors::cart_refusal(project, &key.user, &e));
                }
            };
            // The append's version: the guard admits it only at `loaded.version`, and each
            // event takes the next number.
            let version = loaded.version + i64::try_from(events.len()).unwrap_or(i64::MAX);
            let cart = events.iter().fold(loaded.cart, cart_domain::apply);
            let warnings = made.as_ref().map_or(&[][..], |(_, w)| w.as_slice());
            let after = After {
                cart: &cart,
                version,
                warnings,
            };
            let (body, priced_with) = self
                .command_reply(at, request, &key, after, encoding, mode)
                .await?;
            if events.is_empty() && ledger_command.is_none() {
                // Nothing changed and nothing needs remembering.
                return Ok(body);
            }
            let ledger = ledger_command.as_ref().map(|c| c.record(body.clone()));
            // With the request span's trace context: the batch span links to it, and the
            // relay's publish carries it on.
            let metadata = cart_telemetry::trace_metadata(serde_json::json!({
                "command_id": ledger_command.as_ref().map(|c| c.id.as_str()),
                "user_id": key.user.as_str(),
                "cart_id": key.cart.as_str(),
                "endpoint": endpoint_of(&request.action).subject(),
            }));
            let n_events = events.len();
            let append = PendingAppend {
                key: key.clone(),
                expected: loaded.version,
                events,
                cart,
                command: ledger,
                metadata,
            };
            let cart = append.cart.clone();
            // A full reply is kept as the get of the new version, once it is written.
            let seed = priced_with.map(|purchases| Seed {
                version,
                cart: cart.clone(),
                purchases,
                encoding,
                warnings_empty: warnings.is_empty(),
                body: body.as_slice().into(),
            });
            let result = self.inner.writer.append(append).await;
            if let Some(cache) = &self.inner.cache {
                match &result {
                    Ok(outcome) => cache.put(
                        stream_id,
                        Loaded {
                            cart,
                            version: outcome.version,
                        },
                    ),
                    // Whatever the cart is now, the log says it; an error may even hide a
                    // commit that went through.
                    Err(_) => cache.forget(stream_id),
                }
            }
            match result {
                Ok(outcome) => {
                    tracing::debug!(version = outcome.version, n_events, "command accepted");
                    if let Some(seed) = seed.filter(|s| s.version == outcome.version) {
                        self.seed(at, request, &key, seed);
                    }
                    return Ok(body);
                }
                Err(StoreError::Conflict { .. }) => {
                    tracing::debug!(attempt, "concurrent append; deciding again");
                    let metrics = crate::metrics::get();
                    metrics.version_conflicts.add(1, &[]);
                    if attempt < self.inner.max_attempts {
                        metrics.command_retries.add(1, &[]);
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(StoreError::DuplicateCommand { .. }) => {
                    // This command was recorded before (a retry), or by another instance
                    // just now: answer as it was answered then.
                    let recorded = match &ledger_command {
                        Some(command) => self.replay_ledger(&key, command).await?,
                        None => None,
                    };
                    return recorded.ok_or_else(errors::internal);
                }
                Err(e) => return Err(reply(e)),
            }
        }
        crate::metrics::get().concurrent_change_refusals.add(1, &[]);
        Err(errors::concurrent_change())
    }
}

fn endpoint_of(action: &Action) -> Endpoint {
    match action {
        Action::Fill { .. } => Endpoint::Fill,
        Action::PutItem { .. } => Endpoint::PutItem,
        Action::DeleteItem { .. } => Endpoint::DeleteItem,
        Action::Clear => Endpoint::Clear,
        Action::Get { .. } => Endpoint::Get,
        Action::RedeemPromoCode { .. } => Endpoint::RedeemPromoCode,
        Action::RemovePromoCode => Endpoint::RemovePromoCode,
        Action::PromoCodeRewards { .. } => Endpoint::PromoCodeRewards,
        Action::VerifyPromoCode { .. } => Endpoint::VerifyPromoCode,
    }
}

/// A short, growing, jittered pause, so that two instances fighting over one cart do not
/// collide again in lockstep.
fn backoff(attempt: u32) -> Duration {
    let jitter = u64::from(Uuid::new_v4().as_bytes()[0] % 8);
    Duration::from_millis(u64::from(attempt.min(8)) * 2 + jitter)
}

/// Keeps `body` as the get of `cart` at `version` with `variant`, valid until the next
/// time its pricing could change (`rendered::valid_until`).
fn keep(
    replies: &ReplyCache,
    at: &Moment,
    key: &StreamKey,
    (version, cart, variant): (i64, Arc<cart_domain::Cart>, Variant),
    body: Arc<[u8]>,
) {
    let until = rendered::valid_until(&at.catalog, key.project, &cart, at.now);
    let rendered = Rendered {
        version,
        cart,
        variant: Arc::new(variant),
        until,
        body,
    };
    replies.put(key.stream_id(), rendered);
}

/// A command's full reply, to keep as a get's (`App::seed`).
struct Seed {
    version: i64,
    cart: cart_domain::Cart,
    /// The counts the reply was priced with.
    purchases: cart_domain::Purchases,
    encoding: Encoding,
    warnings_empty: bool,
    body: Arc<[u8]>,
}

/// What one request is decided and priced against: one catalog snapshot and one reading
/// of the clock, so that a command's facts and its reply's prices never come from two
/// different catalogs.
struct Moment {
    catalog: Arc<cart_domain::Catalog>,
    /// The request's project's version of `catalog` (None: the project has none).
    catalog_version: Option<i64>,
    now: cart_domain::Timestamp,
    /// The user's counts read so far for this request: at least those of the request's
    /// limited SKUs, its code and the promotions they could get.
    purchases: cart_domain::Purchases,
    /// What `purchases` holds counts of.
    counted: Needs,
}

impl Moment {
    /// What pricing or deciding on `skus` and `codes` needs counted now.
    fn needs<'c>(
        &self,
        project: ProjectId,
        skus: &[cart_domain::Sku],
        codes: impl IntoIterator<Item = &'c str>,
    ) -> Needs {
        Needs::of(&self.catalog, project, skus, codes, self.now)
    }

    /// What pricing `cart` needs counted.
    fn cart_needs(&self, project: ProjectId, cart: &cart_domain::Cart) -> Needs {
        let skus: Vec<cart_domain::Sku> = cart.lines().iter().map(|l| l.sku.clone()).collect();
        let code = cart.promo_code().map(|c| c.code.as_str());
        self.needs(project, &skus, code)
    }

    /// What deciding `request` on `cart` and pricing the cart after it need counted:
    /// the request's SKUs and code with the cart's (the cart after a command holds no
    /// other SKU, and its code is the cart's or the request's).
    fn decision_needs(&self, request: &Request, cart: &cart_domain::Cart) -> Needs {
        let (mut skus, code) = request_items(&request.action);
        skus.extend(cart.lines().iter().map(|l| l.sku.clone()));
        let codes = code.iter().map(String::as_str);
        let cart_code = cart.promo_code().map(|c| c.code.as_str());
        self.needs(request.scope.project, &skus, codes.chain(cart_code))
    }
}

/// The SKUs and the promo code a request names (what its decision may need purchases of).
fn request_items(action: &Action) -> (Vec<cart_domain::Sku>, Option<String>) {
    match action {
        Action::Fill { items, .. } => (items.iter().map(|(sku, _)| sku.clone()).collect(), None),
        Action::PutItem { sku, .. } => (vec![sku.clone()], None),
        Action::RedeemPromoCode { code, .. }
        | Action::PromoCodeRewards { code }
        | Action::VerifyPromoCode { code } => (vec![], Some(code.clone())),
        _ => (vec![], None),
    }
}

/// The wall clock, for pricing and availability (the domain has none).
pub(crate) fn now() -> cart_domain::Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    cart_domain::Timestamp::from_unix(secs)
}
