//! The service set against this machine's limits measured in the same run, and issue
//! 17's targets: each with its figure and whether it was met.

use serde::Serialize;

use super::{ms, rate};

/// Issue 17: commands with the full reply at least this times the single-row insert limit.
pub const COMMANDS_VS_INSERTS: f64 = 1.0;
/// Issue 17: commands with the minimal reply at least this times the same limit.
pub const MINIMAL_VS_INSERTS: f64 = 1.3;
/// Issue 17: commands with a `Cart-Command-Id` at least this times those without.
pub const WITH_VS_WITHOUT_IDS: f64 = 0.9;
/// Issue 17: gets at least this times the NATS echo of the same concurrency and size.
pub const GETS_VS_ECHO: f64 = 0.5;
/// Issue 17 (unchanged from issue 6): cartd's RSS at most this after the fresh carts.
pub const RSS_MB: f64 = 150.0;

/// Throughputs of the run and their ratios (0 when the divisor is 0).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Ratios {
    /// The `commands` phase (with ids, the `--reply` mode).
    pub commands_per_sec: f64,
    pub commands_without_ids_per_sec: f64,
    pub commands_minimal_reply_per_sec: f64,
    pub pg_single_insert_tx_per_sec: f64,
    pub pg_batch_insert_rows_per_sec: f64,
    pub gets_per_sec: f64,
    pub nats_echo_small_per_sec: f64,
    /// None when the get-sized echo did not run (no get was answered).
    pub nats_echo_get_sized_per_sec: Option<f64>,
    /// Commands/s over single-row transactions/s at the same concurrency.
    pub commands_vs_pg_single_insert: f64,
    pub commands_minimal_reply_vs_pg_single_insert: f64,
    /// Commands/s with ids over commands/s without.
    pub commands_with_vs_without_ids: f64,
    /// Commands/s over batched rows/s.
    pub commands_vs_pg_batch_rows: f64,
    /// Gets/s over the get-sized echo's requests/s: the figure of the gets target.
    pub gets_vs_nats_echo_get_sized: Option<f64>,
    /// Gets/s over the small echo's requests/s (the ratio of runs before issue 17).
    pub gets_vs_nats_echo_small: f64,
}

/// The throughputs [`Ratios`] is made from.
#[derive(Debug, Default, Clone, Copy)]
pub struct Throughputs {
    pub commands: f64,
    pub commands_without_ids: f64,
    pub commands_minimal_reply: f64,
    pub pg_single_insert_tx: f64,
    pub pg_batch_insert_rows: f64,
    pub gets: f64,
    pub nats_echo_small: f64,
    pub nats_echo_get_sized: Option<f64>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

impl Ratios {
    pub fn new(t: Throughputs) -> Self {
        Self {
            commands_per_sec: t.commands,
            commands_without_ids_per_sec: t.commands_without_ids,
            commands_minimal_reply_per_sec: t.commands_minimal_reply,
            pg_single_insert_tx_per_sec: t.pg_single_insert_tx,
            pg_batch_insert_rows_per_sec: t.pg_batch_insert_rows,
            gets_per_sec: t.gets,
            nats_echo_small_per_sec: t.nats_echo_small,
            nats_echo_get_sized_per_sec: t.nats_echo_get_sized,
            commands_vs_pg_single_insert: ratio(t.commands, t.pg_single_insert_tx),
            commands_minimal_reply_vs_pg_single_insert: ratio(
                t.commands_minimal_reply,
                t.pg_single_insert_tx,
            ),
            commands_with_vs_without_ids: ratio(t.commands, t.commands_without_ids),
            commands_vs_pg_batch_rows: ratio(t.commands, t.pg_batch_insert_rows),
            gets_vs_nats_echo_get_sized: t.nats_echo_get_sized.map(|echo| ratio(t.gets, echo)),
            gets_vs_nats_echo_small: ratio(t.gets, t.nats_echo_small),
        }
    }
}

/// One target of issue 17.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Target {
    pub target: String,
    /// The run's figure: a ratio, milliseconds or MB (see `target`); None when the run
    /// did not measure it.
    pub figure: Option<f64>,
    /// The bound: figure >= goal, or figure <= goal for `at_most`.
    pub goal: f64,
    pub at_most: bool,
    /// None when not measured.
    pub met: Option<bool>,
    /// What the figure is made of, or why it is missing.
    pub detail: String,
}

/// What the targets need besides [`Ratios`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    pub clients: usize,
    pub get_clients: usize,
    /// Connections of the single-row insert limit (`--clients` capped).
    pub pg_connections: usize,
    /// Whether the `commands` phase asked for the full reply (not `--reply minimal`).
    pub commands_full_reply: bool,
    /// p99 at half load and whether 99 % of the commands sent were OK within the target.
    pub half_load: Option<(f64, bool)>,
    pub half_load_goal_ms: f64,
    /// cartd's RSS after the memory phase, and the fresh carts written.
    pub memory: Option<(f64, u64)>,
}

fn at_least(target: String, figure: Option<f64>, goal: f64, detail: String) -> Target {
    Target {
        target,
        met: figure.map(|f| f >= goal),
        figure,
        goal,
        at_most: false,
        detail,
    }
}

/// Issue 17's targets in the order.
pub fn targets(r: &Ratios, c: &Context) -> Vec<Target> {
    let pg = format!(
        "{} PG 1-row tx/s ({} connections)",
        rate(r.pg_single_insert_tx_per_sec),
        c.pg_connections
    );
    let mut out = vec![
        at_least(
            format!(
                "commands, full reply / PG single-row insert limit ({} clients)",
                c.clients
            ),
            c.commands_full_reply
                .then_some(r.commands_vs_pg_single_insert),
            COMMANDS_VS_INSERTS,
            if c.commands_full_reply {
                format!("{} commands/s / {pg}", rate(r.commands_per_sec))
            } else {
                "not measured: the commands phase ran with --reply minimal".to_owned()
            },
        ),
        at_least(
            format!(
                "commands, minimal reply / PG single-row insert limit ({} clients)",
                c.clients
            ),
            Some(r.commands_minimal_reply_vs_pg_single_insert),
            MINIMAL_VS_INSERTS,
            format!(
                "{} commands/s / {pg}",
                rate(r.commands_minimal_reply_per_sec)
            ),
        ),
        at_least(
            "commands with Cart-Command-Id / without".to_owned(),
            Some(r.commands_with_vs_without_ids),
            WITH_VS_WITHOUT_IDS,
            format!(
                "{} / {} commands/s",
                rate(r.commands_per_sec),
                rate(r.commands_without_ids_per_sec)
            ),
        ),
        at_least(
            format!(
                "gets / NATS echo of a get's sizes ({} in flight)",
                c.get_clients
            ),
            r.gets_vs_nats_echo_get_sized,
            GETS_VS_ECHO,
            match r.nats_echo_get_sized_per_sec {
                Some(echo) => format!("{} gets/s / {} echoes/s", rate(r.gets_per_sec), rate(echo)),
                None => "not measured: no get was answered, so no reply size to echo".to_owned(),
            },
        ),
    ];
    let (p99, met) = c
        .half_load
        .map_or((None, None), |(p99, met)| (Some(p99), Some(met)));
    out.push(Target {
        target: "command p99 at half the maximum throughput, ms".to_owned(),
        figure: p99,
        goal: c.half_load_goal_ms,
        at_most: true,
        met,
        detail: if p99.is_some() {
            "latency from the scheduled send; met when 99 % of the commands sent were OK \
             within the goal"
                .to_owned()
        } else {
            "not measured: no half-load phase".to_owned()
        },
    });
    let (rss, carts) = c
        .memory
        .map_or((None, 0), |(rss, carts)| (Some(rss), carts));
    out.push(Target {
        target: "cartd RSS after the fresh carts, MB".to_owned(),
        figure: rss,
        goal: RSS_MB,
        at_most: true,
        met: rss.map(|mb| mb <= RSS_MB),
        detail: if rss.is_some() {
            format!("after one put on each of {carts} fresh carts")
        } else {
            "not measured: no memory phase (--pid and --memory-carts)".to_owned()
        },
    });
    out
}

pub fn print_targets(r: &Ratios, targets: &[Target]) {
    println!();
    println!("The service against the limits (other ratios)");
    println!();
    println!("| figure | service | limit | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| commands/s vs PostgreSQL batched rows/s | {} | {} | {:.3} |",
        rate(r.commands_per_sec),
        rate(r.pg_batch_insert_rows_per_sec),
        r.commands_vs_pg_batch_rows
    );
    println!(
        "| gets/s vs the small NATS echo (requests echoed back) | {} | {} | {:.3} |",
        rate(r.gets_per_sec),
        rate(r.nats_echo_small_per_sec),
        r.gets_vs_nats_echo_small
    );
    println!();
    println!("Issue 17 targets");
    println!();
    println!("| target | figure | goal | result | from |");
    println!("|---|---|---|---|---|");
    for t in targets {
        let figure = t.figure.map_or("-".to_owned(), |f| {
            if t.at_most {
                ms(f)
            } else {
                format!("{f:.3}")
            }
        });
        let goal = format!("{} {}", if t.at_most { "<=" } else { ">=" }, t.goal);
        let result = match t.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        };
        println!(
            "| {} | {figure} | {goal} | {result} | {} |",
            t.target, t.detail
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratios() -> Ratios {
        Ratios::new(Throughputs {
            commands: 9_000.0,
            commands_without_ids: 10_000.0,
            commands_minimal_reply: 26_000.0,
            pg_single_insert_tx: 20_000.0,
            pg_batch_insert_rows: 150_000.0,
            gets: 30_000.0,
            nats_echo_small: 150_000.0,
            nats_echo_get_sized: Some(60_000.0),
        })
    }

    #[test]
    fn ratios_divide_and_survive_zero() {
        let r = ratios();
        assert_eq!(r.commands_vs_pg_single_insert, 0.45);
        assert_eq!(r.commands_minimal_reply_vs_pg_single_insert, 1.3);
        assert_eq!(r.commands_with_vs_without_ids, 0.9);
        assert_eq!(r.commands_vs_pg_batch_rows, 0.06);
        assert_eq!(r.gets_vs_nats_echo_get_sized, Some(0.5));
        assert_eq!(r.gets_vs_nats_echo_small, 0.2);
        let zero = Ratios::new(Throughputs::default());
        assert_eq!(zero.commands_vs_pg_single_insert, 0.0);
        assert_eq!(zero.commands_with_vs_without_ids, 0.0);
        assert_eq!(zero.gets_vs_nats_echo_get_sized, None);
    }

    #[test]
    fn targets_are_met_at_their_bounds_and_missed_below() {
        let context = Context {
            clients: 256,
            get_clients: 256,
            pg_connections: 64,
            commands_full_reply: true,
            half_load: Some((15.0, true)),
            half_load_goal_ms: 15.0,
            memory: Some((150.5, 100_000)),
        };
        let t = targets(&ratios(), &context);
        let met: Vec<Option<bool>> = t.iter().map(|t| t.met).collect();
        // 0.45 < 1.0; 1.3, 0.9 and 0.5 exactly at their bounds; p99 as the histogram
        // judged it; 150.5 MB > 150.
        assert_eq!(
            met,
            [
                Some(false),
                Some(true),
                Some(true),
                Some(true),
                Some(true),
                Some(false)
            ]
        );
        assert_eq!(t[0].figure, Some(0.45));
        assert!(t[0].detail.contains("64 connections"), "{}", t[0].detail);
        assert!(t[4].at_most && t[5].at_most && !t[0].at_most);

        // What a run did not measure is neither met nor missed.
        let mut r = ratios();
        r.gets_vs_nats_echo_get_sized = None;
        r.nats_echo_get_sized_per_sec = None;
        let context = Context {
            commands_full_reply: false,
            half_load: None,
            memory: None,
            ..context
        };
        let t = targets(&r, &context);
        let unmeasured: Vec<usize> = (0..t.len()).filter(|&i| t[i].met.is_none()).collect();
        assert_eq!(unmeasured, [0, 3, 4, 5]);
        assert!(t.iter().all(|t| t.met.is_some() == t.figure.is_some()));
    }
}
