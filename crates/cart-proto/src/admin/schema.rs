//! The JSON Schema of [`Dec`], written by hand because its serde impls are: it reads a
//! decimal string or a whole JSON number, and always writes a string.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

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
