//! What the load generator sends: the command mix, the cart population and the encoded
//! requests (subject, headers, body), built the way a real caller of `cart.v1` would.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context};
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use cart_proto::request::Endpoint;
use cart_proto::{v1, Encoding, ReplyMode, COMMAND_ID_HEADER, REPLY_HEADER};

/// One kind of request the bench sends; the names are the keys of `--mix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Fill,
    Put,
    Delete,
    Clear,
    Get,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Fill, Op::Put, Op::Delete, Op::Clear, Op::Get];

    pub fn name(self) -> &'static str {
        match self {
            Op::Fill => "fill",
            Op::Put => "put",
            Op::Delete => "delete",
            Op::Clear => "clear",
            Op::Get => "get",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn is_command(self) -> bool {
        self != Op::Get
    }

    fn endpoint(self) -> Endpoint {
        match self {
            Op::Fill => Endpoint::Fill,
            Op::Put => Endpoint::PutItem,
            Op::Delete => Endpoint::DeleteItem,
            Op::Clear => Endpoint::Clear,
            Op::Get => Endpoint::Get,
        }
    }
}

/// Relative weights of the operations, e.g. `fill=30,put=30,delete=10,get=25,clear=5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 5],
}

impl Mix {
    /// Only `op`.
    pub fn only(op: Op) -> Self {
        let mut weights = [0; 5];
        weights[op.index()] = 1;
        Self { weights }
    }

    /// The same mix without gets, or None when nothing else is left.
    pub fn commands_only(&self) -> Option<Self> {
        let mut weights = self.weights;
        weights[Op::Get.index()] = 0;
        (weights.iter().sum::<u32>() > 0).then_some(Self { weights })
    }

    fn total(&self) -> u32 {
        self.weights.iter().sum()
    }

    pub fn pick(&self, rng: &mut fastrand::Rng) -> Op {
        // The parser guarantees a positive total.
        let mut ticket = rng.u32(0..self.total().max(1));
        for op in Op::ALL {
            let weight = self.weights[op.index()];
            if ticket < weight {
                return op;
            }
            ticket -= weight;
        }
        Op::Get
    }
}

impl FromStr for Mix {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let mut weights = [0u32; 5];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .with_context(|| format!("`{part}` is not name=weight"))?;
            let op = Op::ALL
                .into_iter()
                .find(|op| op.name() == name.trim())
                .with_context(|| {
                    format!("unknown operation `{name}` (fill, put, delete, get, clear)")
                })?;
            weights[op.index()] = weight
                .trim()
                .parse()
                .with_context(|| format!("weight of {name} is not a whole number: `{weight}`"))?;
        }
        if weights.iter().map(|&w| u64::from(w)).sum::<u64>() == 0 {
            bail!("the mix needs at least one positive weight");
        }
        if weights.iter().map(|&w| u64::from(w)).sum::<u64>() > u64::from(u32::MAX) {
            bail!("the weights add up to more than {}", u32::MAX);
        }
        Ok(Self { weights })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Op::ALL
            .into_iter()
            .filter(|op| self.weights[op.index()] > 0)
            .map(|op| format!("{}={}", op.name(), self.weights[op.index()]))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// One request ready to send.
pub struct Request {
    pub op: Op,
    pub subject: Subject,
    pub headers: HeaderMap,
    pub payload: Bytes,
    /// The cart slot a successful reply proves written (see [`Workload::mark_written`]).
    pub cart: Option<usize>,
}

/// How commands are sent, per phase: issue 17 compares commands with and without an
/// idempotency key, and with the full and the minimal reply, in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHeaders {
    /// What commands ask to be answered with (`Cart-Reply: minimal` only for Minimal).
    pub reply: ReplyMode,
    /// Whether commands carry a fresh `Cart-Command-Id`.
    pub command_id: bool,
}

/// Who the bench is and which carts it uses.
pub struct WorkloadConfig {
    pub subject_prefix: String,
    pub project_id: u64,
    pub encoding: Encoding,
    /// What commands ask to be answered with (`Cart-Reply`); gets always read the cart.
    pub reply: ReplyMode,
    /// Part of every user id, so that a new run starts from fresh carts.
    pub run_tag: String,
    pub users: usize,
    pub carts_per_user: usize,
    pub skus: Vec<String>,
}

/// The cart population and the request builder, shared by every client task.
pub struct Workload {
    config: WorkloadConfig,
    subjects: [Subject; 5],
    /// Per cart slot: has a command on it been answered OK? A get of a named cart that
    /// was never written is a 404 by contract, so gets only read carts known to exist.
    written: Vec<AtomicBool>,
}

impl Workload {
    pub fn new(config: WorkloadConfig) -> anyhow::Result<Self> {
        if config.skus.is_empty() {
            bail!("no SKUs to put in carts");
        }
        let slots = config
            .users
            .checked_mul(config.carts_per_user)
            .filter(|&n| (1..=10_000_000).contains(&n))
            .context("users x carts must be between 1 and 10,000,000")?;
        let subjects = Op::ALL.map(|op| {
            Subject::from(format!(
                "{}.{}",
                config.subject_prefix,
                op.endpoint().subject()
            ))
        });
        Ok(Self {
            written: (0..slots).map(|_| AtomicBool::new(false)).collect(),
            subjects,
            config,
        })
    }

    fn slots(&self) -> usize {
        self.written.len()
    }

    pub fn mark_written(&self, slot: usize) {
        if let Some(flag) = self.written.get(slot) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    fn user(&self, slot: usize) -> String {
        format!(
            "bench-{}-u{}",
            self.config.run_tag,
            slot / self.config.carts_per_user
        )
    }

    fn cart(&self, slot: usize) -> String {
        format!("c{}", slot % self.config.carts_per_user)
    }

    fn sku<'a>(&'a self, rng: &mut fastrand::Rng) -> &'a str {
        &self.config.skus[rng.usize(0..self.config.skus.len())]
    }

    /// What commands carry unless a phase says otherwise: the configured reply mode and
    /// a command id.
    pub fn default_headers(&self) -> CommandHeaders {
        CommandHeaders {
            reply: self.config.reply,
            command_id: true,
        }
    }

    /// A request of kind `op` on a random cart (a written one for gets).
    pub fn request(&self, op: Op, rng: &mut fastrand::Rng) -> Request {
        self.request_with(op, rng, self.default_headers())
    }

    /// A request of kind `op` on a random cart (a written one for gets); a command carries
    /// `headers` (gets ignore them).
    pub fn request_with(
        &self,
        op: Op,
        rng: &mut fastrand::Rng,
        headers: CommandHeaders,
    ) -> Request {
        if op == Op::Get {
            return self.get_request(self.written_slot(rng));
        }
        let slot = rng.usize(0..self.slots());
        let (project_id, user_id, cart_id) =
            (self.config.project_id, self.user(slot), self.cart(slot));
        let payload = match op {
            Op::Fill => {
                // One to three distinct SKUs, as a storefront's "add these" would send.
                let n = rng.usize(1..=self.config.skus.len().min(3));
                let mut items: Vec<v1::FillItem> = Vec::with_capacity(n);
                while items.len() < n {
                    let sku = self.sku(rng);
                    if items.iter().all(|i| i.sku != sku) {
                        items.push(v1::FillItem {
                            sku: sku.to_owned(),
                            quantity: rng.i64(1..=5),
                        });
                    }
                }
                self.encode(&v1::FillRequest {
                    project_id,
                    user_id,
                    cart_id,
                    items,
                    ..Default::default()
                })
            }
            Op::Put => self.encode(&v1::PutItemRequest {
                project_id,
                user_id,
                cart_id,
                sku: self.sku(rng).to_owned(),
                quantity: rng.i64(1..=10),
                ..Default::default()
            }),
            Op::Delete => self.encode(&v1::DeleteItemRequest {
                project_id,
                user_id,
                cart_id,
                sku: self.sku(rng).to_owned(),
                ..Default::default()
            }),
            Op::Clear | Op::Get => self.encode(&v1::ClearRequest {
                project_id,
                user_id,
                cart_id,
                ..Default::default()
            }),
        };
        self.command(op, payload, Some(slot), headers)
    }

    /// A get of cart `slot`, written or not: the echo limit sends these to measure a
    /// bare round trip of exactly the size of a cart get.
    pub fn get_request(&self, slot: Option<usize>) -> Request {
        let slot_or_zero = slot.unwrap_or(0);
        let payload = self.encode(&v1::GetCartRequest {
            project_id: self.config.project_id,
            user_id: self.user(slot_or_zero),
            // The user's current cart always exists: the fallback before any write.
            cart_id: slot.map(|s| self.cart(s)).unwrap_or_default(),
            ..Default::default()
        });
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", self.config.encoding.content_type());
        Request {
            op: Op::Get,
            subject: self.subjects[Op::Get.index()].clone(),
            headers,
            payload,
            cart: None,
        }
    }

    /// A random slot for a get.
    pub fn random_slot(&self, rng: &mut fastrand::Rng) -> usize {
        rng.usize(0..self.slots())
    }

    /// A random written slot: the first written one at or after a random start, or None
    /// when nothing is written yet. After a few seconds of commands nearly every slot is
    /// written, so the scan is short.
    fn written_slot(&self, rng: &mut fastrand::Rng) -> Option<usize> {
        let start = self.random_slot(rng);
        let n = self.slots();
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&s| self.written[s].load(Ordering::Relaxed))
    }

    /// One put on a cart nobody used before: cart `c0` of user `m{n}` of this run.
    pub fn fresh_cart_put(&self, n: u64, rng: &mut fastrand::Rng) -> Request {
        let payload = self.encode(&v1::PutItemRequest {
            project_id: self.config.project_id,
            user_id: format!("bench-{}-m{n}", self.config.run_tag),
            cart_id: "c0".to_owned(),
            sku: self.sku(rng).to_owned(),
            quantity: 1,
            ..Default::default()
        });
        self.command(Op::Put, payload, None, self.default_headers())
    }

    fn command(
        &self,
        op: Op,
        payload: Bytes,
        cart: Option<usize>,
        with: CommandHeaders,
    ) -> Request {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", self.config.encoding.content_type());
        // A fresh idempotency key per command, as a real client sends, so every command
        // also writes (and first looks up) its ledger row; without it the service keeps
        // no ledger row, which is what the "without ids" phase measures.
        if with.command_id {
            headers.insert(COMMAND_ID_HEADER, uuid::Uuid::new_v4().to_string().as_str());
        }
        // Only when asked: a run without `--reply` sends what every earlier run sent.
        if with.reply == ReplyMode::Minimal {
            headers.insert(REPLY_HEADER, ReplyMode::Minimal.as_str());
        }
        Request {
            op,
            subject: self.subjects[op.index()].clone(),
            headers,
            payload,
            cart,
        }
    }

    fn encode<M: prost::Message + serde::Serialize>(&self, message: &M) -> Bytes {
        cart_proto::encode(message, self.config.encoding).into()
    }

    /// Mean encoded body size per operation, from a sample of requests.
    pub fn mean_body_sizes(&self, rng: &mut fastrand::Rng) -> [f64; 5] {
        const SAMPLE: usize = 200;
        Op::ALL.map(|op| {
            let total: usize = (0..SAMPLE)
                .map(|_| match op {
                    Op::Get => self.get_request(Some(self.random_slot(rng))),
                    _ => self.request(op, rng),
                })
                .map(|r| r.payload.len())
                .sum();
            total as f64 / SAMPLE as f64
        })
    }
}

/// The SKUs of `project_id` in a catalog file (deploy/catalog.json's format).
pub fn catalog_skus(path: &std::path::Path, project_id: u64) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct File {
        projects: Vec<Project>,
    }
    #[derive(serde::Deserialize)]
    struct Project {
        project_id: u64,
        items: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        sku: String,
    }
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let file: File =
        serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))?;
    let skus: Vec<String> = file
        .projects
        .into_iter()
        .filter(|p| p.project_id == project_id)
        .flat_map(|p| p.items.into_iter().map(|i| i.sku))
        .collect();
    if skus.is_empty() {
        bail!(
            "{} lists no items for project {project_id}; pass --skus",
            path.display()
        );
    }
    Ok(skus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_print_and_pick_by_weight() {
        let mix: Mix = "fill=30,put=30,delete=10,get=25,clear=5".parse().unwrap();
        assert_eq!(mix.to_string(), "fill=30,put=30,delete=10,clear=5,get=25");
        assert_eq!(
            mix.commands_only().unwrap().to_string(),
            "fill=30,put=30,delete=10,clear=5"
        );
        assert!(Mix::only(Op::Get).commands_only().is_none());
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0u32; 5];
        for _ in 0..100_000 {
            counts[mix.pick(&mut rng).index()] += 1;
        }
        // fill 30 %, get 25 %, clear 5 %, within a loose tolerance.
        assert!(
            (29_000..31_000).contains(&counts[Op::Fill.index()]),
            "{counts:?}"
        );
        assert!(
            (24_000..26_000).contains(&counts[Op::Get.index()]),
            "{counts:?}"
        );
        assert!(
            (4_500..5_500).contains(&counts[Op::Clear.index()]),
            "{counts:?}"
        );
        for bad in ["", "fill=0", "fill", "fill=x", "checkout=5", "get=-1"] {
            assert!(bad.parse::<Mix>().is_err(), "{bad:?}");
        }
    }

    fn workload(encoding: Encoding) -> Workload {
        workload_replying(encoding, ReplyMode::Full)
    }

    fn workload_replying(encoding: Encoding, reply: ReplyMode) -> Workload {
        Workload::new(WorkloadConfig {
            subject_prefix: "cart.v1".into(),
            project_id: 44056,
            encoding,
            reply,
            run_tag: "t1".into(),
            users: 10,
            carts_per_user: 3,
            skus: vec!["cup01".into(), "gold".into()],
        })
        .unwrap()
    }

    #[test]
    fn requests_decode_as_the_service_would() {
        for encoding in [Encoding::Protobuf, Encoding::Json] {
            let w = workload(encoding);
            let mut rng = fastrand::Rng::with_seed(1);
            for op in Op::ALL {
                for _ in 0..50 {
                    let r = w.request(op, &mut rng);
                    assert_eq!(r.op, op);
                    let decoded = cart_proto::request::decode(op.endpoint(), encoding, &r.payload)
                        .unwrap_or_else(|e| panic!("{op:?} {encoding:?}: {}", e.message()));
                    assert!(decoded.scope.user.as_str().starts_with("bench-t1-u"));
                    assert_eq!(r.headers.get(COMMAND_ID_HEADER).is_some(), op.is_command());
                    assert_eq!(
                        r.subject.as_str(),
                        format!("cart.v1.{}", op.endpoint().subject())
                    );
                }
            }
            let put = w.fresh_cart_put(12, &mut rng);
            let decoded =
                cart_proto::request::decode(Endpoint::PutItem, encoding, &put.payload).unwrap();
            assert_eq!(decoded.scope.user.as_str(), "bench-t1-m12");
        }
    }

    #[test]
    fn commands_ask_for_the_minimal_reply_only_when_told() {
        let mut rng = fastrand::Rng::with_seed(5);
        for (reply, header) in [
            (ReplyMode::Full, None),
            (ReplyMode::Minimal, Some("minimal")),
        ] {
            let w = workload_replying(Encoding::Protobuf, reply);
            for op in Op::ALL {
                let r = w.request(op, &mut rng);
                let sent = r.headers.get(REPLY_HEADER).map(|v| v.as_str());
                let expected = if op.is_command() { header } else { None };
                assert_eq!(sent, expected, "{op:?} {reply:?}");
            }
            let put = w.fresh_cart_put(1, &mut rng);
            assert_eq!(put.headers.get(REPLY_HEADER).map(|v| v.as_str()), header);
        }
    }

    #[test]
    fn a_phase_can_send_commands_without_ids_and_switch_the_reply() {
        let w = workload(Encoding::Protobuf);
        let mut rng = fastrand::Rng::with_seed(9);
        let bare = CommandHeaders {
            reply: ReplyMode::Minimal,
            command_id: false,
        };
        for op in Op::ALL {
            let r = w.request_with(op, &mut rng, bare);
            assert!(r.headers.get(COMMAND_ID_HEADER).is_none(), "{op:?}");
            let reply = r.headers.get(REPLY_HEADER).map(|v| v.as_str());
            assert_eq!(reply, op.is_command().then_some("minimal"), "{op:?}");
            // The body does not depend on the headers.
            cart_proto::request::decode(op.endpoint(), Encoding::Protobuf, &r.payload).unwrap();
        }
        assert_eq!(
            w.default_headers(),
            CommandHeaders {
                reply: ReplyMode::Full,
                command_id: true
            }
        );
    }

    #[test]
    fn gets_read_written_carts_and_fall_back_to_the_current_cart() {
        let w = workload(Encoding::Json);
        let mut rng = fastrand::Rng::with_seed(3);
        let get = w.request(Op::Get, &mut rng);
        let body: serde_json::Value = serde_json::from_slice(&get.payload).unwrap();
        assert_eq!(body["cart_id"], "");
        w.mark_written(3 * 4 + 2);
        for _ in 0..20 {
            let get = w.request(Op::Get, &mut rng);
            let body: serde_json::Value = serde_json::from_slice(&get.payload).unwrap();
            assert_eq!(
                (body["user_id"].as_str(), body["cart_id"].as_str()),
                (Some("bench-t1-u4"), Some("c2"))
            );
        }
    }

    #[test]
    fn the_demo_catalog_has_skus() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/catalog.json"
        ));
        let skus = catalog_skus(path, 44056).unwrap();
        assert!(skus.iter().any(|s| s == "cup01"), "{skus:?}");
        assert!(catalog_skus(path, 1).is_err());
    }
}
