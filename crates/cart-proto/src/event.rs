//! The stored form of cart events: a type name, a schema version and a JSON payload
//! (the JSON form of the proto message of the same name in `proto/cart/v1/events.proto`).

use cart_domain::{CartEvent, Sku};
use serde::de::DeserializeOwned;

use crate::v1;

/// The schema version written with every event today.
pub const SCHEMA_VERSION: i16 = 1;

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

/// Encodes an event as its type name and JSON payload.
pub fn encode(event: &CartEvent) -> (&'static str, serde_json::Value) {
    let payload = match event {
        CartEvent::CartOpened => to_json(&v1::CartOpened {}),
        CartEvent::ItemQuantitySet { sku, quantity } => to_json(&v1::ItemQuantitySet {
            sku: sku.to_string(),
            quantity: *quantity,
        }),
        CartEvent::ItemRemoved { sku } => to_json(&v1::ItemRemoved {
            sku: sku.to_string(),
        }),
        CartEvent::CartCleared => to_json(&v1::CartCleared {}),
    };
    (event.event_type(), payload)
}

fn to_json<M: serde::Serialize>(message: &M) -> serde_json::Value {
    // Generated messages of strings and integers always serialize.
    serde_json::to_value(message).unwrap_or(serde_json::Value::Null)
}

/// Decodes a stored event. Schema version 1 is the only one so far; when an event's shape
/// changes, the older versions are upcast here, keyed by `(event_type, schema_version)`.
///
/// # Errors
/// An unknown type, a malformed payload, or a value the domain refuses.
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
    Ok(match event_type {
        "CartOpened" => CartEvent::CartOpened,
        "ItemQuantitySet" => {
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
        "ItemRemoved" => {
            let m: v1::ItemRemoved = from_json(event_type, payload)?;
            CartEvent::ItemRemoved { sku: sku(m.sku)? }
        }
        "CartCleared" => CartEvent::CartCleared,
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
            (CartEvent::CartOpened, r#"{}"#),
            (
                CartEvent::ItemQuantitySet {
                    sku: sku.clone(),
                    quantity: 3,
                },
                r#"{"quantity":3,"sku":"com.x.cup"}"#,
            ),
            (CartEvent::ItemRemoved { sku }, r#"{"sku":"com.x.cup"}"#),
            (CartEvent::CartCleared, r#"{}"#),
        ];
        for (event, json) in cases {
            let (event_type, payload) = encode(&event);
            assert_eq!(payload.to_string(), json, "{event_type}");
            assert_eq!(decode(event_type, SCHEMA_VERSION, payload).unwrap(), event);
        }
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
