//! The one mapping from each layer's error to the wire's [`ErrorReply`]: store
//! failures, order refusals, catalog conflicts, decoding and validation errors. Handlers
//! call [`reply`] (`.map_err(reply)`) and never pick a status or code themselves for
//! these errors.

use cart_domain::{CartError, InvalidInput, OrderError, ProjectId, UserId};
use cart_proto::admin::{DecodeError, ValidationError};
use cart_proto::capitalized;
use cart_proto::{ErrorReply, COMMAND_ID_HEADER, REPLY_HEADER};
use cart_store::catalog::{CatalogError, EntityKind};
use cart_store::orders::OrderStoreError;
use cart_store::{error_chain, StoreError};

/// An error some layer returns, as the caller should hear it.
pub(crate) trait ToReply {
    fn to_reply(&self) -> ErrorReply;
}

/// For `map_err`: the wire form of any layer's error.
pub(crate) fn reply<E: ToReply>(error: E) -> ErrorReply {
    error.to_reply()
}

/// 503 while the store cannot be reached (the caller may retry), else 500; logged with
/// its causes, which the caller never sees.
/// `pool_timeout`: no pooled connection in time, counted apart from the rest.
fn store_failure(
    unavailable: bool,
    pool_timeout: bool,
    error: &dyn std::error::Error,
) -> ErrorReply {
    if unavailable {
        tracing::warn!(error = %error_chain(error), "store unavailable");
        crate::metrics::get().db_unavailable(if pool_timeout {
            "acquire_timeout"
        } else {
            "unreachable"
        });
        ErrorReply::new(
            503,
            1000,
            "Service temporarily unavailable: the store cannot be reached. Retry later",
        )
    } else {
        tracing::error!(error = %error_chain(error), "store error");
        internal()
    }
}

/// The reply to a failure of the service itself; the details go to the log only.
pub(crate) fn internal() -> ErrorReply {
    ErrorReply::new(500, 1000, "Internal error")
}

impl ToReply for StoreError {
    fn to_reply(&self) -> ErrorReply {
        if self.is_invalid_input() {
            return unstorable_text();
        }
        store_failure(self.is_unavailable(), self.is_pool_timeout(), self)
    }
}

impl ToReply for OrderStoreError {
    fn to_reply(&self) -> ErrorReply {
        if self.is_invalid_input() {
            return unstorable_text();
        }
        store_failure(self.is_unavailable(), self.is_pool_timeout(), self)
    }
}

/// Text the database cannot hold (a NUL) is the caller's: 422, nothing was written.
/// The decoders refuse such text first; this is the store's word for what slips past.
fn unstorable_text() -> ErrorReply {
    ErrorReply::new(
        422,
        1102,
        "Unprocessable Entity. A value of the request cannot be stored (for example a NUL character in a text)",
    )
}

impl ToReply for InvalidInput {
    fn to_reply(&self) -> ErrorReply {
        ErrorReply::invalid(self)
    }
}

// Admin errors are cart-proto's, and so is their wire form.
impl ToReply for ValidationError {
    fn to_reply(&self) -> ErrorReply {
        cart_proto::admin::request::invalid_reply(self)
    }
}

impl ToReply for DecodeError {
    fn to_reply(&self) -> ErrorReply {
        cart_proto::admin::request::decode_reply(self)
    }
}

/// A JSON body of the wrong shape (`serde_json` errors of order bodies).
impl ToReply for serde_json::Error {
    fn to_reply(&self) -> ErrorReply {
        ErrorReply::malformed(self)
    }
}

impl ToReply for OrderError {
    fn to_reply(&self) -> ErrorReply {
        let status = match self {
            OrderError::NotFound => 404,
            OrderError::AlreadyPaid { .. } => 409,
            _ => 422,
        };
        let text = match self {
            OrderError::NotFound => "Order not found".to_owned(),
            OrderError::LimitExceeded {
                reset_next_date: Some(next),
                ..
            } => format!(
                "{}; the limit resets at {}",
                capitalized(&self.to_string()),
                next.civil()
            ),
            e if e.code() == 1401 => format!("Invalid cart. {}", capitalized(&e.to_string())),
            e => capitalized(&e.to_string()),
        };
        ErrorReply::new(status, self.code(), text)
    }
}

impl ToReply for CatalogError {
    fn to_reply(&self) -> ErrorReply {
        match self {
            CatalogError::Conflict {
                project_id,
                expected,
                actual,
            } => catalog_conflict(project_id.unsigned_abs(), *expected, *actual),
            CatalogError::AlreadyExists { kind, key } => already_exists(*kind, key),
            CatalogError::NotFound { kind, key } => not_found(*kind, key, None),
            CatalogError::Invalid(text) => {
                ErrorReply::new(422, 1102, format!("Unprocessable Entity. {text}"))
            }
            CatalogError::Database(e) => {
                store_failure(true, matches!(e, sqlx::Error::PoolTimedOut), self)
            }
        }
    }
}

/// A cart command that `decide` refused (the user names a cart that is not found).
pub(crate) fn cart_refusal(project: ProjectId, user: &UserId, error: &CartError) -> ErrorReply {
    match error {
        CartError::CartNotFound => ErrorReply::cart_not_found(user),
        other => ErrorReply::rejected(project, other),
    }
}

/// A catalog that is not at the version the caller expected.
pub(crate) fn catalog_conflict(project_id: u64, expected: i64, actual: i64) -> ErrorReply {
    ErrorReply::new(
        409,
        1102,
        format!("Conflict. The catalog of project {project_id} is at version {actual}, not the expected {expected}"),
    )
}

/// A catalog entity that is not there (`project` when the wording can name it).
pub(crate) fn not_found(kind: EntityKind, key: &str, project: Option<u64>) -> ErrorReply {
    let of = project.map_or(String::new(), |p| format!("Project Id = {p} and "));
    match kind {
        EntityKind::Item => {
            ErrorReply::new(404, 4001, format!("Item with {of}Sku = {key} not found"))
        }
        EntityKind::Promotion => ErrorReply::new(
            404,
            4001,
            format!("Promotion with {of}Id = {key} not found"),
        ),
        EntityKind::PromoCode => match project {
            Some(p) => ErrorReply::new(
                404,
                9802,
                format!("Promo code {key} of project {p} not found"),
            ),
            None => ErrorReply::new(404, 9802, format!("Promo code {key} not found")),
        },
    }
}

/// A catalog entity created a second time.
pub(crate) fn already_exists(kind: EntityKind, key: &str) -> ErrorReply {
    match kind {
        EntityKind::Item => ErrorReply::new(
            409,
            1102,
            format!("Conflict. Item with Sku = {key} already exists"),
        ),
        EntityKind::Promotion => ErrorReply::new(
            409,
            1102,
            format!("Conflict. Promotion with Id = {key} already exists"),
        ),
        EntityKind::PromoCode => {
            ErrorReply::new(409, 9803, format!("Promo code {key} already exists"))
        }
    }
}

/// A change that met a moving target too often (optimistic concurrency gave up): a
/// conflict the caller may retry, as a cart command's lost attempts are (409), not a
/// failure of the service.
pub(crate) fn too_busy(what: &str) -> ErrorReply {
    ErrorReply::new(
        409,
        1102,
        format!("The catalog is changing too often to apply the {what}; try again"),
    )
}

/// A command that lost every attempt to concurrent writers of its cart.
pub(crate) fn concurrent_change() -> ErrorReply {
    ErrorReply::new(
        409,
        1421,
        "The cart is being changed concurrently. Retry the command",
    )
}

/// An invalid `Cart-Command-Id` header (`rule` says what a valid one is).
pub(crate) fn bad_command_id(rule: impl std::fmt::Display) -> ErrorReply {
    out_of_range(format_args!("The header {COMMAND_ID_HEADER} {rule}"))
}

/// An invalid `Cart-Reply` header (`rule` says what a valid one is).
pub(crate) fn bad_reply_mode(rule: impl std::fmt::Display) -> ErrorReply {
    out_of_range(format_args!("The header {REPLY_HEADER} {rule}"))
}

/// A command id that was recorded for a different request.
pub(crate) fn command_id_reused(id: &str) -> ErrorReply {
    ErrorReply::new(
        409,
        1102,
        format!("Command id {id} was already used for a different request"),
    )
}

/// A request body over the limit.
pub(crate) fn too_large(limit: usize) -> ErrorReply {
    ErrorReply::new(
        413,
        1102,
        format!("Payload Too Large. A request body may hold at most {limit} bytes"),
    )
}

/// A request property with a value out of its range (`what` says what is allowed).
pub(crate) fn out_of_range(what: impl std::fmt::Display) -> ErrorReply {
    ErrorReply::new(422, 1102, format!("Unprocessable Entity. {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_timeout_is_told_from_an_unreachable_database() {
        let timed_out = StoreError::Batch(std::sync::Arc::new(StoreError::Database(
            sqlx::Error::PoolTimedOut,
        )));
        assert!(timed_out.is_unavailable() && timed_out.is_pool_timeout());
        assert_eq!(reply(timed_out).status, 503);
        let refused = StoreError::Database(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(refused.is_unavailable() && !refused.is_pool_timeout());
        assert_eq!(reply(refused).status, 503);
    }

    #[test]
    fn order_refusals_have_their_status_and_xsolla_code() {
        let e = reply(OrderError::NotFound);
        assert_eq!(
            (e.status, e.code, e.text.as_str()),
            (404, 9001, "Order not found")
        );
        let e = reply(OrderError::AlreadyPaid {
            invoice_id: "i".into(),
        });
        assert_eq!(e.status, 409);
        let e = reply(OrderError::EmptyCart);
        assert_eq!((e.status, e.code), (422, 1401));
        assert!(e.text.starts_with("Invalid cart. "), "{}", e.text);
    }

    #[test]
    fn catalog_errors_name_the_entity() {
        let e = reply(CatalogError::NotFound {
            kind: EntityKind::PromoCode,
            key: "X".into(),
        });
        assert_eq!((e.status, e.code), (404, 9802));
        let e = not_found(EntityKind::Item, "s", Some(7));
        assert_eq!(e.text, "Item with Project Id = 7 and Sku = s not found");
        let e = reply(CatalogError::Conflict {
            project_id: 7,
            expected: 1,
            actual: 2,
        });
        assert_eq!((e.status, e.code), (409, 1102));
    }
}
