//! Compiles proto/ with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let files = ["cart/v1/cart.proto", "cart/v1/events.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={root}/{file}");
    }
    let descriptors = protox::compile(files, [root])?;

    let mut config = prost_build::Config::new();
    // Maps keep their keys in order, so an event's JSON payload is stable.
    config.btree_map([".cart.v1"]);
    // One set of generated types serves both encodings: serde gives the JSON form.
    config.message_attribute(
        ".cart.v1",
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
    );
    // The envelope's event is a oneof: in JSON {"item_quantity_set": {...}}.
    config.enum_attribute(
        ".cart.v1.EventEnvelope.event",
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"snake_case\")]",
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
    // Xsolla sends `warnings` only on fill.
    config.field_attribute(
        ".cart.v1.Cart.warnings",
        "#[serde(skip_serializing_if = \"Vec::is_empty\")]",
    );
    // The promo code fields appear only when there is something to say.
    for field in ["Cart.promo_code", "Cart.rewards"] {
        config.field_attribute(
            format!(".cart.v1.{field}"),
            "#[serde(skip_serializing_if = \"Option::is_none\")]",
        );
    }
    // Xsolla sends null rather than [] for a code without discounted items.
    config.field_attribute(
        ".cart.v1.Rewards.discounted_items",
        "#[serde(with = \"crate::null_if_empty\")]",
    );
    config.field_attribute(
        ".cart.v1.RewardItem.unit_items",
        "#[serde(skip_serializing_if = \"Vec::is_empty\")]",
    );
    config.compile_fds(descriptors)?;
    Ok(())
}
