//! `cartctl events import`: the logical restore of an export (JSON Lines of `cartctl
//! events export`, `--log carts`, `orders` or `all`) into an empty database (migrated
//! first), in one transaction; the order store's rows are rebuilt from the imported
//! order log before the commit, and `cartctl projections rebuild` folds the cart
//! projection afterwards (docs/operations.md, "Logical backup"). The lines are read by
//! `cart_store::import::parse_line`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use cart_store::import::{parse_line, Import, ImportedLine};
use clap::Args;

use crate::feed::{connect, Database};

/// Events written per statement.
const BATCH: usize = 1000;

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    db: Database,
    /// The export to read (JSON Lines of `cartctl events export`, any --log); standard
    /// input when absent.
    #[arg(long, short)]
    input: Option<PathBuf>,
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
    // Each log's batch keeps the export's order; the logs are independent tables.
    let (mut carts, mut orders) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
    for (n, line) in input.lines().enumerate() {
        let line = line.context("read the export")?;
        if line.trim().is_empty() {
            continue;
        }
        let event =
            parse_line(&line).with_context(|| format!("line {}: nothing imported", n + 1))?;
        match event {
            ImportedLine::Cart(event) => carts.push(event),
            ImportedLine::Order(event) => orders.push(event),
        }
        if carts.len() == BATCH {
            import.add(&carts).await.context("nothing imported")?;
            carts.clear();
        }
        if orders.len() == BATCH {
            import
                .add_orders(&orders)
                .await
                .context("nothing imported")?;
            orders.clear();
        }
    }
    import.add(&carts).await.context("nothing imported")?;
    import
        .add_orders(&orders)
        .await
        .context("nothing imported")?;
    let report = import.commit().await.context("nothing imported")?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "imported {} events ({} cart events of {} carts, {} order events of {} orders) in \
         {seconds:.2} s; next: `cartctl projections rebuild` to fold the cart projection",
        report.events + report.order_events,
        report.events,
        report.streams,
        report.order_events,
        report.orders
    );
    Ok(0)
}
