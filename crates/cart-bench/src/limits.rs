//! This machine's limits, measured in the same run and at the same concurrency as the
//! service: a bare NATS request/reply echo with requests of a cart get's size (answered
//! with the request itself, or with a reply of a get reply's size), and PostgreSQL
//! inserts of event-sized rows, one per transaction and in batches.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use crate::runner::{self, Driver, PhaseRun};
use crate::stats::{Latencies, Outcome, Percentiles};

/// The scratch database of the PostgreSQL limits, on the server of `--database-url`.
pub const LIMITS_DATABASE: &str = "cart_bench_limits";

/// Connections left free for cartd's pool and everyone else when the server has fewer
/// free connections than the bench would like.
const CONNECTION_HEADROOM: i64 = 20;

/// Runs the echo limit: a responder on its own connection and a unique subject answers
/// every request, and the driver's clients send it requests that are byte for byte cart
/// gets (headers included), at `concurrency` in flight.
///
/// With `reply_bytes` None the responder answers with the request's own bytes (the small
/// echo, a few dozen bytes). With Some(n) it answers with n bytes, the mean get reply of
/// the gets phase, so that the echo moves what a get moves through nats-server and the
/// sockets both ways: issue 17 sets gets against an echo "at the same concurrency and
/// payload size", and a 29-byte reply would leave out the copying of the several
/// kilobytes of a rendered cart, which is NATS's cost, not the service's. The reply is
/// one buffer shared by every answer (`Bytes` clones by reference count), so the
/// responder's own cost stays that of a bare echo.
pub async fn nats_echo(
    driver: &Driver,
    nats_url: &str,
    concurrency: usize,
    reply_bytes: Option<usize>,
    duration: Duration,
    budget: u64,
) -> anyhow::Result<PhaseRun> {
    let responder = runner::connect(nats_url, "cart-bench echo").await?;
    let subject = format!("_CART_BENCH.echo.{}", Uuid::new_v4().simple());
    let mut requests = responder
        .subscribe(subject.clone())
        .await
        .context("subscribe the echo responder")?;
    // The subscription must reach the server before the first request does.
    responder
        .flush()
        .await
        .context("flush the echo subscription")?;
    let fixed = reply_bytes.map(|n| bytes::Bytes::from(vec![b'x'; n]));
    let echo = {
        let responder = responder.clone();
        tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                if let Some(reply) = message.reply {
                    let body = fixed.clone().unwrap_or(message.payload);
                    let _ = responder.publish(reply, body).await;
                }
            }
        })
    };
    let subject = async_nats::Subject::from(subject);
    // One answered request first: without it, a run once counted the whole first wave
    // (one request per client) as "no responders", an artefact of the set-up and not a
    // limit of NATS.
    let started = Instant::now();
    loop {
        let mut probe = driver.workload().get_request(Some(0));
        probe.subject = subject.clone();
        match runner::send(driver.client(), probe, Duration::from_secs(1)).await {
            Outcome::Ok => break,
            Outcome::Error(e) if started.elapsed() > Duration::from_secs(5) => {
                anyhow::bail!("the echo responder did not answer within 5 s ({e})")
            }
            Outcome::Error(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let run = driver
        .closed_loop(concurrency, duration, budget, move |workload, rng, _| {
            let mut request = workload.get_request(Some(workload.random_slot(rng)));
            request.subject = subject.clone();
            request
        })
        .await;
    echo.abort();
    Ok(run)
}

/// One PostgreSQL insert measurement.
#[derive(Debug, Clone, Serialize)]
pub struct PgLimit {
    pub connections: usize,
    pub rows_per_tx: usize,
    pub transactions: u64,
    pub rows: u64,
    pub errors: u64,
    /// The first error, when there were any.
    pub first_error: Option<String>,
    pub secs: f64,
    pub tx_per_sec: f64,
    pub rows_per_sec: f64,
    /// Per transaction.
    pub latency: Percentiles,
}

/// The scratch database and its connection pool.
pub struct PgLimits {
    pool: PgPool,
    /// The most connections a measurement uses: `--pg-max-connections`, lowered when
    /// the server has fewer free.
    pub max_connections: usize,
    /// Whether this role may run CHECKPOINT (superuser or pg_checkpoint).
    can_checkpoint: bool,
    pub note: Option<String>,
}

impl PgLimits {
    /// Creates the scratch database when missing and the table afresh.
    pub async fn prepare(server_url: &str, wanted: usize) -> anyhow::Result<Self> {
        let url = crate::database_url(server_url, LIMITS_DATABASE);
        cart_store::ensure_database(&url)
            .await
            .with_context(|| format!("create database {LIMITS_DATABASE}"))?;
        let options = PgConnectOptions::from_str(&url)
            .with_context(|| format!("parse {url}"))?
            // The limit is that of durable commits, as the event store makes them: the
            // server's WAL flush per commit is what a command pays for.
            .options([("synchronous_commit", "on"), ("statement_timeout", "10s")]);
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("connect to {url}"))?;
        let free: i64 = sqlx::query_scalar(
            "select current_setting('max_connections')::int8 \
                  - current_setting('superuser_reserved_connections')::int8 \
                  - (select count(*) from pg_stat_activity where backend_type = 'client backend')",
        )
        .fetch_one(&admin)
        .await?;
        admin.close().await;
        let allowed = usize::try_from(free - CONNECTION_HEADROOM)
            .unwrap_or(0)
            .max(1);
        let max_connections = wanted.clamp(1, allowed);
        let mut notes = Vec::new();
        if max_connections < wanted {
            notes.push(format!(
                "PostgreSQL has {free} free connections; the limits use at most {max_connections} \
                 (not {wanted}) to leave {CONNECTION_HEADROOM} for the service"
            ));
        }
        let pool = PgPoolOptions::new()
            .max_connections(u32::try_from(max_connections).unwrap_or(u32::MAX))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        sqlx::query("drop table if exists bench_events")
            .execute(&pool)
            .await?;
        // The columns and indexes of cart_events (crates/cart-store/migrations), so a row
        // costs what an event costs to insert.
        sqlx::query(
            "create table bench_events (
                global_position bigint generated always as identity (cache 1),
                tx_id          xid8 not null default pg_current_xact_id(),
                stream_id      uuid not null,
                version        bigint not null check (version > 0),
                event_id       uuid not null,
                project_id     bigint not null,
                event_type     text not null,
                schema_version smallint not null,
                payload        jsonb not null,
                metadata       jsonb not null,
                recorded_at    timestamptz not null default now(),
                primary key (stream_id, version),
                unique (event_id)
            )",
        )
        .execute(&pool)
        .await?;
        sqlx::query("create index on bench_events (tx_id, global_position)")
            .execute(&pool)
            .await?;
        let can_checkpoint = match sqlx::query("checkpoint").execute(&pool).await {
            Ok(_) => true,
            Err(e) => {
                notes.push(format!(
                    "CHECKPOINT is refused ({e}), so the service phases may pay for flushing \
                     what the insert limits wrote"
                ));
                false
            }
        };
        Ok(Self {
            pool,
            max_connections,
            can_checkpoint,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        })
    }

    /// Empties the table and flushes what the inserts dirtied, so that the phase after a
    /// measurement does not pay for it (a checkpoint forced by the limits' WAL during a
    /// service phase would show as service latency), and every measurement starts alike.
    async fn settle(&self) -> anyhow::Result<()> {
        sqlx::query("truncate bench_events")
            .execute(&self.pool)
            .await?;
        if self.can_checkpoint {
            sqlx::query("checkpoint").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Drops the table; the database stays for the next run.
    pub async fn finish(self) -> anyhow::Result<()> {
        sqlx::query("drop table if exists bench_events")
            .execute(&self.pool)
            .await?;
        self.pool.close().await;
        Ok(())
    }

    /// `connections` sessions (capped) each insert `rows_per_tx` rows per transaction,
    /// back to back, until `duration` has passed or `budget` transactions were made.
    pub async fn inserts(
        &self,
        connections: usize,
        rows_per_tx: usize,
        duration: Duration,
        budget: u64,
    ) -> anyhow::Result<PgLimit> {
        let n = connections.clamp(1, self.max_connections);
        let rows_per_tx = rows_per_tx.max(1);
        // Connect everything first: connection set-up is not part of the figure.
        let mut sessions = Vec::with_capacity(n);
        for _ in 0..n {
            sessions.push(self.pool.acquire().await.context("open a session")?);
        }
        let issued = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = tokio::task::JoinSet::new();
        for mut session in sessions {
            let issued = issued.clone();
            tasks.spawn(async move {
                let mut out = SessionResult::default();
                let stream = Uuid::new_v4();
                let mut version = 0i64;
                while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < budget {
                    let t = Instant::now();
                    let done = insert(&mut session, stream, version, rows_per_tx).await;
                    version += rows_per_tx as i64;
                    match done {
                        Ok(()) => out.latencies.record(t.elapsed()),
                        Err(e) => {
                            out.errors += 1;
                            out.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                (out, session)
            });
        }
        let mut all = SessionResult::default();
        let mut finished = Vec::with_capacity(n);
        while let Some(done) = tasks.join_next().await {
            let (done, session) = done.context("an insert session failed")?;
            finished.push(session);
            all.latencies.add(&done.latencies);
            all.errors += done.errors;
            if all.first_error.is_none() {
                all.first_error = done.first_error;
            }
        }
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        // Closed, not returned to the pool: the server's connection slots are shared with
        // the service (and, on a shared machine, with everyone's tests), and dozens of idle
        // sessions kept between the limits and the sweep once left none for the service.
        for session in finished {
            let _ = session.close().await;
        }
        self.settle().await.context("truncate and checkpoint")?;
        let transactions = all.latencies.len();
        let rows = transactions * rows_per_tx as u64;
        Ok(PgLimit {
            connections: n,
            rows_per_tx,
            transactions,
            rows,
            errors: all.errors,
            first_error: all.first_error,
            secs,
            tx_per_sec: transactions as f64 / secs,
            rows_per_sec: rows as f64 / secs,
            latency: all.latencies.percentiles(),
        })
    }
}

#[derive(Default)]
struct SessionResult {
    latencies: Latencies,
    errors: u64,
    first_error: Option<String>,
}

/// One transaction (autocommit) inserting rows `version + 1 ..= version + rows` of
/// `stream`: a plain insert for one row, `unnest` of arrays for a batch.
async fn insert(
    session: &mut PoolConnection<Postgres>,
    stream: Uuid,
    version: i64,
    rows: usize,
) -> Result<(), sqlx::Error> {
    const PROJECT: i64 = 44056;
    const TYPE: &str = "ItemQuantitySet";
    if rows == 1 {
        let (event_id, payload, metadata) = event_row(stream, version + 1);
        sqlx::query(
            "insert into bench_events \
             (stream_id, version, event_id, project_id, event_type, schema_version, payload, metadata) \
             values ($1, $2, $3, $4, $5, 1, $6::jsonb, $7::jsonb)",
        )
        .bind(stream)
        .bind(version + 1)
        .bind(event_id)
        .bind(PROJECT)
        .bind(TYPE)
        .bind(payload)
        .bind(metadata)
        .execute(&mut **session)
        .await?;
        return Ok(());
    }
    let mut versions = Vec::with_capacity(rows);
    let mut ids = Vec::with_capacity(rows);
    let mut payloads = Vec::with_capacity(rows);
    let mut metadatas = Vec::with_capacity(rows);
    for v in (version + 1)..=(version + rows as i64) {
        let (event_id, payload, metadata) = event_row(stream, v);
        versions.push(v);
        ids.push(event_id);
        payloads.push(payload);
        metadatas.push(metadata);
    }
    sqlx::query(
        "insert into bench_events \
         (stream_id, version, event_id, project_id, event_type, schema_version, payload, metadata) \
         select $1, v, e, $2, $3, 1, p::jsonb, m::jsonb \
         from unnest($4::int8[], $5::uuid[], $6::text[], $7::text[]) as t(v, e, p, m)",
    )
    .bind(stream)
    .bind(PROJECT)
    .bind(TYPE)
    .bind(versions)
    .bind(ids)
    .bind(payloads)
    .bind(metadatas)
    .execute(&mut **session)
    .await?;
    Ok(())
}

/// An event id, a payload of about 100 bytes and metadata of about 150, shaped like an
/// `ItemQuantitySet` and its `{command_id, user_id, cart_id, endpoint}` metadata.
fn event_row(stream: Uuid, version: i64) -> (Uuid, String, String) {
    let quantity = version % 10 + 1;
    let payload = format!(
        r#"{{"sku": "com.xsolla.booster_mega_1", "quantity": {quantity}, "previous_quantity": {version}, "source": "cart-bench"}}"#
    );
    let metadata = format!(
        r#"{{"command_id": "{}", "user_id": "bench-limits-u{}", "cart_id": "c{}", "endpoint": "item.put", "client": "cart-bench"}}"#,
        Uuid::new_v4(),
        stream.as_u128() % 100_000,
        version % 4
    );
    (Uuid::now_v7(), payload, metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_event_sized_json() {
        let (_, payload, metadata) = event_row(Uuid::new_v4(), 12);
        assert!(
            (90..=110).contains(&payload.len()),
            "{} {payload}",
            payload.len()
        );
        assert!(
            (140..=170).contains(&metadata.len()),
            "{} {metadata}",
            metadata.len()
        );
        serde_json::from_str::<serde_json::Value>(&payload).unwrap();
        serde_json::from_str::<serde_json::Value>(&metadata).unwrap();
    }
}
