//! The protobuf form of [`OrderEventEnvelope`] (`proto/cart/v1/orders.proto`), for
//! exports in protobuf: the same fields, `content`'s members moved up into the order, and
//! the custom parameters as JSON text (protobuf has no free-form object without
//! well-known types).

use super::{OrderEventEnvelope, OrderItemView, OrderView, PriceView, PromotionStepView};
use crate::v1;

impl OrderEventEnvelope {
    /// This envelope as a `cart.v1.OrderEventEnvelope`.
    pub fn to_protobuf(&self) -> v1::OrderEventEnvelope {
        v1::OrderEventEnvelope {
            event_id: self.event_id.clone(),
            position: self.position.clone(),
            project_id: self.project_id,
            order_id: self.order_id,
            user_id: self.user_id.clone(),
            version: self.version,
            event_type: self.event_type.clone(),
            status: self.status.clone(),
            recorded_at: self.recorded_at.clone(),
            order: Some(order(&self.order)),
        }
    }
}

fn order(view: &OrderView) -> v1::Order {
    v1::Order {
        order_id: view.order_id,
        project_id: view.project_id,
        status: view.status.clone(),
        user_id: view.user_id.clone(),
        cart_id: view.cart_id.clone(),
        date_created: view.date_created.clone(),
        mode: view.mode.clone(),
        invoice_id: view.invoice_id.clone(),
        is_free: view.is_free,
        promo_code: view.promo_code.clone(),
        expired_by: view.expired_by,
        cancel_reason: view.cancel_reason.clone(),
        custom_parameters_json: view.custom_parameters.as_ref().map(|v| v.to_string()),
        price: view.content.price.as_ref().map(price),
        items: view.content.items.iter().map(item).collect(),
        promotions: view.content.promotions.iter().map(step).collect(),
    }
}

fn item(line: &OrderItemView) -> v1::OrderItem {
    v1::OrderItem {
        sku: line.sku.clone(),
        r#type: line.item_type.clone(),
        quantity: line.quantity,
        is_free: line.is_free,
        is_bonus: line.is_bonus,
        is_bundle_content: line.is_bundle_content,
        price: line.price.as_ref().map(price),
        amount: line.amount.clone(),
        promotions: line.promotions.iter().map(step).collect(),
    }
}

fn price(p: &PriceView) -> v1::OrderPrice {
    v1::OrderPrice {
        amount: p.amount.clone(),
        amount_without_discount: p.amount_without_discount.clone(),
        currency: p.currency.clone(),
    }
}

fn step(s: &PromotionStepView) -> v1::OrderPromotionStep {
    v1::OrderPromotionStep {
        amount_without_discount: s.amount_without_discount.clone(),
        amount_with_discount: s.amount_with_discount.clone(),
        sequence: s.sequence,
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::order::OrderContent;

    #[test]
    fn an_order_envelope_keeps_every_field_in_protobuf() {
        let money = |amount: &str| PriceView {
            amount: amount.to_owned(),
            amount_without_discount: "11.98".to_owned(),
            currency: "USD".to_owned(),
        };
        let envelope = OrderEventEnvelope {
            event_id: "0193".to_owned(),
            position: "905:12".to_owned(),
            project_id: 44056,
            order_id: 17,
            user_id: "ann".to_owned(),
            version: 2,
            event_type: "OrderPaid".to_owned(),
            status: "paid".to_owned(),
            recorded_at: "2026-12-04T17:40:00.123456Z".to_owned(),
            order: OrderView {
                order_id: 17,
                project_id: 44056,
                status: "paid".to_owned(),
                user_id: "ann".to_owned(),
                cart_id: None,
                date_created: "2026-12-04T17:39:12Z".to_owned(),
                mode: Some("default".to_owned()),
                invoice_id: Some("inv-1".to_owned()),
                is_free: false,
                promo_code: Some("WINTER2026".to_owned()),
                expired_by: None,
                cancel_reason: None,
                custom_parameters: Some(serde_json::json!({"character_id": "hero"})),
                content: OrderContent {
                    price: Some(money("10.78")),
                    is_free: false,
                    items: vec![OrderItemView {
                        sku: "cup01".to_owned(),
                        item_type: Some("virtual_good".to_owned()),
                        quantity: 2,
                        is_free: false,
                        is_bonus: false,
                        is_bundle_content: false,
                        price: Some(money("5.99")),
                        amount: Some("11.98".to_owned()),
                        promotions: vec![PromotionStepView {
                            amount_without_discount: "11.98".to_owned(),
                            amount_with_discount: "10.78".to_owned(),
                            sequence: 1,
                        }],
                    }],
                    promotions: vec![],
                },
            },
        };
        let bytes = envelope.to_protobuf().encode_to_vec();
        let read = v1::OrderEventEnvelope::decode(bytes.as_slice()).unwrap();
        assert_eq!((read.order_id, read.version), (17, 2));
        assert_eq!(read.event_type, "OrderPaid");
        let order = read.order.unwrap();
        assert_eq!(order.cart_id, None, "absent, not an empty string");
        assert_eq!(order.invoice_id.as_deref(), Some("inv-1"));
        assert_eq!(order.price.unwrap().amount, "10.78");
        assert_eq!(order.items[0].r#type.as_deref(), Some("virtual_good"));
        assert_eq!(order.items[0].promotions[0].amount_with_discount, "10.78");
        let custom: serde_json::Value =
            serde_json::from_str(order.custom_parameters_json.as_deref().unwrap()).unwrap();
        assert_eq!(custom, serde_json::json!({"character_id": "hero"}));
    }
}
