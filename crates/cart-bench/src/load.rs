//! `cart-bench load`: drives a running cartd over NATS and sets its figures against this
//! machine's limits, measured in the same run.
//!
//! Phases, each on its own so that the figures do not mix (issue 17 wants its targets
//! from one run):
//! 1. limits: the small NATS echo (a get request echoed back) at `--get-clients`,
//!    PostgreSQL single-row and batched inserts at `--clients` (capped);
//! 2. commands only (the mix without gets) at `--clients`, after `--warmup-secs` of the
//!    same unmeasured, with `pg_stat_statements` of the service's database reset before
//!    and read after;
//! 3. the same without `Cart-Command-Id`;
//! 4. the same with the minimal reply;
//! 5. gets only at `--get-clients`;
//! 6. after a second of quiet, the NATS echo with get-sized requests and replies of the
//!    gets phase's mean reply size, at `--get-clients`: the gets target's divisor;
//! 7. the full mix at `--clients`;
//! 8. half load: the command mix paced at half of phase 2's throughput (open loop);
//! 9. a concurrency sweep of the command mix, each step followed by the single-row
//!    insert limit at the same concurrency;
//! 10. with `--pid`: one put on each of `--memory-carts` fresh carts, RSS before and after.
//!
//! Every command phase and the gets phase print where the CPU went; the end prints bytes
//! per request, the CPU budget of every phase and issue 17's targets, met or missed.

mod args;
mod phases;
mod process;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use cart_proto::{Encoding, ReplyMode};

use crate::chart::Series;
use crate::cpu;
use crate::pgstat::{self, PgStat, PgStatReport};
use crate::report::{self, targets, Phase, Ratios, Report, RunInfo, Throughputs};
use crate::runner::Driver;
use crate::workload::{self, CommandHeaders, Mix, Op, Workload, WorkloadConfig};

pub use args::LoadArgs;
use phases::{latency_series, write_charts, Bench};
use process::{rss_mb, wait_for_service};

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    args.check()?;
    let skus = if args.skus.is_empty() {
        workload::catalog_skus(&args.catalog, args.project_id)?
    } else {
        args.skus
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let commands_mix = args
        .mix
        .commands_only()
        .context("--mix needs at least one command (fill, put, delete or clear)")?;
    let encoding = if args.json {
        Encoding::Json
    } else {
        Encoding::Protobuf
    };
    let run_tag = args
        .run_tag
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    let workload = Workload::new(WorkloadConfig {
        subject_prefix: args.subject_prefix.clone(),
        project_id: args.project_id,
        encoding,
        reply: args.reply,
        run_tag: run_tag.clone(),
        users: args.users,
        carts_per_user: args.carts,
        skus: skus.clone(),
    })?;
    let request_bytes: BTreeMap<String, f64> = {
        let sizes = workload.mean_body_sizes(&mut fastrand::Rng::new());
        Op::ALL
            .into_iter()
            .map(|op| (op.name().to_owned(), sizes[op.index()]))
            .collect()
    };
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("create {}", args.out_dir.display()))?;
    let json_out = args
        .json_out
        .clone()
        .unwrap_or_else(|| args.out_dir.join("load.json"));

    let timeout = Duration::from_millis(args.timeout_ms);
    let driver = Driver::connect(&args.nats_url, args.nats_connections, workload, timeout).await?;
    wait_for_service(&driver, &args.service_name, args.wait_secs, args.pid).await?;
    let rss_at_start = args.pid.map(rss_mb).transpose()?;

    let run = RunInfo {
        tag: run_tag,
        started_unix_secs: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        encoding: encoding.content_type(),
        reply: args.reply.as_str(),
        nats_url: args.nats_url.clone(),
        subject_prefix: args.subject_prefix.clone(),
        project_id: args.project_id,
        users: args.users,
        carts_per_user: args.carts,
        skus,
        mix: args.mix.to_string(),
        clients: args.clients,
        get_clients: args.get_clients,
        nats_connections: args.nats_connections,
        phase_secs: args.phase_secs,
        warmup_secs: args.warmup_secs,
        sweep_secs: args.sweep_secs,
        timeout_ms: args.timeout_ms,
        max_requests_per_phase: args.max_requests,
        request_bytes,
    };
    print_header(&run);
    // The `postgres` CPU column: this run's databases (and the server's own processes),
    // not other work sharing the server.
    if let Some(db) = args
        .service_database_url
        .as_deref()
        .and_then(cpu::database_of)
    {
        cpu::count_postgres_databases(vec![db, crate::limits::LIMITS_DATABASE.to_owned()]);
    }
    // Connected now, before the limits and the load take the server's connection slots.
    let pgstat = open_pgstat(args.service_database_url.as_deref()).await;
    let bench = Bench {
        args: &args,
        driver,
        phase: Duration::from_secs_f64(args.phase_secs),
        budget: args.max_requests,
        commands_mix,
    };

    // 1. Limits, while the service is idle.
    let get_bytes = run.request_bytes.get("get").copied().unwrap_or_default();
    let (mut limits, pg) = bench.limits(get_bytes).await?;
    report::print_limits(&limits);

    // 2-4. The command mix three ways at --clients, the first with pg_stat_statements,
    // after a warm-up on the same carts.
    bench.warm_up().await;
    let full = bench.driver.workload().default_headers();
    let title = |what: &str| format!("{what} ({})", bench.commands_mix);
    let phase_title = title(&format!("Commands only, {} reply", args.reply.as_str()));
    // The statistics to read after the phase, or why there are none.
    let pgstat = match pgstat {
        Ok(stat) => match stat.reset().await {
            Ok(()) => Ok(stat),
            Err(e) => Err(format!("{e:#}")),
        },
        Err(note) => Err(note),
    };
    let (commands, command_run) = bench
        .closed_phase(&phase_title, &bench.commands_mix, args.clients, full)
        .await;
    let commands_ok = commands.all().map_or(0, |s| s.ok);
    let pg_stat_statements = match &pgstat {
        Ok(stat) => match stat.read("commands only", commands_ok).await {
            Ok(report) => report,
            Err(e) => PgStatReport::unavailable("commands only", format!("{e:#}")),
        },
        Err(note) => PgStatReport::unavailable("commands only", note.clone()),
    };
    pgstat::print(&pg_stat_statements);
    let without_ids = CommandHeaders {
        command_id: false,
        ..full
    };
    let (commands_without_ids, _) = bench
        .closed_phase(
            &title("Commands without Cart-Command-Id"),
            &bench.commands_mix,
            args.clients,
            without_ids,
        )
        .await;
    let minimal = CommandHeaders {
        reply: ReplyMode::Minimal,
        ..full
    };
    let (commands_minimal, _) = bench
        .closed_phase(
            &title("Commands, minimal reply"),
            &bench.commands_mix,
            args.clients,
            minimal,
        )
        .await;

    // 5-6. Gets, then the echo of their sizes on the idle service.
    let (gets, _) = bench
        .closed_phase("Gets only", &Mix::only(Op::Get), args.get_clients, full)
        .await;
    let get_reply_bytes = gets
        .ops
        .get("get")
        .filter(|s| s.ok > 0)
        .and_then(|s| s.mean_reply_body_bytes);
    limits.nats_echo_get_sized = match get_reply_bytes {
        Some(bytes) => Some(bench.sized_echo(bytes).await?),
        None => {
            println!();
            println!("NATS echo of a get's sizes: skipped, no get was answered.");
            None
        }
    };

    // 7. The full mix.
    let (mix, _) = bench
        .closed_phase(
            &format!("Full mix ({})", args.mix),
            &args.mix,
            args.clients,
            full,
        )
        .await;
    let per_sec = |p: &Phase| p.all().map_or(0.0, |s| s.per_sec);
    report::print_bytes(
        &[
            ("commands", &commands),
            ("commands without ids", &commands_without_ids),
            ("commands, minimal reply", &commands_minimal),
            ("gets", &gets),
            ("mix", &mix),
        ],
        limits.nats_echo_get_sized.as_ref(),
    );

    // 8-10.
    let half_load = bench
        .half_load(per_sec(&commands), pgstat.as_ref().ok())
        .await;
    if let Ok(stat) = pgstat {
        stat.close().await;
    }
    let sweep = bench.sweep(&pg).await?;
    pg.finish().await?;
    let memory = match (args.pid, rss_at_start) {
        (Some(pid), Some(rss_at_start_mb)) if args.memory_carts > 0 => {
            Some(bench.memory(pid, rss_at_start_mb).await?)
        }
        _ => None,
    };

    report::print_cpu_budget(&[
        ("commands only", commands.cpu.as_ref()),
        ("commands without ids", commands_without_ids.cpu.as_ref()),
        ("commands, minimal reply", commands_minimal.cpu.as_ref()),
        ("gets only", gets.cpu.as_ref()),
        ("full mix", mix.cpu.as_ref()),
        (
            "half load",
            half_load.as_ref().and_then(|(h, _)| h.cpu.as_ref()),
        ),
    ]);
    let ratios = Ratios::new(Throughputs {
        commands: per_sec(&commands),
        commands_without_ids: per_sec(&commands_without_ids),
        commands_minimal_reply: per_sec(&commands_minimal),
        pg_single_insert_tx: limits.pg_single_insert.tx_per_sec,
        pg_batch_insert_rows: limits.pg_batch_insert.rows_per_sec,
        gets: per_sec(&gets),
        nats_echo_small: limits.nats_echo_small.summary.per_sec,
        nats_echo_get_sized: limits
            .nats_echo_get_sized
            .as_ref()
            .map(|e| e.summary.per_sec),
    });
    let targets = targets::targets(
        &ratios,
        &targets::Context {
            clients: args.clients,
            get_clients: args.get_clients,
            pg_connections: limits.pg_single_insert.connections,
            commands_full_reply: args.reply == ReplyMode::Full,
            half_load: half_load
                .as_ref()
                .map(|(h, _)| (h.p99_ms, h.p99_target_met)),
            half_load_goal_ms: report::HALF_LOAD_P99_TARGET_MS,
            memory: memory.as_ref().map(|m| (m.rss_after_mb, m.carts_written)),
        },
    );
    report::print_targets(&ratios, &targets);

    let mut curves = latency_series(&command_run, "at max throughput");
    if let Some((_, points)) = &half_load {
        let end = points.last().map_or(1.0, |p| p.0.ceil());
        curves.push(Series {
            name: "all commands at half load (from scheduled send)".to_owned(),
            points: points.clone(),
        });
        let target = report::HALF_LOAD_P99_TARGET_MS;
        curves.push(Series {
            name: format!("target: p99 <= {target} ms at half load"),
            points: vec![(0.0, target), (end, target)],
        });
    }
    let charts = write_charts(&args.out_dir, args.clients, &sweep, &curves)?;

    let report = Report {
        run,
        limits,
        phases: BTreeMap::from([
            ("commands".to_owned(), commands),
            ("commands_without_ids".to_owned(), commands_without_ids),
            ("commands_minimal_reply".to_owned(), commands_minimal),
            ("gets".to_owned(), gets),
            ("mix".to_owned(), mix),
        ]),
        pg_stat_statements: Some(pg_stat_statements),
        half_load: half_load.map(|(h, _)| h),
        sweep,
        ratios,
        targets,
        memory,
        charts: charts.iter().map(|p| p.display().to_string()).collect(),
    };
    write_json(&json_out, &report)?;
    println!();
    for path in &charts {
        println!("chart: {}", path.display());
    }
    println!("figures: {}", json_out.display());
    Ok(())
}

/// pg_stat_statements of the service's database, or the note to record without it (the
/// one line saying how to enable it is printed here).
async fn open_pgstat(url: Option<&str>) -> Result<PgStat, String> {
    let Some(url) = url else {
        let note = "pg_stat_statements: skipped, no --service-database-url \
                    (CART_BENCH_SERVICE_DATABASE_URL) names the service's database"
            .to_owned();
        println!();
        println!("{note}");
        return Err(note);
    };
    PgStat::open(url).await.map_err(|e| {
        let line = pgstat::unavailable_line(&e);
        println!();
        println!("{line}");
        line
    })
}

fn print_header(run: &RunInfo) {
    let sizes: Vec<String> = run
        .request_bytes
        .iter()
        .map(|(op, bytes)| format!("{op} {bytes:.0}"))
        .collect();
    println!(
        "cart-bench load: run {}, {} requests to {}.* on {}, {} replies to commands",
        run.tag, run.encoding, run.subject_prefix, run.nats_url, run.reply
    );
    println!(
        "{} clients ({} for gets), {} users x {} carts, mix {}, {} s warm-up, {} s per phase, {} s per sweep step",
        run.clients,
        run.get_clients,
        run.users,
        run.carts_per_user,
        run.mix,
        run.warmup_secs,
        run.phase_secs,
        run.sweep_secs
    );
    println!("mean request body, bytes: {}", sizes.join(", "));
}

pub(crate) fn progress(what: &str) {
    eprintln!("cart-bench: {what}...");
}

fn write_json(path: &Path, report: &Report) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let json = serde_json::to_vec_pretty(report)?;
    std::fs::write(path, json).with_context(|| format!("write {}", path.display()))
}
