//! What the service's statements cost PostgreSQL over one phase, from
//! `pg_stat_statements` in the service's own database: reset before the phase, read
//! after it. Issue 17 asks for the statements and round trips of a group-commit batch
//! and for what each change saved; this puts them in every `make bench`.
//!
//! A batch is counted by the statement that inserts a batch's events into `cart_events`
//! (one per batch, whatever its shape: pg_stat_statements keeps a multi-row `VALUES`
//! insert of each row count as its own statement, so the calls of every such statement
//! are added up). "Calls per batch" of any statement is its calls over that number.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Longest query text in the printed table (the JSON has the text up to `MAX_QUERY`).
const SHORT_QUERY: usize = 70;
/// Longest query text kept in load.json: a long multi-row insert says all it has to
/// say in its first lines.
const MAX_QUERY: usize = 1000;
/// Statements in the printed table, by total execution time.
const PRINTED: usize = 15;

/// The `pg_stat_statements` view of the service's database.
pub struct PgStat {
    pool: PgPool,
}

/// One statement over the phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Statement {
    pub queryid: i64,
    /// Normalized text (constants are `$n`), whitespace collapsed, at most 1000 chars.
    pub query: String,
    pub calls: i64,
    pub rows: i64,
    pub total_exec_ms: f64,
    pub mean_exec_ms: f64,
    pub shared_blks_hit: i64,
    pub shared_blks_dirtied: i64,
    pub wal_bytes: f64,
    /// calls / batches; None when no batch was counted.
    pub calls_per_batch: Option<f64>,
}

/// The statements of one phase, and the batches they served.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PgStatReport {
    pub phase: String,
    /// Why there are no figures, when there are none, or what to keep in mind.
    pub note: Option<String>,
    /// Calls of the statements that insert into `cart_events`: one per batch.
    pub batches: Option<u64>,
    /// OK commands of the phase.
    pub commands_ok: u64,
    /// commands_ok / batches.
    pub commands_per_batch: Option<f64>,
    /// Calls of every statement over batches: the round trips a batch costs, the
    /// service's background readers (relay, projections) included.
    pub statements_per_batch: Option<f64>,
    /// Every statement of the service's database, by total execution time.
    pub statements: Vec<Statement>,
}

impl PgStat {
    /// Connects to the service's database and makes sure the view can be read: the
    /// extension is created when missing, and reading it fails when the server was not
    /// started with the library preloaded. The error says how to enable it.
    pub async fn open(service_url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(service_url)
            .with_context(|| format!("parse {service_url}"))?
            .options([("statement_timeout", "30s")]);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .context("connect to the service's database")?;
        let installed: Option<i32> =
            sqlx::query_scalar("select 1 from pg_extension where extname = 'pg_stat_statements'")
                .fetch_optional(&pool)
                .await?;
        if installed.is_none() {
            sqlx::query("create extension if not exists pg_stat_statements")
                .execute(&pool)
                .await
                .context("create extension pg_stat_statements")?;
        }
        sqlx::query("select 1 from pg_stat_statements limit 1")
            .execute(&pool)
            .await
            .context("read pg_stat_statements")?;
        Ok(Self { pool })
    }

    /// Forgets the statistics of this database's statements (only this database's: other
    /// databases on the server keep theirs).
    pub async fn reset(&self) -> anyhow::Result<()> {
        sqlx::query(
            "select pg_stat_statements_reset(0, d.oid, 0) \
             from pg_database d where d.datname = current_database()",
        )
        .execute(&self.pool)
        .await
        .context("pg_stat_statements_reset")?;
        Ok(())
    }

    /// The statements of this database since the reset (the bench's own reads of the view
    /// left out), and the batch arithmetic for `commands_ok` OK commands.
    pub async fn read(&self, phase: &str, commands_ok: u64) -> anyhow::Result<PgStatReport> {
        type Row = (i64, String, i64, i64, f64, f64, i64, i64, f64);
        let rows: Vec<Row> = sqlx::query_as(
            "select s.queryid, s.query, s.calls, s.rows, s.total_exec_time, s.mean_exec_time, \
                    s.shared_blks_hit, s.shared_blks_dirtied, s.wal_bytes::float8 \
             from pg_stat_statements s \
             join pg_database d on d.oid = s.dbid and d.datname = current_database() \
             where s.query not ilike '%pg_stat_statements%' \
             order by s.total_exec_time desc",
        )
        .fetch_all(&self.pool)
        .await
        .context("read pg_stat_statements")?;
        let statements = rows
            .into_iter()
            .map(|r| Statement {
                queryid: r.0,
                query: truncate(&collapse(&r.1), MAX_QUERY),
                calls: r.2,
                rows: r.3,
                total_exec_ms: r.4,
                mean_exec_ms: r.5,
                shared_blks_hit: r.6,
                shared_blks_dirtied: r.7,
                wal_bytes: r.8,
                calls_per_batch: None,
            })
            .collect();
        Ok(PgStatReport::new(phase, statements, commands_ok))
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

impl PgStatReport {
    /// The report of `statements` (any order; sorted here by total time) with the per-batch
    /// figures filled in.
    pub fn new(phase: &str, mut statements: Vec<Statement>, commands_ok: u64) -> Self {
        statements.sort_by(|a, b| b.total_exec_ms.total_cmp(&a.total_exec_ms));
        let batch_calls: i64 = statements
            .iter()
            .filter(|s| inserts_events(&s.query))
            .map(|s| s.calls)
            .sum();
        let batches = u64::try_from(batch_calls).ok().filter(|&n| n > 0);
        let per_batch = |calls: i64| batches.map(|b| calls as f64 / b as f64);
        for s in &mut statements {
            s.calls_per_batch = per_batch(s.calls);
        }
        let note = batches.is_none().then(|| {
            "no statement inserted into cart_events, so batches are not counted".to_owned()
        });
        Self {
            phase: phase.to_owned(),
            note,
            batches,
            commands_ok,
            commands_per_batch: batches.map(|b| commands_ok as f64 / b as f64),
            statements_per_batch: per_batch(statements.iter().map(|s| s.calls).sum()),
            statements,
        }
    }

    /// The report of a phase whose statistics could not be read.
    pub fn unavailable(phase: &str, note: String) -> Self {
        Self {
            phase: phase.to_owned(),
            note: Some(note),
            ..Self::default()
        }
    }
}

/// Whether a statement inserts into the event log: the one statement per batch.
fn inserts_events(query: &str) -> bool {
    collapse(query)
        .to_ascii_lowercase()
        .contains("insert into cart_events")
}

/// Whitespace runs (newlines of a formatted statement included) as one space.
fn collapse(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters, with an ellipsis when cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some(_) => {
            let cut: String = text.chars().take(max.saturating_sub(1)).collect();
            format!("{cut}…")
        }
    }
}

/// The one line printed when the view cannot be read, with how to enable it.
pub fn unavailable_line(error: &anyhow::Error) -> String {
    let error = collapse(&format!("{error:#}"));
    // The hint only where it helps: a library not preloaded, or an extension that cannot
    // be created; not a refused connection.
    if error.contains("shared_preload_libraries") || error.contains("extension") {
        format!(
            "pg_stat_statements: not available ({error}); to enable it, set \
             shared_preload_libraries = 'pg_stat_statements' in postgresql.conf (and install \
             PostgreSQL's contrib modules if the extension is missing), then restart PostgreSQL"
        )
    } else {
        format!("pg_stat_statements: not read ({error})")
    }
}

/// The batches line and the top statements by total execution time.
pub fn print(report: &PgStatReport) {
    println!();
    println!(
        "pg_stat_statements of the service's database over the {} phase",
        report.phase
    );
    if let Some(note) = &report.note {
        println!();
        println!("Note: {note}.");
    }
    if report.statements.is_empty() {
        return;
    }
    println!();
    match (report.batches, report.commands_per_batch) {
        (Some(batches), Some(per_batch)) => println!(
            "{batches} batches (calls of the insert into cart_events), {} OK commands: {per_batch:.1} commands per batch, {:.1} statement calls per batch",
            report.commands_ok,
            report.statements_per_batch.unwrap_or(0.0)
        ),
        _ => println!("{} OK commands; batches not counted", report.commands_ok),
    }
    println!();
    println!(
        "| statement | calls | calls/batch | rows | total ms | mean ms | blocks hit | blocks dirtied | WAL bytes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for s in report.statements.iter().take(PRINTED) {
        println!(
            "| `{}` | {} | {} | {} | {:.0} | {:.3} | {} | {} | {:.0} |",
            truncate(&s.query, SHORT_QUERY).replace('|', "\\|"),
            s.calls,
            s.calls_per_batch
                .map_or("-".to_owned(), |c| format!("{c:.2}")),
            s.rows,
            s.total_exec_ms,
            s.mean_exec_ms,
            s.shared_blks_hit,
            s.shared_blks_dirtied,
            s.wal_bytes
        );
    }
    if report.statements.len() > PRINTED {
        println!(
            "({} more statements in load.json)",
            report.statements.len() - PRINTED
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(query: &str, calls: i64, total_exec_ms: f64) -> Statement {
        Statement {
            queryid: calls,
            query: query.to_owned(),
            calls,
            rows: calls,
            total_exec_ms,
            mean_exec_ms: total_exec_ms / calls as f64,
            shared_blks_hit: 0,
            shared_blks_dirtied: 0,
            wal_bytes: 0.0,
            calls_per_batch: None,
        }
    }

    #[test]
    fn calls_are_counted_per_batch_of_event_inserts() {
        let report = PgStatReport::new(
            "commands only",
            vec![
                statement("BEGIN", 400, 1.0),
                // Two shapes of the batch insert (as two row counts of a VALUES list
                // would be): their calls add up to the batches.
                statement(
                    "INSERT INTO  cart_events (stream_id, version)\n select * from unnest($1)",
                    150,
                    30.0,
                ),
                statement(
                    "insert into cart_events (stream_id) values ($1), ($2)",
                    50,
                    5.0,
                ),
                statement("select pg_advisory_xact_lock($1)", 1000, 20.0),
                statement("insert into cart_events_archive values ($1)", 7, 0.5),
            ],
            3000,
        );
        assert_eq!(report.batches, Some(207));
        let report = PgStatReport::new(
            "commands only",
            report
                .statements
                .into_iter()
                .filter(|s| !s.query.contains("archive"))
                .collect(),
            3000,
        );
        assert_eq!(report.batches, Some(200));
        assert_eq!(report.commands_per_batch, Some(15.0));
        assert_eq!(report.statements_per_batch, Some(1600.0 / 200.0));
        assert!(report.note.is_none());
        // Sorted by total time, each with its calls per batch.
        let calls: Vec<(i64, Option<f64>)> = report
            .statements
            .iter()
            .map(|s| (s.calls, s.calls_per_batch))
            .collect();
        assert_eq!(
            calls,
            [
                (150, Some(0.75)),
                (1000, Some(5.0)),
                (50, Some(0.25)),
                (400, Some(2.0))
            ]
        );
    }

    #[test]
    fn without_an_event_insert_nothing_is_per_batch() {
        let report = PgStatReport::new("x", vec![statement("select 1", 10, 1.0)], 5);
        assert_eq!(report.batches, None);
        assert_eq!(report.commands_per_batch, None);
        assert_eq!(report.statements_per_batch, None);
        assert_eq!(report.statements[0].calls_per_batch, None);
        assert!(report.note.is_some());
        let empty = PgStatReport::new("x", Vec::new(), 0);
        assert_eq!(empty.batches, None);
    }

    #[test]
    fn query_texts_are_collapsed_and_shortened() {
        assert_eq!(collapse("select\n   a,\tb  from t "), "select a, b from t");
        assert_eq!(truncate("short", 70), "short");
        let long = "x".repeat(100);
        let cut = truncate(&long, 70);
        assert_eq!(cut.chars().count(), 70);
        assert!(cut.ends_with('…'));
        // Cut on a character, never inside one.
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("ééé", 3), "ééé");
    }

    #[test]
    fn the_unavailable_line_says_how_to_enable_it() {
        let line = unavailable_line(&anyhow::anyhow!(
            "must be loaded\nvia shared_preload_libraries"
        ));
        assert!(
            line.contains("shared_preload_libraries = 'pg_stat_statements'"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let refused = unavailable_line(&anyhow::anyhow!("sorry, too many clients already"));
        assert!(!refused.contains("shared_preload_libraries"), "{refused}");
        assert!(refused.contains("too many clients"), "{refused}");
    }

    /// Against a real server with the library preloaded (as `make services` and this
    /// machine run it): two batches of event inserts and a read, counted after a reset.
    #[tokio::test]
    async fn a_phase_is_read_from_the_service_database() {
        let (db, pool) = cart_store::testing::database().await;
        let stat = PgStat::open(&db.url()).await.unwrap_or_else(|e| {
            panic!("{}", unavailable_line(&e));
        });
        // Something before the reset that must not be counted.
        sqlx::query("select count(*) from cart_events")
            .execute(&pool)
            .await
            .unwrap();
        stat.reset().await.unwrap();
        for rows in [3i64, 5] {
            sqlx::query(
                "insert into cart_events (stream_id, version, event_id, project_id, event_type, \
                 schema_version, payload, metadata) \
                 select gen_random_uuid(), v, gen_random_uuid(), 1, 'CartOpened', 1, '{}', '{}' \
                 from generate_series(1, $1::int8) as v",
            )
            .bind(rows)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query("select version from cart_events where version = $1")
            .bind(1i64)
            .fetch_all(&pool)
            .await
            .unwrap();
        let report = stat.read("test", 16).await.unwrap();
        stat.close().await;
        assert_eq!(report.batches, Some(2), "{report:#?}");
        assert_eq!(report.commands_per_batch, Some(8.0));
        let insert = report
            .statements
            .iter()
            .find(|s| inserts_events(&s.query))
            .unwrap();
        assert_eq!((insert.calls, insert.rows), (2, 8));
        assert_eq!(insert.calls_per_batch, Some(1.0));
        assert!(insert.wal_bytes > 0.0, "{insert:?}");
        assert!(insert.shared_blks_dirtied > 0, "{insert:?}");
        let read = report
            .statements
            .iter()
            .find(|s| s.query.starts_with("select version from cart_events"))
            .unwrap();
        assert_eq!((read.calls, read.calls_per_batch), (1, Some(0.5)));
        // Neither the statement before the reset nor the bench's own reads of the view.
        assert!(
            report
                .statements
                .iter()
                .all(|s| !s.query.contains("count(*)") && !s.query.contains("pg_stat_statements")),
            "{report:#?}"
        );
    }
}
