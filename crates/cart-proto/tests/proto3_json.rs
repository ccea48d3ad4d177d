//! The event envelope's JSON is standard proto3 JSON: protobuf's JSON mapping (here
//! prost-reflect's, which follows it, over descriptors compiled from proto/) reads
//! what the service writes, unknown fields refused, into the same message.

use cart_domain::{CartEvent, ClearReason, Sku};
use cart_proto::{event, v1};
use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage};

fn pool() -> DescriptorPool {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let mut compiler = protox::Compiler::new([root]).expect("proto/ exists");
    compiler
        .open_files(["cart/v1/events.proto"])
        .expect("events.proto compiles");
    compiler.descriptor_pool()
}

fn every_event() -> Vec<CartEvent> {
    let sku = Sku::parse("cup.01").unwrap();
    vec![
        CartEvent::CartOpened,
        CartEvent::ItemQuantitySet {
            sku: sku.clone(),
            quantity: 2,
        },
        CartEvent::ItemRemoved { sku: sku.clone() },
        CartEvent::CartCleared {
            reason: ClearReason::Purchased,
        },
        CartEvent::PromoCodeRedeemed {
            code: "WINTER".into(),
            selected_unit_items: [(sku, Sku::parse("cup_steam").unwrap())]
                .into_iter()
                .collect(),
        },
        CartEvent::PromoCodeRemoved,
    ]
}

#[test]
fn every_event_envelope_parses_as_proto3_json_into_the_same_message() {
    let descriptor = pool()
        .get_message_by_name("cart.v1.EventEnvelope")
        .expect("EventEnvelope is in events.proto");
    // The parser's defaults: unknown fields are an error, as in json_format.Parse.
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    for (i, e) in every_event().into_iter().enumerate() {
        let sent = v1::EventEnvelope {
            event_id: format!("0193-{i}"),
            position: "812:40".into(),
            stream_id: "5f0c".into(),
            version: i as i64 + 1,
            project_id: 44056,
            user_id: "ann@example.com".into(),
            cart_id: "current-5c0f".into(),
            event_type: e.event_type().into(),
            schema_version: event::current_schema_version(e.event_type())
                .unwrap()
                .into(),
            recorded_at: "2026-11-22T10:00:00.123456Z".into(),
            event: Some(event::envelope_event(&e)),
        };
        let json = serde_json::to_string(&sent).unwrap();
        let mut de = serde_json::Deserializer::from_str(&json);
        let parsed =
            DynamicMessage::deserialize_with_options(descriptor.clone(), &mut de, &options)
                .unwrap_or_else(|err| {
                    panic!("{} is not proto3 JSON: {err}\n{json}", e.event_type())
                });
        let back = v1::EventEnvelope::decode(parsed.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, sent, "{json}");
    }
}

#[test]
fn the_nested_form_written_before_was_not_proto3_json() {
    // Why the form changed: `"event": {...}` names no field of EventEnvelope.
    let descriptor = pool().get_message_by_name("cart.v1.EventEnvelope").unwrap();
    let old = r#"{"event_id":"e","version":1,"event":{"cart_opened":{}}}"#;
    let mut de = serde_json::Deserializer::from_str(old);
    assert!(DynamicMessage::deserialize(descriptor, &mut de).is_err());
}
