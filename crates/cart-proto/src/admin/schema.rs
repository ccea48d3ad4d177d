//! What `schemars` cannot derive of the admin format: the schema of [`Dec`], written by
//! hand because its serde impls are (it reads a decimal string or a whole JSON number,
//! and always writes a string), and the serde alias of `Price::country`.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

use super::Dec;

impl JsonSchema for Dec {
    fn schema_name() -> Cow<'static, str> {
        "Decimal".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        if generator.contract().is_deserialize() {
            json_schema!({
                "description": "An exact decimal as a string (\"0.99\"); a whole JSON number is read too, a fractional one is refused.",
                "anyOf": [
                    { "type": "string", "pattern": "^\\s*-?[0-9.]+\\s*$" },
                    { "type": "integer" }
                ]
            })
        } else {
            json_schema!({
                "description": "An exact decimal as a string (\"0.99\").",
                "type": "string",
                "pattern": "^-?[0-9]+(\\.[0-9]+)?$"
            })
        }
    }
}

/// Adds `country_iso`, which serde reads as `country` (an alias `schemars` leaves out),
/// so that a request using it is not refused by the schema. A transform does not know
/// which way the schema goes, so the written schema allows it too; it is never written.
pub(super) fn country_alias(schema: &mut Schema) {
    let Some(Value::Object(properties)) = schema.get_mut("properties") else {
        return;
    };
    if let Some(country) = properties.get("country").cloned() {
        let mut alias = country;
        if let Value::Object(alias) = &mut alias {
            alias.insert(
                "description".to_owned(),
                Value::from("Read as `country` (an alias); the service writes `country`."),
            );
        }
        properties.insert("country_iso".to_owned(), alias);
    }
}
