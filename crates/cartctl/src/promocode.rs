//! `cartctl promocode ...`: redeem and remove a promo code on the cart, and ask what a
//! code gives (rewards) or whether the user can apply it (verify).

use anyhow::Context;
use cart_proto::v1;
use clap::Subcommand;
use prost::Message;

#[derive(Debug, Subcommand)]
pub(crate) enum PromoCodeCommand {
    /// Attach a promo code to the cart (replacing the current one).
    Redeem {
        code: String,
        /// A selectable reward: UNIT_SKU=ITEM_SKU (repeatable).
        #[arg(long = "select")]
        select: Vec<String>,
        /// The buyer's country (ISO 3166-1 alpha-2), for region-limited codes.
        #[arg(long)]
        country: Option<String>,
    },
    /// Detach the cart's promo code.
    Remove {
        #[arg(long)]
        country: Option<String>,
    },
    /// What a code gives.
    Rewards {
        code: String,
        #[arg(long)]
        country: Option<String>,
    },
    /// Whether the user can apply a code now.
    Verify {
        code: String,
        #[arg(long)]
        country: Option<String>,
    },
}

impl PromoCodeCommand {
    /// Whether the request is a query (sent without a command id).
    pub(crate) fn is_query(&self) -> bool {
        matches!(self, Self::Rewards { .. } | Self::Verify { .. })
    }
}

/// The subject suffix and the request message of `command`.
pub(crate) fn body(
    command: &PromoCodeCommand,
    (project_id, user_id, cart_id, currency, locale): (u64, String, String, String, String),
    pb: bool,
) -> anyhow::Result<(&'static str, Vec<u8>)> {
    fn out<M: Message + serde::Serialize>(pb: bool, m: &M) -> Vec<u8> {
        if pb {
            m.encode_to_vec()
        } else {
            serde_json::to_vec(m).unwrap_or_default()
        }
    }
    Ok(match command {
        PromoCodeCommand::Redeem {
            code,
            select,
            country,
        } => {
            let selected_unit_items = select
                .iter()
                .map(|s| {
                    let (unit, item) = s
                        .split_once('=')
                        .with_context(|| format!("--select {s}: expected UNIT_SKU=ITEM_SKU"))?;
                    Ok((unit.to_owned(), item.to_owned()))
                })
                .collect::<anyhow::Result<_>>()?;
            let m = v1::RedeemPromoCodeRequest {
                project_id,
                user_id,
                cart_id,
                currency,
                locale,
                coupon_code: code.clone(),
                selected_unit_items,
                country: country.clone().unwrap_or_default(),
                cart: None,
            };
            ("promocode.redeem", out(pb, &m))
        }
        PromoCodeCommand::Remove { country } => {
            let m = v1::RemovePromoCodeRequest {
                project_id,
                user_id,
                cart_id,
                currency,
                locale,
                country: country.clone().unwrap_or_default(),
                cart: None,
            };
            ("promocode.remove", out(pb, &m))
        }
        PromoCodeCommand::Rewards { code, country } => {
            let m = v1::PromoCodeRewardsRequest {
                project_id,
                user_id,
                code: code.clone(),
                country: country.clone().unwrap_or_default(),
            };
            ("promocode.rewards", out(pb, &m))
        }
        PromoCodeCommand::Verify { code, country } => {
            let m = v1::VerifyPromoCodeRequest {
                project_id,
                user_id,
                code: code.clone(),
                country: country.clone().unwrap_or_default(),
            };
            ("promocode.verify", out(pb, &m))
        }
    })
}

/// A protobuf reply as JSON, by the message the command answers with.
pub(crate) fn decode_reply(
    command: &PromoCodeCommand,
    payload: &[u8],
) -> anyhow::Result<serde_json::Value> {
    Ok(match command {
        PromoCodeCommand::Rewards { .. } => serde_json::to_value(v1::Rewards::decode(payload)?)?,
        PromoCodeCommand::Verify { .. } => {
            serde_json::to_value(v1::PromoCodeVerification::decode(payload)?)?
        }
        _ => serde_json::to_value(v1::Cart::decode(payload)?)?,
    })
}
