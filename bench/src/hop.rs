//! Statement round trips on SQLite through SeaORM: how long one small statement of a
//! transaction takes (an insert, then a read of it, 20,000 times each), with the driver's
//! worker thread sleeping between statements or waiting awake (`Tuning::sqlite_worker_spin`),
//! and with the task waiting for each answer asleep or awake (`timebank_server::spin::Spin`,
//! as the city server's pushed groups on SQLite do).
//!
//! `cargo run --release -p timebank-bench --bin timebank-bench-hop`
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use sea_orm::{DbBackend, TransactionTrait, Value};
use std::time::{Duration, Instant};
use timebank_core::db::WORKER_SPIN;
use timebank_server::spin::Spin;

const STATEMENTS: i64 = 20_000;
const ROUNDS: i64 = 5;

/// One round: microseconds a statement.
async fn round(db: DatabaseConnection, first_id: i64) -> anyhow::Result<f64> {
    let txn = db.begin().await?;
    let t = Instant::now();
    for id in first_id..first_id + STATEMENTS / 2 {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO t (id, v) VALUES (?, ?)",
            [Value::from(id), "x".into()],
        ))
        .await?;
        txn.query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT v FROM t WHERE id = ?",
            [Value::from(id)],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("row {id} not read back"))?;
    }
    let s = t.elapsed().as_secs_f64();
    txn.commit().await?;
    Ok(s * 1e6 / STATEMENTS as f64)
}

async fn measure(
    dir: &std::path::Path,
    worker_spin: Duration,
    task_spin: bool,
) -> anyhow::Result<()> {
    let file = dir.join(format!("hop-{}-{task_spin}.db", worker_spin.as_micros()));
    let mut opt = ConnectOptions::new(format!("sqlite://{}?mode=rwc", file.display()));
    opt.sqlx_logging(false)
        .max_connections(1)
        .map_sqlx_sqlite_opts(move |o| o.worker_spin(worker_spin));
    let db = Database::connect(opt).await?;
    db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .await?;
    let mut per = Vec::new();
    for r in 0..ROUNDS {
        let f = round(db.clone(), r * STATEMENTS);
        per.push(if task_spin {
            tokio::spawn(Spin::new(f)).await??
        } else {
            tokio::spawn(f).await??
        });
    }
    per.sort_by(f64::total_cmp);
    println!(
        "| {} | {} | {:.1} µs | {:.1} µs |",
        if worker_spin.is_zero() {
            "asleep".to_owned()
        } else {
            format!("awake up to {} µs", worker_spin.as_micros())
        },
        if task_spin { "awake (Spin)" } else { "asleep" },
        per[per.len() / 2],
        per[0],
    );
    db.close().await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("timebank-hop-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        println!(
            "statement round trips on SQLite ({STATEMENTS} statements a round, {ROUNDS} rounds)\n"
        );
        println!("| worker between statements | task waiting for an answer | median | best |");
        println!("|---|---|---|---|");
        let r = async {
            for worker in [Duration::ZERO, WORKER_SPIN] {
                for task in [false, true] {
                    measure(&dir, worker, task).await?;
                }
            }
            anyhow::Ok(())
        }
        .await;
        std::fs::remove_dir_all(&dir).ok();
        r
    })
}
