//! Sync benchmark over loopback HTTP, printing figures (asserting nothing), with the city
//! server on SQLite and then on PostgreSQL:
//! - push of 10,000 mutations from one device;
//! - initial pull of about 100,000 rows or more into a new device;
//! - reconnect after an outage: a device with 2,000 local changes meets 20,000 rows changed
//!   elsewhere meanwhile;
//! - 100 devices syncing at once against one server (100 mutations each);
//! - with no target: the push of the volunteers' registrations (each with its sign-up bonus),
//!   and of 2,000 orders' whole lives (six mutations each, from verifying the volunteer to the
//!   staff's confirmation that credits the hours).
//!
//! cargo run --release -p timebank-bench --bin timebank-bench-sync
//!   [-- --members 25000 --pushes 10000 --devices 100 --orders 2000 --postgres URL
//!    | --no-postgres | --no-sqlite | --repeat N]
//!
//! `--repeat N` runs each server N times, taking turns, and prints each figure's median with
//! its lowest and highest (a machine's speed here varies by 15-20 % from one run to the next).
use anyhow::{anyhow, Result};
use sea_orm::DatabaseConnection;
use std::path::{Path, PathBuf};
use std::time::Instant;
use timebank_core::service::{self, admin::Bootstrap, admin::Bootstrapped, Ctx};
use timebank_core::sync::{self, http::Http};
use timebank_core::{db, sql, Lang};

// The allocator the server binary uses (see server/src/main.rs).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn e(x: timebank_core::CoreError) -> anyhow::Error {
    anyhow!("{} {:?}", x.message(Lang::En), x.detail)
}

fn args() -> Vec<String> {
    std::env::args().collect()
}

fn arg(name: &str, default: u64) -> u64 {
    let a = args();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// With BENCH_STATEMENTS set: the server's statements (first 90 characters), how many and
/// how long in total, printed after the one-device push and after the volunteers' push.
static STATEMENTS: std::sync::Mutex<std::collections::BTreeMap<String, (u64, f64)>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn print_statements(per: u64) {
    let mut m = STATEMENTS.lock().unwrap_or_else(|p| p.into_inner());
    if m.is_empty() {
        return;
    }
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    let total: u64 = v.iter().map(|x| x.1 .0).sum();
    println!(
        "server statements: {total} ({:.1} per mutation)",
        total as f64 / per as f64
    );
    for (sql, (n, s)) in v.iter().take(25) {
        println!("{n:>8} {:>8.3} s  {sql}", s);
    }
    m.clear();
}

/// With BENCH_STATEMENTS set, count the statements `db` runs (see [`print_statements`]).
fn count_statements(db: &mut DatabaseConnection) {
    if std::env::var_os("BENCH_STATEMENTS").is_some() {
        db.set_metric_callback(|info| {
            let key: String = info.statement.sql.chars().take(90).collect();
            let mut m = STATEMENTS.lock().unwrap_or_else(|p| p.into_inner());
            let e = m.entry(key).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += info.elapsed.as_secs_f64();
        });
    }
}

const COMMUNITIES: [&str; 2] = ["府苑新村", "蒋村花园"];

/// A city server on loopback over a fresh database (SQLite file, or a new PostgreSQL database).
struct City {
    db: DatabaseConnection,
    /// The server's metrics, for the time its pushes spent in each phase.
    metrics: std::sync::Arc<timebank_server::Metrics>,
    boot: Bootstrapped,
    url: String,
    dir: PathBuf,
    pg: Option<db::ScratchDatabase>,
}

impl City {
    async fn start(dir: &Path, pg_admin: Option<&str>) -> Result<City> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let (url, pg) = match pg_admin {
            None => (db::sqlite_url(&dir.join("city.db")), None),
            Some(admin_url) => {
                let pg = db::ScratchDatabase::create(admin_url, "tb_bench")
                    .await
                    .map_err(e)?;
                (pg.url(), Some(pg))
            }
        };
        let mut city = db::connect_tuned(&url, db::Tuning::SERVER)
            .await
            .map_err(e)?;
        count_statements(&mut city);
        let boot = timebank_server::init_city(
            &city,
            &Bootstrap {
                city: ("杭州市".into(), "Hangzhou".into()),
                district: ("西湖区".into(), "Xihu".into()),
                subdistrict: ("蒋村街道".into(), "Jiangcun".into()),
                communities: COMMUNITIES
                    .iter()
                    .map(|c| ((*c).to_owned(), (*c).to_owned()))
                    .collect(),
                center: ("蒋村街道社区服务中心".into(), "center".into()),
                admin_name: "周建华".into(),
                admin_phone: "13900000001".into(),
                admin_birth: chrono::NaiveDate::from_ymd_opt(1975, 5, 4)
                    .ok_or_else(|| anyhow!("date"))?,
                programme_name: "bench".into(),
                rules: Default::default(),
            },
            service::now_ms(),
        )
        .await
        .map_err(e)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut state = timebank_server::AppState::open(city.clone())
            .await
            .map_err(e)?;
        count_statements(&mut state.writer);
        let metrics = state.metrics.clone();
        tokio::spawn(async move {
            let _ = timebank_server::serve(listener, state, std::future::pending()).await;
        });
        Ok(City {
            db: city,
            metrics,
            boot,
            url,
            dir: dir.to_owned(),
            pg,
        })
    }

    /// The pushes' transactions so far, and the seconds they spent in each phase.
    fn phases(&self) -> (u64, Vec<f64>) {
        use timebank_server::push::Phase;
        (
            self.metrics
                .push_transactions
                .load(std::sync::atomic::Ordering::Relaxed),
            Phase::ALL
                .iter()
                .map(|p| self.metrics.phase_seconds(*p))
                .collect(),
        )
    }

    /// Print where the server's pushes spent their time since `before` ([`City::phases`]).
    fn print_phases(&self, label: &str, before: &(u64, Vec<f64>)) {
        let (n, now) = self.phases();
        let spent: Vec<String> = timebank_server::push::Phase::ALL
            .iter()
            .zip(now.iter().zip(&before.1))
            .map(|(p, (a, b))| format!("{} {:.3}", p.name(), a - b))
            .collect();
        println!(
            "{label} phases: the server's {} push transactions spent (s): {}",
            n - before.0,
            spent.join(", ")
        );
    }

    /// A new center device, enrolled (its initial pull included).
    async fn device(&self, name: &str) -> Result<(DatabaseConnection, String, sync::SyncReport)> {
        let d = db::connect(&db::sqlite_url(&self.dir.join(format!("{name}.db"))))
            .await
            .map_err(e)?;
        let code = timebank_server::auth::issue_code(
            &self.db,
            &self.boot.center_id,
            "center",
            1,
            service::now_ms(),
        )
        .await
        .map_err(e)?;
        let r = sync::http::enrol(&d, &self.url, &code, name, &|_| {})
            .await
            .map_err(e)?;
        let id = service::outbox::device_id(&d).await.map_err(e)?;
        Ok((d, id, r))
    }

    async fn stop(self) -> Result<()> {
        self.db.close().await.ok();
        if let Some(pg) = self.pg {
            pg.drop_now().await.map_err(e)?;
        }
        Ok(())
    }
}

/// `n` members registered offline on device `d` (a CSV import: one mutation each).
async fn register(
    d: &DatabaseConnection,
    ctx: &Ctx,
    tag: &str,
    phone_prefix: &str,
    n: u64,
    volunteers: bool,
) -> Result<()> {
    let mut csv = String::from("name,phone,date_of_birth,community,roles,address,service_fields\n");
    for i in 0..n {
        let (roles, fields) = if volunteers {
            ("resident;volunteer", "health")
        } else {
            ("resident", "")
        };
        csv.push_str(&format!(
            "{tag}{i},{phone_prefix}{i:0width$},1950-01-01,{community},{roles},,{fields}\n",
            width = 11 - phone_prefix.len(),
            community = COMMUNITIES[(i % 2) as usize]
        ));
    }
    timebank_core::import::import_members(d, ctx, csv.as_bytes(), &|_, _| {})
        .await
        .map_err(e)?;
    Ok(())
}

/// Seconds from `t` until the server has stored `expected` push results, and how busy the
/// machine's cores were meanwhile (since `cpu`, in %). Read off the server's own counter of
/// committed results (`Metrics::push_results_stored`, raised as each push transaction
/// commits): polling `SELECT COUNT(*) FROM push_results` every 20 ms, as this did before,
/// scanned the whole table in the database being measured, about 100 scans of 1 ms each during
/// a one-device push (bench/RESULTS.md).
fn stored_by(
    metrics: &std::sync::Arc<timebank_server::Metrics>,
    expected: u64,
    t: Instant,
    cpu: (u64, u64),
) -> tokio::task::JoinHandle<(f64, f64)> {
    let metrics = metrics.clone();
    tokio::spawn(async move {
        loop {
            if results_stored(&metrics) >= expected {
                return (t.elapsed().as_secs_f64(), busy_since(cpu));
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    })
}

/// The push results the server has committed since it started: one for each mutation it
/// applied or refused (a duplicate is answered from the one stored before).
fn results_stored(metrics: &timebank_server::Metrics) -> u64 {
    metrics
        .push_results_stored
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// One sync round of device `d`, pushing `n` mutations: seconds until the server had stored
/// their results, how busy the cores were meanwhile (%), the round's report and how long the
/// whole round took (with the pull of their rows back). Profiled when BENCH_PERF_PHASE names
/// `phase` (see [`perf_control`]).
async fn timed_push(
    city: &City,
    d: &DatabaseConnection,
    n: u64,
    phase: &str,
) -> Result<(f64, f64, sync::SyncReport, f64)> {
    let already = results_stored(&city.metrics);
    let cpu = cpu_ticks();
    let phases = city.phases();
    let t = Instant::now();
    let watcher = stored_by(&city.metrics, already + n, t, cpu);
    perf_control(phase, "enable");
    let r = sync::sync_once(d, &Http::new(&city.url)).await.map_err(e)?;
    perf_control(phase, "disable");
    let round_s = t.elapsed().as_secs_f64();
    let (applied_s, busy) = watcher.await?;
    city.print_phases(phase, &phases);
    Ok((applied_s, busy, r, round_s))
}

/// With BENCH_PERF_CTL naming the control FIFO of `perf record --control fifo:FILE -D -1`:
/// profile only one phase, the one-device push round, or with BENCH_PERF_PHASE=pull the new
/// device's initial pull, with BENCH_PERF_PHASE=many the hundred devices' rounds until the
/// server has applied their mutations, with BENCH_PERF_PHASE=volunteers the push of the
/// volunteers' registrations, or with BENCH_PERF_PHASE=orders the push of the orders' lives
/// (see CONTRIBUTING.md).
fn perf_control(phase: &str, what: &str) {
    let chosen = std::env::var("BENCH_PERF_PHASE").unwrap_or_else(|_| "push".into());
    if chosen != phase {
        return;
    }
    if let Some(path) = std::env::var_os("BENCH_PERF_CTL") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) {
            let _ = writeln!(f, "{what}");
        }
    }
}

/// The machine's CPU time so far (all cores, in clock ticks): busy and total, from /proc/stat.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// How busy the machine's cores were since `from` (0 to 100 %).
fn busy_since(from: (u64, u64)) -> f64 {
    let now = cpu_ticks();
    let total = now.1.saturating_sub(from.1).max(1);
    100.0 * now.0.saturating_sub(from.0) as f64 / total as f64
}

struct Figures {
    push: f64,
    volunteers: (f64, u64),
    pull: (f64, usize),
    reconnect: (f64, usize, usize),
    many: (f64, usize, u64),
    orders: (f64, usize, usize),
}

async fn run(dir: &Path, pg_admin: Option<&str>) -> Result<Figures> {
    let members = arg("--members", 25_000);
    let pushes = arg("--pushes", 10_000);
    let devices = arg("--devices", 100);
    let orders = arg("--orders", 2_000);

    // 100 devices at once, on a city of their own (their enrolment pulls little).
    let city = City::start(&dir.join("many"), pg_admin).await?;
    let mut fleet = Vec::new();
    for i in 0..devices {
        let (d, id, _) = city.device(&format!("d{i}")).await?;
        let ctx = Ctx::new(&city.boot.admin_id, &id, service::now_ms());
        register(
            &d,
            &ctx,
            &format!("设备{i}居民"),
            &format!("15{i:03}"),
            100,
            false,
        )
        .await?;
        fleet.push(d);
    }
    let cpu = cpu_ticks();
    let phases = city.phases();
    let t = Instant::now();
    // The server's throughput: until every pushed mutation has its stored result (the
    // devices' rounds go on with pulling each other's rows, reported apart).
    let watcher = stored_by(&city.metrics, devices * 100, t, cpu);
    perf_control("many", "enable");
    let mut tasks = tokio::task::JoinSet::new();
    for d in fleet {
        let url = city.url.clone();
        tasks.spawn(async move {
            let http = Http::new(&url);
            // A device retries a round the server could not take (as its loop does).
            for _ in 0..20 {
                match sync::sync_once(&d, &http).await {
                    Ok(r) if r.pushed > 0 => return Ok(r.pushed),
                    Ok(_) | Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await
                    }
                }
            }
            Err(anyhow!("a device did not get its mutations through"))
        });
    }
    let (many_s, many_busy) = watcher.await?;
    perf_control("many", "disable");
    let mut pushed = 0;
    while let Some(r) = tasks.join_next().await {
        pushed += r??;
    }
    let rounds_s = t.elapsed().as_secs_f64();
    println!(
        "{devices} devices: the server applied {pushed} mutations from {devices} devices syncing at once in {many_s:.2} s (the cores {many_busy:.0} % busy meanwhile); their whole rounds (each pulling the others' rows too) took {rounds_s:.2} s"
    );
    city.print_phases(&format!("{devices} devices"), &phases);
    city.stop().await?;

    // One device pushes 10,000 mutations.
    let city = City::start(&dir.join("one"), pg_admin).await?;
    let (a, device_a, _) = city.device("a").await?;
    let admin = city.boot.admin_id.clone();
    register(
        &a,
        &Ctx::new(&admin, &device_a, service::now_ms()),
        "居民",
        "136",
        pushes,
        false,
    )
    .await?;
    let (push_s, push_busy, r, round_s) = timed_push(&city, &a, pushes, "push").await?;
    println!(
        "push: the server applied {} mutations from one device in {push_s:.2} s (the cores {push_busy:.0} % busy meanwhile); the whole round (with the pull of their rows back) took {round_s:.2} s",
        r.pushed
    );
    print_statements(pushes);

    // More rows on the server, then device B's initial pull of everything.
    register(
        &a,
        &Ctx::new(&admin, &device_a, service::now_ms()),
        "志愿者",
        "135",
        members,
        true,
    )
    .await?;
    // Timed too (no target): a volunteer's registration also posts the sign-up bonus, so it
    // reads and updates accounts, which a resident's does not.
    let (volunteers_s, ..) = timed_push(&city, &a, members, "volunteers").await?;
    println!(
        "volunteers: the server applied {members} volunteer registrations (each with its sign-up bonus) from one device in {volunteers_s:.2} s"
    );
    print_statements(members);
    let logged = sql::scalar_i64(&city.db, "SELECT COUNT(*) FROM change_log", vec![])
        .await
        .map_err(e)?;
    let t = Instant::now();
    perf_control("pull", "enable");
    let (b, device_b, r) = city.device("b").await?;
    perf_control("pull", "disable");
    let pull_s = t.elapsed().as_secs_f64();
    let pulled = r.pulled;
    println!(
        "pull: {pulled} rows into a new device in {pull_s:.2} s (change log: {logged} entries)"
    );

    // Reconnect: B goes offline and makes 2,000 changes; meanwhile A's work changes 20,000
    // rows on the server. Then B syncs.
    register(
        &b,
        &Ctx::new(&admin, &device_b, service::now_ms()),
        "离线居民",
        "137",
        2_000,
        false,
    )
    .await?;
    let before = sql::scalar_i64(&city.db, "SELECT COUNT(*) FROM change_log", vec![])
        .await
        .map_err(e)?;
    // A volunteer registration logs 8 rows (member, roles, profile, account, its sign-up
    // bonus: transfer and two entries, …), all in the volunteer's community.
    register(
        &a,
        &Ctx::new(&admin, &device_a, service::now_ms()),
        "新志愿者",
        "138",
        2_500,
        true,
    )
    .await?;
    sync::sync_once(&a, &Http::new(&city.url))
        .await
        .map_err(e)?;
    let remote = sql::scalar_i64(&city.db, "SELECT COUNT(*) FROM change_log", vec![])
        .await
        .map_err(e)?
        - before;
    let t = Instant::now();
    let r = sync::sync_once(&b, &Http::new(&city.url))
        .await
        .map_err(e)?;
    let reconnect_s = t.elapsed().as_secs_f64();
    println!(
        "reconnect: {} local mutations pushed and {} rows pulled ({remote} changed elsewhere) in {reconnect_s:.2} s",
        r.pushed, r.pulled
    );

    // Timed too (no target): orders served from start to end on device A, as a center's day
    // brings them: the volunteer verified, the order posted, accepted, checked in and out,
    // and confirmed by staff (the volunteer's hours credited, paid as the programme's rules say).
    let (made, lived, orders_s) = if orders > 0 {
        let (made, lived) = order_lives(&a, &admin, &device_a, orders).await?;
        // What the server does every minute (`STATISTICS_EVERY_S`), done here once: the
        // phases before made its tables from nothing within seconds, and a server that has run
        // for a minute since has its planner's statistics (posting an order reads them).
        let analyzed = db::refresh_statistics(&city.db).await.map_err(e)?;
        println!(
            "planner statistics refreshed, as the server does every {} s{}",
            timebank_server::STATISTICS_EVERY_S,
            if analyzed.is_empty() {
                String::new()
            } else {
                format!(" ({} tables analyzed)", analyzed.len())
            }
        );
        let (orders_s, ..) = timed_push(&city, &a, made as u64, "orders").await?;
        let credited = sql::scalar_i64(
            &city.db,
            "SELECT COUNT(*) FROM orders WHERE status = 'completed'",
            vec![],
        )
        .await
        .map_err(e)?;
        println!(
            "orders: the server applied {made} mutations of {lived} orders' lives from one device in {orders_s:.2} s ({credited} orders completed on the server)"
        );
        print_statements(made as u64);
        (made, lived, orders_s)
    } else {
        (0, 0, 1.0)
    };
    city.stop().await?;
    Ok(Figures {
        push: pushes as f64 / push_s,
        volunteers: (members as f64 / volunteers_s, members),
        pull: (pulled as f64 / pull_s, pulled),
        reconnect: (reconnect_s, r.pushed, remote as usize),
        many: (pushed as f64 / many_s, pushed, devices),
        orders: (made as f64 / orders_s, made, lived),
    })
}

/// `orders` orders lived through on device `d`, each its own resident and volunteer of the
/// same community (the residents and volunteers the benchmark registered on it), with staff
/// confirming the visit: six mutations an order (fewer orders when there are not enough pairs).
/// Returns how many mutations were made, and for how many orders.
async fn order_lives(
    d: &DatabaseConnection,
    admin: &str,
    device: &str,
    orders: u64,
) -> Result<(usize, usize)> {
    use service::command::{Command, PostOrder};
    const MIN: i64 = 60_000;
    // Each resident with a volunteer of their own community, none twice.
    let people = |like: &'static str| async move {
        let rows = sql::all(
            d,
            "SELECT id, home_community_id FROM members WHERE name LIKE ? ORDER BY rowid",
            vec![like.into()],
        )
        .await
        .map_err(e)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String>("", "id")?,
                    r.try_get::<String>("", "home_community_id")?,
                ))
            })
            .collect::<Result<Vec<_>, sea_orm::DbErr>>()
            .map_err(|x| anyhow!("{x}"))
    };
    let mut volunteers: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (id, community) in people("志愿者%").await?.into_iter().rev() {
        volunteers.entry(community).or_default().push(id);
    }
    let mut pairs = Vec::new();
    for (resident, community) in people("居民%").await? {
        if pairs.len() as u64 == orders {
            break;
        }
        if let Some(v) = volunteers.get_mut(&community).and_then(|v| v.pop()) {
            pairs.push((resident, v));
        }
    }
    let start = service::now_ms() - 2 * 60 * MIN;
    let mut made = 0;
    for (resident, volunteer) in &pairs {
        let order_id = service::new_id();
        let steps: [(&str, i64, Command); 6] = [
            (
                admin,
                0,
                Command::SetVetting {
                    member_id: volunteer.clone(),
                    vetting: timebank_core::domain::Vetting::Verified,
                },
            ),
            (
                admin,
                0,
                Command::PostOrder(PostOrder {
                    order_id: order_id.clone(),
                    beneficiary_id: resident.clone(),
                    service_code: "meal_delivery".into(),
                    description: "送午饭".into(),
                    urgent: false,
                    place_hint: "5幢".into(),
                    address: Some("蒋村花园5幢101室".into()),
                    window_start: None,
                    window_end: None,
                    expected_minutes: 60,
                    volunteers_needed: 1,
                    visits: vec![],
                }),
            ),
            (
                volunteer,
                MIN,
                Command::AcceptOrder {
                    order_id: order_id.clone(),
                },
            ),
            (
                volunteer,
                2 * MIN,
                Command::CheckIn {
                    visit_id: None,
                    order_id: order_id.clone(),
                },
            ),
            (
                volunteer,
                62 * MIN,
                Command::CheckOut {
                    order_id: order_id.clone(),
                    note: Some("送到了".into()),
                    served: None,
                },
            ),
            (
                admin,
                63 * MIN,
                Command::ConfirmVisit {
                    visit_id: None,
                    order_id: order_id.clone(),
                    method: timebank_core::domain::ConfirmMethod::Staff,
                    pin: None,
                    confirms: None,
                },
            ),
        ];
        for (actor, dt, cmd) in steps {
            service::execute(d, &Ctx::new(actor, device, start + dt), cmd)
                .await
                .map_err(e)?;
            made += 1;
        }
    }
    Ok((made, pairs.len()))
}

/// The median of `v` (the mean of the middle two when even), its lowest and its highest.
fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mid = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (mid, v[0], v[n - 1])
}

#[tokio::main]
async fn main() -> Result<()> {
    // As the server's own `main` does: the server runs in this process.
    timebank_server::without_huge_pages();
    let dir = PathBuf::from("target/bench-sync");
    let pg_url = {
        let a = args();
        a.iter()
            .position(|x| x == "--postgres")
            .and_then(|i| a.get(i + 1).cloned())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
    };
    let mut servers: Vec<(&str, Option<&str>)> = Vec::new();
    if !args().iter().any(|a| a == "--no-sqlite") {
        servers.push(("SQLite", None));
    }
    if !args().iter().any(|a| a == "--no-postgres") {
        servers.push(("PostgreSQL", Some(pg_url.as_str())));
    }
    // With --repeat N the servers take turns N times (so that a machine slowing down or
    // speeding up meanwhile weighs on both alike), and each figure is the median of its N runs,
    // with the lowest and highest after it.
    let repeat = arg("--repeat", 1).max(1) as usize;
    let mut runs: Vec<(&str, Vec<Figures>)> = servers.iter().map(|s| (s.0, Vec::new())).collect();
    for round in 0..repeat {
        for (i, (name, pg)) in servers.iter().enumerate() {
            if repeat > 1 {
                println!("== city server on {name}, run {} of {repeat}", round + 1);
            } else {
                println!("== city server on {name}");
            }
            match run(&dir.join(name), *pg).await {
                Ok(f) => runs[i].1.push(f),
                Err(x) => println!("{name}: not measured: {x}"),
            }
            println!();
        }
    }
    if repeat > 1 {
        println!("each figure: the median of the runs measured, then the lowest and highest");
    }
    let fig = |v: Vec<f64>, decimals: usize| -> String {
        let (mid, lo, hi) = median(v);
        if repeat > 1 {
            format!("{mid:.decimals$} ({lo:.decimals$}-{hi:.decimals$})")
        } else {
            format!("{mid:.decimals$}")
        }
    };
    println!("| measure | server | figure | target |");
    println!("|---|---|---|---|");
    for (name, fs) in &runs {
        let Some(f) = fs.first() else { continue };
        let of = |g: fn(&Figures) -> f64| fs.iter().map(g).collect::<Vec<f64>>();
        println!(
            "| push of 10,000 mutations from one device | {name} | {} mutations/s | ≥ 20,000/s |",
            fig(of(|f| f.push), 0)
        );
        println!(
            "| push of {} volunteer registrations (with the sign-up bonus) from one device | {name} | {} mutations/s | none |",
            f.volunteers.1,
            fig(of(|f| f.volunteers.0), 0)
        );
        println!(
            "| initial pull into a new device | {name} | {} rows/s ({} rows) | ≥ 50,000/s |",
            fig(of(|f| f.pull.0), 0),
            f.pull.1
        );
        println!(
            "| reconnect: {} local, {} remote changes | {name} | {} s | < 2 s |",
            f.reconnect.1,
            f.reconnect.2,
            fig(of(|f| f.reconnect.0), 2)
        );
        println!(
            "| {} devices syncing at once ({} mutations) | {name} | {} mutations/s | ≥ 10,000/s |",
            f.many.2,
            f.many.1,
            fig(of(|f| f.many.0), 0)
        );
        if f.orders.1 == 0 {
            continue;
        }
        println!(
            "| push of {} orders' lives ({} mutations: verify, post, accept, check in, check out, confirm) from one device | {name} | {} mutations/s | none |",
            f.orders.2,
            f.orders.1,
            fig(of(|f| f.orders.0), 0)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_runs_with_their_range() {
        assert_eq!(median(vec![9.0, 1.0, 5.0]), (5.0, 1.0, 9.0));
        assert_eq!(median(vec![4.0, 10.0, 2.0, 8.0]), (6.0, 2.0, 10.0));
        assert_eq!(median(vec![3.5]), (3.5, 3.5, 3.5));
        assert!(median(Vec::new()).0.is_nan());
    }
}
