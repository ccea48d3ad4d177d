//! Crypto-shredding of the personal fields of order events (docs/operations.md, "Right
//! to erasure"). The log is append-only, so a person's data cannot be deleted from it;
//! instead it is written sealed under a key of that user (`user_keys`), and erasure
//! deletes the key. Sealing happens between the wire encoding and the insert, opening
//! between the select and the wire decoding: the domain and the wire types never see a
//! sealed value.
//!
//! A sealed field is `{"sealed": "<base64 of nonce || ciphertext>", "key": "v1"}`:
//! XChaCha20-Poly1305 with a fresh random 24-byte nonce, the field's JSON text as the
//! plaintext, and `<event type>/<field>/<project>/<user>` as associated data, so that a
//! sealed value copied to another field or user does not open. A field that does not
//! open (no key: erased; or a newer key made after an erasure) reads as erased:
//! `custom_parameters` absent (null), a cancel reason `"erased"`.

use std::collections::HashMap;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;
use sqlx::{PgConnection, Row};

/// The `key` tag of a sealed field: version 1 of the scheme (one key per user).
pub const KEY_TAG: &str = "v1";
/// What a cancel reason reads as once its key is gone.
pub const ERASED_REASON: &str = "erased";
const NONCE_LEN: usize = 24;

/// The personal field of each order event type that has one.
pub fn personal_field(event_type: &str) -> Option<&'static str> {
    match event_type {
        "OrderCreated" => Some("custom_parameters"),
        "OrderCanceled" => Some("reason"),
        _ => None,
    }
}

/// A user's key (32 random bytes).
#[derive(Clone)]
pub struct UserKey(chacha20poly1305::Key);

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserKey(..)")
    }
}

impl UserKey {
    /// A fresh key from the OS generator (an import's key for a restored user).
    pub(crate) fn generate() -> Self {
        Self(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == 32).then(|| Self(*chacha20poly1305::Key::from_slice(bytes)))
    }
}

fn aad(event_type: &str, field: &str, project: i64, user: &str) -> String {
    format!("{event_type}/{field}/{project}/{user}")
}

/// Whether `payload` of `event_type` holds personal data to seal (a non-null field).
pub fn has_personal(event_type: &str, payload: &Value) -> bool {
    personal_field(event_type)
        .and_then(|f| payload.get(f))
        .is_some_and(|v| !v.is_null())
}

/// Whether `payload` of `event_type` holds a sealed field.
pub fn is_sealed(event_type: &str, payload: &Value) -> bool {
    personal_field(event_type)
        .and_then(|f| payload.get(f))
        .is_some_and(|v| v.get("sealed").is_some())
}

/// The refusal PostgreSQL would have given the field in clear: jsonb cannot hold a NUL
/// (22P05), and sealing must not turn bad input into accepted input.
pub fn check_text(event_type: &str, payload: &Value) -> Result<(), crate::InvalidText> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(has_nul),
            Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    match personal_field(event_type).and_then(|f| payload.get(f)) {
        Some(v) if has_nul(v) => Err(crate::InvalidText {
            kind: crate::InvalidTextKind::Untranslatable,
            message: "unsupported Unicode escape sequence: \\u0000 cannot be converted to text"
                .to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Seals the personal field of `payload` in place under `key`.
pub fn seal(event_type: &str, payload: &mut Value, key: &UserKey, project: i64, user: &str) {
    let Some(field) = personal_field(event_type) else {
        return;
    };
    let Some(slot) = payload.get_mut(field).filter(|v| !v.is_null()) else {
        return;
    };
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let plain = slot.to_string();
    let associated = aad(event_type, field, project, user);
    // Encryption of an in-memory buffer fails only on lengths near 2^38 bytes.
    let Ok(sealed) = XChaCha20Poly1305::new(&key.0).encrypt(
        &nonce,
        Payload {
            msg: plain.as_bytes(),
            aad: associated.as_bytes(),
        },
    ) else {
        *slot = Value::Null;
        return;
    };
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    *slot = serde_json::json!({
        "sealed": base64::engine::general_purpose::STANDARD.encode(bytes),
        "key": KEY_TAG,
    });
}

/// Opens the sealed field of `payload` in place with `key`; without a key, or when it
/// does not open, puts the erased form there. A field in clear is left as it is.
pub fn open(
    event_type: &str,
    payload: &mut Value,
    key: Option<&UserKey>,
    project: i64,
    user: &str,
) {
    let Some(field) = personal_field(event_type) else {
        return;
    };
    let Some(slot) = payload.get_mut(field) else {
        return;
    };
    let Some(sealed) = slot.get("sealed").and_then(Value::as_str) else {
        return;
    };
    let opened = key.and_then(|key| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let associated = aad(event_type, field, project, user);
        let plain = XChaCha20Poly1305::new(&key.0)
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated.as_bytes(),
                },
            )
            .ok()?;
        serde_json::from_slice::<Value>(&plain).ok()
    });
    *slot = opened.unwrap_or_else(|| erased(field));
}

fn erased(field: &str) -> Value {
    if field == "reason" {
        Value::String(ERASED_REASON.to_owned())
    } else {
        Value::Null
    }
}

/// A user's key, to read with (None: never made, or erased).
pub const KEY_OF: &str = "select key from user_keys where project_id = $1 and user_id = $2";

/// The keys of a batch of users (`$1` projects, `$2` users, pairwise), for a relay or
/// export page: each key looked up by its primary key in a lateral subquery the planner
/// cannot turn into a join (ARCHITECTURE.md, "Plans cannot go stale").
pub const KEYS_OF: &str = "select k.project_id, k.user_id, k.key \
     from unnest($1::int8[], $2::text[]) as u(p, id) \
     cross join lateral (select project_id, user_id, key from user_keys \
                         where project_id = u.p and user_id = u.id limit 1) k";

/// The user's key; None when there is none (never made, or erased).
///
/// # Errors
/// Database failures.
pub async fn key_of(
    conn: &mut PgConnection,
    project: i64,
    user: &str,
) -> Result<Option<UserKey>, sqlx::Error> {
    let key: Option<Vec<u8>> = sqlx::query_scalar(KEY_OF)
        .bind(project)
        .bind(user)
        .fetch_optional(conn)
        .await?;
    Ok(key.as_deref().and_then(UserKey::from_bytes))
}

/// The user's key, made now when there is none: one lookup when it exists. Takes the
/// user's key lock shared first (`locks::user_key`), held to commit, so that an erasure
/// cannot delete the key between this read and the commit of what it seals, nor miss a
/// first key this transaction makes (`an_erasure_waits_for_a_seal_in_flight...` in
/// `orders/tests/erasure_race.rs`).
///
/// # Errors
/// Database failures.
pub async fn key_for_writing(
    conn: &mut PgConnection,
    project: i64,
    user: &str,
) -> Result<UserKey, sqlx::Error> {
    crate::locks::take_shared(&mut *conn, crate::locks::user_key(project, user)).await?;
    if let Some(key) = key_of(&mut *conn, project, user).await? {
        return Ok(key);
    }
    let fresh = XChaCha20Poly1305::generate_key(&mut OsRng);
    // A concurrent first order of the same user may have made one: theirs wins, and this
    // statement waits for it and then reads it (a new snapshot per statement).
    sqlx::query(
        "insert into user_keys (project_id, user_id, key) values ($1, $2, $3) \
         on conflict do nothing",
    )
    .bind(project)
    .bind(user)
    .bind(fresh.as_slice())
    .execute(&mut *conn)
    .await?;
    key_of(conn, project, user)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// The keys of the users of `pairs` that have one, in one query.
///
/// # Errors
/// Database failures.
pub async fn keys_of(
    conn: &mut PgConnection,
    pairs: &[(i64, String)],
) -> Result<HashMap<(i64, String), UserKey>, sqlx::Error> {
    if pairs.is_empty() {
        return Ok(HashMap::new());
    }
    let (projects, users): (Vec<i64>, Vec<String>) = pairs.iter().cloned().unzip();
    let rows = sqlx::query(KEYS_OF)
        .bind(&projects)
        .bind(&users)
        .fetch_all(conn)
        .await?;
    let mut keys = HashMap::with_capacity(rows.len());
    for row in rows {
        let bytes: Vec<u8> = row.try_get("key")?;
        if let Some(key) = UserKey::from_bytes(&bytes) {
            keys.insert((row.try_get("project_id")?, row.try_get("user_id")?), key);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> UserKey {
        UserKey(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    #[test]
    fn a_sealed_field_opens_with_its_key_only_for_its_user_and_field() {
        let k = key();
        let clear = serde_json::json!({"custom_parameters": {"email": "a@b.c"}, "order_id": 1});
        let mut p = clear.clone();
        seal("OrderCreated", &mut p, &k, 7, "u1");
        assert!(is_sealed("OrderCreated", &p));
        assert!(!p.to_string().contains("a@b.c"), "{p}");
        assert_eq!(p["custom_parameters"]["key"], "v1");
        let mut same = p.clone();
        open("OrderCreated", &mut same, Some(&k), 7, "u1");
        assert_eq!(same, clear);
        let mut other_user = p.clone();
        open("OrderCreated", &mut other_user, Some(&k), 7, "u2");
        assert_eq!(other_user["custom_parameters"], Value::Null);
        let mut other_key = p.clone();
        open("OrderCreated", &mut other_key, Some(&key()), 7, "u1");
        assert_eq!(other_key["custom_parameters"], Value::Null);
        let mut no_key = p;
        open("OrderCreated", &mut no_key, None, 7, "u1");
        assert_eq!(no_key["custom_parameters"], Value::Null);
    }

    #[test]
    fn an_erased_reason_reads_erased_and_clear_or_absent_fields_are_left_alone() {
        let k = key();
        let mut p = serde_json::json!({"reason": "my card was stolen"});
        seal("OrderCanceled", &mut p, &k, 1, "u");
        let mut nonce_differs = serde_json::json!({"reason": "my card was stolen"});
        seal("OrderCanceled", &mut nonce_differs, &k, 1, "u");
        assert_ne!(p, nonce_differs);
        open("OrderCanceled", &mut p, None, 1, "u");
        assert_eq!(p, serde_json::json!({"reason": "erased"}));
        let mut clear = serde_json::json!({"reason": "refund"});
        open("OrderCanceled", &mut clear, None, 1, "u");
        assert_eq!(clear, serde_json::json!({"reason": "refund"}));
        let mut none = serde_json::json!({"custom_parameters": null});
        assert!(!has_personal("OrderCreated", &none));
        seal("OrderCreated", &mut none, &k, 1, "u");
        assert_eq!(none, serde_json::json!({"custom_parameters": null}));
        let mut paid = serde_json::json!({"invoice_id": "x"});
        seal("OrderPaid", &mut paid, &k, 1, "u");
        assert_eq!(paid, serde_json::json!({"invoice_id": "x"}));
    }
}
