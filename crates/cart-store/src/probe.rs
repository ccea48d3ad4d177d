//! Probe sessions: where the grouped reads of every get and every command run
//! (`GROUPED_GET`, `GROUPED_PURCHASES`).
//!
//! Each of those statements is a batch of keyed probes (`unnest` of the keys, then an
//! index lookup per key). Their plan must not depend on the tables' sizes: a plan made
//! while a table was empty scans it once per key, and PostgreSQL keeps a prepared
//! statement's plan for the session (ARCHITECTURE.md, "Plans that cannot go stale").
//! They used to be planned at every execution for that reason, and that planning (and
//! the parse of an unnamed statement) was most of what they cost: 0.45 ms of planning
//! against 0.05 ms of execution for the purchase counts, measured with
//! `pg_stat_statements.track_planning` in a `make bench` (BENCHMARKS.md, issue 17).
//!
//! On a probe session seq scans are off and prepared statements take their generic plan
//! at once, so each statement is parsed and planned once per session, and that plan
//! probes the indexes whatever the tables held when it was made. Only statements made
//! of keyed probes may run here: `enable_seqscan = off` would turn a statement that has
//! to read a whole table into a full index scan.

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// The settings of a probe session (`tests/plans.rs` plans with exactly these).
pub const PROBE_SESSION: [(&str, &str); 2] = [
    ("enable_seqscan", "off"),
    ("plan_cache_mode", "force_generic_plan"),
];

/// A pool of probe sessions beside `main`: the same server, database and settings, plus
/// [`PROBE_SESSION`], writable servers only (`primary_only`: a get must see every
/// acknowledged command, so it reads the primary), at most `max_connections`. It
/// connects lazily, so a caller that never reads opens nothing.
pub(crate) fn pool(main: &PgPool, max_connections: usize) -> PgPool {
    let max_connections = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let options = main
        .connect_options()
        .as_ref()
        .clone()
        .options(PROBE_SESSION);
    crate::primary_only(PgPoolOptions::new())
        .max_connections(max_connections.max(1))
        .acquire_timeout(main.options().get_acquire_timeout())
        .connect_lazy_with(options)
}

#[cfg(test)]
mod tests {
    /// The probe sessions carry the settings that make their plans probes, and are
    /// ordinary sessions of the same database otherwise (durable commits included).
    #[tokio::test]
    async fn probe_sessions_have_seq_scans_off_and_generic_plans_at_once() {
        let (_db, main) = crate::testing::database().await;
        let probes = super::pool(&main, 2);
        let show = |name: &'static str| {
            let probes = probes.clone();
            async move {
                sqlx::query_scalar::<_, String>(&format!("show {name}"))
                    .fetch_one(&probes)
                    .await
                    .expect(name)
            }
        };
        assert_eq!(show("enable_seqscan").await, "off");
        assert_eq!(show("plan_cache_mode").await, "force_generic_plan");
        assert_eq!(show("synchronous_commit").await, "on");
        let database: String = sqlx::query_scalar("select current_database()")
            .fetch_one(&main)
            .await
            .expect("main database");
        let probed: String = sqlx::query_scalar("select current_database()")
            .fetch_one(&probes)
            .await
            .expect("probe database");
        assert_eq!(probed, database);
        // The main pool's sessions are untouched.
        let main_seqscan: String = sqlx::query_scalar("show enable_seqscan")
            .fetch_one(&main)
            .await
            .expect("main enable_seqscan");
        assert_eq!(main_seqscan, "on");
    }
}
