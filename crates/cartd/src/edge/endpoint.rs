//! Every endpoint the service answers, as one typed enum: the edge dispatches on it and
//! never on a subject string.

use cart_proto::request;

/// One endpoint of the service (subjects relative to the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A cart command or query, JSON or protobuf.
    Cart(request::Endpoint),
    Order(OrderEndpoint),
    Payment(PaymentEndpoint),
    /// `admin.catalog.*`.
    Admin(AdminEndpoint),
    /// `feed.status`: the relay's and the projections' position.
    FeedStatus,
}

/// The shopper's order endpoints, `order.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderEndpoint {
    Checkout,
    CheckoutItem,
    CheckoutFree,
    Get,
    Search,
}

/// The payment side's endpoints, `payment.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PaymentEndpoint {
    Confirm,
    Cancel,
}

/// What an admin change does to the entity it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Create,
    Update,
    Delete,
}

/// The catalog entities the admin endpoints change one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entity {
    Item,
    Promotion,
    PromoCode,
}

/// The catalog admin endpoints, `admin.catalog.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdminEndpoint {
    Change(Entity, Verb),
    Import,
    Export,
    Get,
    Changes,
}

/// What the edge does with a `Cart-Command-Id` header on an endpoint. It is checked on
/// every endpoint (an invalid one is refused, never ignored); only some record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommandIds {
    /// The id keys the command ledger: a retry gets the first reply.
    Recorded,
    /// A valid id is accepted and has no effect: the endpoint reads only, or is
    /// idempotent by its own key (a payment's invoice, a catalog version).
    Ignored,
}

/// How an endpoint's bodies are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bodies {
    /// JSON or protobuf, as the request's `Content-Type` says; the reply the same.
    Negotiated,
    /// JSON only, whatever the `Content-Type` says (no protobuf form exists).
    Json,
}

const ENTITIES: [Entity; 3] = [Entity::Item, Entity::Promotion, Entity::PromoCode];
const VERBS: [Verb; 3] = [Verb::Create, Verb::Update, Verb::Delete];

impl Endpoint {
    /// Every endpoint, in the order they are subscribed.
    pub(crate) fn all() -> Vec<Endpoint> {
        let mut all: Vec<Endpoint> = request::Endpoint::ALL.map(Endpoint::Cart).to_vec();
        all.push(Endpoint::FeedStatus);
        for entity in ENTITIES {
            for verb in VERBS {
                all.push(Endpoint::Admin(AdminEndpoint::Change(entity, verb)));
            }
        }
        all.extend(
            [
                AdminEndpoint::Import,
                AdminEndpoint::Export,
                AdminEndpoint::Get,
                AdminEndpoint::Changes,
            ]
            .map(Endpoint::Admin),
        );
        all.extend(
            [
                OrderEndpoint::Checkout,
                OrderEndpoint::CheckoutItem,
                OrderEndpoint::CheckoutFree,
                OrderEndpoint::Get,
                OrderEndpoint::Search,
            ]
            .map(Endpoint::Order),
        );
        all.extend([PaymentEndpoint::Confirm, PaymentEndpoint::Cancel].map(Endpoint::Payment));
        all
    }

    /// The subject after the service prefix, e.g. `item.put`.
    pub(crate) fn subject(self) -> &'static str {
        match self {
            Endpoint::Cart(e) => e.subject(),
            Endpoint::FeedStatus => "feed.status",
            Endpoint::Order(e) => match e {
                OrderEndpoint::Checkout => "order.checkout",
                OrderEndpoint::CheckoutItem => "order.checkout_item",
                OrderEndpoint::CheckoutFree => "order.checkout_free",
                OrderEndpoint::Get => "order.get",
                OrderEndpoint::Search => "order.search",
            },
            Endpoint::Payment(PaymentEndpoint::Confirm) => "payment.confirm",
            Endpoint::Payment(PaymentEndpoint::Cancel) => "payment.cancel",
            Endpoint::Admin(e) => match e {
                AdminEndpoint::Change(entity, verb) => match (entity, verb) {
                    (Entity::Item, Verb::Create) => "admin.catalog.item.create",
                    (Entity::Item, Verb::Update) => "admin.catalog.item.update",
                    (Entity::Item, Verb::Delete) => "admin.catalog.item.delete",
                    (Entity::Promotion, Verb::Create) => "admin.catalog.promotion.create",
                    (Entity::Promotion, Verb::Update) => "admin.catalog.promotion.update",
                    (Entity::Promotion, Verb::Delete) => "admin.catalog.promotion.delete",
                    (Entity::PromoCode, Verb::Create) => "admin.catalog.promocode.create",
                    (Entity::PromoCode, Verb::Update) => "admin.catalog.promocode.update",
                    (Entity::PromoCode, Verb::Delete) => "admin.catalog.promocode.delete",
                },
                AdminEndpoint::Import => "admin.catalog.import",
                AdminEndpoint::Export => "admin.catalog.export",
                AdminEndpoint::Get => "admin.catalog.get",
                AdminEndpoint::Changes => "admin.catalog.changes",
            },
        }
    }

    /// The endpoint's name in `$SRV.INFO` and STATS: its subject with `-` for `.` and
    /// `_` (service names allow letters, digits and dashes).
    pub(crate) fn name(self) -> String {
        match self {
            Endpoint::Cart(e) => e.name().to_owned(),
            other => other.subject().replace(['.', '_'], "-"),
        }
    }

    pub(crate) fn command_ids(self) -> CommandIds {
        match self {
            Endpoint::Cart(e) if !e.is_query() => CommandIds::Recorded,
            Endpoint::Order(
                OrderEndpoint::Checkout | OrderEndpoint::CheckoutItem | OrderEndpoint::CheckoutFree,
            ) => CommandIds::Recorded,
            _ => CommandIds::Ignored,
        }
    }

    pub(crate) fn bodies(self) -> Bodies {
        match self {
            Endpoint::Cart(_) => Bodies::Negotiated,
            _ => Bodies::Json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_has_its_own_subject_and_a_valid_service_name() {
        let all = Endpoint::all();
        assert_eq!(all.len(), 9 + 1 + 13 + 5 + 2);
        let subjects: std::collections::BTreeSet<_> = all.iter().map(|e| e.subject()).collect();
        assert_eq!(subjects.len(), all.len());
        for e in all {
            let name = e.name();
            assert!(
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "{name}"
            );
        }
        assert_eq!(
            Endpoint::Admin(AdminEndpoint::Change(Entity::PromoCode, Verb::Delete)).name(),
            "admin-catalog-promocode-delete"
        );
        assert_eq!(
            Endpoint::Order(OrderEndpoint::CheckoutItem).name(),
            "order-checkout-item"
        );
    }
}
