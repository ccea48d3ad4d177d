//! A JSON request body as every decoder takes it: one JSON object (serde's derive would
//! also read a struct from an array, fields by position), every string in it checked
//! before any field is read, then its shape.
//!
//! Text is checked here, once, rather than per field, so that no string of a body can
//! carry a NUL to PostgreSQL or a line break into a header, however deep it sits
//! (`custom_parameters` keys and values included).

use cart_domain::InvalidInput;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ErrorReply;

/// Which characters the strings of a body may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Text {
    /// No control characters anywhere: ids, codes, reasons, tokens, custom parameters.
    Plain,
    /// Catalog documents: no control characters in property names and no NUL at all;
    /// values may hold tabs and line breaks (item descriptions).
    Document,
}

/// Why a body was refused.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Not JSON at all.
    Syntax(serde_json::Error),
    /// JSON, but not one object.
    NotAnObject(&'static str),
    /// A string at this path (e.g. `custom_parameters["a\0"]`) holds a character
    /// `Text` does not allow. The path is escaped, so it is safe to quote anywhere.
    Control(String),
    /// An object of the wrong shape: unknown or missing properties, wrong types.
    Shape(serde_json::Error),
}

/// Reads `bytes` as one JSON object of type `T`.
pub(crate) fn object<T: DeserializeOwned>(bytes: &[u8], text: Text) -> Result<T, BodyError> {
    let value: Value = serde_json::from_slice(bytes).map_err(BodyError::Syntax)?;
    let found = match &value {
        Value::Object(_) => None,
        Value::Array(_) => Some("an array"),
        Value::String(_) => Some("a string"),
        Value::Number(_) => Some("a number"),
        Value::Bool(_) => Some("a boolean"),
        Value::Null => Some("null"),
    };
    if let Some(found) = found {
        return Err(BodyError::NotAnObject(found));
    }
    check(&value, "", text).map_err(BodyError::Control)?;
    serde_json::from_value(value).map_err(BodyError::Shape)
}

/// The reply to a refused cart, order or payment body: 400 when it is not one JSON
/// object of the endpoint's shape, 422 naming the property that holds a control
/// character.
pub(crate) fn reply(error: BodyError) -> ErrorReply {
    match error {
        BodyError::Syntax(e) | BodyError::Shape(e) => ErrorReply::malformed(e),
        BodyError::NotAnObject(found) => ErrorReply::malformed(not_an_object(found)),
        BodyError::Control(path) => ErrorReply::invalid(&InvalidInput::ControlCharacters(path)),
    }
}

/// Why a body that is valid JSON is not one object.
pub(crate) fn not_an_object(found: &str) -> String {
    format!("the body must be one JSON object, not {found}")
}

/// The first string under `value` (property names included) that `text` refuses, as
/// its path.
fn check(value: &Value, path: &str, text: Text) -> Result<(), String> {
    match value {
        Value::String(s) if !allowed(s, text, false) => Err(path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check(item, &format!("{path}[{i}]"), text)),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let at = child(path, key);
            if allowed(key, text, true) {
                check(item, &at, text)
            } else {
                Err(at)
            }
        }),
        _ => Ok(()),
    }
}

fn allowed(s: &str, text: Text, name: bool) -> bool {
    match (text, name) {
        (Text::Plain, _) | (Text::Document, true) => !s.chars().any(char::is_control),
        (Text::Document, false) => !s
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')),
    }
}

/// `path.key`, or `path["key"]` with the key escaped when it is not a plain name.
fn child(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    match (plain, path.is_empty()) {
        (true, true) => key.to_owned(),
        (true, false) => format!("{path}.{key}"),
        (false, _) => format!("{path}[\"{}\"]", key.escape_debug()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str, text: Text) -> BodyError {
        object::<Value>(body.as_bytes(), text).unwrap_err()
    }

    fn control_path(body: &str, text: Text) -> String {
        match refused(body, text) {
            BodyError::Control(path) => path,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn only_one_object_is_a_body() {
        for (body, found) in [
            (r#"[44056,"some-user"]"#, "an array"),
            (r#""x""#, "a string"),
            ("1", "a number"),
            ("true", "a boolean"),
            ("null", "null"),
        ] {
            assert!(
                matches!(refused(body, Text::Plain), BodyError::NotAnObject(f) if f == found),
                "{body}"
            );
        }
        assert!(matches!(refused("{", Text::Plain), BodyError::Syntax(_)));
        assert!(matches!(
            refused("{} {}", Text::Plain),
            BodyError::Syntax(_)
        ));
        assert!(object::<Value>(b" {} ", Text::Plain).is_ok());
    }

    #[test]
    fn control_characters_are_refused_naming_their_path() {
        assert_eq!(
            control_path(r#"{"a":{"b":[1,"x\u0000"]}}"#, Text::Plain),
            "a.b[1]"
        );
        assert_eq!(
            control_path(r#"{"custom_parameters":{"k\u0000":"v"}}"#, Text::Plain),
            r#"custom_parameters["k\0"]"#
        );
        let path = control_path(r#"{"bad\r\nX: y":1}"#, Text::Plain);
        assert_eq!(path, r#"["bad\r\nX: y"]"#);
        assert!(!path.chars().any(char::is_control));
        assert_eq!(control_path(r#"{"reason":"a\tb"}"#, Text::Plain), "reason");
        assert_eq!(control_path(r#"{"r":"\u007f"}"#, Text::Plain), "r");
        assert_eq!(control_path(r#"{"r":"\u0085"}"#, Text::Plain), "r");
    }

    #[test]
    fn documents_may_hold_line_breaks_in_values_only() {
        assert!(object::<Value>(br#"{"description":{"en":"a\n\tb\r\n"}}"#, Text::Document).is_ok());
        assert_eq!(
            control_path(r#"{"description":{"en":"a\u0000"}}"#, Text::Document),
            "description.en"
        );
        assert_eq!(
            control_path(r#"{"name":{"e\nn":"a"}}"#, Text::Document),
            r#"name["e\nn"]"#
        );
    }
}
