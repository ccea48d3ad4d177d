//! Why a catalog document was refused, with the path of the offending field.

/// Why a catalog document was refused. `field` is the path of the offending value in
/// the document, e.g. `items[2].prices[1].currency`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("`{field}` is required")]
    Required { field: String },
    #[error("`{field}`: {value:?} is not a valid {what} (Latin letters, digits, `_`, `.`, `-`; 1 to {max} characters)")]
    Key {
        field: String,
        value: String,
        what: &'static str,
        max: usize,
    },
    #[error("`{field}`: {value:?} is not an ISO 4217 currency code")]
    Currency { field: String, value: String },
    #[error("`{field}`: {value:?} is not an ISO 3166-1 alpha-2 country code")]
    Country { field: String, value: String },
    #[error("`{field}`: {value:?} {reason}")]
    Amount {
        field: String,
        value: String,
        reason: &'static str,
    },
    #[error("`{field}`: {value:?} must be more than 0 and at most 100, with at most 2 decimals")]
    Percent { field: String, value: String },
    #[error("`{field}`: {value:?} is not an RFC 3339 date-time (e.g. 2026-01-01T00:00:00Z)")]
    Date { field: String, value: String },
    #[error("`{field}`: must be later than `{start_field}`")]
    DateOrder { field: String, start_field: String },
    #[error("`{field}`: must be at least 1")]
    Limit { field: String },
    #[error("`{field}`: needs exactly one default price, has {count}")]
    DefaultPrice { field: String, count: usize },
    #[error("`{field}`: the default price must not have a country")]
    DefaultPriceCountry { field: String },
    #[error("`{field}`: duplicate {value:?}")]
    Duplicate { field: String, value: String },
    #[error("`{field}`: {value:?} is not {what} of this project's catalog")]
    Unknown {
        field: String,
        value: String,
        what: &'static str,
    },
    #[error("`{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

impl ValidationError {
    /// The path of the offending value.
    pub fn field(&self) -> &str {
        match self {
            Self::Required { field }
            | Self::Key { field, .. }
            | Self::Currency { field, .. }
            | Self::Country { field, .. }
            | Self::Amount { field, .. }
            | Self::Percent { field, .. }
            | Self::Date { field, .. }
            | Self::DateOrder { field, .. }
            | Self::Limit { field }
            | Self::DefaultPrice { field, .. }
            | Self::DefaultPriceCountry { field }
            | Self::Duplicate { field, .. }
            | Self::Unknown { field, .. }
            | Self::Invalid { field, .. } => field,
        }
    }

    fn field_mut(&mut self) -> &mut String {
        match self {
            Self::Required { field }
            | Self::Key { field, .. }
            | Self::Currency { field, .. }
            | Self::Country { field, .. }
            | Self::Amount { field, .. }
            | Self::Percent { field, .. }
            | Self::Date { field, .. }
            | Self::DateOrder { field, .. }
            | Self::Limit { field }
            | Self::DefaultPrice { field, .. }
            | Self::DefaultPriceCountry { field }
            | Self::Duplicate { field, .. }
            | Self::Unknown { field, .. }
            | Self::Invalid { field, .. } => field,
        }
    }

    /// The same error about another field.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        *self.field_mut() = field.into();
        self
    }

    /// The same error with its field path under `prefix` (e.g. `items[3]`).
    #[must_use]
    pub fn under(mut self, prefix: &str) -> Self {
        let field = self.field_mut();
        *field = join(prefix, field);
        if let Self::DateOrder { start_field, .. } = &mut self {
            *start_field = join(prefix, start_field);
        }
        self
    }
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else if field.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// The outcome of one check.
pub(super) type Check = Result<(), ValidationError>;
