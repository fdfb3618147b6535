//! `timebank-server`: the city server. `serve` runs it (SQLite in a data directory by default,
//! PostgreSQL with --database-url or DATABASE_URL); `init` creates the city database; `enrol`
//! issues a one-time device enrolment code; `revoke` withdraws a device's token.
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use timebank_core::service::admin::Bootstrap;
use timebank_server::{auth, changes, serve, shutdown_signal, AppState};

/// mimalloc: the server allocates and frees many small values per request (rows, JSON),
/// where glibc's allocator spent a fifth of the server's time in the sync benchmark.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "timebank-server", version, about = "时间银行 city server")]
struct Args {
    /// Data directory of the embedded SQLite database.
    #[arg(
        long,
        env = "TIMEBANK_DATA_DIR",
        global = true,
        default_value = "timebank-server-data"
    )]
    data_dir: PathBuf,
    /// A PostgreSQL URL (postgres://...) for production; overrides --data-dir.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the sync API.
    Serve {
        #[arg(long, env = "TIMEBANK_LISTEN", default_value = "127.0.0.1:8700")]
        listen: String,
        /// Compact the change log once a day, keeping deletions this many days (0: never).
        #[arg(long, env = "TIMEBANK_RETENTION_DAYS", default_value_t = 90)]
        retention_days: i64,
        /// Run the scheduled rules (auto-confirmation, expiry, urgent widening) this often, in
        /// seconds (0: never; then staff run them from a center's desk).
        #[arg(long, env = "TIMEBANK_RULES_EVERY", default_value_t = 60)]
        rules_every: u64,
    },
    /// Compact the change log now: drop superseded versions of rows, and rows deleted longer
    /// ago than the retention (devices that synced before that pull everything again).
    Compact {
        #[arg(long, default_value_t = 90)]
        retention_days: i64,
    },
    /// Create the city database with one center (or the demo data with --demo).
    Init {
        #[arg(long)]
        demo: bool,
        #[arg(long, default_value = "蒋村街道")]
        subdistrict: String,
        #[arg(long = "community", default_value = "府苑新村")]
        communities: Vec<String>,
        #[arg(long, default_value = "蒋村街道社区服务中心")]
        center: String,
        #[arg(long, default_value = "管理员")]
        admin_name: String,
        #[arg(long, default_value = "13900000001")]
        admin_phone: String,
    },
    /// Issue a one-time enrolment code for a center's device.
    Enrol {
        /// Center id (defaults to the first center).
        #[arg(long)]
        center: Option<String>,
        #[arg(long, default_value = "center")]
        role: String,
        #[arg(long, default_value_t = 72)]
        hours: i64,
    },
    /// Revoke a device's token.
    Revoke { device: String },
}

fn url(a: &Args) -> Result<String> {
    match &a.database_url {
        Some(u) => Ok(u.clone()),
        None => {
            std::fs::create_dir_all(&a.data_dir)
                .with_context(|| format!("create {}", a.data_dir.display()))?;
            Ok(timebank_core::db::sqlite_url(&a.data_dir.join("city.db")))
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    timebank_server::without_huge_pages();
    let args = Args::parse();
    let db = timebank_core::db::connect_tuned(&url(&args)?, timebank_core::db::Tuning::SERVER)
        .await
        .map_err(|e| anyhow::anyhow!(e.message(timebank_core::Lang::En)))?;
    let now = timebank_core::service::now_ms();
    match args.cmd {
        Cmd::Serve {
            listen,
            retention_days,
            rules_every,
        } => {
            if rules_every > 0 {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut every =
                        tokio::time::interval(std::time::Duration::from_secs(rules_every));
                    loop {
                        every.tick().await;
                        let now = timebank_core::service::now_ms();
                        match timebank_server::run_rules(&db, now).await {
                            Ok(Some(done)) => tracing::debug!(%done, "scheduled rules ran"),
                            Ok(None) => {}
                            Err(e) => {
                                tracing::error!(detail = ?e.detail, "scheduled rules failed: {}", e.message(timebank_core::Lang::En))
                            }
                        }
                    }
                });
            }
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("listen on {listen}"))?;
            tracing::info!(address = %listener.local_addr()?, "timebank-server listening");
            println!("listening on http://{}", listener.local_addr()?);
            if retention_days > 0 {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut day = tokio::time::interval(std::time::Duration::from_secs(86_400));
                    loop {
                        day.tick().await;
                        let now = timebank_core::service::now_ms();
                        match changes::compact(&db, now, retention_days * 86_400_000).await {
                            Ok(c) => tracing::info!(
                                superseded = c.superseded,
                                deleted_rows = c.deleted_rows,
                                "change log compacted"
                            ),
                            Err(e) => {
                                tracing::error!(detail = ?e.detail, "compaction failed: {}", e.message(timebank_core::Lang::En))
                            }
                        }
                    }
                });
            }
            let state = AppState::open(db)
                .await
                .map_err(|e| anyhow::anyhow!(e.message(timebank_core::Lang::En)))?;
            serve(listener, state, shutdown_signal()).await?;
        }
        Cmd::Compact { retention_days } => {
            let c = changes::compact(&db, now, retention_days * 86_400_000)
                .await
                .map_err(|e| anyhow::anyhow!(e.message(timebank_core::Lang::En)))?;
            println!(
                "removed {} superseded versions of rows, and {} entries of rows deleted more than {retention_days} days ago",
                c.superseded, c.deleted_rows
            );
        }
        Cmd::Init {
            demo,
            subdistrict,
            communities,
            center,
            admin_name,
            admin_phone,
        } => {
            if demo {
                // Capture from the first row, so that the change log from 0 is a full snapshot.
                changes::install(&db)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message(timebank_core::Lang::En)))?;
                let s = timebank_core::demo::seed(&db, now, &|_, _| {})
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message(timebank_core::Lang::En)))?;
                changes::log_changes(&db, now)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message(timebank_core::Lang::En)))?;
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                let b = timebank_server::init_city(
                    &db,
                    &Bootstrap {
                        city: ("杭州市".into(), "Hangzhou".into()),
                        district: ("西湖区".into(), "Xihu".into()),
                        subdistrict: (subdistrict.clone(), subdistrict),
                        communities: communities.iter().map(|c| (c.clone(), c.clone())).collect(),
                        center: (center.clone(), center),
                        admin_name,
                        admin_phone,
                        admin_birth: chrono::NaiveDate::from_ymd_opt(1975, 1, 1).context("date")?,
                        programme_name: "时间银行".into(),
                        rules: Default::default(),
                    },
                    now,
                )
                .await
                .map_err(|e| anyhow::anyhow!(e.message(timebank_core::Lang::En)))?;
                println!("{}", serde_json::to_string_pretty(&b)?);
            }
        }
        Cmd::Enrol {
            center,
            role,
            hours,
        } => {
            let center = match center {
                Some(c) => c,
                None => timebank_core::sql::one(&db, "SELECT id FROM centers ORDER BY id", vec![])
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message(timebank_core::Lang::En)))?
                    .context("no center: run init first")?
                    .try_get::<String>("", "id")?,
            };
            let code = auth::issue_code(&db, &center, &role, hours, now)
                .await
                .map_err(|e| anyhow::anyhow!(e.message(timebank_core::Lang::En)))?;
            println!("{code}");
        }
        Cmd::Revoke { device } => {
            let done = auth::revoke(&db, &device, now)
                .await
                .map_err(|e| anyhow::anyhow!(e.message(timebank_core::Lang::En)))?;
            println!(
                "{}",
                if done {
                    "revoked"
                } else {
                    "no such active device"
                }
            );
        }
    }
    Ok(())
}
