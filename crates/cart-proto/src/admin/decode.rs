//! Admin request bodies and catalog documents from bytes: one JSON object, its text
//! checked, then its shape.

use super::{CatalogDocument, ValidationError};
use crate::request::body::{self, BodyError, Text};

/// Why a document's bytes were refused.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all (syntax, or the body ends early).
    #[error("not valid JSON: {0}")]
    Syntax(serde_json::Error),
    /// JSON of the wrong shape: a missing or unknown field, a wrong type or enum value.
    #[error("{0}")]
    Shape(serde_json::Error),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// Decodes one JSON object into `T`, telling malformed JSON from JSON of the wrong
/// shape. Any other JSON value (an array, whose items serde would take as fields by
/// position) is of the wrong shape; a NUL anywhere, or a control character in a property
/// name or other than a tab or line break in a value, is refused naming its path.
///
/// # Errors
/// [`DecodeError::Syntax`], [`DecodeError::Shape`] or [`DecodeError::Invalid`].
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    body::object(bytes, Text::Document).map_err(|e| match e {
        BodyError::Syntax(e) => DecodeError::Syntax(e),
        BodyError::Shape(e) => DecodeError::Shape(e),
        BodyError::NotAnObject(found) => {
            DecodeError::Shape(serde::de::Error::custom(body::not_an_object(found)))
        }
        BodyError::Control(field) => DecodeError::Invalid(ValidationError::Invalid {
            field,
            reason: "must hold no NUL, and no control character but tabs and line breaks"
                .to_owned(),
        }),
    })
}

/// Decodes and validates a catalog document (deploy/catalog.json).
///
/// # Errors
/// Bad JSON, or the first offending field.
pub fn parse_document(bytes: &[u8]) -> Result<CatalogDocument, DecodeError> {
    let doc: CatalogDocument = decode(bytes)?;
    doc.validate()?;
    Ok(doc)
}
