//! cartctl: fill and read carts from the command line over NATS; export the event
//! history and rebuild projections from PostgreSQL.

mod catalog;
mod feed;
mod import;
mod migrate;
mod order;
mod promocode;
mod users;
mod webhook;

use std::time::Duration;

use anyhow::{bail, Context};
use async_nats::HeaderMap;
use cart_proto::{v1, ErrorReply};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use prost::Message;

/// Command-line client of the cart service.
#[derive(Debug, Parser)]
#[command(name = "cartctl", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// NATS server URL, or several separated by commas (seeds of a cluster: the client
    /// reconnects to another one when its server goes away).
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub(crate) nats_url: String,
    /// Subject prefix of the service's endpoints.
    #[arg(
        long,
        env = "CART_SUBJECT_PREFIX",
        default_value = "cart.v1",
        global = true
    )]
    pub(crate) subject_prefix: String,
    /// Project id (44056 is the demo catalog's project).
    #[arg(long, env = "CART_PROJECT", default_value_t = 44056, global = true)]
    pub(crate) project: u64,
    /// The user whose cart to use.
    #[arg(long, env = "CART_USER", default_value = "demo-user", global = true)]
    pub(crate) user: String,
    /// A cart id; without it, the user's current cart.
    #[arg(long, global = true)]
    pub(crate) cart: Option<String>,
    /// Currency of the prices in the reply (ISO 4217).
    #[arg(long, global = true)]
    pub(crate) currency: Option<String>,
    /// Language of names and descriptions in the reply (ISO 639-1).
    #[arg(long, global = true)]
    locale: Option<String>,
    /// Idempotency key of a command; a fresh one is made when absent, so resending the
    /// same command with the same key never applies it twice.
    #[arg(long, global = true)]
    pub(crate) command_id: Option<String>,
    /// Send and receive protobuf instead of JSON (the reply is still printed as JSON).
    #[arg(long, global = true)]
    protobuf: bool,
    /// Cart commands only: ask for the minimal reply (`Cart-Reply: minimal`), the cart's
    /// id, its new version and any warnings, instead of the whole priced cart.
    #[arg(long, global = true)]
    minimal: bool,
    /// The service name the instances answer $SRV requests under.
    #[arg(long, env = "CART_SERVICE_NAME", default_value = "cart", global = true)]
    pub(crate) service_name: String,
    /// Seconds to wait for a reply.
    #[arg(long, default_value_t = 5, global = true)]
    pub(crate) timeout: u64,
    /// Print the trace id of the request (every request carries a fresh `traceparent`),
    /// to find its trace in the collector.
    #[arg(long, global = true)]
    pub(crate) trace: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the cart, now or as it was (time travel).
    Get {
        /// The cart as it was after the event with this version (1 is the first).
        #[arg(long, conflicts_with = "at_time")]
        at_version: Option<i64>,
        /// The cart as it was at this time (RFC 3339, e.g. 2026-11-22T10:00:00Z).
        #[arg(long)]
        at_time: Option<String>,
    },
    /// Set the quantities of several SKUs at once: `fill cup01=2 gold=10`.
    Fill {
        /// SKU=QUANTITY pairs; quantity 0 removes the line.
        #[arg(required = true)]
        items: Vec<String>,
        /// Empty the cart first, in the same change.
        #[arg(long)]
        replace: bool,
    },
    /// Set one SKU's quantity (0 removes it).
    Put { sku: String, quantity: i64 },
    /// Remove one SKU's line.
    Delete { sku: String },
    /// Remove every line.
    Clear,
    /// Show a running instance's endpoints ($SRV.INFO; the first instance to answer).
    Info,
    /// The event feed: export the history, see the relay's state.
    #[command(subcommand)]
    Events(feed::EventsCommand),
    /// The service's projections.
    #[command(subcommand)]
    Projections(feed::ProjectionsCommand),
    /// The catalog in PostgreSQL: import, export, read and its change log.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Promo codes: redeem and remove on the cart, rewards and verify of a code.
    #[command(subcommand)]
    Promocode(promocode::PromoCodeCommand),
    /// Turn the cart (or, with --item, one item) into an order; prints its id and token.
    Checkout(order::CheckoutArgs),
    /// Confirm an order's payment, as a payment provider would.
    Pay(order::PayArgs),
    /// Refund a paid order (paid or done -> canceled).
    Cancel(order::CancelArgs),
    /// The user's orders: get one, search.
    #[command(subcommand)]
    Order(order::OrderCommand),
    /// Webhooks: a project's settings (served by cart-webhook) and a local receiver.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Apply the database migrations (once per rollout), or with --check only tell
    /// whether they are applied. Reads PostgreSQL only.
    Migrate(migrate::MigrateArgs),
    /// Users' personal data: erase (reads and writes PostgreSQL).
    #[command(subcommand)]
    Users(users::UsersCommand),
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = parse();
    match run(cli).await {
        Ok(code) => std::process::exit(code),
        // A reader that went away (`cartctl checkout | head -3`) ends the command quietly,
        // as it ends `cat`.
        Err(e) if is_broken_pipe(&e) => std::process::exit(0),
        Err(e) => {
            eprintln!("cartctl: {}", cart_store::error_chain(&*e));
            std::process::exit(2);
        }
    }
}

/// Subcommands that use only some of the global flags, and the ones they use. The
/// others are left out of their `--help` and refused when given on the command line
/// (an environment variable such as `CART_PROJECT` is the shell's, not a request, and is
/// not refused). `events export`, `events import` and `projections rebuild` read PostgreSQL: no NATS, no
/// cart; `events status` asks the service over NATS about no cart.
const GLOBALS_USED: [(&str, &str, &[&str]); 5] = [
    ("users", "erase", &["project", "user"]),
    ("events", "export", &[]),
    ("events", "import", &[]),
    ("projections", "rebuild", &[]),
    (
        "events",
        "status",
        &["nats_url", "subject_prefix", "timeout", "trace"],
    ),
];

/// Parses the command line as `Cli::parse` would, with the global flags of
/// [`GLOBALS_USED`] restricted.
fn parse() -> Cli {
    let mut command = Cli::command();
    let globals: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    let unused = |used: &[&str]| -> Vec<clap::Arg> {
        globals
            .iter()
            .filter(|a| !used.contains(&a.get_id().as_str()))
            .cloned()
            .collect()
    };
    // A subcommand that has an argument of a global's id does not get the global: a
    // hidden, local copy takes its place, so it parses the same but shows in no help.
    for (group, name, used) in GLOBALS_USED {
        let hidden = unused(used).into_iter().map(|a| a.global(false).hide(true));
        command = command.mut_subcommand(group, |g| g.mut_subcommand(name, |c| c.args(hidden)));
    }
    let matches = command.clone().get_matches();
    for (group, name, used) in GLOBALS_USED {
        let Some(leaf) = matches
            .subcommand_matches(group)
            .and_then(|m| m.subcommand_matches(name))
        else {
            continue;
        };
        let given = |id: &str| {
            [&matches, leaf]
                .iter()
                .any(|m| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        };
        if let Some(arg) = unused(used)
            .into_iter()
            .find(|a| given(a.get_id().as_str()))
        {
            let flag = arg.get_long().unwrap_or_default();
            let hint = match (name, flag) {
                ("export", "project" | "user" | "cart") => {
                    format!("; to export one project or cart, use --{flag}-id")
                }
                _ => String::new(),
            };
            let message = format!("--{flag} does not apply to `cartctl {group} {name}`{hint}");
            let kind = clap::error::ErrorKind::ArgumentConflict;
            // Built, so that the error's usage line names the whole command.
            command.build();
            match command
                .find_subcommand_mut(group)
                .and_then(|g| g.find_subcommand_mut(name))
            {
                Some(leaf) => leaf.error(kind, message).exit(),
                None => command.error(kind, message).exit(),
            }
        }
    }
    require_explicit(&mut command, &matches);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// `users erase` cannot be undone: its user and project come from the command line,
/// never from a default or the environment (`CART_USER`, `CART_PROJECT`).
fn require_explicit(command: &mut clap::Command, matches: &clap::ArgMatches) {
    let Some(leaf) = matches
        .subcommand_matches("users")
        .and_then(|m| m.subcommand_matches("erase"))
    else {
        return;
    };
    for id in ["project", "user"] {
        let given = [matches, leaf]
            .iter()
            .any(|m| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine));
        if !given {
            command.build();
            let message = format!("`cartctl users erase` needs --{id} on the command line");
            let kind = clap::error::ErrorKind::MissingRequiredArgument;
            match command
                .find_subcommand_mut("users")
                .and_then(|g| g.find_subcommand_mut("erase"))
            {
                Some(leaf) => leaf.error(kind, message).exit(),
                None => command.error(kind, message).exit(),
            }
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints a value as pretty JSON on stdout. Unlike `println!`, which panics when stdout
/// is a closed pipe, a failed write is an error for `main`.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

fn scope(g: &Global) -> (u64, String, String, String, String) {
    (
        g.project,
        g.user.clone(),
        g.cart.clone().unwrap_or_default(),
        g.currency.clone().unwrap_or_default(),
        g.locale.clone().unwrap_or_default(),
    )
}

fn parse_items(items: &[String]) -> anyhow::Result<Vec<v1::FillItem>> {
    items
        .iter()
        .map(|pair| {
            let (sku, quantity) = pair
                .split_once('=')
                .with_context(|| format!("{pair:?} is not SKU=QUANTITY"))?;
            let quantity = quantity
                .parse()
                .with_context(|| format!("{quantity:?} is not a whole number"))?;
            Ok(v1::FillItem {
                sku: sku.to_owned(),
                quantity,
            })
        })
        .collect()
}

/// Builds the request body in JSON or protobuf.
fn body(cli: &Cli) -> anyhow::Result<(&'static str, Vec<u8>)> {
    let (project_id, user_id, cart_id, currency, locale) = scope(&cli.global);
    let pb = cli.global.protobuf;
    fn out<M: Message + serde::Serialize>(pb: bool, m: M) -> Vec<u8> {
        if pb {
            m.encode_to_vec()
        } else {
            serde_json::to_vec(&m).unwrap_or_default()
        }
    }
    Ok(match &cli.command {
        Command::Get {
            at_version,
            at_time,
        } => (
            "get",
            out(
                pb,
                v1::GetCartRequest {
                    project_id,
                    user_id,
                    cart_id,
                    currency,
                    locale,
                    at_version: *at_version,
                    at_time: at_time.clone().unwrap_or_default(),
                    country: String::new(),
                },
            ),
        ),
        Command::Fill { items, replace } => (
            "fill",
            out(
                pb,
                v1::FillRequest {
                    project_id,
                    user_id,
                    cart_id,
                    currency,
                    locale,
                    items: parse_items(items)?,
                    replace: *replace,
                    country: String::new(),
                },
            ),
        ),
        Command::Put { sku, quantity } => (
            "item.put",
            out(
                pb,
                v1::PutItemRequest {
                    project_id,
                    user_id,
                    cart_id,
                    currency,
                    locale,
                    sku: sku.clone(),
                    quantity: *quantity,
                    country: String::new(),
                },
            ),
        ),
        Command::Delete { sku } => (
            "item.delete",
            out(
                pb,
                v1::DeleteItemRequest {
                    project_id,
                    user_id,
                    cart_id,
                    currency,
                    locale,
                    sku: sku.clone(),
                    country: String::new(),
                },
            ),
        ),
        Command::Clear => (
            "clear",
            out(
                pb,
                v1::ClearRequest {
                    project_id,
                    user_id,
                    cart_id,
                    currency,
                    locale,
                    country: String::new(),
                },
            ),
        ),
        Command::Promocode(command) => promocode::body(command, scope(&cli.global), pb)?,
        Command::Info
        | Command::Events(_)
        | Command::Projections(_)
        | Command::Catalog(_)
        | Command::Checkout(_)
        | Command::Pay(_)
        | Command::Cancel(_)
        | Command::Order(_)
        | Command::Webhook(_)
        | Command::Migrate(_)
        | Command::Users(_) => {
            bail!("not a cart request")
        }
    })
}

/// Prints an error reply (any reply with the service error header) on stderr; true if
/// it was one.
pub(crate) fn print_refusal(reply: &async_nats::Message) -> bool {
    let is_error = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::service::NATS_SERVICE_ERROR_CODE))
        .is_some();
    if is_error {
        match ErrorReply::from_body(&reply.payload) {
            Some(e) => eprintln!("error {}: {}", e.status, e.message()),
            None => eprintln!("error: {}", String::from_utf8_lossy(&reply.payload)),
        }
    }
    is_error
}

/// Starts a trace for one request: a fresh, sampled `traceparent` in its headers, which
/// the service continues; with `--trace`, its trace id on stderr.
pub(crate) fn traced(g: &Global, headers: &mut HeaderMap) {
    let trace = cart_telemetry::new_traceparent();
    cart_telemetry::inject_nats_traceparent(&trace, headers);
    if g.trace {
        if let Some(id) = trace.trace_id() {
            eprintln!("trace id: {id}");
        }
    }
}

/// A NATS connection with the global timeouts.
pub(crate) async fn connect(g: &Global) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name("cartctl")
        .connection_timeout(Duration::from_secs(g.timeout))
        .request_timeout(Some(Duration::from_secs(g.timeout)))
        .connect(cart_nats::servers(&g.nats_url)?.as_slice())
        .await
        .with_context(|| format!("connect to NATS at {}", g.nats_url))
}

/// Sends a JSON request to `<prefix>.<endpoint>` and prints the reply as pretty JSON (a
/// refusal on stderr): 0, or 1 when refused. `serving` names what should answer.
pub(crate) async fn json_request(
    g: &Global,
    endpoint: &str,
    mut headers: HeaderMap,
    body: Vec<u8>,
    serving: &str,
) -> anyhow::Result<i32> {
    traced(g, &mut headers);
    let client = connect(g).await?;
    let subject = format!("{}.{endpoint}", g.subject_prefix);
    let reply = client
        .request_with_headers(subject.clone(), headers, body.into())
        .await
        .with_context(|| format!("request {subject} (is {serving} running?)"))?;
    if print_refusal(&reply) {
        return Ok(1);
    }
    let value: serde_json::Value =
        serde_json::from_slice(&reply.payload).context("the reply is not JSON")?;
    print_json(&value)?;
    Ok(0)
}

/// Whether `command` changes a cart (takes a command id and `--minimal`).
fn is_cart_command(command: &Command) -> bool {
    match command {
        Command::Fill { .. } | Command::Put { .. } | Command::Delete { .. } | Command::Clear => {
            true
        }
        Command::Promocode(command) => !command.is_query(),
        _ => false,
    }
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let g = &cli.global;
    if g.minimal && !is_cart_command(&cli.command) {
        bail!(
            "--minimal applies only to cart commands: fill, put, delete, clear, \
             promocode redeem and promocode remove"
        );
    }
    match &cli.command {
        Command::Events(command) => return feed::events(g, command).await,
        Command::Projections(command) => return feed::projections(command).await,
        Command::Migrate(args) => return migrate::run(args).await,
        Command::Catalog(command) => return catalog::run(g, command).await,
        Command::Webhook(command) => return webhook::run(g, command).await,
        Command::Users(command) => return users::run(g, command).await,
        Command::Checkout(a) => return order::run(g, order::OrderRequest::Checkout(a)).await,
        Command::Pay(a) => return order::run(g, order::OrderRequest::Pay(a)).await,
        Command::Cancel(a) => return order::run(g, order::OrderRequest::Cancel(a)).await,
        Command::Order(c) => return order::run(g, order::OrderRequest::Order(c)).await,
        _ => {}
    }
    let client = connect(g).await?;

    if matches!(cli.command, Command::Info) {
        let subject = format!("$SRV.INFO.{}", g.service_name);
        let reply = client
            .request(subject.clone(), "".into())
            .await
            .with_context(|| format!("no cart service answered {subject}"))?;
        let info: serde_json::Value = serde_json::from_slice(&reply.payload)?;
        print_json(&info)?;
        return Ok(0);
    }

    let (subject, payload) = body(&cli)?;
    let mut headers = HeaderMap::new();
    if g.protobuf {
        headers.insert("Content-Type", cart_proto::Encoding::PROTOBUF_CONTENT_TYPE);
    }
    if is_cart_command(&cli.command) {
        let id = g
            .command_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        headers.insert(cart_proto::COMMAND_ID_HEADER, id.as_str());
    }
    if g.minimal {
        headers.insert(
            cart_proto::REPLY_HEADER,
            cart_proto::ReplyMode::Minimal.as_str(),
        );
    }
    traced(g, &mut headers);
    let subject = format!("{}.{subject}", g.subject_prefix);
    let reply = client
        .request_with_headers(subject.clone(), headers, payload.into())
        .await
        .with_context(|| format!("request {subject} (is cartd running? try `make run`)"))?;

    if print_refusal(&reply) {
        return Ok(1);
    }
    let cart = if g.protobuf && g.minimal {
        serde_json::to_value(
            v1::MinimalReply::decode(reply.payload.as_ref()).context("decode protobuf reply")?,
        )?
    } else if let (true, Command::Promocode(command)) = (g.protobuf, &cli.command) {
        promocode::decode_reply(command, reply.payload.as_ref())?
    } else if g.protobuf {
        serde_json::to_value(
            v1::Cart::decode(reply.payload.as_ref()).context("decode protobuf reply")?,
        )?
    } else {
        serde_json::from_slice(&reply.payload).context("decode JSON reply")?
    };
    print_json(&cart)?;
    Ok(0)
}
