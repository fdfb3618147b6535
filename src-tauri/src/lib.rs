//! The desktop app: a thin Tauri shell over `timebank-core`. The web-view in `ui/` calls the
//! commands of `commands.rs` through generated TypeScript bindings (`ui/src/bindings.ts`).
// UiError carries both messages for the web-view; its size does not matter next to IPC.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tauri::Manager;

pub mod command_names;
pub mod commands;
pub mod prefs;
pub mod state;

use state::AppState;

/// Options of the app (also from the environment, for tests and the run script).
#[derive(Debug, Parser)]
#[command(name = "timebank-app", about = "时间银行 desktop app")]
pub struct Options {
    /// Where the device database, logs and backups live (default: the app's data directory).
    #[arg(long, env = "TIMEBANK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Enrol with this city server at start-up if the device is not enrolled yet.
    #[arg(long, env = "TIMEBANK_ENROL_SERVER")]
    pub enrol_server: Option<String>,
    /// The enrolment code for --enrol-server.
    #[arg(long, env = "TIMEBANK_ENROL_CODE")]
    pub enrol_code: Option<String>,
    /// Seconds between sync rounds while online.
    #[arg(long, env = "TIMEBANK_SYNC_EVERY", default_value_t = 10)]
    pub sync_every: u64,
    /// Longest wait between attempts while the server cannot be reached.
    #[arg(long, env = "TIMEBANK_SYNC_MAX_BACKOFF", default_value_t = 60)]
    pub sync_max_backoff: u64,
    /// Run this device's clock this many minutes off (for demos and tests: devices drift, and
    /// the core and the city server cope; the server clamps clocks that run ahead).
    #[arg(
        long,
        env = "TIMEBANK_CLOCK_OFFSET_MINUTES",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub clock_offset_minutes: i64,
}

/// The path of the TypeScript bindings, relative to this crate.
pub const BINDINGS: &str = "../ui/src/bindings.ts";

/// The TypeScript bindings as text (what `export` writes to `ui/src/bindings.ts`).
pub fn bindings_text() -> String {
    // A directory of its own per call: tests call this concurrently in one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("timebank-bindings-{}-{n}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("bindings.ts");
    commands::builder()
        .export(ts_exporter(), &file)
        .expect("export the TypeScript bindings");
    let text = std::fs::read_to_string(&file).expect("read the exported bindings");
    let _ = std::fs::remove_dir_all(&dir);
    text
}

fn ts_exporter() -> specta_typescript::Typescript {
    specta_typescript::Typescript::default().header("// Generated from the Rust types by tauri-specta (src-tauri/src/commands.rs). Do not edit.\n// Regenerate: cargo run -p timebank-app --bin export-bindings\n/* eslint-disable */")
}

fn open_logs(dir: &std::path::Path) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).ok()?;
    let file = tracing_appender::rolling::daily(&logs, "timebank-app.log");
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIMEBANK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(writer)
        .try_init()
        .ok()?;
    Some(guard)
}

/// Open (restoring a staged backup first) and migrate the device database.
async fn open_db(
    data_dir: &std::path::Path,
) -> timebank_core::Result<(sea_orm::DatabaseConnection, PathBuf)> {
    let db_path = data_dir.join("timebank.db");
    let marker = prefs::restore_marker(data_dir);
    if let Ok(from) = std::fs::read_to_string(&marker) {
        let _ = std::fs::remove_file(&marker);
        match timebank_core::backup::restore(std::path::Path::new(from.trim()), &db_path).await {
            Ok(_) => tracing::warn!(from = from.trim(), "backup restored"),
            Err(e) => {
                tracing::error!(error = %e, "backup could not be restored; the database is unchanged")
            }
        }
    }
    let url = timebank_core::db::sqlite_url(&db_path);
    let db = timebank_core::db::connect_tuned(&url, timebank_core::db::Tuning::DESKTOP).await?;
    Ok((db, db_path))
}

/// Staff-only commands exist on center workstations only (enrolled as a center, or a
/// stand-alone center database made with `timebank init`); never on a volunteer's computer or
/// on a device not enrolled yet. The core checks the signed-in member's role as well.
pub async fn grant_staff_commands(app: &tauri::AppHandle) {
    let st = app.state::<AppState>();
    let role = prefs::device_role(&st.db)
        .await
        .unwrap_or_else(|_| "volunteer".into());
    let initialised = timebank_core::service::outbox::get_setting(
        &st.db,
        timebank_core::service::outbox::K_DEVICE_ID,
    )
    .await
    .ok()
    .flatten()
    .is_some();
    if !initialised
        || role == "volunteer"
        || st
            .staff_granted
            .swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        return;
    }
    match app.add_capability(include_str!("../capabilities/staff.json")) {
        Ok(()) => tracing::info!(role, "staff commands granted on this workstation"),
        Err(e) => tracing::error!(error = %e, "could not grant the staff commands"),
    }
}

/// The sync loop: rounds in the background, events to the UI after each.
fn start_sync(app: &tauri::AppHandle, opts: &Options) {
    let st = app.state::<AppState>();
    let (db, wake, syncing, handle) = (
        st.db.clone(),
        st.wake.clone(),
        st.syncing.clone(),
        app.clone(),
    );
    let (every, max_backoff) = (
        Duration::from_secs(opts.sync_every.max(1)),
        Duration::from_secs(opts.sync_max_backoff.max(1)),
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<usize>>();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    tauri::async_runtime::spawn(async move {
        let _keep = _stop_tx;
        // Let the first screen load before the first round takes the database and the network.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        timebank_core::sync::http::run_loop(&db, every, max_backoff, &wake, stop, |ev| {
            use timebank_core::sync::http::RoundEvent;
            syncing.store(
                !matches!(ev, RoundEvent::Ended(_)),
                std::sync::atomic::Ordering::Relaxed,
            );
            match ev {
                RoundEvent::Started => {
                    let _ = tx.send(None);
                }
                // The status now carries the pull's progress.
                RoundEvent::Pulling(_) => {
                    let _ = tx.send(Some(0));
                }
                RoundEvent::Ended(Ok(r)) => {
                    tracing::info!(
                        pushed = r.pushed,
                        pulled = r.pulled,
                        rejected = r.rejected,
                        "synced"
                    );
                    let _ = tx.send(Some(r.pulled + r.repaired + r.rejected));
                }
                RoundEvent::Ended(Err(e)) => {
                    tracing::warn!(error = %e.message(timebank_core::Lang::En), "sync failed");
                    let _ = tx.send(Some(0));
                }
            }
        })
        .await;
    });
    tauri::async_runtime::spawn(async move {
        while let Some(changed) = rx.recv().await {
            let st = handle.state::<AppState>();
            if changed.is_some_and(|n| n > 0) {
                st.changed("sync").await;
            } else {
                st.emit_status().await;
            }
        }
    });
}

pub fn run() {
    let t0 = std::time::Instant::now();
    let opts = Options::parse();
    let builder = commands::builder();
    if std::env::var_os("TIMEBANK_STARTUP_TRACE").is_some() {
        eprintln!("startup: builder {} ms", t0.elapsed().as_millis());
    }
    let data_dir_opt = opts.data_dir.clone();
    tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.unminimize();
                let _ = w.set_focus();
            }
        }))
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(builder.invoke_handler())
        .setup(move |app| {
            if std::env::var_os("TIMEBANK_STARTUP_TRACE").is_some() {
                eprintln!("startup: setup {} ms", t0.elapsed().as_millis());
            }
            builder.mount_events(app);
            let data_dir = match data_dir_opt {
                Some(d) => d,
                None => app.path().app_data_dir()?,
            };
            std::fs::create_dir_all(&data_dir)?;
            let guard = open_logs(&data_dir);
            app.manage(LogGuard(guard));
            tracing::info!(data_dir = %data_dir.display(), "starting");
            let (db, db_path) = tauri::async_runtime::block_on(open_db(&data_dir))
                .map_err(|e| e.message(timebank_core::Lang::En))?;
            let p = tauri::async_runtime::block_on(prefs::load(&db)).unwrap_or_default();
            let lock = Duration::from_secs(60 * p.lock_minutes.max(1) as u64);
            let offset = opts.clock_offset_minutes * 60_000;
            let state = AppState::new(db, data_dir, db_path, app.handle().clone(), lock, offset);
            app.manage(state);
            tauri::async_runtime::block_on(grant_staff_commands(app.handle()));
            if let (Some(server), Some(code)) = (opts.enrol_server.clone(), opts.enrol_code.clone()) {
                let st = app.state::<AppState>();
                let enrolled = tauri::async_runtime::block_on(timebank_core::service::outbox::get_setting(&st.db, timebank_core::service::outbox::K_DEVICE_ID)).ok().flatten().is_some();
                if !enrolled {
                    let handle = app.handle().clone();
                    tauri::async_runtime::spawn(async move {
                        let st = handle.state::<AppState>();
                        let name = format!("{}-desktop", std::env::var("HOSTNAME").unwrap_or_else(|_| "workstation".into()));
                        match prefs::enrol(&st, &server, &code, &name).await {
                            Ok(r) => tracing::info!(pulled = r.pulled, "enrolled at start-up"),
                            Err(e) => tracing::error!(error = %e.message_en, "enrolment at start-up failed"),
                        }
                    });
                }
            }
            start_sync(app.handle(), &opts);
            if std::env::var_os("TIMEBANK_STARTUP_TRACE").is_some() {
                eprintln!("startup: setup done {} ms", t0.elapsed().as_millis());
            }
            // The automatic lock also happens when nobody touches the app at all.
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    handle.state::<AppState>().lock_if_idle();
                }
            });
            Ok(())
        })
        .run(tauri::generate_context!())
        .expect("error while running the time bank app");
}

/// Keeps the log writer alive for the life of the app.
struct LogGuard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);
