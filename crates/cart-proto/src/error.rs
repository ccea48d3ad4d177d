//! Error replies in Xsolla's form: `{statusCode, errorCode, errorMessage: "[0401-NNNN]: ..."}`.

use cart_domain::{CartError, InvalidInput, ProjectId, PromoCodeRejection, Sku, UserId};

use crate::v1;

/// An error to send back: an HTTP-like status, an Xsolla error code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    pub status: u16,
    pub code: u32,
    /// The text after the `[0401-NNNN]: ` prefix.
    pub text: String,
}

impl ErrorReply {
    pub fn new(status: u16, code: u32, text: impl Into<String>) -> Self {
        Self {
            status,
            code,
            text: text.into(),
        }
    }

    /// The whole message, with Xsolla's store-service prefix.
    pub fn message(&self) -> String {
        format!("[0401-{:04}]: {}", self.code, self.text)
    }

    /// A body that could not be parsed at all.
    pub fn malformed(detail: impl std::fmt::Display) -> Self {
        Self::new(
            400,
            1102,
            format!("Bad Request. The body could not be decoded: {detail}"),
        )
    }

    pub fn invalid(error: &InvalidInput) -> Self {
        let text = match error {
            InvalidInput::Missing(property) => {
                format!("Unprocessable Entity. The property `{property}` is required")
            }
            InvalidInput::BadQuantity => "Item quantity must be non-negative integer".to_owned(),
            other => format!("Unprocessable Entity. {}", capitalized(&other.to_string())),
        };
        Self::new(422, 1102, text)
    }

    pub fn unknown_item(project: ProjectId, sku: &Sku) -> Self {
        Self::new(404, 4001, unknown_item_text(project, sku))
    }

    pub fn cart_not_found(user: &UserId) -> Self {
        Self::new(404, 1401, format!("Cart for user {user} not found"))
    }

    pub fn rejected(project: ProjectId, error: &CartError) -> Self {
        match error {
            CartError::UnknownItem { sku } => Self::unknown_item(project, sku),
            CartError::TooManyLines { .. } => Self::new(
                422,
                1403,
                format!(
                    "Incorrect cart contents. {}",
                    capitalized(&error.to_string())
                ),
            ),
            CartError::PromoCode(rejection) => Self::promo_code(rejection),
            // The service names the user (`cart_not_found`); this is for other callers.
            CartError::CartNotFound => Self::new(404, 1401, "Cart not found"),
        }
    }

    /// A promo code that does not apply, as redeem and the rewards query answer it:
    /// 404 for an invalid code (9807), 422 for the others (`error_code`).
    pub fn promo_code(rejection: &PromoCodeRejection) -> Self {
        let code = rejection.error_code();
        let status = if code == 9807 { 404 } else { 422 };
        Self::new(status, code, rejection.to_string())
    }

    /// As verify answers: an unknown code is 404/9811 "Code not found.".
    pub fn promo_code_verify(rejection: &PromoCodeRejection) -> Self {
        match rejection {
            PromoCodeRejection::NotFound => Self::new(404, 9811, "Code not found."),
            other => Self::promo_code(other),
        }
    }

    /// The JSON body sent with every error reply.
    pub fn body(&self) -> Vec<u8> {
        let body = v1::Error {
            status_code: i32::from(self.status),
            error_code: i32::try_from(self.code).unwrap_or(i32::MAX),
            error_message: self.message(),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// Parses an error body, as a client does.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        let error: v1::Error = serde_json::from_slice(body).ok()?;
        let text = match error.error_message.split_once("]: ") {
            Some((_, rest)) => rest.to_owned(),
            None => error.error_message,
        };
        Some(Self {
            status: u16::try_from(error.status_code).ok()?,
            code: u32::try_from(error.error_code).ok()?,
            text,
        })
    }
}

/// Xsolla's wording for a SKU the project's catalog does not list.
pub(crate) fn unknown_item_text(project: ProjectId, sku: &Sku) -> String {
    format!("Item with Project Id = {project} and Sku = {sku} not found")
}

/// The text with its first letter in upper case, as Xsolla's messages begin.
pub fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message())
    }
}

impl std::error::Error for ErrorReply {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promo_code_rejections_have_xsollas_status_and_code() {
        let e = ErrorReply::promo_code(&PromoCodeRejection::NotFound);
        assert_eq!((e.status, e.code), (404, 9807));
        assert_eq!(e.message(), "[0401-9807]: Enter a valid promo code.");
        let e = ErrorReply::promo_code_verify(&PromoCodeRejection::NotFound);
        assert_eq!((e.status, e.code), (404, 9811));
        for (rejection, code) in [
            (PromoCodeRejection::UserLimitReached, 9804),
            (PromoCodeRejection::TotalLimitReached, 9804),
            (PromoCodeRejection::Region, 9808),
            (PromoCodeRejection::Expired, 9810),
            (PromoCodeRejection::NotStarted, 9810),
        ] {
            let e = ErrorReply::promo_code(&rejection);
            assert_eq!((e.status, e.code), (422, code), "{rejection:?}");
        }
    }
}
