//! `cartctl events import`: the logical restore of the cart log from a JSON Lines export
//! into an empty database (migrated first), in one transaction; then `cartctl
//! projections rebuild` folds the projection from it (docs/operations.md, "Logical
//! backup"). The order log is not imported: an export does not carry what orders need
//! beside their events (payment tokens, unit holds), so orders come back only from a
//! physical backup.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cart_domain::{CartId, ProjectId, UserId};
use cart_proto::v1::event_envelope::Event;
use cart_store::import::{Import, ImportedEvent};
use cart_store::StreamKey;
use clap::Args;
use uuid::Uuid;

use crate::feed::{connect, Database};

/// Events written per statement.
const BATCH: usize = 1000;

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    db: Database,
    /// The export to read (JSON Lines of `cartctl events export`, the default --log
    /// carts); standard input when absent.
    #[arg(long, short)]
    input: Option<PathBuf>,
}

/// The stored form of one export line, or why the line cannot be imported.
fn event_of(line: &str) -> anyhow::Result<ImportedEvent> {
    let raw: serde_json::Value = serde_json::from_str(line).context("not JSON")?;
    if raw.get("order_id").is_some() {
        bail!(
            "an order-log event ({}): import restores the cart log only (export it with --log \
             carts); orders come back from a physical backup",
            raw.get("event_type")
                .and_then(|t| t.as_str())
                .unwrap_or("?")
        );
    }
    let envelope =
        cart_proto::event::envelope_from_json(line.as_bytes()).context("not an event envelope")?;
    let Some(schema_version) = cart_proto::event::current_schema_version(&envelope.event_type)
    else {
        bail!("unknown cart event type {:?}", envelope.event_type);
    };
    let payload = match &envelope.event {
        Some(Event::CartOpened(m)) => serde_json::to_value(m),
        Some(Event::ItemQuantitySet(m)) => serde_json::to_value(m),
        Some(Event::ItemRemoved(m)) => serde_json::to_value(m),
        Some(Event::CartCleared(m)) => serde_json::to_value(m),
        Some(Event::PromoCodeRedeemed(m)) => serde_json::to_value(m),
        Some(Event::PromoCodeRemoved(m)) => serde_json::to_value(m),
        None => bail!("no event member for {:?}", envelope.event_type),
    }?;
    // What the service would fold: an event it cannot read is refused now, not at the
    // first read of that cart.
    cart_proto::event::decode(&envelope.event_type, schema_version, payload.clone())
        .context("an event the service cannot fold")?;
    let project = u64::try_from(envelope.project_id)
        .ok()
        .and_then(|p| ProjectId::parse(p).ok())
        .context("bad project_id")?;
    let key = StreamKey::new(
        project,
        UserId::parse(envelope.user_id.clone()).context("bad user_id")?,
        CartId::parse(envelope.cart_id.clone()).context("bad cart_id")?,
    );
    // Read here, not by PostgreSQL, which would also take its own words (`yesterday`,
    // `epoch`, `infinity`) for a time.
    cart_domain::DateTime::parse(&envelope.recorded_at)
        .with_context(|| format!("recorded_at {:?}", envelope.recorded_at))?;
    let stream_id: Uuid = envelope.stream_id.parse().context("bad stream_id")?;
    if stream_id != key.stream_id() {
        bail!(
            "stream_id {stream_id} is not the stream of project {}, user {:?}, cart {:?}",
            envelope.project_id,
            envelope.user_id,
            envelope.cart_id
        );
    }
    Ok(ImportedEvent {
        event_id: envelope.event_id.parse().context("bad event_id")?,
        key,
        version: envelope.version,
        event_type: envelope.event_type.clone(),
        schema_version,
        payload,
        metadata: serde_json::json!({
            "user_id": envelope.user_id,
            "cart_id": envelope.cart_id,
            "imported_from": envelope.position,
        }),
        recorded_at: envelope.recorded_at,
    })
}

pub(crate) async fn run(args: &ImportArgs) -> anyhow::Result<i32> {
    let url = args.db.database_url.as_str();
    cart_store::ensure_database(url)
        .await
        .with_context(|| format!("create the database at {url}"))?;
    let config = cart_store::DbConfig {
        url: url.to_owned(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
    };
    cart_store::connect(&config)
        .await
        .with_context(|| format!("migrate the database at {url}"))?
        .close()
        .await;
    let input: Box<dyn BufRead> = match &args.input {
        Some(path) => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("open {}", path.display()))?,
        )),
        None => Box::new(BufReader::new(std::io::stdin().lock())),
    };
    let pool = connect(&args.db).await?;
    let started = Instant::now();
    let mut import = Import::begin(&pool).await?;
    let mut batch = Vec::with_capacity(BATCH);
    for (n, line) in input.lines().enumerate() {
        let line = line.context("read the export")?;
        if line.trim().is_empty() {
            continue;
        }
        let event = event_of(&line).with_context(|| format!("line {}: nothing imported", n + 1))?;
        batch.push(event);
        if batch.len() == BATCH {
            import.add(&batch).await.context("nothing imported")?;
            batch.clear();
        }
    }
    import.add(&batch).await.context("nothing imported")?;
    let report = import.commit().await?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "imported {} events of {} carts in {seconds:.2} s; next: `cartctl projections rebuild` \
         to fold the cart projection",
        report.events, report.streams
    );
    Ok(0)
}
