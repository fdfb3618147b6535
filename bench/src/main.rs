//! Benchmarks of the core on SQLite, printing figures (never asserting times).
//!
//! cargo run --release -p timebank-bench [-- --members 100000 --orders 1000000 --out DIR]
//!
//! 1. Generates a database of 100,000 members, 1,000,000 orders and 2,000,000 ledger entries
//!    (bulk SQL; generation time is printed but is not a benchmark).
//! 2. Measures the open-order board of one community (urgent first, 50 a page, with and
//!    without a service-field filter) and a member's balance with the last 50 entries:
//!    p50 and p99 over random communities and members.
//! 3. Measures `ledger verify` over the whole database.
//! 4. Measures the CSV import of 100,000 members into a fresh center database.
use anyhow::{Context, Result};
use sea_orm::{ConnectionTrait, TransactionTrait};
use std::time::{Duration, Instant};
use timebank_core::read::{self, BoardQuery};
use timebank_core::service::{self, admin::Bootstrap, Ctx};
use timebank_core::{db, domain::Rules};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

async fn bootstrap(
    url: &str,
    communities: usize,
) -> Result<(sea_orm::DatabaseConnection, service::admin::Bootstrapped)> {
    let db = db::connect(url).await?;
    let txn = db.begin().await?;
    let b = service::admin::bootstrap(
        &txn,
        &Bootstrap {
            city: ("杭州市".into(), "Hangzhou".into()),
            district: ("西湖区".into(), "Xihu".into()),
            subdistrict: ("蒋村街道".into(), "Jiangcun".into()),
            communities: (0..communities)
                .map(|i| (format!("社区{i:03}"), format!("Community {i}")))
                .collect(),
            center: ("蒋村街道社区服务中心".into(), "Jiangcun center".into()),
            admin_name: "周建华".into(),
            admin_phone: "13900000001".into(),
            admin_birth: chrono::NaiveDate::from_ymd_opt(1975, 5, 4).context("date")?,
            programme_name: "bench".into(),
            rules: Rules::default(),
        },
        service::now_ms(),
    )
    .await?;
    txn.commit().await?;
    Ok((db, b))
}

async fn generate(
    c: &impl ConnectionTrait,
    b: &service::admin::Bootstrapped,
    members: u64,
    orders: u64,
) -> Result<()> {
    let now = service::now_ms();
    c.execute_unprepared("CREATE TEMP TABLE comm(k INTEGER PRIMARY KEY, id TEXT)")
        .await?;
    for (k, id) in b.community_ids.iter().enumerate() {
        c.execute_unprepared(&format!("INSERT INTO comm VALUES ({k}, '{id}')"))
            .await?;
    }
    c.execute_unprepared("CREATE TEMP TABLE svc(k INTEGER PRIMARY KEY, code TEXT, field TEXT)")
        .await?;
    c.execute_unprepared(
        "INSERT INTO svc(code, field) SELECT code, field_code FROM services ORDER BY code",
    )
    .await?;
    let nc = b.community_ids.len();
    let seq = |n: u64| {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) ",
            n - 1
        )
    };
    c.execute_unprepared(&format!(
        "{}INSERT INTO members (id, name, phone, date_of_birth, home_community_id, address, hardship, pin_hash, center_id, active, created_at) \
         SELECT printf('m%07d', i), '居民' || i, printf('137%08d', i), printf('%04d-%02d-%02d', 1935 + i % 60, 1 + i % 12, 1 + i % 28), \
         (SELECT id FROM comm WHERE k = i % {nc}), '某幢某室', 0, NULL, NULL, 1, {now} FROM n",
        seq(members)
    ))
    .await?;
    c.execute_unprepared(
        "INSERT INTO member_roles SELECT id, 'resident' FROM members WHERE id LIKE 'm%'",
    )
    .await?;
    c.execute_unprepared("INSERT INTO member_roles SELECT id, 'volunteer' FROM members WHERE id LIKE 'm%' AND CAST(substr(id, 2) AS INTEGER) % 3 = 0").await?;
    c.execute_unprepared("INSERT INTO volunteer_profiles SELECT id, 'verified', '[]', '', '', NULL, NULL FROM members WHERE id LIKE 'm%' AND CAST(substr(id, 2) AS INTEGER) % 3 = 0").await?;
    c.execute_unprepared(&format!("INSERT INTO accounts (id, kind, member_id, community_id, programme_id, balance, created_at) SELECT 'acct-' || id, 'member', id, NULL, NULL, 0, {now} FROM members WHERE id LIKE 'm%'")).await?;
    println!("  members: {members}");
    let statuses = "CASE WHEN i % 100 < 3 THEN 'open' WHEN i % 100 < 5 THEN 'accepted' WHEN i % 100 < 6 THEN 'in_service' WHEN i % 100 < 8 THEN 'cancelled' WHEN i % 100 < 9 THEN 'expired' ELSE 'completed' END";
    let ns = 19;
    c.execute_unprepared(&format!(
        "{}INSERT INTO orders (id, service_code, field_code, beneficiary_id, posted_by, description, urgent, community_id, place_hint, address, window_start, window_end, \
         expected_minutes, volunteers_needed, accepted_count, visits_total, visits_done, status, escalated, cancel_reason, created_at, updated_at, first_accepted_at) \
         SELECT printf('o%08d', i), s.code, s.field, printf('m%07d', (i * 7) % {members}), printf('m%07d', (i * 7) % {members}), '需要帮助', (i % 10 = 0), \
         (SELECT id FROM comm WHERE k = (i / 100) % {nc}), '附近', '某幢某室', NULL, NULL, 60, 1, CASE WHEN i % 100 < 3 THEN 0 ELSE 1 END, 1, \
         CASE WHEN i % 100 >= 9 THEN 1 ELSE 0 END, {statuses}, 0, NULL, {now} - (i * 1000), {now} - (i * 1000), {now} - (i * 1000) + 600000 \
         FROM n JOIN svc s ON s.k = 1 + i % {ns}",
        seq(orders)
    ))
    .await?;
    println!("  orders: {orders}");
    let (issuing,): (String,) = (format!("issuing-{}", b.programme_id),);
    c.execute_unprepared(&format!(
        "{}INSERT INTO transfers (id, kind, programme_id, order_id, visit_id, activity_id, credit_key, reverses_id, memo, reason, approved_by, created_by, created_at) \
         SELECT printf('t%08d', i), 'service_credit', '{pid}', printf('o%08d', i), printf('o%08d-v1', i), NULL, printf('svc:o%08d-v1', i), NULL, '服务时间', NULL, NULL, 'bench', {now} - (i * 1000) FROM n",
        seq(orders),
        pid = b.programme_id
    ))
    .await?;
    c.execute_unprepared(&format!(
        "{}INSERT INTO ledger_entries (id, transfer_id, account_id, amount, created_at) \
         SELECT printf('t%08d:0', i), printf('t%08d', i), '{issuing}', -60, {now} - (i * 1000) FROM n",
        seq(orders)
    ))
    .await?;
    c.execute_unprepared(&format!(
        "{}INSERT INTO ledger_entries (id, transfer_id, account_id, amount, created_at) \
         SELECT printf('t%08d:1', i), printf('t%08d', i), printf('acct-m%07d', (i * 13) % {members}), 60, {now} - (i * 1000) FROM n",
        seq(orders)
    ))
    .await?;
    println!("  transfers: {orders}, ledger entries: {}", orders * 2);
    c.execute_unprepared(
        "UPDATE accounts SET balance = (SELECT COALESCE(SUM(amount), 0) FROM ledger_entries e WHERE e.account_id = accounts.id)",
    )
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let members = arg("--members", 100_000);
    let orders = arg("--orders", 1_000_000);
    let samples = arg("--samples", 2_000);
    let out = std::path::PathBuf::from(
        std::env::args()
            .skip_while(|a| a != "--out")
            .nth(1)
            .unwrap_or_else(|| "target/bench".into()),
    );
    std::fs::create_dir_all(&out)?;
    let big = out.join("big.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", big.display()));
    }
    println!(
        "timebank benchmark on SQLite ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let (db, b) = bootstrap(&db::sqlite_url(&big), 50).await?;
    let t = Instant::now();
    let txn = db.begin().await?;
    generate(&txn, &b, members, orders).await?;
    txn.commit().await?;
    db.execute_unprepared("ANALYZE").await?;
    println!(
        "  generated in {:.1} s (not a benchmark)",
        t.elapsed().as_secs_f64()
    );

    let admin = service::load_actor(&db, &b.admin_id).await?;
    let mut rng = Lcg(42);
    let fields = [
        "daily_living",
        "health",
        "companionship",
        "culture",
        "repairs",
        "emergency",
        "legal",
        "fitness",
    ];
    let (mut board, mut board_f, mut bal) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = 0usize;
    for _ in 0..samples {
        let community = b.community_ids[(rng.next() as usize) % b.community_ids.len()].clone();
        let q = BoardQuery {
            community_id: Some(community.clone()),
            field_code: None,
            page: 0,
            per_page: 50,
        };
        let t = Instant::now();
        rows += read::board(&db, &admin, &q).await?.len();
        board.push(t.elapsed());
        let q = BoardQuery {
            field_code: Some(fields[(rng.next() as usize) % fields.len()].into()),
            ..q
        };
        let t = Instant::now();
        read::board(&db, &admin, &q).await?;
        board_f.push(t.elapsed());
        let m = format!("m{:07}", rng.next() % members);
        let t = Instant::now();
        let v = read::balance(&db, &admin, &m, 50).await?;
        bal.push(t.elapsed());
        assert!(v.entries.len() <= 50);
    }
    println!(
        "  (board pages returned {:.1} rows on average)",
        rows as f64 / samples as f64
    );
    let t = Instant::now();
    let report = read::verify(&db, &|_, _| {}).await?;
    let verify = t.elapsed();
    println!(
        "  verify: {} accounts, {} transfers, {} entries, ok = {}",
        report.accounts,
        report.transfers,
        report.entries,
        report.ok()
    );
    db.close().await?;

    // CSV import of 100,000 members into a fresh center database.
    let fresh = out.join("import.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", fresh.display()));
    }
    let (db2, b2) = bootstrap(&db::sqlite_url(&fresh), 50).await?;
    let mut csv = String::from("name,phone,date_of_birth,community,roles,address,service_fields\n");
    for i in 0..members {
        let vol = i % 3 == 0;
        csv.push_str(&format!(
            "居民{i},136{i:08},{}-{:02}-{:02},社区{:03},{},某幢{}室,{}\n",
            1935 + i % 60,
            1 + i % 12,
            1 + i % 28,
            i % 50,
            if vol {
                "resident;volunteer"
            } else {
                "resident"
            },
            i % 600,
            if vol { "health;daily_living" } else { "" }
        ));
    }
    let ctx = Ctx::new(&b2.admin_id, &b2.device_id, service::now_ms());
    let t = Instant::now();
    let r = timebank_core::import::import_members(&db2, &ctx, csv.as_bytes(), &|_, _| {}).await?;
    let import = t.elapsed();
    db2.close().await?;

    println!();
    println!("| measure | p50 | p99 | target |");
    println!("|---|---|---|---|");
    println!(
        "| open-order board, one community, 50 a page | {:.2} ms | {:.2} ms | p99 < 10 ms |",
        pct(board.clone(), 0.5),
        pct(board, 0.99)
    );
    println!(
        "| same, filtered by service field | {:.2} ms | {:.2} ms | p99 < 10 ms |",
        pct(board_f.clone(), 0.5),
        pct(board_f, 0.99)
    );
    println!(
        "| balance + last 50 entries | {:.2} ms | {:.2} ms | p99 < 10 ms |",
        pct(bal.clone(), 0.5),
        pct(bal, 0.99)
    );
    println!(
        "| ledger verify ({} entries) | {:.2} s | | < 5 s |",
        report.entries,
        verify.as_secs_f64()
    );
    println!(
        "| CSV import of {} members | {:.2} s | | < 10 s |",
        r.imported,
        import.as_secs_f64()
    );
    Ok(())
}
