//! JSON Schemas of every JSON body on the wire, generated from the types that write and
//! read them, so that `docs/schemas` cannot drift from the code: `make schemas` writes
//! them (`cart-schemas`), and a test fails when the committed files differ.
//!
//! They are JSON Schema draft-07, the dialect AsyncAPI 3.0's default schema format
//! extends, so `docs/asyncapi.yaml` references them as message payloads. Requests are
//! described as the service reads them, replies and stream messages as it writes them.

use std::path::Path;

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;

use crate::{admin, feed, order, v1};

/// One schema file: its name in `docs/schemas` and its content.
pub struct SchemaFile {
    pub name: &'static str,
    pub schema: serde_json::Value,
}

/// Which way a body travels: what the service reads or what it writes. Optional and
/// defaulted properties are required in what it writes, never in what it reads.
#[derive(Clone, Copy)]
enum Side {
    Read,
    Written,
}

fn schema_of<T: JsonSchema>(name: &'static str, side: Side) -> SchemaFile {
    let settings = SchemaSettings::draft07();
    let settings = match side {
        Side::Read => settings.for_deserialize(),
        Side::Written => settings.for_serialize(),
    };
    let schema = settings.into_generator().into_root_schema_for::<T>();
    SchemaFile {
        name,
        schema: schema.to_value(),
    }
}

/// Every schema, in the order of `docs/protocol.md`.
pub fn all() -> Vec<SchemaFile> {
    use Side::{Read, Written};
    vec![
        // Cart requests (JSON form of the protobuf request messages).
        schema_of::<v1::FillRequest>("fill-request", Read),
        schema_of::<v1::PutItemRequest>("put-item-request", Read),
        schema_of::<v1::DeleteItemRequest>("delete-item-request", Read),
        schema_of::<v1::ClearRequest>("clear-request", Read),
        schema_of::<v1::GetCartRequest>("get-cart-request", Read),
        schema_of::<v1::RedeemPromoCodeRequest>("redeem-promo-code-request", Read),
        schema_of::<v1::RemovePromoCodeRequest>("remove-promo-code-request", Read),
        schema_of::<v1::PromoCodeRewardsRequest>("promo-code-rewards-request", Read),
        schema_of::<v1::VerifyPromoCodeRequest>("verify-promo-code-request", Read),
        // Cart replies and the error body of every endpoint.
        schema_of::<v1::Cart>("cart", Written),
        schema_of::<v1::MinimalReply>("minimal-reply", Written),
        schema_of::<v1::Rewards>("rewards", Written),
        schema_of::<v1::PromoCodeVerification>("promo-code-verification", Written),
        schema_of::<v1::Error>("error", Written),
        // Orders and payments (JSON only).
        schema_of::<order::CheckoutRequest>("checkout-request", Read),
        schema_of::<order::CheckoutItemRequest>("checkout-item-request", Read),
        schema_of::<order::GetOrderRequest>("get-order-request", Read),
        schema_of::<order::SearchOrdersRequest>("search-orders-request", Read),
        schema_of::<order::ConfirmPaymentRequest>("confirm-payment-request", Read),
        schema_of::<order::CancelOrderRequest>("cancel-order-request", Read),
        schema_of::<order::CheckoutReply>("checkout-reply", Written),
        schema_of::<order::OrderView>("order", Written),
        schema_of::<order::OrderSearchReply>("order-search-reply", Written),
        // Catalog admin (JSON only, docs/catalog.md).
        schema_of::<admin::request::ItemBody>("catalog-item-request", Read),
        schema_of::<admin::request::PromotionBody>("catalog-promotion-request", Read),
        schema_of::<admin::request::PromoCodeBody>("catalog-promo-code-request", Read),
        schema_of::<admin::request::KeyBody>("catalog-delete-request", Read),
        schema_of::<admin::request::ImportBody>("catalog-import-request", Read),
        schema_of::<admin::request::ExportBody>("catalog-export-request", Read),
        schema_of::<admin::request::GetBody>("catalog-get-request", Read),
        schema_of::<admin::request::ChangesBody>("catalog-changes-request", Read),
        schema_of::<admin::reply::ChangeReply>("catalog-change-reply", Written),
        schema_of::<admin::reply::ImportReply>("catalog-import-reply", Written),
        schema_of::<admin::CatalogDocument>("catalog-document", Written),
        schema_of::<admin::reply::GetReply>("catalog-get-reply", Written),
        schema_of::<admin::reply::ChangesReply>("catalog-changes-reply", Written),
        // The feed.
        schema_of::<feed::FeedStatusReply>("feed-status", Written),
        // Stream messages: CART_EVENTS and CART_ORDERS.
        schema_of::<v1::EventEnvelope>("event-envelope", Written),
        schema_of::<order::OrderEventEnvelope>("order-event-envelope", Written),
    ]
}

/// A schema as it is stored: pretty JSON with a final newline.
pub fn file_text(file: &SchemaFile) -> String {
    // A serde_json::Value always serializes.
    let mut text = serde_json::to_string_pretty(&file.schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes every schema into `dir` and removes `*.json` files no type generates.
///
/// # Errors
/// The directory cannot be read or written.
pub fn write_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let files = all();
    for stale in json_files(dir)? {
        if !files.iter().any(|f| format!("{}.json", f.name) == stale) {
            std::fs::remove_file(dir.join(stale))?;
        }
    }
    for file in &files {
        std::fs::write(dir.join(format!("{}.json", file.name)), file_text(file))?;
    }
    Ok(())
}

/// The differences between `dir` and what the types generate: one line per schema that
/// is missing, different or not generated at all. Empty when they agree.
///
/// # Errors
/// The directory cannot be read.
pub fn check_dir(dir: &Path) -> std::io::Result<Vec<String>> {
    let files = all();
    let mut problems = Vec::new();
    for file in &files {
        let path = dir.join(format!("{}.json", file.name));
        match std::fs::read_to_string(&path) {
            Ok(text) if text == file_text(file) => {}
            Ok(_) => problems.push(format!("{} differs from the types", path.display())),
            Err(_) => problems.push(format!("{} is missing", path.display())),
        }
    }
    for name in json_files(dir)? {
        if !files.iter().any(|f| format!("{}.json", f.name) == name) {
            problems.push(format!(
                "{} is not generated by any type",
                dir.join(name).display()
            ));
        }
    }
    Ok(problems)
}

fn json_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    if !dir.exists() {
        return Ok(names);
    }
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            names.push(name);
        }
    }
    Ok(names)
}
