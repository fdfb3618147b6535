//! The city server of the time bank (axum). It enrols devices with one-time codes, then
//! accepts their pushed mutations and applies each through the same core service functions
//! the devices use (`timebank_core::service::execute_in`), recording the result under
//! (device, sequence) in the same transaction so a duplicate gets the stored result.
//!
//! Stateless: every request reads what it needs from the database, so several processes can
//! serve one PostgreSQL database.
pub mod api;
pub mod auth;
pub mod changes;
pub mod deferred;
pub mod pull;
pub mod push;
pub mod spin;

use sea_orm::DatabaseConnection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The sync protocol version this server speaks. It serves this and the one before.
pub const PROTOCOL: u32 = 1;
/// The oldest client protocol still served: the last two versions (there is no version 0).
pub const MIN_PROTOCOL: u32 = if PROTOCOL > 1 { PROTOCOL - 1 } else { 1 };
/// Request bodies above this are refused (413).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub enrolments: AtomicU64,
    pub mutations_applied: AtomicU64,
    pub mutations_rejected: AtomicU64,
    pub mutations_duplicate: AtomicU64,
    /// Push results committed: one for each pushed mutation applied or refused, counted when
    /// the transaction that recorded it commits (a duplicate records nothing), whether or not
    /// its device is still there to be answered.
    pub push_results_stored: AtomicU64,
    pub push_batches_careful: AtomicU64,
    pub push_groups: AtomicU64,
    pub push_groups_split: AtomicU64,
    pub auth_failures: AtomicU64,
    /// Transactions of pushed batches begun (groups, single batches and careful passes).
    pub push_transactions: AtomicU64,
    /// Microseconds those transactions spent in each phase ([`push::Phase`]), also when one
    /// was then rolled back.
    pub push_phase_us: [AtomicU64; push::Phase::ALL.len()],
}

impl Metrics {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (name, help, v) in [
            (
                "timebank_http_requests_total",
                "HTTP requests served",
                &self.requests,
            ),
            (
                "timebank_enrolments_total",
                "Devices enrolled",
                &self.enrolments,
            ),
            (
                "timebank_mutations_applied_total",
                "Pushed mutations applied",
                &self.mutations_applied,
            ),
            (
                "timebank_mutations_rejected_total",
                "Pushed mutations rejected",
                &self.mutations_rejected,
            ),
            (
                "timebank_mutations_duplicate_total",
                "Duplicate deliveries answered from the stored result",
                &self.mutations_duplicate,
            ),
            (
                "timebank_push_results_stored_total",
                "Push results committed (each pushed mutation applied or refused, once)",
                &self.push_results_stored,
            ),
            (
                "timebank_push_batches_careful_total",
                "Pushed batches applied again statement by statement (a held-back write failed or a refused mutation had written)",
                &self.push_batches_careful,
            ),
            (
                "timebank_push_groups_total",
                "Groups of two or more pushed batches applied together in one transaction",
                &self.push_groups,
            ),
            (
                "timebank_push_groups_split_total",
                "Groups of pushed batches rolled back and applied batch by batch (one needed the careful pass, or the database failed)",
                &self.push_groups_split,
            ),
            (
                "timebank_auth_failures_total",
                "Requests refused for missing or bad credentials",
                &self.auth_failures,
            ),
        ] {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        s.push_str(&format!(
            "# HELP timebank_push_transactions_total Transactions begun to apply pushed batches (groups, single batches, careful passes)\n\
             # TYPE timebank_push_transactions_total counter\n\
             timebank_push_transactions_total {}\n\
             # HELP timebank_push_phase_seconds_total Time the pushes' transactions spent in each phase ({})\n\
             # TYPE timebank_push_phase_seconds_total counter\n",
            self.push_transactions.load(Ordering::Relaxed),
            push::Phase::ALL
                .iter()
                .map(|p| format!("{}: {}", p.name(), p.what()))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        for p in push::Phase::ALL {
            s.push_str(&format!(
                "timebank_push_phase_seconds_total{{phase=\"{}\"}} {:.6}\n",
                p.name(),
                self.phase_seconds(p)
            ));
        }
        s
    }

    /// Seconds the pushes' transactions have spent in `phase` so far.
    pub fn phase_seconds(&self, phase: push::Phase) -> f64 {
        self.push_phase_us[phase as usize].load(Ordering::Relaxed) as f64 / 1e6
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// Where pushes are applied. On SQLite a connection of its own (there is one writer
    /// anyway), so that a push never waits for a connection behind the reads of a crowd of
    /// requests (authenticating a hundred devices at once took every pooled connection for
    /// about 0.1 s); on PostgreSQL the same pool as `db`.
    pub writer: DatabaseConnection,
    pub metrics: Arc<Metrics>,
    /// Pull pages read at once: as many as the machine has cores. More only share the same
    /// cores and the database with the pushes, which then wait behind a crowd of reads.
    pub pulls: Arc<tokio::sync::Semaphore>,
    /// How many permits `pulls` has.
    pub pulls_at_once: usize,
    /// Pushes take their turn here, in groups of the batches that wait (group commit, see
    /// [`push::Combiner`]). On SQLite this also keeps them out of SQLite's busy handler, which
    /// sleeps in growing steps (up to 100 ms) and leaves the write lock idle meanwhile.
    pub pushes: Arc<push::Combiner>,
    /// Pushes under way or waiting. Pull pages wait while there are any: a user's change
    /// waits for no catch-up read of another device.
    pub pushing: Arc<tokio::sync::watch::Sender<usize>>,
}

/// The longest a pull page waits for pushes to finish.
pub const PULL_YIELDS_MS: u64 = 5_000;

/// A push counted in [`AppState::pushing`] while this lives.
pub struct Pushing(Arc<tokio::sync::watch::Sender<usize>>);

impl Pushing {
    pub fn start(s: &AppState) -> Self {
        s.pushing.send_modify(|n| *n += 1);
        Pushing(s.pushing.clone())
    }
}

impl Drop for Pushing {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl AppState {
    /// The state of a server on `db`: installs the change-capture triggers (idempotent).
    pub async fn open(db: DatabaseConnection) -> Result<Self, timebank_core::CoreError> {
        changes::install(&db).await?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let groups_at_once = match db.get_database_backend() {
            sea_orm::DbBackend::Sqlite => 1,
            _ => cores,
        };
        let pulls_at_once = cores.max(2);
        let writer = writer_of(&db).await?;
        Ok(AppState {
            db,
            writer,
            metrics: Arc::new(Metrics::default()),
            pulls: Arc::new(tokio::sync::Semaphore::new(pulls_at_once)),
            pulls_at_once,
            pushes: Arc::new(push::Combiner::new(groups_at_once)),
            pushing: Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// Wait until no push is under way or waiting, at most [`PULL_YIELDS_MS`] (so a steady
    /// stream of pushes slows pulls down but never stops them).
    pub async fn after_pushes(&self) {
        let mut rx = self.pushing.subscribe();
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(PULL_YIELDS_MS),
            rx.wait_for(|n| *n == 0),
        )
        .await;
    }
}

/// A pool of one connection to the same SQLite database as `db` (the same options), with the
/// change capture of its own that pushes use ([`timebank_core::sync::connection_capture_sqlite`]),
/// or `db` itself on PostgreSQL and for a database of one connection (in memory).
async fn writer_of(
    db: &DatabaseConnection,
) -> Result<DatabaseConnection, timebank_core::CoreError> {
    if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return Ok(db.clone());
    }
    let pool = db.get_sqlite_connection_pool();
    if pool.options().get_max_connections() <= 1 {
        return Ok(db.clone());
    }
    // Its pushes' rows are queued for the change log in a temporary table of its own.
    let capture: std::sync::Arc<str> = timebank_core::sync::connection_capture_sqlite(db)
        .await?
        .into();
    let writer = sea_orm::sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .after_connect(move |conn, _| {
            let capture = capture.clone();
            Box::pin(async move {
                sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(capture))
                    .execute(&mut *conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_with((*pool.connect_options()).clone())
        .await
        .map_err(|e| {
            timebank_core::CoreError::new(timebank_core::Code::Database).with("detail", e)
        })?;
    Ok(sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(writer))
}

/// Create the city database: install change capture first, then bootstrap the place
/// hierarchy, center, programme and administrator and log those rows, in one transaction, so
/// that the change log from sequence 0 is a complete snapshot for a new device.
pub async fn init_city(
    db: &DatabaseConnection,
    b: &timebank_core::service::admin::Bootstrap,
    now_ms: i64,
) -> Result<timebank_core::service::admin::Bootstrapped, timebank_core::CoreError> {
    changes::install(db).await?;
    let txn = timebank_core::db::begin_write(db).await?;
    let boot = timebank_core::service::admin::bootstrap(&txn, b, now_ms).await?;
    changes::log_changes(&txn, now_ms).await?;
    txn.commit().await?;
    Ok(boot)
}

/// The clock-driven rules (auto-confirmation of visits nobody confirmed, expiry of orders
/// nobody took, widening of urgent orders), run by the city server as the programme's first
/// active administrator, in one transaction with its change log, so that every device gets the
/// outcome. Devices may run them too (the staff desk); what one run decided, the next finds
/// done, and a credit a device made optimistically gives way to the server's (the same visit's
/// credit key). Returns what the run did (None when the city has no administrator yet).
pub async fn run_rules(
    db: &DatabaseConnection,
    now_ms: i64,
) -> Result<Option<serde_json::Value>, timebank_core::CoreError> {
    use timebank_core::service::{self, Command, Ctx};
    let admin = timebank_core::sql::one(
        db,
        "SELECT r.member_id FROM member_roles r JOIN members m ON m.id = r.member_id WHERE r.role = 'admin' AND m.active = ? ORDER BY r.member_id",
        vec![true.into()],
    )
    .await?;
    let Some(admin) = admin else {
        return Ok(None);
    };
    let admin: String = admin.try_get("", "member_id")?;
    let txn = timebank_core::db::begin_write(db).await?;
    let ctx = Ctx::replaying(&admin, "city-server", now_ms, &service::new_id());
    let out = service::execute_in(&txn, &ctx, &Command::Tick).await?;
    changes::log_changes(&txn, now_ms).await?;
    txn.commit().await?;
    Ok(Some(out.detail))
}

/// Serve `state` on `listener` until `shutdown` resolves (graceful: requests in flight finish).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The WAL of an SQLite database opened with `Tuning::SERVER` is checkpointed here, beside
    // the requests, not by the push whose commit fills it.
    let db = state.db.clone();
    let checkpoints = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(CHECKPOINT_MS));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = timebank_core::db::checkpoint(&db).await {
                tracing::warn!("checkpoint: {e}");
            }
        }
    });
    // The query planner's statistics, kept fresh whatever the database's own settings, in a
    // quiet moment: analyzing the change log and the ledger costs the database a second of
    // work that a device syncing meanwhile would wait for.
    let statistics = tokio::spawn(keep_statistics(state.clone()));
    let queue = tokio::spawn(keep_queue_small(state.clone()));
    let served = axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    checkpoints.abort();
    statistics.abort();
    queue.abort();
    served
}

/// How often a busy server vacuums the change queue on PostgreSQL
/// ([`changes::vacuum_queue`]).
pub const QUEUE_VACUUM_MS: u64 = 1_000;

/// Every [`QUEUE_VACUUM_MS`], vacuum the change queue if a request came since the tick before
/// (and once more after the last, for the push it may have been). Not in a quiet moment:
/// vacuuming the queue waits for no push and no push waits for it, and the queue is a few
/// pages. Nothing to do on SQLite.
async fn keep_queue_small(state: AppState) {
    if state.db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    let mut every = tokio::time::interval(std::time::Duration::from_millis(QUEUE_VACUUM_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = state.metrics.requests.load(Ordering::Relaxed);
    let mut busy_before = true; // the server may have been written to before it started
    loop {
        every.tick().await;
        let now = state.metrics.requests.load(Ordering::Relaxed);
        let busy = now != seen || *state.pushing.borrow() > 0;
        seen = now;
        if busy || busy_before {
            if let Err(e) = changes::vacuum_queue(&state.db).await {
                tracing::warn!("vacuuming the change queue: {e}");
            }
        }
        busy_before = busy;
    }
}

/// How often the server brings the query planner's statistics up to date
/// ([`timebank_core::db::refresh_statistics`]): as often as PostgreSQL's autovacuum looks.
pub const STATISTICS_EVERY_S: u64 = 60;

/// The statistics wait for this long a stretch without a request ...
pub const QUIET_MS: u64 = 2_000;

/// ... but at most this long after they were due.
pub const QUIET_WAIT_MAX_S: u64 = 600;

/// Every [`STATISTICS_EVERY_S`], once the server is quiet ([`wait_for_quiet`]), bring the
/// planner's statistics up to date.
async fn keep_statistics(state: AppState) {
    let every = std::time::Duration::from_secs(STATISTICS_EVERY_S);
    loop {
        tokio::time::sleep(every).await;
        let activity = || {
            let busy = *state.pushing.borrow() > 0
                || state.pulls.available_permits() < state.pulls_at_once;
            (!busy).then(|| state.metrics.requests.load(Ordering::Relaxed))
        };
        wait_for_quiet(
            activity,
            std::time::Duration::from_millis(QUIET_MS),
            std::time::Duration::from_secs(QUIET_WAIT_MAX_S),
        )
        .await;
        match timebank_core::db::vacuum_dead_rows(&state.db).await {
            Ok(t) if !t.is_empty() => tracing::info!("dead rows vacuumed: {}", t.join(", ")),
            Ok(_) => {}
            Err(e) => tracing::warn!("vacuuming dead rows: {e}"),
        }
        match timebank_core::db::refresh_statistics(&state.db).await {
            Ok(t) if !t.is_empty() => tracing::info!("statistics refreshed: {}", t.join(", ")),
            Ok(_) => {}
            Err(e) => tracing::warn!("refreshing the planner's statistics: {e}"),
        }
    }
}

/// Wait until `activity` (a count that changes whenever something happens, None while
/// something is under way) stays the same for `quiet`, or `at_most` has passed. True when it
/// was quiet.
pub async fn wait_for_quiet(
    activity: impl Fn() -> Option<u64>,
    quiet: std::time::Duration,
    at_most: std::time::Duration,
) -> bool {
    let since = tokio::time::Instant::now();
    loop {
        let seen = activity();
        tokio::time::sleep(quiet).await;
        if seen.is_some() && activity() == seen {
            return true;
        }
        if since.elapsed() >= at_most {
            return false;
        }
    }
}

/// How often the server checkpoints its SQLite database's WAL.
pub const CHECKPOINT_MS: u64 = 250;

/// Turn transparent huge pages off for this process (Linux; elsewhere nothing to do).
///
/// mimalloc asks the kernel for huge pages on its arenas, so a thread's first touch of fresh
/// memory has the kernel zero 2 MiB at once. With a hundred devices syncing at once that
/// zeroing was a fifth of the machine's time (`clear_page_erms` in a profile of the sync
/// benchmark); without it the SQLite server applied the same pushes about 15 % faster, the
/// PostgreSQL one no differently beyond the noise (bench/RESULTS.md). Call it first thing in
/// `main`; it holds for every thread, also those started before. Returns whether huge pages
/// are now off.
pub fn without_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        match nix::sys::prctl::set_thp_disable(true) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("could not turn transparent huge pages off: {e}");
                false
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn maintenance_goes_ahead_once_nothing_happened_for_a_quiet_stretch() {
        let looked = AtomicU64::new(0);
        // Requests keep coming for the first three looks, then stop.
        let activity = || {
            let n = looked.fetch_add(1, Ordering::Relaxed);
            Some(n.min(3))
        };
        let t = tokio::time::Instant::now();
        assert!(wait_for_quiet(activity, Duration::from_secs(2), Duration::from_secs(600)).await);
        assert!(
            looked.load(Ordering::Relaxed) >= 4,
            "it waited for the requests to stop"
        );
        assert!(t.elapsed() < Duration::from_secs(600));
    }

    #[tokio::test(start_paused = true)]
    async fn maintenance_waits_while_a_push_or_pull_is_under_way_and_goes_ahead_at_the_limit() {
        let looked = AtomicU64::new(0);
        let busy = || {
            looked.fetch_add(1, Ordering::Relaxed);
            None
        };
        let t = tokio::time::Instant::now();
        assert!(!wait_for_quiet(busy, Duration::from_secs(2), Duration::from_secs(60)).await);
        assert!(
            t.elapsed() >= Duration::from_secs(60),
            "it waited as long as it may"
        );
        assert!(looked.load(Ordering::Relaxed) >= 30);
        // Requests that never stop: the same.
        let n = AtomicU64::new(0);
        let requests = || Some(n.fetch_add(1, Ordering::Relaxed));
        assert!(!wait_for_quiet(requests, Duration::from_secs(2), Duration::from_secs(60)).await);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_server_process_runs_without_transparent_huge_pages() {
        assert!(without_huge_pages(), "the kernel refused the setting");
        assert!(nix::sys::prctl::get_thp_disable().expect("read the flag"));
    }

    #[tokio::test]
    async fn pull_pages_wait_while_a_push_is_under_way_and_go_on_when_it_ends() {
        let db = timebank_core::db::connect("sqlite::memory:")
            .await
            .expect("database");
        let s = AppState::open(db).await.expect("state");
        let push = Pushing::start(&s);
        let pull = tokio::spawn({
            let s = s.clone();
            async move { s.after_pushes().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!pull.is_finished(), "the pull waits for the push");
        drop(push);
        tokio::time::timeout(std::time::Duration::from_secs(2), pull)
            .await
            .expect("the pull goes on once the push is over")
            .expect("task");
        assert_eq!(*s.pushing.borrow(), 0);
    }

    #[tokio::test]
    async fn pushes_on_sqlite_have_a_connection_of_their_own_whose_commits_reach_the_disk() {
        use sea_orm::TransactionTrait;
        let dir = tempfile::tempdir().expect("directory");
        let tuning = timebank_core::db::Tuning::SERVER;
        let db = timebank_core::db::connect_tuned(
            &timebank_core::db::sqlite_url(&dir.path().join("city.db")),
            tuning,
        )
        .await
        .expect("database");
        let s = AppState::open(db.clone()).await.expect("state");
        // Every pooled connection taken (by requests reading, say).
        let mut reading = Vec::new();
        for _ in 0..tuning.sqlite_connections {
            reading.push(db.begin().await.expect("a pooled connection"));
        }
        let push = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            timebank_core::db::begin_write(&s.writer),
        )
        .await
        .expect("the push does not wait for the pool")
        .expect("a writing transaction");
        timebank_core::sql::exec(&push, "CREATE TABLE pushed (v TEXT)", vec![])
            .await
            .expect("written");
        push.commit().await.expect("committed");
        drop(reading);
        // The writer's commits are on the disk before a push is answered "applied".
        let level = timebank_core::db::sqlite_synchronous(&s.writer)
            .await
            .expect("level");
        assert_eq!(level, 2);
    }

    #[tokio::test]
    async fn a_server_on_sqlite_checkpoints_its_wal_beside_the_requests_not_in_a_commit() {
        use sea_orm::ConnectionTrait;
        let dir = tempfile::tempdir().expect("directory");
        let path = dir.path().join("city.db");
        let db = timebank_core::db::connect_tuned(
            &timebank_core::db::sqlite_url(&path),
            timebank_core::db::Tuning::SERVER,
        )
        .await
        .expect("database");
        let size = || std::fs::metadata(&path).expect("database file").len();
        let before = size();
        // About 4 MB written: more than SQLite's own threshold (1,000 pages), yet no commit
        // copies it into the database file.
        db.execute_unprepared(
            "CREATE TABLE filler (x TEXT); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO filler SELECT hex(randomblob(1000)) FROM n",
        )
        .await
        .expect("filler");
        assert!(size() < before + 1_000_000, "{before} -> {}", size());
        let state = AppState::open(db).await.expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        tokio::time::sleep(std::time::Duration::from_millis(4 * CHECKPOINT_MS)).await;
        assert!(
            size() > before + 3_000_000,
            "the running server copied the WAL into the database: {before} -> {}",
            size()
        );
        let _ = stop.send(());
        server.await.expect("task").expect("served");
    }
}
