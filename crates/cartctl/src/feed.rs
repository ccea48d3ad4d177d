//! `cartctl events ...` and `cartctl projections ...`: the event history for analysts and
//! operators. Export and rebuild read PostgreSQL directly; status asks the service.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cart_domain::{CartId, ProjectId, UserId};
use cart_proto::view::AmountFormat;
use cart_store::export::{self, Format, LogPosition, Logs, Start, Stored};
use cart_store::feed::Log;
use cart_store::{Filter, Position, StreamKey};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Global;

#[derive(Debug, Args)]
pub(crate) struct Database {
    /// PostgreSQL URL of the service's database.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/cart"
    )]
    pub(crate) database_url: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// Write the history of the cart log, the order log or both in their global order,
    /// then print the position to resume after. Reads PostgreSQL (the source of truth),
    /// not JetStream.
    // Boxed: its flags make it far larger than the other variant.
    Export(Box<ExportArgs>),
    /// Restore the cart log of a JSON Lines export (--log carts) into an empty database,
    /// all or nothing; then run `projections rebuild`. Reads and writes PostgreSQL only.
    Import(crate::import::ImportArgs),
    /// The relays' checkpoints and lag and where each log ends, as the service reports
    /// them.
    Status,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    db: Database,
    /// carts (the default: the cart log alone, as before orders were exported), orders,
    /// or all (both, interleaved by transaction: docs/events.md).
    #[arg(long, value_enum, default_value_t = LogArg::Carts)]
    log: LogArg,
    /// Start after this position, as printed by a previous export with the same --log:
    /// `<tx_id>:<global_position>`, or with --log all `<log>:<tx_id>:<global_position>`
    /// (a line's log and `position`, e.g. orders:905:12).
    #[arg(long, conflicts_with = "since")]
    after: Option<String>,
    /// Start with the first event recorded at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only this project.
    #[arg(long)]
    project_id: Option<u64>,
    /// Only one cart, with --project-id and --cart-id: its user (cart log only).
    #[arg(long, requires_all = ["project_id", "cart_id"])]
    user_id: Option<String>,
    /// Only one cart, with --project-id and --user-id: its cart id (cart log only).
    #[arg(long, requires_all = ["project_id", "user_id"])]
    cart_id: Option<String>,
    /// Only one order, with --project-id: its order id (order log only).
    #[arg(long, requires = "project_id", conflicts_with = "cart_id")]
    order_id: Option<u64>,
    /// Only these event types, of either log (repeat the flag for several).
    #[arg(long = "event-type")]
    event_types: Vec<String>,
    /// jsonl: one JSON envelope per line; protobuf: length-delimited cart.v1.EventEnvelope
    /// (--log orders: cart.v1.OrderEventEnvelope; --log all: cart.v1.ExportRecord).
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    format: ExportFormat,
    /// Decimals of the money strings in order events, as the service's.
    #[arg(
        long,
        env = "CART_AMOUNT_SCALE",
        default_value_t = 2,
        value_parser = clap::value_parser!(u32).range(0..=16)
    )]
    amount_scale: u32,
    /// A logical backup: each order line (jsonl) also carries the event as the log stores
    /// it, which `events import` needs to restore orders. Such a file holds payment tokens
    /// and sealed personal fields: keep it as you keep backups, never give it to analytics.
    #[arg(long)]
    restorable: bool,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogArg {
    Carts,
    Orders,
    All,
}

impl LogArg {
    fn logs(self) -> Logs {
        match self {
            LogArg::Carts => Logs::Carts,
            LogArg::Orders => Logs::Orders,
            LogArg::All => Logs::All,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Protobuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectionsCommand {
    /// Rebuild the cart projection from the log into a new table while the live one
    /// serves, then switch to it atomically.
    Rebuild {
        #[command(flatten)]
        db: Database,
    },
}

pub(crate) async fn events(g: &Global, command: &EventsCommand) -> anyhow::Result<i32> {
    match command {
        EventsCommand::Export(args) => export_events(args).await,
        EventsCommand::Import(args) => crate::import::run(args).await,
        EventsCommand::Status => status(g).await,
    }
}

/// Opens a small pool on the service's database, after one direct connection: a pool
/// retries a refused connection until its acquire timeout and then says only "pool
/// timed out", while a direct one fails at once with the cause ("Connection refused", a
/// refused password, a missing database).
pub(crate) async fn connect(db: &Database) -> anyhow::Result<sqlx::PgPool> {
    use sqlx::{ConnectOptions, Connection};
    const WAIT: Duration = Duration::from_secs(10);
    let context = || format!("connect to PostgreSQL at {}", db.database_url);
    let options: sqlx::postgres::PgConnectOptions =
        db.database_url.parse().with_context(context)?;
    let first = tokio::time::timeout(WAIT, options.connect())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {WAIT:?}"))
        .with_context(context)?
        .with_context(context)?;
    first.close().await.with_context(context)?;
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(WAIT)
        .connect_lazy_with(options))
}

fn filter(args: &ExportArgs) -> anyhow::Result<Filter> {
    let logs = args.log.logs();
    let project_id = args
        .project_id
        .map(|p| ProjectId::parse(p).context("--project-id"))
        .transpose()?;
    let cart = match (&project_id, &args.user_id, &args.cart_id) {
        (Some(project), Some(user), Some(cart)) => {
            let user = UserId::parse(user.clone()).context("--user-id")?;
            let cart = CartId::parse(cart.clone()).context("--cart-id")?;
            Some(StreamKey::new(*project, user, cart).stream_id())
        }
        _ => None,
    };
    let order = project_id
        .zip(args.order_id)
        .map(|(project, order)| cart_store::orders::order_stream_id(project, order));
    // A stream filter names one stream of one log; in another log it would match nothing.
    if cart.is_some() && logs != Logs::Carts {
        bail!("--user-id and --cart-id select a cart, in the cart log: use --log carts");
    }
    if order.is_some() && logs != Logs::Orders {
        bail!("--order-id selects an order, in the order log: use --log orders");
    }
    for t in &args.event_types {
        let cart_type = cart_proto::event::current_schema_version(t).is_some();
        let order_type = cart_proto::order::EVENT_TYPES.contains(&t.as_str());
        if !((cart_type && logs.has(Log::Carts)) || (order_type && logs.has(Log::Orders))) {
            bail!(
                "{t:?} is no event type of --log {}: cart events are CartOpened, ItemQuantitySet, \
                 ItemRemoved, CartCleared, PromoCodeRedeemed, PromoCodeRemoved; order events \
                 (--log orders or all) are {}",
                logs_name(args.log),
                cart_proto::order::EVENT_TYPES.join(", ")
            );
        }
    }
    Ok(Filter {
        project_id: project_id.map(|p| i64::try_from(p.get()).unwrap_or(i64::MAX)),
        stream_id: cart.or(order),
        event_types: args.event_types.clone(),
        since: None,
    })
}

fn logs_name(log: LogArg) -> &'static str {
    match log {
        LogArg::Carts => "carts",
        LogArg::Orders => "orders",
        LogArg::All => "all",
    }
}

/// Where the export starts: `--since`, `--after` (tagged with its log for --log all),
/// or the start of the log(s).
fn start(args: &ExportArgs) -> anyhow::Result<Start> {
    if let Some(t) = &args.since {
        return Ok(Start::Since(t.clone()));
    }
    let Some(after) = &args.after else {
        return Ok(match args.log {
            LogArg::All => Start::AfterEvent(LogPosition {
                log: Log::Orders,
                position: Position::default(),
            }),
            _ => Start::After(Position::default()),
        });
    };
    if let Ok(event) = after.parse::<LogPosition>() {
        // A combined export's position starts any export: the events after it.
        return Ok(Start::AfterEvent(event));
    }
    match (args.log, after.parse::<Position>()) {
        (LogArg::All, Ok(_)) => bail!(
            "--after {after}: with --log all, name the log of the position, as the export \
             printed it: carts:{after} or orders:{after}"
        ),
        (_, Ok(position)) => Ok(Start::After(position)),
        (_, Err(e)) => Err(anyhow::Error::new(e).context(format!("--after {after}"))),
    }
}

fn bar(total: Option<u64>, what: &str) -> ProgressBar {
    // Only on a terminal: a pipe or a log file gets the summary line alone.
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(&format!(
        "{what} {{bar:40}} {{pos}}/{{len}} events ({{per_sec}}, {{eta}} left)"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

async fn export_events(args: &ExportArgs) -> anyhow::Result<i32> {
    let filter = filter(args)?;
    let start = start(args)?;
    let logs = args.log.logs();
    let format = match args.format {
        ExportFormat::Jsonl => Format::JsonLines,
        ExportFormat::Protobuf => Format::Protobuf,
    };
    let amounts = AmountFormat {
        scale: args.amount_scale,
    };
    let stored = match (args.restorable, format) {
        (false, _) => Stored::Omit,
        (true, Format::JsonLines) => Stored::Include,
        (true, Format::Protobuf) => {
            anyhow::bail!("--restorable: `events import` reads jsonl; export with --format jsonl")
        }
    };
    let pool = connect(&args.db).await?;
    let total = if std::io::stderr().is_terminal() {
        Some(export::count_logs(&pool, logs, &start, &filter).await?)
    } else {
        None
    };
    let bar = bar(total, "exporting");
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(path).with_context(|| format!("create {}", path.display()))?,
        )),
        None => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
    };
    let started = Instant::now();
    let written = export::export_logs(
        &pool,
        logs,
        &start,
        &filter,
        (format, amounts, stored),
        &mut out,
        |n| bar.set_position(n),
    )
    .await;
    let exported = match written {
        Ok(exported) => exported,
        // The reader went away (`| head`): nothing more to say to it.
        Err(export::ExportError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(0)
        }
        Err(e) => return Err(e.into()),
    };
    drop(out);
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    // A combined export resumes after an event of one log; one log, after its position.
    let last = match logs {
        Logs::All => exported.last.to_string(),
        Logs::Carts | Logs::Orders => exported.last.position.to_string(),
    };
    eprintln!(
        "exported {} events in {seconds:.2} s ({:.0} events/s); last position {last} (resume with --after {last})",
        exported.events,
        exported.events as f64 / seconds.max(1e-9),
    );
    Ok(0)
}

async fn status(g: &Global) -> anyhow::Result<i32> {
    let client = async_nats::ConnectOptions::new()
        .name("cartctl")
        .request_timeout(Some(Duration::from_secs(g.timeout)))
        .connect(cart_nats::servers(&g.nats_url)?.as_slice())
        .await
        .with_context(|| format!("connect to NATS at {}", g.nats_url))?;
    let subject = format!("{}.feed.status", g.subject_prefix);
    let mut headers = async_nats::HeaderMap::new();
    crate::traced(g, &mut headers);
    let reply = client
        .request_with_headers(subject.clone(), headers, "{}".into())
        .await
        .with_context(|| format!("request {subject} (is cartd running? try `make run`)"))?;
    let status: serde_json::Value =
        serde_json::from_slice(&reply.payload).context("decode the status")?;
    crate::print_json(&status)?;
    Ok(0)
}

pub(crate) async fn projections(command: &ProjectionsCommand) -> anyhow::Result<i32> {
    let ProjectionsCommand::Rebuild { db } = command;
    let pool = connect(db).await?;
    let bar = bar(None, "folding");
    let started = Instant::now();
    let report = cart_store::rebuild_projection(&pool, |p| {
        bar.set_length(p.total);
        bar.set_position(p.events);
    })
    .await?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "rebuilt the cart projection: {} carts from {} events in {seconds:.2} s ({:.0} events/s); switched; {} rows differed from the live projection",
        report.streams,
        report.events,
        report.events as f64 / seconds.max(1e-9),
        report.differences
    );
    Ok(0)
}
