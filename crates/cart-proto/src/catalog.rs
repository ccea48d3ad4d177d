//! The catalog file (deploy/catalog.json): a catalog document in the admin format
//! (`crate::admin`, docs/catalog.md), checked as an import would be and converted to the
//! domain catalog. cartd itself imports the file into PostgreSQL and prices from there;
//! this is for tools and tests that want the file's catalog without a database.

use cart_domain::Catalog;

use crate::admin::{self, DecodeError, ValidationError};

/// Why a catalog file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog file: {0}")]
    Decode(#[from] DecodeError),
    #[error("catalog file: {0}")]
    Convert(#[from] ValidationError),
}

/// Parses, checks and converts a catalog file.
///
/// # Errors
/// Bad JSON, JSON of the wrong shape, or the first offending field.
pub fn parse(bytes: &[u8]) -> Result<Catalog, CatalogError> {
    let document = admin::parse_document(bytes)?;
    Ok(Catalog::try_from(&document)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_loads() {
        let bytes = include_bytes!("../../../deploy/catalog.json");
        let catalog = parse(bytes).unwrap();
        assert!(catalog.len() >= 5);
        let project = cart_domain::ProjectId::parse(44056).unwrap();
        assert!(catalog.promotions(project).count() >= 2);
        assert!(catalog.promo_code(project, "BOOSTER50").is_some());
    }

    #[test]
    fn bad_items_are_refused_with_the_reason() {
        let bad = [
            (
                r#"{"sku":"a b","type":"virtual_good","name":{"en":"x"}}"#,
                "items[0].sku",
            ),
            (
                r#"{"sku":"a","type":"spaceship","name":{"en":"x"}}"#,
                "unknown variant",
            ),
            (
                r#"{"sku":"a","type":"virtual_good","name":{"en":"x"},"prices":[{"currency":"USD","amount":"1"}]}"#,
                "default",
            ),
            (
                r#"{"sku":"a","type":"virtual_good","name":{"en":"x"},"prices":[{"currency":"USD","amount":"-1","is_default":true}]}"#,
                "negative",
            ),
            (
                r#"{"sku":"a","type":"virtual_good","name":{"en":"x"},"prices":[{"currency":"DOLLARS","amount":"1","is_default":true}]}"#,
                "ISO 4217",
            ),
        ];
        for (item, reason) in bad {
            let file = format!(r#"{{"projects":[{{"project_id":1,"items":[{item}]}}]}}"#);
            let e = parse(file.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(reason), "{e} should mention {reason}");
        }
    }
}
