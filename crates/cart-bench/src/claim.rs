//! `cart-bench claim`: what one webhook claim costs at backlogs of 100, 10,000 and
//! 100,000 due deliveries (issue 16: "a worker's claim costs the same at a backlog of
//! 100 and of 100,000").
//!
//! Per backlog, a fresh database `cart_bench_claim` (dropped first) is migrated; on a
//! single connection the worker's statements are prepared and run on the EMPTY tables
//! (so their plans are made there, as a worker started on a new database makes them);
//! then the backlog is seeded by one `generate_series` insert, with no ANALYZE (as with
//! autovacuum off); then `--claims` claims are timed, each the worker's own statement
//! (`store::claim`: the claim and its lease) in a transaction of its own: begin, claim,
//! commit (the worker sends the same statement without the begin). After each timed claim,
//! untimed, the outcome is recorded as a retry due at once (`store::finish_attempt`),
//! which puts the delivery back at the end of the due rows: the backlog stays the same
//! through the run, and the rows a claim passes over are what a real worker leaves.
//! The commit waits for the WAL flush, so the claim's statement (without begin and
//! commit) is timed apart too. A last pair of rows measures at the first
//! backlog after `--history` deliveries finished, without and with the worker's VACUUM.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use cart_webhook::store::{self, Attempt, Next};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

#[derive(Debug, clap::Args)]
pub struct ClaimArgs {
    /// The PostgreSQL server; the database `cart_bench_claim` is (re)created on it.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Backlogs of due deliveries to measure at, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100_i64, 10_000, 100_000])]
    backlogs: Vec<i64>,
    /// Timed claims per backlog.
    #[arg(long, default_value_t = 2_000)]
    claims: usize,
    /// Also measure at the first backlog after this many deliveries finished without a
    /// VACUUM (autovacuum off): the dead index entries they leave; 0 to skip.
    #[arg(long, default_value_t = 100_000)]
    history: i64,
}

/// One backlog's figures.
struct Figures {
    backlog: i64,
    /// Deliveries finished before, and whether `store::vacuum` ran after them.
    history: i64,
    vacuumed: bool,
    /// Median of the claim's statement (with its lease) alone (no begin, no commit).
    statements: Duration,
    median: Duration,
    p90: Duration,
    max: Duration,
}

pub async fn run(args: ClaimArgs) -> anyhow::Result<()> {
    let url = crate::database_url(&args.database_url, "cart_bench_claim");
    let mut figures = Vec::new();
    for &backlog in &args.backlogs {
        crate::drop_database(&url).await?;
        figures.push(measure(&url, backlog, (0, false), args.claims.max(1)).await?);
    }
    if let (Some(&backlog), true) = (args.backlogs.first(), args.history > 0) {
        for vacuumed in [false, true] {
            crate::drop_database(&url).await?;
            let history = (args.history, vacuumed);
            figures.push(measure(&url, backlog, history, args.claims.max(1)).await?);
        }
    }
    crate::drop_database(&url).await?;
    println!(
        "webhook claim cost: begin + claim (with its lease) + commit, {} claims per backlog, one connection, plans made on empty tables, no ANALYZE",
        args.claims
    );
    println!("| due deliveries | finished before | median per claim | p90 | max | claim statement alone (median) |");
    println!("|---|---|---|---|---|---|");
    for f in &figures {
        let history = match (f.history, f.vacuumed) {
            (0, _) => "0".to_owned(),
            (n, false) => format!("{n}, no VACUUM"),
            (n, true) => format!("{n}, then the worker's VACUUM"),
        };
        println!(
            "| {} | {history} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms |",
            f.backlog,
            ms(f.median),
            ms(f.p90),
            ms(f.max),
            ms(f.statements)
        );
    }
    let fresh: Vec<&Figures> = figures.iter().filter(|f| f.history == 0).collect();
    if let (Some(first), Some(last)) = (fresh.first(), fresh.last()) {
        println!(
            "median at {} / median at {}: {:.2} per claim, {:.2} for the statements alone",
            last.backlog,
            first.backlog,
            last.median.as_secs_f64() / first.median.as_secs_f64(),
            last.statements.as_secs_f64() / first.statements.as_secs_f64()
        );
    }
    Ok(())
}

/// The lease (and, unused, the postponement) of a timed claim.
const LEASE: Duration = Duration::from_secs(60);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn measure(
    url: &str,
    backlog: i64,
    (history, vacuumed): (i64, bool),
    claims: usize,
) -> anyhow::Result<Figures> {
    let mut config = cart_webhook::Config::from_env();
    config.database_url = url.to_owned();
    // Creates and migrates the database.
    let setup = cart_webhook::connect(&config)
        .await
        .with_context(|| format!("prepare {url}"))?;
    // The claiming session: one connection, so the statements it prepares on the empty
    // tables are the ones timed.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .with_context(|| format!("connect to {url}"))?;
    let worker = uuid::Uuid::new_v4();
    for _ in 0..10 {
        let mut tx = pool.begin().await?;
        anyhow::ensure!(
            store::claim(&mut *tx, worker, LEASE, LEASE)
                .await?
                .is_none(),
            "tables not empty"
        );
        tx.commit().await?;
    }
    if history > 0 {
        finished(&setup, history).await?;
        if vacuumed {
            store::vacuum(&setup).await?;
        }
    }
    seed(&setup, backlog).await?;
    // The backlog's project has its webhook on, so every claim leases.
    store::put_settings(
        &setup,
        &store::Settings {
            project_id: 1,
            url: "http://127.0.0.1:9/hook".to_owned(),
            secret: "s".to_owned(),
            enabled: true,
            version: 1,
        },
    )
    .await?;
    setup.close().await;

    let mut times = Vec::with_capacity(claims);
    let mut statements = Vec::with_capacity(claims);
    for _ in 0..claims {
        let started = Instant::now();
        let mut tx = pool.begin().await?;
        let sent = Instant::now();
        let claim = store::claim(&mut *tx, worker, LEASE, LEASE)
            .await?
            .context("the backlog ran dry")?;
        let store::Claim::Leased {
            delivery: claimed,
            number,
            ..
        } = claim
        else {
            anyhow::bail!("the bench's project has no enabled webhook: {claim:?}");
        };
        statements.push(sent.elapsed());
        tx.commit().await?;
        times.push(started.elapsed());
        // Untimed: a retry due at once, at the end of the due rows.
        let attempt = Attempt {
            attempt: number,
            started_at: SystemTime::now(),
            status_code: Some(500),
            latency: Duration::from_millis(1),
            outcome: "retry",
            error: None,
        };
        store::finish_attempt(
            &pool,
            claimed.event_id,
            worker,
            &attempt,
            Next::RetryAfter(Duration::ZERO),
        )
        .await?;
    }
    pool.close().await;
    times.sort_unstable();
    statements.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    Ok(Figures {
        backlog,
        history,
        vacuumed,
        statements: statements[statements.len() / 2],
        median: at(0.5),
        p90: at(0.9),
        max: at(1.0),
    })
}

/// `backlog` due, ready order_paid deliveries of as many orders, due over the last
/// hour, with a payload of the size intake stores.
async fn seed(pool: &PgPool, backlog: i64) -> anyhow::Result<()> {
    // Set-up, not measured: past the worker's 10 s statement timeout on a busy machine.
    sqlx::raw_sql(&format!(
        "set statement_timeout = 0;
         insert into webhook_deliveries (event_id, project_id, order_id, version,
           notification_type, envelope, ready, next_attempt_at)
         select gen_random_uuid(), 1, g, 2, 'order_paid',
           jsonb_build_object('event_type', 'OrderPaid', 'order',
             jsonb_build_object('invoice_id', 'inv-' || g, 'items', repeat('x', 600))),
           true, now() - interval '1 hour' + interval '1 millisecond' * g
         from generate_series(1, {backlog}) g"
    ))
    .execute(pool)
    .await
    .context("seed the backlog")?;
    Ok(())
}

/// `count` deliveries made as the worker makes them, each leaving the row versions a
/// worker leaves (recorded, leased, delivered), with no VACUUM after: their dead entries
/// stay at the old end of the claim's index, due before the backlog seeded next.
async fn finished(pool: &PgPool, count: i64) -> anyhow::Result<()> {
    sqlx::raw_sql(&format!(
        "set statement_timeout = 0;
         insert into webhook_deliveries (event_id, project_id, order_id, version,
           notification_type, envelope, ready, next_attempt_at)
         select gen_random_uuid(), 2, g, 2, 'order_paid', '{{}}', true,
           now() - interval '2 hours' + interval '1 millisecond' * g
         from generate_series(1, {count}) g;
         update webhook_deliveries set attempts = 1, leased_by = gen_random_uuid(),
           leased_at = now(), leased_until = now() + interval '1 minute'
         where project_id = 2;
         update webhook_deliveries set status = 'delivered', finished_at = now(),
           leased_until = null, leased_by = null, leased_at = null, followed_up_at = now()
         where project_id = 2;"
    ))
    .execute(pool)
    .await
    .context("seed the finished deliveries")?;
    Ok(())
}
