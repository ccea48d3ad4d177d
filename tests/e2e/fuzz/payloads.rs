//! The live fuzzer's payloads: for every subject a valid body, and from it, with a
//! seeded PRNG, malformed variants of every kind the edge must survive.

use std::fmt;

use cart_proto::v1;
use prost::Message;
use serde_json::{json, Value};

use crate::PROJECT;

/// What was done to a valid request to make a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    RandomBytes,
    ScalarBody,
    WrongType,
    BoundaryNumber,
    ControlInValue,
    ControlInName,
    Nul,
    DeepNesting,
    ArrayForObject,
    DuplicateName,
    LargeBody,
    OddHeaders,
    Protobuf,
    /// A valid body that breaks one rule of its subject (a date order.search cannot
    /// read, a property the subject does not take).
    BrokenRule,
}

impl Kind {
    const ALL: [Kind; 14] = [
        Kind::RandomBytes,
        Kind::ScalarBody,
        Kind::WrongType,
        Kind::BoundaryNumber,
        Kind::ControlInValue,
        Kind::ControlInName,
        Kind::Nul,
        Kind::DeepNesting,
        Kind::ArrayForObject,
        Kind::DuplicateName,
        Kind::LargeBody,
        Kind::OddHeaders,
        Kind::Protobuf,
        Kind::BrokenRule,
    ];
}

/// One generated request.
pub(crate) struct Payload {
    pub(crate) index: usize,
    pub(crate) subject: &'static str,
    pub(crate) kind: Kind,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Input that no endpoint may accept (the subject's own rules considered): a JSON
    /// array or scalar for a body, NUL, an unknown property with control characters,
    /// nesting past any limit, a body over 64 KiB where it is documented, a bad
    /// `Cart-Command-Id` or `Cart-Reply`, a JSON body labelled protobuf.
    pub(crate) must_refuse: bool,
    /// The one status the reply must have, where the contract fixes it: 413 for a body
    /// over 64 KiB, then 422 for a bad `Cart-Command-Id` or `Cart-Reply` (any endpoint),
    /// then 422 for a
    /// body breaking a documented rule ([`Kind::BrokenRule`]).
    pub(crate) status: Option<u16>,
}

impl fmt::Display for Payload {
    /// The reproducer as a report shows it: subject, headers and the body escaped (long
    /// bodies cut, with their length).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(&self.body);
        let shown: String = text.chars().take(240).collect();
        let cut = if shown.len() < text.len() { "…" } else { "" };
        write!(
            f,
            "#{} {:?} on {} headers {:?} body ({} bytes) \"{}{cut}\"",
            self.index,
            self.kind,
            self.subject,
            self.headers,
            self.body.len(),
            shown.escape_debug()
        )
    }
}

const USER: &str = "fuzz-user";

/// Every subject the service serves (after its prefix), with a valid request body.
pub(crate) fn subjects() -> Vec<(&'static str, Value)> {
    let demo: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/catalog.json"
    )))
    .expect("the demo catalog is JSON");
    let project = &demo["projects"][0];
    let (item, promotion, code) = (
        &project["items"][2],
        &project["promotions"][0],
        &project["promo_codes"][0],
    );
    let who = |extra: Value| {
        let mut body = json!({"project_id": PROJECT, "user_id": USER});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        body
    };
    let p = |extra: Value| {
        let mut body = json!({"project_id": PROJECT});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        body
    };
    vec![
        (
            "fill",
            who(json!({"items": [{"sku": "cup01", "quantity": 1}], "currency": "USD"})),
        ),
        (
            "item.put",
            who(json!({"sku": "cup01", "quantity": 2, "country": "US"})),
        ),
        ("item.delete", who(json!({"sku": "gold", "cart_id": "c1"}))),
        ("clear", who(json!({"locale": "en"}))),
        ("get", who(json!({"at_version": 1}))),
        (
            "promocode.redeem",
            who(json!({"coupon_code": "WINTER2026", "cart": {"id": "current"}})),
        ),
        ("promocode.remove", who(json!({}))),
        ("promocode.rewards", who(json!({"code": "WINTER2026"}))),
        ("promocode.verify", who(json!({"code": "WINTER2026"}))),
        (
            "order.checkout",
            who(json!({"currency": "USD", "custom_parameters": {"hero": "x"}})),
        ),
        (
            "order.checkout_item",
            who(json!({"sku": "cup01", "quantity": 1, "promo_code": "WINTER2026"})),
        ),
        ("order.checkout_free", who(json!({}))),
        ("order.get", who(json!({"order_id": 1}))),
        ("order.get", who(json!({"token": "3f6c0d"}))),
        (
            "order.search",
            who(json!({"limit": 5, "created_date_from": "2026-01-01"})),
        ),
        (
            "payment.confirm",
            p(json!({"order_id": 1, "invoice_id": "inv-1", "amount": "1.00", "currency": "USD"})),
        ),
        (
            "payment.cancel",
            p(json!({"order_id": 1, "reason": "refund"})),
        ),
        ("admin.catalog.item.create", p(json!({"item": item}))),
        (
            "admin.catalog.item.update",
            p(json!({"item": item, "expected_version": 1})),
        ),
        (
            "admin.catalog.item.delete",
            p(json!({"sku": "no-such-sku"})),
        ),
        (
            "admin.catalog.promotion.create",
            p(json!({"promotion": promotion})),
        ),
        (
            "admin.catalog.promotion.update",
            p(json!({"promotion": promotion})),
        ),
        (
            "admin.catalog.promotion.delete",
            p(json!({"id": "no-such-promotion"})),
        ),
        (
            "admin.catalog.promocode.create",
            p(json!({"promo_code": code})),
        ),
        (
            "admin.catalog.promocode.update",
            p(json!({"promo_code": code})),
        ),
        (
            "admin.catalog.promocode.delete",
            p(json!({"code": "NO-SUCH-CODE"})),
        ),
        (
            "admin.catalog.import",
            json!({"catalog": {"projects": []}, "mode": "merge"}),
        ),
        ("admin.catalog.export", p(json!({}))),
        (
            "admin.catalog.get",
            p(json!({"kind": "item", "key": "cup01"})),
        ),
        (
            "admin.catalog.changes",
            p(json!({"after_version": 0, "limit": 10})),
        ),
        ("feed.status", json!({})),
    ]
}

/// `count` payloads spread over `subjects`, all drawn from one PRNG seeded with `seed`.
pub(crate) fn generate(
    seed: u64,
    count: usize,
    subjects: &[(&'static str, Value)],
) -> Vec<Payload> {
    let mut rng = fastrand::Rng::with_seed(seed);
    // `Cart-Reply` headers are drawn from a generator of their own, so that the payloads
    // a seed gave before the header existed stay the same.
    let mut replies = fastrand::Rng::with_seed(seed ^ REPLY_SEED);
    (0..count)
        .map(|index| {
            let (subject, valid) = &subjects[rng.usize(..subjects.len())];
            let kind = Kind::ALL[rng.usize(..Kind::ALL.len())];
            let (mut headers, body, bad_body) = make(&mut rng, kind, subject, valid);
            if kind == Kind::OddHeaders && replies.bool() {
                headers.extend(odd_reply_headers(&mut replies));
            }
            // The edge checks the size, then the command id and the reply mode, then the
            // handler the body; feed.status reads no body.
            let status = if body.len() > MAX_BODY {
                Some(413)
            } else if bad_command_id(&headers)
                || bad_reply_mode(&headers)
                || bad_body == Bad::Status(422)
            {
                Some(422)
            } else {
                None
            };
            let must_refuse = status.is_some()
                || (*subject != "feed.status"
                    && (bad_body != Bad::No || bad_content_type(subject, kind, &headers)));
            Payload {
                index,
                subject,
                kind,
                headers,
                body,
                must_refuse,
                status,
            }
        })
        .collect()
}

/// The documented limit of every request body, admin included (docs/protocol.md).
const MAX_BODY: usize = 64 * 1024;

/// How a generated body breaks the contract on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bad {
    No,
    /// No endpoint may accept it; which refusal depends on the endpoint.
    Refused,
    /// The contract fixes the refusal's status.
    Status(u16),
}

impl From<bool> for Bad {
    fn from(bad: bool) -> Self {
        if bad {
            Bad::Refused
        } else {
            Bad::No
        }
    }
}

/// Values that break the documented rule (1-128 printable ASCII characters, no spaces).
const BAD_COMMAND_IDS: &[&str] = &[" ", "\u{fc}n\u{ef}c\u{f6}de", "a b\t\u{0}\u{7f}"];

/// A `Cart-Command-Id` (in any casing) that every endpoint, queries and admin included,
/// refuses 422: a bad value, or two different values. (An empty value is not counted: a
/// header without a value may not reach the service at all.)
fn bad_command_id(headers: &[(String, String)]) -> bool {
    let ids: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cart-command-id"))
        .map(|(_, v)| v.as_str())
        .collect();
    let bad = |id: &str| id.len() > 128 || BAD_COMMAND_IDS.contains(&id);
    ids.iter().any(|id| bad(id))
        || (ids.len() == 2 && ids[0] != ids[1] && ids.iter().all(|id| !id.is_empty()))
}

/// Mixes the seed for the `Cart-Reply` draws.
const REPLY_SEED: u64 = 0x4361_7274_5265_706c;

/// One or two `Cart-Reply` headers in any casing: the two modes in any case and with
/// blanks around them, and values no endpoint takes.
fn odd_reply_headers(rng: &mut fastrand::Rng) -> Vec<(String, String)> {
    (0..rng.usize(1..=2))
        .map(|_| {
            let name = pick(rng, &["Cart-Reply", "cart-reply", "CART-REPLY"]);
            let value = pick(
                rng,
                &[
                    "minimal",
                    "full",
                    "MINIMAL",
                    " Full ",
                    "return=minimal",
                    "minimal, full",
                    "none",
                    "mini\u{e4}mal",
                ],
            );
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// A `Cart-Reply` that every endpoint refuses 422 (docs/protocol.md): a value other
/// than `full` or `minimal` (any case, blanks around it), or two that ask for different
/// modes.
fn bad_reply_mode(headers: &[(String, String)]) -> bool {
    let modes: Vec<Option<String>> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cart-reply"))
        .map(|(_, v)| {
            let v = v.trim_matches([' ', '\t']).to_ascii_lowercase();
            (v == "full" || v == "minimal").then_some(v)
        })
        .collect();
    modes.iter().any(Option::is_none) || modes.windows(2).any(|w| w[0] != w[1])
}

/// A JSON body labelled protobuf with parameters on a cart subject: it is read as
/// protobuf and is not a message. A real protobuf body (kind Protobuf) so labelled may
/// well be valid.
fn bad_content_type(subject: &str, kind: Kind, headers: &[(String, String)]) -> bool {
    kind != Kind::Protobuf
        && protobuf_of(subject, &json!({})).is_some()
        && headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("content-type")
                && v.to_ascii_lowercase().starts_with("application/protobuf;")
        })
}

/// Dates order.search must refuse 422 (`created_date_from`, `created_date_until`):
/// words PostgreSQL would read as dates, and text that is no date.
const BAD_DATES: &[&str] = &["now", "epoch", "infinity", "-infinity", "not a date", ""];

/// `valid` with one rule of `subject` broken, and the status the contract fixes for it:
/// a bad date for order.search, currency or locale for promocode.verify/rewards (which
/// take neither, in JSON as in protobuf), and otherwise a property no request has.
fn broken_rule(rng: &mut fastrand::Rng, subject: &str, valid: &Value) -> (Value, Bad) {
    let mut body = valid.clone();
    match subject {
        "order.search" => {
            let field = pick(rng, &["created_date_from", "created_date_until"]);
            body[field] = json!(pick(rng, BAD_DATES));
            (body, Bad::Status(422))
        }
        "promocode.verify" | "promocode.rewards" => {
            let (field, value) = [("currency", "USD"), ("locale", "en")][rng.usize(..2)];
            body[field] = json!(value);
            (body, Bad::Status(422))
        }
        "feed.status" => (body, Bad::No),
        _ => {
            body["no_such_property"] = json!(1);
            (body, Bad::Refused)
        }
    }
}

/// Headers, body, and how the body alone breaks the contract.
fn make(
    rng: &mut fastrand::Rng,
    kind: Kind,
    subject: &str,
    valid: &Value,
) -> (Vec<(String, String)>, Vec<u8>, Bad) {
    let mut bad = false;
    let json_body = |v: &Value| serde_json::to_vec(v).expect("a Value serializes");
    let body = match kind {
        Kind::RandomBytes => random_bytes(rng),
        Kind::ScalarBody => {
            let scalar = [
                "", " ", "null", "true", "0", "-1", "\"{}\"", "{}", "[]", "{", "}",
            ];
            let body = pick(rng, &scalar);
            bad = !matches!(body, "" | " " | "{}");
            body.as_bytes().to_vec()
        }
        Kind::WrongType => {
            let wrong = [
                json!(null),
                json!(true),
                json!(0),
                json!(-1),
                json!(1.5),
                json!("x"),
                json!([]),
                json!({}),
                json!([1, 2]),
                json!({"a": 1}),
            ];
            let with = wrong[rng.usize(..wrong.len())].clone();
            json_body(&replace_somewhere(rng, valid, with))
        }
        Kind::BoundaryNumber => {
            let raw = pick(rng, BOUNDARY_NUMBERS);
            with_raw(rng, valid, raw)
        }
        Kind::ControlInValue => {
            let (a, b, c) = (
                pick(rng, &["", "cup01", "a"]),
                pick(rng, CONTROL),
                pick(rng, &["", "x", "\r\nX-Injected: 1"]),
            );
            json_body(&replace_somewhere(
                rng,
                valid,
                Value::String(format!("{a}{b}{c}")),
            ))
        }
        Kind::ControlInName => {
            let (a, b, c) = (
                pick(rng, &["", "bad", "user_id"]),
                pick(rng, CONTROL),
                pick(rng, &["", "X: y", "id"]),
            );
            let (body, top) = add_somewhere(rng, valid, &format!("{a}{b}{c}"), json!(1));
            bad = top;
            json_body(&body)
        }
        Kind::Nul => {
            let mut v = valid.clone();
            if rng.bool() {
                v = add_somewhere(rng, &v, "k\u{0}ey", json!("v\u{0}")).0;
            }
            bad = true;
            let (a, b) = (pick(rng, &["", "cup01"]), pick(rng, &["", "x"]));
            json_body(&replace_somewhere(rng, &v, json!(format!("{a}\u{0}{b}"))))
        }
        Kind::DeepNesting => {
            let body = deep(rng, valid);
            bad = body.starts_with(b"[") || body.starts_with(b"{\"a\":{");
            body
        }
        Kind::ArrayForObject => {
            let body = array_for_object(rng, valid);
            bad = body.starts_with(b"[");
            body
        }
        Kind::DuplicateName => duplicate_name(rng, valid),
        Kind::LargeBody => large(rng, valid),
        Kind::OddHeaders => json_body(valid),
        Kind::Protobuf => {
            let (headers, body) = protobuf(rng, subject, valid);
            return (headers, body, Bad::No);
        }
        // No odd headers: a Content-Type could make the JSON body protobuf.
        Kind::BrokenRule => {
            let (body, bad) = broken_rule(rng, subject, valid);
            return (vec![], json_body(&body), bad);
        }
    };
    let headers = if kind == Kind::OddHeaders || rng.u8(..8) == 0 {
        odd_headers(rng)
    } else {
        vec![]
    };
    (headers, body, bad.into())
}

fn pick<'a>(rng: &mut fastrand::Rng, from: &[&'a str]) -> &'a str {
    from[rng.usize(..from.len())]
}

const CONTROL: &[&str] = &[
    "\u{0}",
    "\r\n",
    "\r",
    "\n",
    "\t",
    "\u{1}",
    "\u{1b}",
    "\u{1f}",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
];

/// Numbers at the edges of u32, i64, u64 and f64, as raw JSON.
const BOUNDARY_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1",
    "4294967295",
    "4294967296",
    "2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "123456789012345678901234567890",
    "1e308",
    "1e400",
    "-1e400",
    "1e-400",
    "0.5",
    "1.0",
    "-0.0",
    "1E2",
    "0e0",
    "9007199254740993",
];

fn random_bytes(rng: &mut fastrand::Rng) -> Vec<u8> {
    let len = rng.usize(..512);
    match rng.u8(..3) {
        0 => (0..len).map(|_| rng.u8(..)).collect(),
        // Mostly JSON punctuation, so the bytes get past the first character.
        1 => (0..len)
            .map(|_| b"{}[]\":,0123456789.-eE \\u\x00\xff"[rng.usize(..23)])
            .collect(),
        // Invalid UTF-8 inside a string of an otherwise valid body.
        _ => [
            format!("{{\"project_id\":{PROJECT},\"user_id\":\"a").as_bytes(),
            &[0xff, 0xfe, 0xc0, 0x80],
            b"\"}",
        ]
        .concat(),
    }
}

/// The JSON paths of `value`'s object members, at most three levels deep.
fn member_paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if prefix.len() >= 3 {
        return;
    }
    if let Value::Object(map) = value {
        for (k, v) in map {
            prefix.push(k.clone());
            out.push(prefix.clone());
            member_paths(v, prefix, out);
            prefix.pop();
        }
    }
}

fn at_path<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(value, |v, k| &mut v[k.as_str()])
}

/// `valid` with the value of a random member replaced by `with`.
fn replace_somewhere(rng: &mut fastrand::Rng, valid: &Value, with: Value) -> Value {
    let mut out = valid.clone();
    let mut paths = vec![];
    member_paths(valid, &mut vec![], &mut paths);
    if paths.is_empty() {
        return with;
    }
    *at_path(&mut out, &paths[rng.usize(..paths.len())]) = with;
    out
}

/// `valid` with a member `name` added to it or to one of its objects; whether it was
/// added at the top (where every request refuses an unknown property).
fn add_somewhere(rng: &mut fastrand::Rng, valid: &Value, name: &str, with: Value) -> (Value, bool) {
    let mut out = valid.clone();
    let mut paths = vec![vec![]];
    member_paths(valid, &mut vec![], &mut paths);
    paths.retain(|p| at_path(&mut out.clone(), p).is_object());
    let path = &paths[rng.usize(..paths.len())];
    at_path(&mut out, path)[name] = with;
    (out, path.is_empty())
}

const RAW: &str = "__fuzz_raw__";

/// `valid` with a random member's value replaced by the raw JSON text `raw`.
fn with_raw(rng: &mut fastrand::Rng, valid: &Value, raw: &str) -> Vec<u8> {
    let placed = replace_somewhere(rng, valid, json!(RAW));
    placed
        .to_string()
        .replacen(&format!("\"{RAW}\""), raw, 1)
        .into_bytes()
}

fn deep(rng: &mut fastrand::Rng, valid: &Value) -> Vec<u8> {
    let depth = [64, 127, 128, 129, 1000, 100_000][rng.usize(..6)];
    let nested = match rng.u8(..3) {
        0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
        // Unclosed: the body ends inside the nesting.
        _ => "[{\"a\":".repeat(depth),
    };
    if rng.bool() {
        nested.into_bytes()
    } else {
        with_raw(rng, valid, &nested)
    }
}

fn array_for_object(rng: &mut fastrand::Rng, valid: &Value) -> Vec<u8> {
    let values: Vec<Value> = valid
        .as_object()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    let body = match rng.u8(..3) {
        // The fields by position: `[44056, "user"]`.
        0 => Value::Array(values),
        1 => json!([valid]),
        _ => replace_somewhere(rng, valid, json!([valid])),
    };
    serde_json::to_vec(&body).expect("a Value serializes")
}

fn duplicate_name(rng: &mut fastrand::Rng, valid: &Value) -> Vec<u8> {
    let text = valid.to_string();
    let Some(map) = valid.as_object().filter(|m| !m.is_empty()) else {
        return b"{\"a\":1,\"a\":2}".to_vec();
    };
    let key = map
        .keys()
        .nth(rng.usize(..map.len()))
        .expect("a key")
        .clone();
    let dup = format!(
        "{{\"{key}\":{},",
        pick(rng, &["\"other\"", "0", "null", "{}"])
    );
    text.replacen('{', &dup, 1).into_bytes()
}

/// A valid body padded with whitespace to just under, at and over the 64 KiB limit, or
/// with one huge value.
fn large(rng: &mut fastrand::Rng, valid: &Value) -> Vec<u8> {
    let size = [65_535, 65_536, 65_537, 70_000, 300_000][rng.usize(..5)];
    if rng.bool() {
        let mut body = valid.to_string().into_bytes();
        body.resize(size.max(body.len()), b' ');
        body
    } else {
        with_raw(rng, valid, &format!("\"{}\"", "a".repeat(size)))
    }
}

fn odd_headers(rng: &mut fastrand::Rng) -> Vec<(String, String)> {
    let mut headers = vec![];
    if rng.bool() {
        let name = pick(rng, &["Content-Type", "content-type", "CONTENT-TYPE"]);
        let value = pick(
            rng,
            &[
                "application/protobuf; charset=utf-8",
                "application/json; charset=utf-8",
                "APPLICATION/PROTOBUF",
                "Application/Json",
                "application/x-protobuf",
                "text/plain",
                "",
                " ",
                "*/*",
                "application/protobuf, application/json",
                "\u{e4}\u{0}",
                "application/\u{7f}",
            ],
        );
        headers.push((name.to_owned(), value.to_owned()));
    }
    for _ in 0..rng.usize(1..=2) {
        let name = pick(
            rng,
            &[
                "Cart-Command-Id",
                "cart-command-id",
                "CART-COMMAND-ID",
                "Cart-command-ID",
            ],
        );
        let value = match rng.u8(..8) {
            0 => String::new(),
            1 => " ".into(),
            2 => "x".repeat(128),
            3 => "x".repeat(129),
            4 | 5 => pick(rng, BAD_COMMAND_IDS).to_owned(),
            _ => format!("fuzz-{}", rng.u64(..)),
        };
        headers.push((name.to_owned(), value));
    }
    headers
}

/// The valid body in protobuf (cart subjects), damaged; or random bytes sent as protobuf.
fn protobuf(
    rng: &mut fastrand::Rng,
    subject: &str,
    valid: &Value,
) -> (Vec<(String, String)>, Vec<u8>) {
    let mut body = protobuf_of(subject, valid).unwrap_or_else(|| random_bytes(rng));
    match rng.u8(..4) {
        0 if !body.is_empty() => body.truncate(rng.usize(..body.len())),
        1 => body.extend([0xff; 10]),
        2 => {
            for _ in 0..rng.usize(1..4) {
                if !body.is_empty() {
                    let at = rng.usize(..body.len());
                    body[at] = rng.u8(..);
                }
            }
        }
        _ => {}
    }
    let content_type = pick(
        rng,
        &[
            "application/protobuf",
            "application/x-protobuf",
            "application/protobuf; charset=binary",
        ],
    );
    (
        vec![("Content-Type".to_owned(), content_type.to_owned())],
        body,
    )
}

pub(crate) fn protobuf_of(subject: &str, body: &Value) -> Option<Vec<u8>> {
    fn enc<M: Message + serde::de::DeserializeOwned>(body: &Value) -> Option<Vec<u8>> {
        serde_json::from_value::<M>(body.clone())
            .ok()
            .map(|m| m.encode_to_vec())
    }
    match subject {
        "fill" => enc::<v1::FillRequest>(body),
        "item.put" => enc::<v1::PutItemRequest>(body),
        "item.delete" => enc::<v1::DeleteItemRequest>(body),
        "clear" => enc::<v1::ClearRequest>(body),
        "get" => enc::<v1::GetCartRequest>(body),
        "promocode.redeem" => enc::<v1::RedeemPromoCodeRequest>(body),
        "promocode.remove" => enc::<v1::RemovePromoCodeRequest>(body),
        "promocode.rewards" => enc::<v1::PromoCodeRewardsRequest>(body),
        "promocode.verify" => enc::<v1::VerifyPromoCodeRequest>(body),
        _ => None,
    }
}
