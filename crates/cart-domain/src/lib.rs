//! The cart's rules: what a cart is, what may happen to it, and why a command is refused.
//!
//! Pure code: no IO, no clock, no async and no serialization. The shell looks things up
//! (the catalog, the time) and passes the answers in as data; `decide` returns the events
//! that record what happened and `apply` folds them into the state. Pricing is a pure
//! function of a cart and a catalog snapshot.
//!
//! This crate is not the wire format (`cart-proto`) and does not know about storage
//! versions (`cart-store` tracks them).

mod cart;
mod catalog;
mod ids;
mod pricing;

pub use cart::{
    apply, decide, fill_warnings, Cart, CartCommand, CartError, CartEvent, ClearReason, FillItem,
    Line, SkipReason, Skipped,
};
pub use catalog::{Attribute, AttributeValue, Catalog, Group, Item, ItemPrice, VirtualPrice};
pub use ids::{
    CartId, Currency, InvalidInput, Locale, ProjectId, Quantity, Sku, UserId, MAX_LINES,
    MAX_QUANTITY,
};
pub use pricing::{price, Money, PricedCart, PricedLine};
