//! The stored form of cart events: a type name, a schema version and a JSON payload
//! (the JSON form of the proto message of the same name in `proto/cart/v1/events.proto`).

use cart_domain::{CartEvent, ClearReason, Sku};
use serde::de::DeserializeOwned;

use crate::v1;
use crate::v1::event_envelope::Event as EnvelopeEvent;

/// Why a stored event could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The event type is not one this version knows. The policy is to fail the read of
    /// the stream loudly rather than skip the event and fold a wrong state.
    #[error("unknown event type {event_type} (schema version {schema_version})")]
    UnknownType {
        event_type: String,
        schema_version: i16,
    },
    #[error("event {event_type} has a malformed payload")]
    Payload {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("event {event_type} holds an invalid value")]
    Invalid {
        event_type: String,
        #[source]
        source: cart_domain::InvalidInput,
    },
}

/// An event in its stored form: type name, schema version and JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub event_type: &'static str,
    pub schema_version: i16,
    pub payload: serde_json::Value,
}

/// The schema version written today for an event type; older versions are upcast by
/// [`decode`]. None for a type this build does not know.
pub fn current_schema_version(event_type: &str) -> Option<i16> {
    match event_type {
        "CartOpened" | "ItemQuantitySet" | "ItemRemoved" | "PromoCodeRedeemed"
        | "PromoCodeRemoved" => Some(1),
        "CartCleared" => Some(2),
        _ => None,
    }
}

/// Encodes an event in the current schema version of its type.
pub fn encode(event: &CartEvent) -> Encoded {
    let payload = match envelope_event(event) {
        EnvelopeEvent::CartOpened(m) => to_json(&m),
        EnvelopeEvent::ItemQuantitySet(m) => to_json(&m),
        EnvelopeEvent::ItemRemoved(m) => to_json(&m),
        EnvelopeEvent::CartCleared(m) => to_json(&m),
        EnvelopeEvent::PromoCodeRedeemed(m) => to_json(&m),
        EnvelopeEvent::PromoCodeRemoved(m) => to_json(&m),
    };
    let event_type = event.event_type();
    Encoded {
        event_type,
        schema_version: current_schema_version(event_type).unwrap_or(1),
        payload,
    }
}

/// The event as the oneof of [`v1::EventEnvelope`], the form readers outside see.
pub fn envelope_event(event: &CartEvent) -> EnvelopeEvent {
    match event {
        CartEvent::CartOpened => EnvelopeEvent::CartOpened(v1::CartOpened {}),
        CartEvent::ItemQuantitySet { sku, quantity } => {
            EnvelopeEvent::ItemQuantitySet(v1::ItemQuantitySet {
                sku: sku.to_string(),
                quantity: *quantity,
            })
        }
        CartEvent::ItemRemoved { sku } => EnvelopeEvent::ItemRemoved(v1::ItemRemoved {
            sku: sku.to_string(),
        }),
        CartEvent::CartCleared { reason } => EnvelopeEvent::CartCleared(v1::CartCleared {
            reason: reason_name(*reason).to_owned(),
        }),
        CartEvent::PromoCodeRedeemed {
            code,
            selected_unit_items,
        } => EnvelopeEvent::PromoCodeRedeemed(v1::PromoCodeRedeemed {
            code: code.clone(),
            selected_unit_items: selected_unit_items
                .iter()
                .map(|(unit, picked)| (unit.to_string(), picked.to_string()))
                .collect(),
        }),
        CartEvent::PromoCodeRemoved => EnvelopeEvent::PromoCodeRemoved(v1::PromoCodeRemoved {}),
    }
}

/// Reads an envelope's JSON: the proto3 JSON form written today, where the event's
/// member sits beside the other fields (`"item_quantity_set": {...}`), and the form
/// written before, which nested it under `"event"` (exports on disk, older messages
/// still in the stream). A member this build does not know (a later event type) reads
/// as an envelope without an event, so the reader can count it instead of losing it.
///
/// # Errors
/// The body is not a JSON object of envelope fields.
pub fn envelope_from_json(body: &[u8]) -> Result<v1::EventEnvelope, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(body)?;
    if let Some(object) = value.as_object_mut() {
        if let Some(serde_json::Value::Object(nested)) = object.remove("event") {
            for (member, event) in nested {
                object.entry(member).or_insert(event);
            }
        }
    }
    serde_json::from_value(value)
}

fn reason_name(reason: ClearReason) -> &'static str {
    match reason {
        ClearReason::Shopper => "shopper",
        ClearReason::Purchased => "purchased",
        ClearReason::Expired => "expired",
    }
}

/// The SKU an event is about, if any (it goes into the event's subject).
pub fn sku_of(event: &CartEvent) -> Option<&Sku> {
    match event {
        CartEvent::ItemQuantitySet { sku, .. } | CartEvent::ItemRemoved { sku } => Some(sku),
        CartEvent::CartOpened
        | CartEvent::CartCleared { .. }
        | CartEvent::PromoCodeRedeemed { .. }
        | CartEvent::PromoCodeRemoved => None,
    }
}

fn to_json<M: serde::Serialize>(message: &M) -> serde_json::Value {
    // Generated messages of strings and integers always serialize.
    serde_json::to_value(message).unwrap_or(serde_json::Value::Null)
}

/// Decodes a stored event of any schema version this build knows, upcasting older
/// versions to the current event. Upcasters are keyed by `(event_type, schema_version)`
/// and are pure functions of the old payload.
///
/// # Errors
/// An unknown type or version, a malformed payload, or a value the domain refuses. The
/// policy for an unknown type is to stop the reader with this error (naming the event)
/// rather than skip it: a skipped event would fold a wrong cart or lose a fact.
pub fn decode(
    event_type: &str,
    schema_version: i16,
    payload: serde_json::Value,
) -> Result<CartEvent, DecodeError> {
    let sku = |value: String| {
        Sku::parse(value).map_err(|source| DecodeError::Invalid {
            event_type: event_type.to_owned(),
            source,
        })
    };
    Ok(match (event_type, schema_version) {
        ("CartOpened", 1) => CartEvent::CartOpened,
        ("ItemQuantitySet", 1) => {
            let m: v1::ItemQuantitySet = from_json(event_type, payload)?;
            if m.quantity == 0 {
                // A line never has quantity zero; a stored one would fold a wrong cart.
                return Err(DecodeError::Invalid {
                    event_type: event_type.to_owned(),
                    source: cart_domain::InvalidInput::BadQuantity,
                });
            }
            CartEvent::ItemQuantitySet {
                sku: sku(m.sku)?,
                quantity: m.quantity,
            }
        }
        ("ItemRemoved", 1) => {
            let m: v1::ItemRemoved = from_json(event_type, payload)?;
            CartEvent::ItemRemoved { sku: sku(m.sku)? }
        }
        // v1 had no reason: every clear then was the shopper's.
        ("CartCleared", 1) => CartEvent::CartCleared {
            reason: ClearReason::Shopper,
        },
        ("CartCleared", 2) => {
            let m: v1::CartCleared = from_json(event_type, payload)?;
            // A reason added by a later version is still a clear, read as the shopper's.
            let reason = match m.reason.as_str() {
                "purchased" => ClearReason::Purchased,
                "expired" => ClearReason::Expired,
                _ => ClearReason::Shopper,
            };
            CartEvent::CartCleared { reason }
        }
        ("PromoCodeRedeemed", 1) => {
            let m: v1::PromoCodeRedeemed = from_json(event_type, payload)?;
            if m.code.is_empty() {
                return Err(DecodeError::Invalid {
                    event_type: event_type.to_owned(),
                    source: cart_domain::InvalidInput::Missing("code"),
                });
            }
            CartEvent::PromoCodeRedeemed {
                code: m.code,
                selected_unit_items: m
                    .selected_unit_items
                    .into_iter()
                    .map(|(unit, picked)| Ok((sku(unit)?, sku(picked)?)))
                    .collect::<Result<_, DecodeError>>()?,
            }
        }
        ("PromoCodeRemoved", 1) => CartEvent::PromoCodeRemoved,
        _ => {
            return Err(DecodeError::UnknownType {
                event_type: event_type.to_owned(),
                schema_version,
            })
        }
    })
}

fn from_json<M: DeserializeOwned>(
    event_type: &str,
    payload: serde_json::Value,
) -> Result<M, DecodeError> {
    serde_json::from_value(payload).map_err(|source| DecodeError::Payload {
        event_type: event_type.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips_and_has_a_stable_form() {
        let sku = Sku::parse("com.x.cup").unwrap();
        let cases = [
            (CartEvent::CartOpened, 1, r#"{}"#),
            (
                CartEvent::ItemQuantitySet {
                    sku: sku.clone(),
                    quantity: 3,
                },
                1,
                r#"{"quantity":3,"sku":"com.x.cup"}"#,
            ),
            (CartEvent::ItemRemoved { sku }, 1, r#"{"sku":"com.x.cup"}"#),
            (
                CartEvent::CartCleared {
                    reason: ClearReason::Shopper,
                },
                2,
                r#"{"reason":"shopper"}"#,
            ),
            (
                CartEvent::CartCleared {
                    reason: ClearReason::Purchased,
                },
                2,
                r#"{"reason":"purchased"}"#,
            ),
            (
                CartEvent::CartCleared {
                    reason: ClearReason::Expired,
                },
                2,
                r#"{"reason":"expired"}"#,
            ),
            (
                CartEvent::PromoCodeRedeemed {
                    code: "WINTER2026".into(),
                    selected_unit_items: [(
                        Sku::parse("game_1").unwrap(),
                        Sku::parse("game_1_steam").unwrap(),
                    )]
                    .into_iter()
                    .collect(),
                },
                1,
                r#"{"code":"WINTER2026","selected_unit_items":{"game_1":"game_1_steam"}}"#,
            ),
            (CartEvent::PromoCodeRemoved, 1, r#"{}"#),
        ];
        for (event, version, json) in cases {
            let encoded = encode(&event);
            assert_eq!(encoded.payload.to_string(), json, "{}", encoded.event_type);
            assert_eq!(encoded.schema_version, version, "{}", encoded.event_type);
            let back = decode(encoded.event_type, version, encoded.payload).unwrap();
            assert_eq!(back, event);
        }
    }

    fn envelope(event: CartEvent) -> v1::EventEnvelope {
        v1::EventEnvelope {
            event_id: "0193".into(),
            version: 2,
            event_type: event.event_type().into(),
            event: Some(envelope_event(&event)),
            ..Default::default()
        }
    }

    #[test]
    fn an_envelope_is_proto3_json_with_the_event_beside_its_fields() {
        let sku = Sku::parse("cup01").unwrap();
        let sent = envelope(CartEvent::ItemQuantitySet { sku, quantity: 2 });
        let json = serde_json::to_value(&sent).unwrap();
        assert_eq!(json["item_quantity_set"]["sku"], "cup01");
        assert!(json.get("event").is_none(), "{json}");
        assert_eq!(
            envelope_from_json(json.to_string().as_bytes()).unwrap(),
            sent
        );
    }

    #[test]
    fn envelopes_written_before_with_a_nested_event_still_read() {
        let old = br#"{"event_id":"e","version":3,"event_type":"CartCleared","event":{"cart_cleared":{"reason":"shopper"}}}"#;
        let read = envelope_from_json(old).unwrap();
        let want = envelope(CartEvent::CartCleared {
            reason: ClearReason::Shopper,
        });
        assert_eq!((read.version, read.event), (3, want.event));
        // A later event type is an envelope without an event, in either form.
        let later = br#"{"version":4,"event_type":"OrderPlaced","order_placed":{"id":"o"}}"#;
        assert_eq!(envelope_from_json(later).unwrap().event, None);
        let later = br#"{"version":4,"event":{"order_placed":{"id":"o"}}}"#;
        assert_eq!(envelope_from_json(later).unwrap().version, 4);
        assert!(envelope_from_json(b"{not json").is_err());
        assert!(envelope_from_json(br#"{"version":"x"}"#).is_err());
    }

    #[test]
    fn old_schema_versions_are_upcast() {
        // CartCleared v1 was an empty object.
        let e = decode("CartCleared", 1, serde_json::json!({})).unwrap();
        assert_eq!(
            e,
            CartEvent::CartCleared {
                reason: ClearReason::Shopper
            }
        );
        // A version from the future is not guessed at.
        let e = decode("CartCleared", 3, serde_json::json!({})).unwrap_err();
        assert!(matches!(e, DecodeError::UnknownType { .. }));
    }

    #[test]
    fn unknown_types_and_bad_payloads_are_errors_not_panics() {
        let e = decode("CartExploded", 1, serde_json::json!({})).unwrap_err();
        assert!(matches!(e, DecodeError::UnknownType { .. }));
        let e = decode("ItemRemoved", 1, serde_json::json!({"sku": 5})).unwrap_err();
        assert!(matches!(e, DecodeError::Payload { .. }));
        let e = decode("ItemRemoved", 1, serde_json::json!({"sku": "a b"})).unwrap_err();
        assert!(matches!(e, DecodeError::Invalid { .. }));
        let e = decode("ItemQuantitySet", 1, serde_json::json!({"sku": "a"})).unwrap_err();
        assert!(matches!(e, DecodeError::Invalid { .. }));
    }
}
