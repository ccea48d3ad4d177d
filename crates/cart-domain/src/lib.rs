//! The cart's rules: what a cart is, what may happen to it, and why a command is refused.
//!
//! Pure code: no IO, no clock, no async and no serialization. The shell looks things up
//! (the catalog, the time) and passes the answers in as data; `decide` returns the events
//! that record what happened and `apply` folds them into the state. Pricing is a pure
//! function of a cart and a catalog snapshot.
//!
//! This crate is not the wire format (`cart-proto`) and does not know about storage
//! versions (`cart-store` tracks them).

mod availability;
mod cart;
mod catalog;
mod ids;
mod order;
mod pricing;
mod time;

pub use availability::{
    check_promotion_limits, limits, unavailable, Availability, LineLimits, PerUserAvailability,
    PromoCodeUsage, Purchases, RecurrentReset, SkuPurchases, Unavailable,
};
pub use cart::{
    apply, decide, fill_warnings, single_item_cart, Cart, CartCommand, CartError, CartEvent,
    ClearReason, Existence, FillItem, Line, SkipReason, Skipped,
};
pub use catalog::{
    Attribute, AttributeValue, Catalog, CompareOp, Consumable, DateWindow, Discount,
    ExpirationPeriod, Group, InventoryOptions, Item, ItemLimits, ItemPrice, PerUserLimit,
    PeriodUnit, PriceCondition, PromoCode, Promotion, PromotionId, PromotionKind, SalesPeriod,
    VirtualPrice, VpReward,
};
pub use ids::{
    CartId, Country, Currency, InvalidInput, Locale, ProjectId, Quantity, Sku, UserId, MAX_LINES,
    MAX_QUANTITY,
};
pub use order::{
    apply as apply_order, check_limits, decide as decide_order, CheckoutKind, LinePrice,
    LineProblem, NewOrder, Order, OrderCommand, OrderDetails, OrderError, OrderEvent, OrderId,
    OrderLine, OrderPromotion, OrderSnapshot, OrderStatus, OrderTotal, Payment, PaymentMode,
    PromotionRef,
};
pub use pricing::{
    check_promo_code, discounted, price, redemption_limit, rewards, AppliedCode, AppliedPromotion,
    Money, PricedCart, PricedLine, PricingContext, PromoCodeOutcome, PromoCodeRejection,
    PromotionSource, Rewards,
};
pub use time::{days_in_month, Civil, DateTime, Interval, NotADate, RecurrentSchedule, Timestamp};
