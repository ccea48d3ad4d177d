//! The entries of `order.search`: Xsolla's admin order search (v3) shape, with the
//! service's own fields beside it.

use cart_domain::Order;
use serde::{Deserialize, Serialize};

use super::{view, OrderView, PriceView, PromotionStepView};
use crate::view::AmountFormat;

/// A price in Xsolla's order-search shape: real money here (orders are never paid in
/// virtual currency), so `is_virtual_currency` is always false.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SearchPriceView {
    pub amount: String,
    pub amount_without_discount: String,
    pub currency: String,
    pub is_virtual_currency: bool,
}

impl SearchPriceView {
    fn from_view(p: &PriceView) -> Self {
        SearchPriceView {
            amount: p.amount.clone(),
            amount_without_discount: p.amount_without_discount.clone(),
            currency: p.currency.clone(),
            is_virtual_currency: false,
        }
    }
}

/// One line of a found order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SearchItemView {
    pub sku: String,
    /// The catalog item type (`virtual_good`, `virtual_currency`, `bundle`, ...).
    #[serde(rename = "type")]
    pub item_type: Option<String>,
    pub quantity: u32,
    pub is_free: bool,
    pub is_bonus: bool,
    /// The unit price; zero in the order's currency for free and bonus lines.
    pub price: Option<SearchPriceView>,
    // Beside Xsolla's fields:
    pub is_bundle_content: bool,
    /// Unit price times quantity.
    pub amount: Option<String>,
    /// The line's discount steps, as line totals (the webhook's `items[].promotions`).
    pub discounts: Vec<PromotionStepView>,
}

/// The user the order belongs to (Xsolla's `user`; country, email and region are not
/// known to the service and left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SearchUserView {
    pub id: String,
}

/// An item promotion the order got (Xsolla's `promotions[]`): the catalog promotion's
/// numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SearchPromotionView {
    pub promotion_id: u64,
}

/// A code the order redeemed (Xsolla's `coupons[]`): the promo code, `type` `promocode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SearchCouponView {
    pub code: String,
    #[serde(rename = "type")]
    pub coupon_type: String,
}

/// An order as `order.search` lists it: Xsolla's admin order search (v3) entry
/// (`order_id`, `project_id`, `status`, `date_created`, `mode`, `is_free`,
/// `invoice_id`, `price`, `user`, `items`, `promotions`, `coupons`), then the fields
/// `order.get` adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderSearchEntry {
    pub order_id: u64,
    pub project_id: u64,
    pub status: String,
    /// RFC 3339, UTC.
    pub date_created: String,
    /// `default` or `sandbox`: the payment's mode, `default` before payment and for a
    /// free order.
    pub mode: String,
    pub is_free: bool,
    /// The paying invoice; null before payment and for a free order.
    pub invoice_id: Option<String>,
    /// The total; zero in the order's currency for a free order.
    pub price: Option<SearchPriceView>,
    pub user: SearchUserView,
    pub items: Vec<SearchItemView>,
    pub promotions: Vec<SearchPromotionView>,
    pub coupons: Vec<SearchCouponView>,
    // Beside Xsolla's fields, as in `order.get`:
    pub user_id: String,
    pub cart_id: Option<String>,
    pub promo_code: Option<String>,
    pub expired_by: Option<u64>,
    pub cancel_reason: Option<String>,
    pub custom_parameters: Option<serde_json::Value>,
    /// The order-level discount steps (the webhook's `order.promotions`).
    pub discounts: Vec<PromotionStepView>,
}

/// Renders an order for `order.search`; None before it was created.
pub fn search_entry(order: &Order, format: AmountFormat) -> Option<OrderSearchEntry> {
    let snapshot = &order.details()?.snapshot;
    let OrderView {
        order_id,
        project_id,
        status,
        user_id,
        cart_id,
        date_created,
        mode,
        invoice_id,
        is_free,
        promo_code,
        expired_by,
        cancel_reason,
        custom_parameters,
        content,
    } = view(order, format)?;
    let items = content
        .items
        .into_iter()
        .map(|i| SearchItemView {
            price: i.price.as_ref().map(SearchPriceView::from_view),
            sku: i.sku,
            item_type: i.item_type,
            quantity: i.quantity,
            is_free: i.is_free,
            is_bonus: i.is_bonus,
            is_bundle_content: i.is_bundle_content,
            amount: i.amount,
            discounts: i.promotions,
        })
        .collect();
    Some(OrderSearchEntry {
        order_id,
        project_id,
        status,
        date_created,
        mode: mode.unwrap_or_else(|| "default".to_owned()),
        is_free,
        invoice_id,
        price: content.price.as_ref().map(SearchPriceView::from_view),
        user: SearchUserView {
            id: user_id.clone(),
        },
        items,
        promotions: snapshot
            .promotion_ids()
            .into_iter()
            .map(|promotion_id| SearchPromotionView { promotion_id })
            .collect(),
        coupons: promo_code
            .iter()
            .map(|code| SearchCouponView {
                code: code.clone(),
                coupon_type: "promocode".to_owned(),
            })
            .collect(),
        user_id,
        cart_id,
        promo_code,
        expired_by,
        cancel_reason,
        custom_parameters,
        discounts: content.promotions,
    })
}
