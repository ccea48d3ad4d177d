//! Compiles proto/ with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let files = [
        "cart/v1/cart.proto",
        "cart/v1/events.proto",
        "cart/v1/orders.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={root}/{file}");
    }
    let descriptors = protox::compile(files, [root])?;

    let mut config = prost_build::Config::new();
    // Maps keep their keys in order, so an event's JSON payload is stable.
    config.btree_map([".cart.v1"]);
    // One set of generated types serves both encodings: serde gives the JSON form.
    // With the `schema` feature they also describe themselves (docs/schemas).
    config.message_attribute(
        ".cart.v1",
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)] \
         #[cfg_attr(feature = \"schema\", derive(schemars::JsonSchema))]",
    );
    // A request body is one object of known properties: the service refuses any other
    // (request.rs), so its schema says so too.
    for request in [
        "FillRequest",
        "FillItem",
        "PutItemRequest",
        "DeleteItemRequest",
        "ClearRequest",
        "GetCartRequest",
        "CartRef",
        "RedeemPromoCodeRequest",
        "RemovePromoCodeRequest",
        "PromoCodeRewardsRequest",
        "VerifyPromoCodeRequest",
    ] {
        config.message_attribute(
            format!(".cart.v1.{request}"),
            "#[cfg_attr(feature = \"schema\", schemars(deny_unknown_fields))]",
        );
        // Every request names its project and user (proto3 cannot say required).
        if request.ends_with("Request") {
            config.message_attribute(
                format!(".cart.v1.{request}"),
                "#[cfg_attr(feature = \"schema\", \
                 schemars(extend(\"required\" = [\"project_id\", \"user_id\"])))]",
            );
        }
    }
    // The envelope's event is a oneof. Proto3 JSON puts a oneof's member beside the other
    // fields ({"event_id": ..., "item_quantity_set": {...}}), so it is flattened: then
    // protobuf's own JSON parsers read the envelope (docs/events.md).
    config.enum_attribute(
        ".cart.v1.EventEnvelope.event",
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"snake_case\")] \
         #[cfg_attr(feature = \"schema\", derive(schemars::JsonSchema))]",
    );
    // A combined export's record holds an event of either log (orders.proto); its JSON
    // form is not written anywhere, but every generated type derives serde.
    config.enum_attribute(
        ".cart.v1.ExportRecord.record",
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"snake_case\")] \
         #[cfg_attr(feature = \"schema\", derive(schemars::JsonSchema))]",
    );
    // Xsolla's JSON names these in camelCase.
    for (field, json) in [
        ("Warning.error_code", "errorCode"),
        ("Warning.error_message", "errorMessage"),
        ("Error.status_code", "statusCode"),
        ("Error.error_code", "errorCode"),
        ("Error.error_message", "errorMessage"),
    ] {
        config.field_attribute(
            format!(".cart.v1.{field}"),
            format!("#[serde(rename = \"{json}\")]"),
        );
    }
    // Xsolla sends `warnings` only on fill; the minimal reply follows the cart.
    for field in ["Cart.warnings", "MinimalReply.warnings"] {
        config.field_attribute(
            format!(".cart.v1.{field}"),
            "#[serde(skip_serializing_if = \"Vec::is_empty\")]",
        );
    }
    // The promo code fields appear only when there is something to say.
    for field in ["Cart.promo_code", "Cart.rewards"] {
        config.field_attribute(
            format!(".cart.v1.{field}"),
            "#[serde(skip_serializing_if = \"Option::is_none\")]",
        );
    }
    // Where Xsolla's schema types a value without null, a value the service does not
    // have is left out rather than sent as null (cart_proto::nulls, issue 15).
    for field in [
        "CartItem.virtual_item_type",
        "Promotion.limits",
        "Bonus.bundle_type",
    ] {
        config.field_attribute(
            format!(".cart.v1.{field}"),
            "#[serde(skip_serializing_if = \"Option::is_none\")]",
        );
    }
    // Xsolla sends null rather than [] for a code without discounted items.
    config.field_attribute(
        ".cart.v1.Rewards.discounted_items",
        "#[serde(with = \"crate::null_if_empty\")] \
         #[cfg_attr(feature = \"schema\", schemars(with = \"Option<Vec<DiscountedItem>>\"))]",
    );
    config.field_attribute(
        ".cart.v1.RewardItem.unit_items",
        "#[serde(skip_serializing_if = \"Vec::is_empty\")]",
    );
    config.compile_fds(descriptors)?;
    flatten_envelope_event()
}

/// Puts `#[serde(flatten)]` on the envelope's oneof field. prost-build's field paths
/// match by prefix, so `field_attribute` would also put it on the oneof's variants,
/// where serde refuses it; the generated field is therefore edited here, and the build
/// fails if it is ever not found.
fn flatten_envelope_event() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::path::Path::new(&std::env::var("OUT_DIR")?).join("cart.v1.rs");
    let code = std::fs::read_to_string(&path)?;
    let field = "    pub event: ::core::option::Option<event_envelope::Event>,";
    if code.matches(field).count() != 1 {
        return Err(format!(
            "build.rs: the field `{}` is not in cart.v1.rs once",
            field.trim()
        )
        .into());
    }
    let code = code.replace(field, &format!("    #[serde(flatten)]\n{field}"));
    std::fs::write(&path, code)?;
    Ok(())
}
