//! One function per fuzz target: feeds an input to a decoder and checks what must hold
//! for every input. A decoder may refuse an input; it must never panic, and what it
//! accepts must survive its own encoding.
//!
//! This file is compiled twice: by the fuzz crate, and by cart-proto's corpus test
//! (`#[path]`), so it uses only cart-proto's own dependencies.

use cart_proto::request::{self, Endpoint};
use cart_proto::{admin, catalog, event, order, Encoding};

/// A target: its corpus directory name (`fuzz/corpus/<name>`) and its body.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, as `make fuzz` runs them and the regression test replays them.
pub const TARGETS: [Target; 7] = [
    Target {
        name: "cart_request_json",
        run: cart_request_json,
    },
    Target {
        name: "cart_request_protobuf",
        run: cart_request_protobuf,
    },
    Target {
        name: "order_request",
        run: order_request,
    },
    Target {
        name: "admin_document",
        run: admin_document,
    },
    Target {
        name: "admin_request",
        run: admin_request,
    },
    Target {
        name: "cart_event",
        run: cart_event,
    },
    Target {
        name: "order_event",
        run: order_event,
    },
];

/// The body of a request to every cart endpoint, as JSON.
pub fn cart_request_json(data: &[u8]) {
    cart_request(Encoding::Json, data);
}

/// The body of a request to every cart endpoint, as protobuf.
pub fn cart_request_protobuf(data: &[u8]) {
    cart_request(Encoding::Protobuf, data);
}

fn cart_request(encoding: Encoding, data: &[u8]) {
    for endpoint in Endpoint::ALL {
        if let Err(refusal) = request::decode(endpoint, encoding, data) {
            check_refusal(&refusal);
        }
    }
}

/// A refusal becomes a header and a JSON body: it must be a 4xx with a body that reads
/// back as the same error.
fn check_refusal(refusal: &cart_proto::ErrorReply) {
    assert!(
        (400..500).contains(&refusal.status),
        "bad input must be refused with a 4xx, got {refusal:?}"
    );
    let back = cart_proto::ErrorReply::from_body(&refusal.body());
    assert_eq!(
        back.as_ref(),
        Some(refusal),
        "error body does not read back"
    );
}

/// The result of a checked decoder: a value, or a refusal that passes [`check_refusal`].
fn check<T>(decoded: Result<T, cart_proto::ErrorReply>) {
    if let Err(refusal) = decoded {
        check_refusal(&refusal);
    }
}

/// The body of every order and payment endpoint, through the checked decoders cartd
/// uses (`order::request::decode_*`).
pub fn order_request(data: &[u8]) {
    use order::request as r;
    check(r::decode_checkout(data));
    check(r::decode_checkout_item(data));
    check(r::decode_get(data));
    check(r::decode_search(data));
    check(r::decode_confirm(data));
    check(r::decode_cancel(data));
}

/// The body of every `admin.catalog.*` endpoint, through the checked decoders cartd uses
/// (`admin::request::decode_*`).
pub fn admin_request(data: &[u8]) {
    use admin::request as r;
    check(r::decode_item(data));
    check(r::decode_promotion(data));
    check(r::decode_promo_code(data));
    for field in [r::KeyField::Sku, r::KeyField::Id, r::KeyField::Code] {
        check(r::decode_delete(data, field));
    }
    check(r::decode_import(data));
    check(r::decode_export(data));
    check(r::decode_get(data));
    check(r::decode_changes(data));
}

/// The admin format: entities as the admin endpoints take them, and whole documents.
pub fn admin_document(data: &[u8]) {
    if let Ok(item) = admin::decode::<admin::Item>(data) {
        let _ = item.validate();
    }
    if let Ok(promotion) = admin::decode::<admin::Promotion>(data) {
        let _ = promotion.validate();
    }
    if let Ok(code) = admin::decode::<admin::PromoCode>(data) {
        let _ = code.validate();
    }
    if let Ok(project) = admin::decode::<admin::ProjectCatalog>(data) {
        let _ = project.validate();
    }
    let _ = catalog::parse(data);
}

/// The stored event types a fuzz input's first byte picks from (the last is unknown).
pub const CART_EVENT_TYPES: [&str; 7] = [
    "CartOpened",
    "ItemQuantitySet",
    "ItemRemoved",
    "CartCleared",
    "PromoCodeRedeemed",
    "PromoCodeRemoved",
    "NoSuchEvent",
];

/// The order event types, likewise.
pub const ORDER_EVENT_TYPES: [&str; 6] = [
    "OrderCreated",
    "OrderPaid",
    "OrderDone",
    "OrderCanceled",
    "OrderExpired",
    "NoSuchEvent",
];

/// A stored event as a fuzz input: byte 0 picks the type, byte 1 is the schema version
/// (signed), the rest is the JSON payload. None when the payload is not JSON.
pub fn split_stored(
    types: &[&'static str],
    data: &[u8],
) -> Option<(&'static str, i16, serde_json::Value)> {
    let (&kind, rest) = data.split_first()?;
    let (&version, payload) = rest.split_first()?;
    let payload = serde_json::from_slice(payload).ok()?;
    Some((
        types[usize::from(kind) % types.len()],
        i16::from(version as i8),
        payload,
    ))
}

/// The inverse of [`split_stored`], for seeds.
pub fn join_stored(
    types: &[&'static str],
    event_type: &str,
    version: i16,
    payload: &serde_json::Value,
) -> Vec<u8> {
    let kind = types
        .iter()
        .position(|t| *t == event_type)
        .unwrap_or(types.len() - 1);
    let mut out = vec![kind as u8, version as i8 as u8];
    out.extend(serde_json::to_vec(payload).unwrap_or_default());
    out
}

/// A stored cart event: what decodes must encode at the current version and decode to
/// the same event again.
pub fn cart_event(data: &[u8]) {
    let Some((event_type, version, payload)) = split_stored(&CART_EVENT_TYPES, data) else {
        return;
    };
    let Ok(decoded) = event::decode(event_type, version, payload) else {
        return;
    };
    let encoded = event::encode(&decoded);
    assert_eq!(
        Some(encoded.schema_version),
        event::current_schema_version(encoded.event_type)
    );
    let again = event::decode(encoded.event_type, encoded.schema_version, encoded.payload)
        .expect("an encoded event decodes");
    assert_eq!(again, decoded, "decode . encode is not the identity");
}

/// A stored order event: what decodes must survive encode and decode unchanged.
pub fn order_event(data: &[u8]) {
    let Some((event_type, version, payload)) = split_stored(&ORDER_EVENT_TYPES, data) else {
        return;
    };
    let Ok(decoded) = order::decode(event_type, version, payload) else {
        return;
    };
    let encoded = order::encode(&decoded);
    let again = order::decode(
        encoded.event_type,
        encoded.schema_version,
        encoded.payload.clone(),
    )
    .expect("an encoded order event decodes");
    assert_eq!(
        order::encode(&again),
        encoded,
        "encode . decode is not a fixpoint"
    );
}
