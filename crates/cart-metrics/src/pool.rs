//! PostgreSQL pools as observable gauges, read at each collection (a scrape or an OTLP
//! push) from `PgPool::size` and `PgPool::num_idle`: two atomic reads, no query.
//!
//! Observable callbacks cannot be removed from a meter provider, so the gauges are
//! registered once per process and read a list of watched pools; a [`PoolWatch`] takes
//! its pool off the list when dropped (a stopped service no longer holds its pool).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use opentelemetry::KeyValue;
use sqlx::PgPool;

struct Watched {
    id: u64,
    name: &'static str,
    pool: PgPool,
}

static POOLS: Mutex<Vec<Watched>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static GAUGES: Once = Once::new();

/// Keeps a pool observed while it lives.
#[derive(Debug)]
pub struct PoolWatch {
    id: u64,
}

impl Drop for PoolWatch {
    fn drop(&mut self) {
        if let Ok(mut pools) = POOLS.lock() {
            pools.retain(|w| w.id != self.id);
        }
    }
}

/// Observes `pool` as `cart_db_pool_connections{pool=name, state=in_use|idle}` and
/// `cart_db_pool_max_connections{pool=name}`. Call after [`crate::init`].
pub fn watch_pool(name: &'static str, pool: &PgPool) -> PoolWatch {
    GAUGES.call_once(register);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut pools) = POOLS.lock() {
        pools.push(Watched {
            id,
            name,
            pool: pool.clone(),
        });
    }
    PoolWatch { id }
}

/// `(name, in use, idle, max)` per pool name, summed over the pools of that name (several
/// service instances in one process, as in tests).
fn readings() -> Vec<(&'static str, u64, u64, u64)> {
    let Ok(pools) = POOLS.lock() else {
        return vec![];
    };
    let mut out: Vec<(&'static str, u64, u64, u64)> = Vec::new();
    for w in pools.iter() {
        let size = u64::from(w.pool.size());
        let idle = u64::try_from(w.pool.num_idle()).unwrap_or(u64::MAX);
        let max = u64::from(w.pool.options().get_max_connections());
        let in_use = size.saturating_sub(idle);
        match out.iter_mut().find(|r| r.0 == w.name) {
            Some(r) => {
                r.1 += in_use;
                r.2 += idle;
                r.3 += max;
            }
            None => out.push((w.name, in_use, idle, max)),
        }
    }
    out
}

fn register() {
    let meter = opentelemetry::global::meter("cart-metrics");
    meter
        .u64_observable_gauge("cart_db_pool_connections")
        .with_description(
            "PostgreSQL connections of the pool, in use (by a request or a task) or idle",
        )
        .with_unit("{connection}")
        .with_callback(|observer| {
            for (name, in_use, idle, _) in readings() {
                let pool = KeyValue::new("pool", name);
                observer.observe(in_use, &[pool.clone(), KeyValue::new("state", "in_use")]);
                observer.observe(idle, &[pool, KeyValue::new("state", "idle")]);
            }
        })
        .build();
    meter
        .u64_observable_gauge("cart_db_pool_max_connections")
        .with_description("The most connections the pool opens; in_use at this level means waits")
        .with_unit("{connection}")
        .with_callback(|observer| {
            for (name, _, _, max) in readings() {
                observer.observe(max, &[KeyValue::new("pool", name)]);
            }
        })
        .build();
}
