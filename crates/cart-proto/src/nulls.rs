//! Where Xsolla's schema has a type that is not nullable, a strictly typed client (one
//! generated from Xsolla's OpenAPI) fails on `null`: the service sends the typed value
//! or leaves the property out. These are the paths, and the walker the tests run over
//! every reply and webhook they see.

use serde_json::Value;

/// Paths (`a.b[].c`: `[]` walks every element of an array) where Xsolla's schema types
/// the value as a string or object without `null`, in cart replies (fill, item put and
/// delete, clear, get, promo code redeem and remove), order views (`order.get`, the
/// payment replies) and `order.search`. A path that is not in a reply is skipped, so the
/// list holds no path that one reply types and another leaves nullable (an order's
/// `cart_id` is the service's own, null for a single-item order; a cart's is a string).
pub const XSOLLA_TYPED_REPLY_PATHS: &[&str] = &[
    // Cart: the item's virtual item type (consumable, non_consumable, ...), a
    // promotion's limits, a bonus item's bundle type.
    "items[].sku",
    "items[].type",
    "items[].virtual_item_type",
    "items[].promotions[].limits",
    "items[].promotions[].bonus[].bundle_type",
    "promotions[].limits",
    "promotions[].bonus[].bundle_type",
    // Order views: every price is an object.
    "content.price",
    "content.items[].price",
    "status",
    // Order search.
    "orders[].price",
    "orders[].items[].price",
    "orders[].mode",
    "orders[].user",
];

/// The same for the `order_paid` / `order_canceled` webhook body.
pub const XSOLLA_TYPED_WEBHOOK_PATHS: &[&str] = &[
    "notification_type",
    "items[].sku",
    "items[].amount",
    "items[].promotions[].amount_without_discount",
    "items[].promotions[].amount_with_discount",
    "order.currency",
    "order.currency_type",
    "order.amount",
    "order.mode",
    "order.status",
    "order.promotions[].amount_without_discount",
    "order.promotions[].amount_with_discount",
    "user.external_id",
];

/// Every concrete place (`items[2].virtual_item_type`) where one of `paths` holds
/// `null` in `value`.
pub fn nulls_at(value: &Value, paths: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for path in paths {
        let steps: Vec<&str> = path.split('.').collect();
        walk(value, &steps, String::new(), &mut found);
    }
    found
}

fn walk(value: &Value, steps: &[&str], at: String, found: &mut Vec<String>) {
    let Some((step, rest)) = steps.split_first() else {
        return;
    };
    let (key, each) = match step.strip_suffix("[]") {
        Some(key) => (key, true),
        None => (*step, false),
    };
    let Some(child) = value.as_object().and_then(|o| o.get(key)) else {
        return;
    };
    let here = if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    };
    if rest.is_empty() && !each {
        if child.is_null() {
            found.push(here);
        }
        return;
    }
    if each {
        for (i, element) in child.as_array().into_iter().flatten().enumerate() {
            walk(element, rest, format!("{here}[{i}]"), found);
        }
    } else {
        walk(child, rest, here, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nulls_are_found_at_their_concrete_paths_and_absent_properties_pass() {
        let cart = json!({
            "cart_id": "c",
            "items": [
                {"sku": "a", "type": "virtual_good", "virtual_item_type": "consumable",
                 "promotions": [{"limits": {"per_user": {"total": 1, "available": 1}}}]},
                {"sku": "b", "type": "physical_good", "promotions": [{"limits": null}]},
                {"sku": "c", "type": "bundle", "virtual_item_type": null}
            ],
            "promotions": [{"bonus": [{"sku": "s"}, {"sku": "t", "bundle_type": null}]}]
        });
        assert_eq!(
            nulls_at(&cart, XSOLLA_TYPED_REPLY_PATHS),
            [
                "items[2].virtual_item_type",
                "items[1].promotions[0].limits",
                "promotions[0].bonus[1].bundle_type"
            ]
        );
        assert!(nulls_at(&json!({"orders": []}), XSOLLA_TYPED_REPLY_PATHS).is_empty());
        let webhook = json!({"order": {"currency": null, "promotions": []}});
        assert_eq!(
            nulls_at(&webhook, XSOLLA_TYPED_WEBHOOK_PATHS),
            ["order.currency"]
        );
    }
}
