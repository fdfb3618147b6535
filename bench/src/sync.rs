//! Sync benchmark on SQLite over loopback HTTP, printing figures (asserting nothing):
//! a push of 10,000 mutations from one device, and the initial pull of about 100,000 rows
//! into a new device.
//!
//! cargo run --release -p timebank-bench --bin timebank-bench-sync [-- --members 25000]
use anyhow::{anyhow, Result};
use std::time::Instant;
use timebank_core::service::{self, admin::Bootstrap, Ctx};
use timebank_core::sync::{self, http::Http};
use timebank_core::{db, sql, Lang};

fn e(x: timebank_core::CoreError) -> anyhow::Error {
    anyhow!(x.message(Lang::En))
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<()> {
    let members = arg("--members", 25_000);
    let pushes = arg("--pushes", 10_000);
    let dir = std::path::PathBuf::from("target/bench-sync");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // The city server on SQLite, with capture from the first row.
    let city = db::connect(&db::sqlite_url(&dir.join("city.db")))
        .await
        .map_err(e)?;
    let boot = timebank_server::init_city(
        &city,
        &Bootstrap {
            city: ("杭州市".into(), "Hangzhou".into()),
            district: ("西湖区".into(), "Xihu".into()),
            subdistrict: ("蒋村街道".into(), "Jiangcun".into()),
            communities: vec![
                ("府苑新村".into(), "Fuyuanxincun".into()),
                ("蒋村花园".into(), "Jiangcun Garden".into()),
            ],
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
    let state = timebank_server::AppState::open(city.clone())
        .await
        .map_err(e)?;
    tokio::spawn(async move {
        let _ = timebank_server::serve(listener, state, std::future::pending()).await;
    });

    // Device A: enrol, then make `pushes` mutations offline (a CSV import: one mutation each).
    let a = db::connect(&db::sqlite_url(&dir.join("a.db")))
        .await
        .map_err(e)?;
    let code =
        timebank_server::auth::issue_code(&city, &boot.center_id, "center", 1, service::now_ms())
            .await
            .map_err(e)?;
    sync::http::enrol(&a, &url, &code, "bench-a")
        .await
        .map_err(e)?;
    let device_a = service::outbox::device_id(&a).await.map_err(e)?;
    let mut csv = String::from("name,phone,date_of_birth,community,roles,address,service_fields\n");
    for i in 0..pushes {
        csv.push_str(&format!(
            "居民{i},136{i:08},1950-01-01,{},resident,,\n",
            if i % 2 == 0 {
                "府苑新村"
            } else {
                "蒋村花园"
            }
        ));
    }
    let ctx = Ctx::new(&boot.admin_id, &device_a, service::now_ms());
    timebank_core::import::import_members(&a, &ctx, csv.as_bytes(), &|_, _| {})
        .await
        .map_err(e)?;
    let t = Instant::now();
    let r = sync::sync_once(&a, &Http::new(&url)).await.map_err(e)?;
    let push_s = t.elapsed().as_secs_f64();
    println!(
        "push: {} mutations applied in {:.2} s (with the pull of their rows back)",
        r.pushed, push_s
    );

    // More rows on the server, then device B's initial pull of everything.
    let mut csv = String::from("name,phone,date_of_birth,community,roles,address,service_fields\n");
    for i in 0..members {
        csv.push_str(&format!(
            "志愿者{i},135{i:08},1980-01-01,{},resident;volunteer,,health\n",
            if i % 2 == 0 {
                "府苑新村"
            } else {
                "蒋村花园"
            }
        ));
    }
    let ctx = Ctx::new(&boot.admin_id, &device_a, service::now_ms());
    timebank_core::import::import_members(&a, &ctx, csv.as_bytes(), &|_, _| {})
        .await
        .map_err(e)?;
    sync::sync_once(&a, &Http::new(&url)).await.map_err(e)?;
    let logged = sql::scalar_i64(&city, "SELECT COUNT(*) FROM change_log", vec![])
        .await
        .map_err(e)?;
    let b = db::connect(&db::sqlite_url(&dir.join("b.db")))
        .await
        .map_err(e)?;
    let code =
        timebank_server::auth::issue_code(&city, &boot.center_id, "center", 1, service::now_ms())
            .await
            .map_err(e)?;
    let t = Instant::now();
    let r = sync::http::enrol(&b, &url, &code, "bench-b")
        .await
        .map_err(e)?;
    let pull_s = t.elapsed().as_secs_f64();
    println!(
        "pull: {} rows into a new device in {:.2} s (change log: {logged} entries)",
        r.pulled, pull_s
    );
    println!();
    println!("| measure | figure | target |");
    println!("|---|---|---|");
    println!("| push of {} mutations from one device (HTTP, SQLite server) | {:.0} mutations/s | ≥ 20,000/s |", pushes, pushes as f64 / push_s);
    println!(
        "| initial pull into a new device | {:.0} rows/s ({} rows) | ≥ 50,000/s |",
        r.pulled as f64 / pull_s,
        r.pulled
    );
    Ok(())
}
