//! Opening databases: SQLite on devices (WAL, foreign keys, busy timeout, synchronous=FULL
//! on every pooled connection) and PostgreSQL on the city server. Migrations run on open.
use crate::error::Result;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use std::time::Duration;
use timebank_migrations::{Migrator, MigratorTrait};

/// Rows an SQLite connection's worker thread may hand over before the reader takes them
/// (sqlx's default is 50: a query of a few thousand rows, such as a pushed batch's change log
/// or a device's next batch, then ping-pongs between the two threads every 50 rows).
const ROW_CHANNEL: usize = 4096;

/// `sqlite:` URL of a database file, created if missing.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// The URL of database `name` on the PostgreSQL server of `url`, with `url`'s options (a
/// socket's directory in `?host=`, `sslmode`...): `url` names another database of that server.
pub fn postgres_database_url(url: &str, name: &str) -> String {
    let (path, options) = match url.split_once('?') {
        Some((p, o)) => (p, format!("?{o}")),
        None => (url, String::new()),
    };
    // The database is the path's last segment, after the host (`postgres://host/db`); a URL
    // without one (`postgres://host`) gets it added.
    let server = match path.find("://") {
        Some(i) if path[i + 3..].contains('/') => path.rsplit_once('/').map_or(path, |(s, _)| s),
        _ => path,
    };
    format!("{server}/{name}{options}")
}

/// Drop database `name` of the PostgreSQL server that `admin_url` reaches (a URL of another of
/// its databases, such as `postgres`), closing its connections first (`WITH (FORCE)`); nothing
/// when there is none.
async fn drop_postgres_database(admin_url: &str, name: &str) -> Result<()> {
    let admin = open(admin_url).await?;
    let dropped = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
    admin.close().await.ok();
    dropped?;
    Ok(())
}

/// A PostgreSQL database of its own for one test or benchmark run: created empty under a new
/// name, and dropped by [`ScratchDatabase::drop_now`] at the run's end, or else when this
/// value is dropped (a panic unwinding included), so that no run leaves one behind.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    dropped: bool,
}

impl ScratchDatabase {
    /// A new empty database `{prefix}_{uuid}` on the PostgreSQL server that `admin_url` (a URL
    /// of another of its databases, such as `postgres`) reaches.
    pub async fn create(admin_url: &str, prefix: &str) -> Result<ScratchDatabase> {
        let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
        let admin = open(admin_url).await?;
        let created = admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await;
        admin.close().await.ok();
        created.map_err(|e| crate::CoreError::from(e).with("database", &name))?;
        Ok(ScratchDatabase {
            admin_url: admin_url.to_owned(),
            name,
            dropped: false,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL, with the options of the admin URL it was made through.
    pub fn url(&self) -> String {
        postgres_database_url(&self.admin_url, &self.name)
    }

    /// Drop the database now (its connections closed first); the error names the database.
    pub async fn drop_now(mut self) -> Result<()> {
        self.dropped = true;
        drop_postgres_database(&self.admin_url, &self.name)
            .await
            .map_err(|e| e.with("database", &self.name))
    }
}

impl Drop for ScratchDatabase {
    /// Reached without [`ScratchDatabase::drop_now`] when the run did not get to its end (it
    /// panicked, or returned an error). The caller's runtime may be the one this runs on, and
    /// may not wait: the drop runs on a thread of its own with a runtime of its own, and a
    /// failure is printed, not raised (a panic while unwinding would abort).
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(drop_postgres_database(&admin_url, &name))
                .map_err(|e| format!("{e:?}"))
        })
        .join()
        .unwrap_or_else(|_| Err("dropping it panicked".into()));
        if let Err(e) = done {
            eprintln!("warning: DROP DATABASE {}: {e}", self.name);
        }
    }
}

/// Connection pool and SQLite page cache sizes.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// SQLite connections in the pool (PostgreSQL: 16).
    pub sqlite_connections: u32,
    /// SQLite page cache per connection, in KiB.
    pub sqlite_cache_kib: u32,
    /// The WAL is checkpointed by the owner of the pool ([`checkpoint`], the city server every
    /// quarter second) instead of by the commit that fills it (which then waits for the copy
    /// and two fsyncs: a third of the city server's time per pushed batch).
    pub sqlite_background_checkpoints: bool,
    /// How long an SQLite connection's worker thread waits for its next statement awake
    /// (yielding its core to any other thread) before it sleeps; zero sleeps at once. For the
    /// city server, whose pushed groups send statements back to back: waking the thread for
    /// each cost more than most of the statements (`server::spin`, vendor/README.md).
    pub sqlite_worker_spin: Duration,
    /// How much of an SQLite database a connection reads through a memory map instead of
    /// `read` calls, in bytes (`PRAGMA mmap_size`); zero reads none. A connection whose page
    /// cache another's commit made stale reads its pages back from the map without copying
    /// them. Writes still go through the WAL as before. The price: an I/O error while reading
    /// the map stops the process (SIGBUS) instead of failing one statement, so only the city
    /// server, whose pool's connections take turns writing, maps its database.
    pub sqlite_mmap_bytes: u64,
}

impl Default for Tuning {
    /// For the CLI and the city server: a few connections with a generous cache.
    fn default() -> Self {
        Tuning {
            sqlite_connections: 4,
            sqlite_cache_kib: 32_000,
            sqlite_background_checkpoints: false,
            sqlite_worker_spin: Duration::ZERO,
            sqlite_mmap_bytes: 0,
        }
    }
}

impl Tuning {
    /// For the desktop app, which shares the machine with a web-view: two connections, a
    /// small cache (the device's database is small and mostly in the OS page cache anyway).
    pub const DESKTOP: Tuning = Tuning {
        sqlite_connections: 2,
        sqlite_cache_kib: 4_000,
        sqlite_background_checkpoints: false,
        sqlite_worker_spin: Duration::ZERO,
        sqlite_mmap_bytes: 0,
    };

    /// For the city server on SQLite: the default's, its WAL checkpointed in the background
    /// (`timebank_server::serve` does it).
    pub const SERVER: Tuning = Tuning {
        sqlite_connections: 4,
        sqlite_cache_kib: 32_000,
        sqlite_background_checkpoints: true,
        sqlite_worker_spin: crate::db::WORKER_SPIN,
        sqlite_mmap_bytes: 1 << 30,
    };
}

/// The city server's [`Tuning::sqlite_worker_spin`]. Measured on the 2-core machine
/// (`timebank-bench-hop`, medians), a small statement's round trip took 29 µs with the worker
/// asleep between statements, 18 µs with it awake, and 6 µs with the task waiting awake too
/// (`timebank_server::spin`). Most of a pushed group's statements follow the one before within
/// this time.
pub const WORKER_SPIN: Duration = Duration::from_micros(50);

/// Copy what the WAL holds into the database file as far as no reader or writer is in the
/// way (`PRAGMA wal_checkpoint(PASSIVE)`), for pools opened with
/// [`Tuning::sqlite_background_checkpoints`]. Nothing to do on PostgreSQL.
pub async fn checkpoint(db: &DatabaseConnection) -> Result<()> {
    if db.get_database_backend() == sea_orm::DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await?;
    }
    Ok(())
}

/// Bring the query planner's statistics up to date for the tables whose rows changed much
/// since they were last gathered. Without them the planner guesses sizes from nothing: on
/// PostgreSQL, where a table never analyzed looks a few rows long, finding the volunteers to
/// tell of a new order compared every member of the community with every verified volunteer
/// (727,681 comparisons for 2,501 members and 300 volunteers, where a hash join reads each
/// once; see bench/RESULTS.md). PostgreSQL's autovacuum does this on its own when it is on, which
/// `postgresql.conf` may turn off; SQLite never does.
///
/// - SQLite: `PRAGMA optimize=0x10002`, which analyzes every table not analyzed yet or
///   grown or shrunk tenfold since, each within SQLite's own limit on rows read, and does
///   nothing else.
/// - PostgreSQL: `ANALYZE` of each of the schema's tables changed by more than autovacuum's
///   own threshold (50 rows and a tenth of the table) since it was last analyzed, by anyone.
///
/// Returns the tables analyzed on PostgreSQL (SQLite does not say which).
pub async fn refresh_statistics(db: &DatabaseConnection) -> Result<Vec<String>> {
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            each_pg_table(
                db,
                "n_mod_since_analyze > 50 + 0.1 * GREATEST(n_live_tup, 0)",
                "ANALYZE",
            )
            .await
        }
        _ => {
            db.execute_unprepared("PRAGMA optimize=0x10002").await?;
            Ok(Vec::new())
        }
    }
}

/// Give back the space of deleted and overwritten rows, on PostgreSQL: `VACUUM` of each of the
/// schema's tables holding more dead rows than autovacuum's own threshold (50 and a fifth of
/// its live rows). PostgreSQL's autovacuum does this on its own when it is on; with it off
/// (`postgresql.conf`, as on these machines) they were never reclaimed: after the sync
/// benchmark's pushes the accounts, rewritten at every credit, held 26,304 dead row versions
/// beside 39,204 live ones, and a table only grows. Tables another process is vacuuming are
/// skipped (`SKIP_LOCKED`). (The city server's change queue, all of whose rows die in the
/// transaction that wrote them, is vacuumed far more often, on its own.)
///
/// SQLite reuses a deleted row's space by itself: nothing to do there.
///
/// Returns the tables vacuumed.
pub async fn vacuum_dead_rows(db: &DatabaseConnection) -> Result<Vec<String>> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(Vec::new());
    }
    each_pg_table(
        db,
        "n_dead_tup > 50 + 0.2 * GREATEST(n_live_tup, 0)",
        "VACUUM (SKIP_LOCKED)",
    )
    .await
}

/// Run `command` (`ANALYZE`, `VACUUM`) on each of the schema's PostgreSQL tables whose
/// activity counts (`pg_stat_user_tables`) meet `condition`, one after the other, outside a
/// transaction (as `VACUUM` must be). Returns their names.
async fn each_pg_table(
    db: &DatabaseConnection,
    condition: &str,
    command: &str,
) -> Result<Vec<String>> {
    let tables = crate::sql::all(
        db,
        &format!(
            "SELECT relname FROM pg_stat_user_tables \
             WHERE schemaname = current_schema() AND {condition} ORDER BY relname"
        ),
        vec![],
    )
    .await?;
    let mut done = Vec::with_capacity(tables.len());
    for r in tables {
        let table: String = r.try_get("", "relname")?;
        // The name comes from the catalog; quoted as an identifier all the same.
        db.execute_unprepared(&format!("{command} \"{}\"", table.replace('"', "\"\"")))
            .await?;
        done.push(table);
    }
    Ok(done)
}

/// Open a database by URL (`sqlite://...` or `postgres://...`) without migrating.
pub async fn open(url: &str) -> Result<DatabaseConnection> {
    open_tuned(url, Tuning::default()).await
}

/// `open` with the given pool and cache sizes.
pub async fn open_tuned(url: &str, tuning: Tuning) -> Result<DatabaseConnection> {
    let mut opt = ConnectOptions::new(url.to_owned());
    opt.sqlx_logging(false);
    if url.starts_with("sqlite:") {
        // SQLite on mimalloc, before the first connection starts it (a no-op afterwards).
        if let Err(e) = timebank_sqlite_alloc::install() {
            tracing::warn!("{e}");
        }
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        // A read-only open (checking a backup) must not change the journal mode.
        let read_only = url.contains("mode=ro");
        let cache = format!("-{}", tuning.sqlite_cache_kib);
        let spin = tuning.sqlite_worker_spin;
        // 1000 pages is SQLite's default.
        let autocheckpoint = if tuning.sqlite_background_checkpoints {
            "0"
        } else {
            "1000"
        };
        opt.max_connections(if memory { 1 } else { tuning.sqlite_connections })
            .min_connections(1)
            .map_sqlx_sqlite_opts(move |o| {
                let o = o
                    .foreign_keys(true)
                    .row_buffer_size(ROW_CHANNEL)
                    .worker_spin(spin)
                    .busy_timeout(Duration::from_secs(10))
                    // FULL: a commit is on the disk before it returns. With NORMAL in WAL mode a
                    // power cut (a typhoon's outage) could take back the last commits: a
                    // confirmed visit the user saw saved, or on the city server a push already
                    // answered "applied", which its device then never sends again. Measured
                    // here: 0.1 ms more a commit.
                    .synchronous(SqliteSynchronous::Full)
                    .pragma("temp_store", "memory")
                    .pragma("cache_size", cache.clone())
                    .pragma("wal_autocheckpoint", autocheckpoint)
                    .pragma("mmap_size", tuning.sqlite_mmap_bytes.to_string());
                if memory || read_only {
                    o
                } else {
                    o.journal_mode(SqliteJournalMode::Wal)
                }
            });
    } else {
        opt.max_connections(16).min_connections(1);
    }
    Ok(Database::connect(opt).await?)
}

/// Open and bring the schema up to date (and the waiting mutations with it:
/// [`crate::service::outbox::restamp_pending`]; and a device's sync with it:
/// [`crate::sync::after_migrations`]).
pub async fn connect(url: &str) -> Result<DatabaseConnection> {
    connect_tuned(url, Tuning::default()).await
}

/// `connect` with the given pool and cache sizes.
pub async fn connect_tuned(url: &str, tuning: Tuning) -> Result<DatabaseConnection> {
    let db = open_tuned(url, tuning).await?;
    Migrator::up(&db, None).await?;
    crate::service::outbox::restamp_pending(&db).await?;
    crate::sync::after_migrations(&db).await?;
    Ok(db)
}

/// Begin a writing transaction. On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken at
/// once, so concurrent writers wait for each other (busy timeout) instead of failing with
/// "database is locked" when a read transaction tries to become a write transaction.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction> {
    Ok(db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?)
}

/// How safely an SQLite connection commits (`PRAGMA synchronous` of the connection `c` runs
/// on): 2 = FULL, on the disk before the commit returns; 1 = NORMAL, which in WAL mode a power
/// cut can take commits back from. For tests and diagnostics.
pub async fn sqlite_synchronous(c: &impl ConnectionTrait) -> Result<i64> {
    sqlite_pragma(c, "synchronous").await
}

/// The value of an SQLite `PRAGMA` that answers one integer, on the connection `c` runs on.
async fn sqlite_pragma(c: &impl ConnectionTrait, name: &str) -> Result<i64> {
    let row = c
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            format!("PRAGMA {name}"),
        ))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("PRAGMA {name}")))?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_postgres_database_keeps_the_server_and_the_options_of_the_url() {
        assert_eq!(
            postgres_database_url("postgres://postgres@127.0.0.1:5432/postgres", "tb_1"),
            "postgres://postgres@127.0.0.1:5432/tb_1"
        );
        assert_eq!(
            postgres_database_url(
                "postgres://postgres@localhost/postgres?host=/var/run/postgresql",
                "tb_1"
            ),
            "postgres://postgres@localhost/tb_1?host=/var/run/postgresql"
        );
        assert_eq!(
            postgres_database_url("postgres://u:p@db.example/city?sslmode=require", "tb_2"),
            "postgres://u:p@db.example/tb_2?sslmode=require"
        );
        assert_eq!(
            postgres_database_url("postgres://u@db.example:5433", "tb_3"),
            "postgres://u@db.example:5433/tb_3"
        );
    }

    /// Every connection of a pool, not only the first, commits to the disk and maps as much
    /// of the database as its tuning says (the city server's alone); and SQLite runs on
    /// mimalloc once a database is open.
    #[tokio::test]
    async fn every_sqlite_connection_commits_to_the_disk_and_only_the_city_server_maps_its_database(
    ) {
        let dir = tempfile::tempdir().expect("directory");
        for (i, (tuning, mapped)) in [
            (Tuning::default(), 0),
            (Tuning::DESKTOP, 0),
            (Tuning::SERVER, 1 << 30),
        ]
        .into_iter()
        .enumerate()
        {
            let url = sqlite_url(&dir.path().join(format!("t{i}.db")));
            let db = open_tuned(&url, tuning).await.expect("open");
            // Hold every connection of the pool at once, so each one is asked.
            let mut held = Vec::new();
            for _ in 0..tuning.sqlite_connections {
                let tx = db.begin().await.expect("a pooled connection");
                assert_eq!(sqlite_synchronous(&tx).await.expect("level"), 2);
                assert_eq!(sqlite_pragma(&tx, "mmap_size").await.expect("size"), mapped);
                held.push(tx);
            }
            drop(held);
            assert_eq!(sqlite_synchronous(&db).await.expect("level"), 2);
        }
        assert!(timebank_sqlite_alloc::sqlite_uses_mimalloc());
    }

    /// Worker threads of this process whose name starts with `prefix`.
    fn threads_named(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|d| {
                d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                    .filter(|name| name.starts_with(prefix))
                    .count()
            })
            .unwrap_or(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_that_waits_awake_answers_every_statement_and_ends_with_its_pool() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut opt = ConnectOptions::new(sqlite_url(&dir.path().join("spin.db")));
        opt.sqlx_logging(false)
            .max_connections(1)
            .map_sqlx_sqlite_opts(|o| {
                o.worker_spin(WORKER_SPIN)
                    .thread_name(|id| format!("tb-awake-{id}"))
            });
        // As `open_tuned` does before SQLite starts: this process's other tests (run in any
        // order) find SQLite on mimalloc.
        timebank_sqlite_alloc::install().expect("before SQLite starts");
        let db = Database::connect(opt).await.expect("open");
        assert_eq!(
            threads_named("tb-awake-"),
            1,
            "one worker for the one connection"
        );
        db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .await
            .expect("create");
        let txn = db.begin().await.expect("begin");
        for id in 0..500 {
            txn.execute_unprepared(&format!("INSERT INTO t (id) VALUES ({id})"))
                .await
                .expect("insert");
            // A pause longer than the worker waits awake now and then: it sleeps, and is woken.
            if id % 100 == 0 {
                tokio::time::sleep(WORKER_SPIN * 4).await;
            }
        }
        txn.commit().await.expect("commit");
        let n = crate::sql::scalar_i64(&db, "SELECT COUNT(*) FROM t", vec![])
            .await
            .expect("count");
        assert_eq!(n, 500);
        db.close().await.expect("close");
        for _ in 0..100 {
            if threads_named("tb-awake-") == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the worker thread outlived its pool");
    }
}
